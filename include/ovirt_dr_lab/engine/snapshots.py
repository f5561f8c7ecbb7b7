"""Snapshots: creation (a real qcow2 overlay per disk, ``.meta`` flipped) and live merge (really committed).

Both run on the scheduler after the operation's latency and end through ``finish_job``. Per-image locks
serialize them with guest writes and with each other, taken in a fixed order for multi-disk snapshots.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ovirt_dr_lab.engine.common import conflict, incomplete, not_found, now_iso
from ovirt_dr_lab.engine.jobs import JobsMixin
from ovirt_dr_lab.engine.storage import StorageError

log = logging.getLogger(__name__)


class SnapshotsMixin(JobsMixin):
    """A VM's snapshots: list, create, remove (live merge), and settling them after a restart."""

    def vm_snapshots(self, vm_id: str) -> list[dict[str, Any]]:
        """The VM's snapshots, oldest first, ending with the "Active VM" entry (as the engine lists them)."""
        vm = self.get("vms", vm_id)
        snaps = sorted(
            (s for s in self.s["snapshots"].values() if s["vm_id"] == vm_id), key=lambda s: s["date"]
        )
        active = {
            "id": vm["active_snapshot_id"],
            "vm_id": vm_id,
            "description": "Active VM",
            "type": "active",
            "status": "ok",
            "date": vm["created"],
            "persist_memorystate": False,
            "volumes": {d: self.s["disks"][d]["leaf"] for d in self.image_disk_ids(vm)},
        }
        return [*snaps, active]

    def get_snapshot(self, vm_id: str, snap_id: str) -> dict[str, Any]:
        for snap in self.vm_snapshots(vm_id):
            if snap["id"] == snap_id:
                return snap
        raise not_found()

    def add_snapshot(
        self,
        vm_id: str,
        description: str | None,
        persist_memory: bool,
        disk_ids: list[str] | None,
        correlation_id: str | None,
    ) -> dict[str, Any]:
        with self.lock:
            vm = self.get("vms", vm_id)
            if not description:
                raise incomplete("Snapshot", ["description"])
            for snap in self.s["snapshots"].values():
                if snap["vm_id"] == vm_id and snap["status"] == "locked":
                    raise conflict(
                        f"Cannot create Snapshot. Snapshot is currently being created for VM {vm['name']}."
                    )
                if snap["vm_id"] == vm_id and snap["status"] == "in_preview":
                    raise conflict(f"Cannot create Snapshot. VM {vm['name']} is previewing a Snapshot.")
            images = self.image_disk_ids(vm)
            if disk_ids is None:
                disk_ids = images
            for d in disk_ids:
                if d not in vm["disk_ids"]:
                    raise conflict(f"Cannot create Snapshot. Disk {d} is not attached to VM {vm['name']}.")
                if d not in images:
                    raise conflict(
                        f"Cannot create Snapshot. Disk {self.s['disks'][d]['alias']} is a direct LUN disk "
                        "(only image disks can be snapshotted)."
                    )
            snap = {
                "id": str(uuid.uuid4()),
                "vm_id": vm_id,
                "description": description,
                "type": "regular",
                "status": "locked",
                "date": now_iso(),
                "persist_memorystate": bool(persist_memory and vm["status"] == "up"),
                "volumes": {d: self.s["disks"][d]["leaf"] for d in disk_ids},
                "created": False,
            }
            self.s["snapshots"][snap["id"]] = snap
            job = self.new_job(f"Creating VM Snapshot {description} for VM {vm['name']}", correlation_id)
            snap["job_id"] = job["id"]
            self.save()
        self.job_event(
            job,
            f"Snapshot '{description}' creation for VM '{vm['name']}' was initiated by admin@internal-authz.",
            45,
            vm_id=vm_id,
        )
        self.sched.call_later(self.latency.get("snapshot", 0.3), lambda: self._do_snapshot(snap["id"]))
        return snap

    @contextmanager
    def _disk_locks(self, disk_ids: list[str]) -> Iterator[None]:
        """Hold the image locks of several disks in a fixed order (no deadlock with other multi-disk ops)."""
        locks = []
        try:
            for d in sorted(disk_ids):
                disk = self.s["disks"].get(d)
                if disk is None:
                    continue
                cm = self.storage(disk["sd_id"]).image_lock(d)
                cm.__enter__()
                locks.append(cm)
            yield
        finally:
            for cm in reversed(locks):
                cm.__exit__(None, None, None)

    def _do_snapshot(self, snap_id: str) -> None:
        snap = self.s["snapshots"].get(snap_id)
        if snap is None:
            return
        vm = self.s["vms"].get(snap["vm_id"])
        job = self.s["jobs"].get(snap.get("job_id", ""))
        done: list[tuple[str, str, str]] = []
        error = None
        with self._disk_locks(list(snap["volumes"])):
            try:
                for disk_id in sorted(snap["volumes"]):
                    disk = self.s["disks"][disk_id]
                    parent = disk["leaf"]
                    new = str(uuid.uuid4())
                    self.storage(disk["sd_id"]).snapshot_volume(disk_id, parent, new)
                    done.append((disk_id, parent, new))
                    with self.lock:
                        snap["volumes"][disk_id] = parent
                        disk["leaf"] = new
            except (StorageError, KeyError, OSError) as exc:
                error = str(exc)
                for disk_id, parent, _new in reversed(done):  # roll back: the snapshot fails as a whole
                    try:
                        self.storage(self.s["disks"][disk_id]["sd_id"]).merge(disk_id, parent)
                        self.s["disks"][disk_id]["leaf"] = parent
                    except (StorageError, KeyError) as exc2:
                        log.error("rollback of snapshot %s on disk %s failed: %s", snap_id, disk_id, exc2)
        name = vm["name"] if vm else snap["vm_id"]
        with self.lock:
            if error is None:
                snap["status"] = "ok"
                snap["created"] = True
            else:
                self.s["snapshots"].pop(snap_id, None)
            self.save()
        self.finish_job(
            job,
            (f"Snapshot '{snap['description']}' creation for VM '{name}' has been completed.", 68),
            (f"Failed to complete snapshot '{snap['description']}' creation for VM '{name}': {error}", 69),
            error=error,
            vm_id=snap["vm_id"],
        )

    def remove_snapshot(self, vm_id: str, snap_id: str, correlation_id: str | None) -> dict[str, Any]:
        with self.lock:
            vm = self.get("vms", vm_id)
            snap = self.s["snapshots"].get(snap_id)
            if snap is None or snap["vm_id"] != vm_id:
                if snap_id == vm["active_snapshot_id"]:
                    raise conflict("Cannot remove Snapshot. The active snapshot cannot be removed.")
                raise not_found()
            if snap["status"] == "locked":
                raise conflict(
                    f"Cannot remove Snapshot. Snapshot is currently being created or removed for VM {vm['name']}."
                )
            if snap["status"] == "in_preview":
                raise conflict(f"Cannot remove Snapshot. VM {vm['name']} is previewing a Snapshot.")
            snap["status"] = "locked"
            snap["removing"] = True
            job = self.new_job(f"Removing Snapshot {snap['description']} of VM {vm['name']}", correlation_id)
            self.save()
        self.job_event(
            job,
            f"Snapshot '{snap['description']}' deletion for VM '{vm['name']}' was initiated by admin@internal-authz.",
            342,
            vm_id=vm_id,
        )
        self.sched.call_later(self.latency.get("merge", 0.5), lambda: self._do_merge(snap_id, job))
        return job

    def _do_merge(self, snap_id: str, job: dict[str, Any] | None) -> None:
        snap = self.s["snapshots"].get(snap_id)
        if snap is None:
            return
        error = None
        with self._disk_locks(list(snap["volumes"])):
            for disk_id, vol in sorted(snap["volumes"].items()):
                disk = self.s["disks"].get(disk_id)
                if disk is None:
                    continue
                ds = self.storage(disk["sd_id"])
                try:
                    chain = ds.chain(disk_id)
                    if vol not in chain or vol == chain[-1]:
                        continue  # already merged (a retried merge after a restart)
                    child = chain[chain.index(vol) + 1]
                    ds.merge(disk_id, vol)
                except (StorageError, OSError) as exc:
                    error = f"disk {disk['alias']}: {exc}"
                    break
                with self.lock:
                    if disk["leaf"] == child:
                        disk["leaf"] = vol
                    for other in self.s["snapshots"].values():
                        if other["id"] != snap_id and other["volumes"].get(disk_id) == child:
                            other["volumes"][disk_id] = vol
                    del snap["volumes"][disk_id]
                    self.save()
        vm = self.s["vms"].get(snap["vm_id"])
        name = vm["name"] if vm else snap["vm_id"]
        with self.lock:
            if error is None:
                self.s["snapshots"].pop(snap_id, None)
            else:
                snap["status"] = "ok"
                snap.pop("removing", None)
            self.save()
        self.finish_job(
            job,
            (f"Snapshot '{snap['description']}' deletion for VM '{name}' has been completed.", 356),
            (f"Failed to delete snapshot '{snap['description']}' for VM '{name}': {error}", 357),
            error=error,
            vm_id=snap["vm_id"],
        )

    def _settle_snapshots(self) -> None:
        """At start, after the chains were re-read: settle what a restart interrupted.

        A creation still locked that had not been created is dropped, one that had is ok; a removal still
        locked is retried (``_do_merge`` skips volumes already merged).
        """
        for snap in list(self.s["snapshots"].values()):
            if snap["status"] == "locked":
                if snap.get("removing"):
                    self.sched.call_later(0.1, lambda sid=snap["id"]: self._do_merge(sid, None))
                elif not snap.get("created"):
                    self.s["snapshots"].pop(snap["id"], None)
                else:
                    snap["status"] = "ok"
