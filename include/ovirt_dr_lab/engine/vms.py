"""VMs: power (start, stop, with the engine's status transitions), freeze/thaw, removal, the guest writer.

The guest writer writes known blocks into running VMs' active layers and logs each write, so tests can
compute what any disk must hold at any moment; per-image locks (shared with DomainStorage) make every
write land wholly before or wholly after a snapshot.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from ovirt_dr_lab.engine.common import MAX_WRITES, EngineFault, conflict, display, not_found, now_iso
from ovirt_dr_lab.engine.jobs import JobsMixin
from ovirt_dr_lab.engine.site import SiteError
from ovirt_dr_lab.engine.storage import StorageError

log = logging.getLogger(__name__)


class VmsMixin(JobsMixin):
    """VM power and the guest writer."""

    # ---- power ---------------------------------------------------------------------------------
    def _set_vm_status(self, vm_id: str, status: str, expect: set[str] | None = None) -> None:
        with self.lock:
            vm = self.s["vms"].get(vm_id)
            if vm is None or (expect is not None and vm["status"] not in expect):
                return
            vm["status"] = status
            if status == "down":
                vm["host_id"] = None
                vm["start_time"] = None
            self.save()

    def start_vm(self, vm_id: str) -> None:
        with self.lock:
            vm = self.get("vms", vm_id)
            if vm["status"] != "down":
                raise conflict(f"Cannot run VM. VM {vm['name']} is {display(vm['status'])}")
            cluster = self.s["clusters"].get(vm["cluster_id"])
            hosts = [
                h
                for h in self.s["hosts"].values()
                if h["cluster_id"] == vm["cluster_id"] and h["status"] == "up"
            ]
            if cluster is None or not hosts:
                raise conflict(
                    "Cannot run VM. There is no host that satisfies current scheduling constraints"
                )
            disks = [self.s["disks"][d] for d in self.image_disk_ids(vm)]
            for disk in disks:
                sd = self.s["storage_domains"].get(disk["sd_id"])
                if sd is None or sd.get("dc_id") != cluster["dc_id"] or sd.get("status") != "active":
                    name = sd["name"] if sd else disk["sd_id"]
                    raise conflict(
                        f"Cannot run VM. Storage Domain {name} of disk {disk['alias']} is not active"
                    )
            vm["status"] = "wait_for_launch"  # claims the VM so a concurrent start gets 409
        problems: list[str] = []
        for disk in disks:
            ds = self.storage(disk["sd_id"])
            try:
                chain = ds.chain(disk["id"])
                if disk["leaf"] not in chain:
                    problems.append(
                        f"disk {disk['alias']}: volume {disk['leaf']} is not in its chain {chain}"
                    )
                problems += [f"disk {disk['alias']}: {p}" for p in ds.check_chain(disk["id"])]
            except StorageError as exc:
                problems.append(f"disk {disk['alias']}: {exc}")
        if problems:
            self._set_vm_status(vm_id, "down")
            self.add_event(
                f"Failed to run VM {vm['name']}: {'; '.join(problems)}",
                code=128,
                severity="error",
                vm_id=vm_id,
            )
            raise conflict(f"Cannot run VM. The VM has illegal or broken disk images: {'; '.join(problems)}")
        with self.lock:
            vm["host_id"] = hosts[0]["id"]
            self.save()
        lat = self.latency.get("start", 0.6)
        self.add_event(
            f"VM {vm['name']} was started by admin@internal-authz (Host: {hosts[0]['name']}).",
            code=153,
            vm_id=vm_id,
        )

        def up() -> None:
            with self.lock:
                if vm["status"] == "powering_up":
                    vm["status"] = "up"
                    vm["start_time"] = now_iso()
                    self.save()
            self.add_event(f"VM {vm['name']} started on Host {hosts[0]['name']}", code=32, vm_id=vm_id)

        self.sched.sequence(
            [(lat / 2, lambda: self._set_vm_status(vm_id, "powering_up", {"wait_for_launch"})), (lat / 2, up)]
        )

    def stop_vm(self, vm_id: str, verb: str) -> None:
        """``stop`` powers off (also a VM that is powering down: the engine's way out of a hung shutdown);
        ``shutdown`` asks the guest, only from up, and takes the ``shutdown`` latency."""
        with self.lock:
            vm = self.get("vms", vm_id)
            if vm["status"] == "down" or (verb == "shutdown" and vm["status"] == "powering_down"):
                raise conflict(f"Cannot {verb} VM. VM {vm['name']} is not running")
            vm["status"] = "powering_down"
            self.save()
        delay = self.latency.get(verb, self.latency.get("stop", 0.3))
        self.sched.call_later(delay, lambda: self._set_vm_status(vm_id, "down", {"powering_down"}))
        self.add_event(f"VM {vm['name']} is down.", code=61, vm_id=vm_id)

    def remove_disk(self, disk_id: str) -> None:
        """``DELETE /disks/{id}``: a floating disk; its image is deleted when its domain is active here.

        Refused for a disk a VM or template uses. A disk whose storage domain this engine no longer has
        (left behind by a detach or removal) is only dropped from the inventory: there is no storage left
        to touch, and the files on the volume are never reached through a domain that is not attached.
        """
        with self.lock:
            disk = self.get("disks", disk_id)
            users = [
                o["name"]
                for coll in ("vms", "templates")
                for o in self.s[coll].values()
                if disk_id in o.get("disk_ids", [])
            ]
            if users:
                raise conflict(
                    f"Cannot remove Virtual Disk. Disk {disk['alias']} is in use by {', '.join(users)}"
                )
            sd = self.s["storage_domains"].get(disk.get("sd_id") or "")
            has_image = disk.get("storage_type", "image") != "lun" and sd is not None
            if has_image and sd.get("status") != "active":
                raise conflict(
                    f"Cannot remove Virtual Disk. Storage Domain {sd['name']} is {display(sd.get('status') or 'unattached')}"
                )
            self.s["disks"].pop(disk_id)
            self._drop_snapshots_of_disk(disk_id)
            self.save()
        if has_image:
            try:
                self.storage(disk["sd_id"]).delete_image(disk_id)
            except (StorageError, KeyError, SiteError) as exc:
                log.warning("removing disk %s: %s", disk["alias"], exc)
        self.add_event(f"Disk {disk['alias']} was successfully removed.", code=2014)

    def freeze(self, vm_id: str, action: str) -> None:
        with self.lock:
            vm = self.get("vms", vm_id)
            if vm["status"] != "up":
                raise conflict(f"Cannot {action} VM because the VM is in {display(vm['status'])} status.")
            self.freeze_log.append(
                {"time": now_iso(), "vm_id": vm_id, "vm_name": vm["name"], "action": action}
            )

    def vm_nic(self, vm_id: str, nic_id: str) -> dict[str, Any]:
        vm = self.get("vms", vm_id)
        nic = next((n for n in vm.get("nics", []) if n["id"] == nic_id), None)
        if nic is None:
            raise not_found()
        return nic

    def update_nic(
        self, vm_id: str, nic_id: str, plugged: bool | None, linked: bool | None
    ) -> dict[str, Any]:
        """(Un)plug or (un)link a vNIC, as ``PUT /vms/{vm}/nics/{nic}`` does; on a running VM that is a hot
        (un)plug, which the engine allows too. A vNIC without the key keeps its earlier rendering."""
        with self.lock:
            nic = self.vm_nic(vm_id, nic_id)
            if plugged is not None:
                nic["plugged"] = bool(plugged)
            if linked is not None:
                nic["linked"] = bool(linked)
            self.save()
            return dict(nic)

    def remove_vm(self, vm_id: str, detach_only: bool) -> None:
        with self.lock:
            vm = self.get("vms", vm_id)
            if vm["status"] != "down":
                raise conflict(f"Cannot remove VM. VM {vm['name']} is running.")
            images = set(self.image_disk_ids(vm))
            disks = [d for d in self._forget_vm(vm_id) if d["id"] in images]
            self.save()
        if not detach_only:
            for disk in disks:
                try:
                    self.storage(disk["sd_id"]).delete_image(disk["id"])
                except (StorageError, KeyError, SiteError) as exc:
                    log.warning("removing disk %s: %s", disk["alias"], exc)
        self.add_event(f"VM {vm['name']} was successfully removed.", code=113)

    # ---- guest writer --------------------------------------------------------------------------
    def guest_write(self, vm_id: str, disk_id: str, offset: int, length: int, pattern: int) -> dict[str, Any]:
        with self.lock:
            vm = self.get("vms", vm_id)
            if disk_id not in vm["disk_ids"]:
                raise EngineFault(404, f"disk {disk_id} is not attached to VM {vm['name']}")
            if disk_id not in self.image_disk_ids(vm):
                raise EngineFault(
                    400, f"disk {disk_id} of VM {vm['name']} is a direct LUN disk: not emulated"
                )
            if vm["status"] != "up":
                raise conflict(f"Cannot write into VM {vm['name']}: it is {display(vm['status'])}")
            disk = self.s["disks"][disk_id]
        ds = self.storage(disk["sd_id"])
        with ds.image_lock(disk_id):
            volume = disk["leaf"]
            try:
                ds.guest_write(disk_id, volume, offset, length, pattern)
            except StorageError as exc:
                raise EngineFault(400, str(exc)) from exc
            entry = {
                "seq": next(self._write_seq),
                "time": now_iso(),
                "vm_id": vm_id,
                "disk_id": disk_id,
                "volume_id": volume,
                "offset": offset,
                "length": length,
                "pattern": pattern,
            }
            with self.lock:
                self.write_log.append(entry)
                if len(self.write_log) > MAX_WRITES:
                    del self.write_log[: len(self.write_log) - MAX_WRITES]
        return entry

    def start_writer(self, vm_ids: list[str], interval_s: float, block_size: int) -> None:
        """One background thread writing a block per disk of each VM every ``interval_s`` seconds."""
        self.stop_writer()
        for vm_id in vm_ids:
            self.get("vms", vm_id)
        if block_size <= 0 or block_size % 512:
            raise EngineFault(400, "block_size must be a positive multiple of 512")
        stop = threading.Event()
        rng = random.Random(0xD15C)

        def loop() -> None:
            pattern = 0
            while not stop.is_set():
                for vm_id in vm_ids:
                    vm = self.s["vms"].get(vm_id)
                    if vm is None or vm["status"] != "up":
                        continue
                    for disk_id in self.image_disk_ids(vm):
                        disk = self.s["disks"].get(disk_id)
                        if disk is None or stop.is_set():
                            continue
                        pattern = pattern % 255 + 1
                        offset = rng.randrange(0, max(1, disk["size"] // block_size)) * block_size
                        try:
                            self.guest_write(
                                vm_id, disk_id, offset, min(block_size, disk["size"] - offset), pattern
                            )
                        except EngineFault as exc:
                            self.writer_errors.append(f"{vm_id}/{disk_id}: {exc}")
                        except Exception as exc:  # keep writing the other disks; the error is reported
                            self.writer_errors.append(f"{vm_id}/{disk_id}: {exc}")
                stop.wait(interval_s)

        self._writer_stop = stop
        self._writer_thread = threading.Thread(target=loop, name="engine-guest-writer", daemon=True)
        self._writer_thread.start()

    def stop_writer(self) -> None:
        if self._writer_stop is not None:
            self._writer_stop.set()
        if self._writer_thread is not None:
            self._writer_thread.join(timeout=30)
        self._writer_stop = None
        self._writer_thread = None
