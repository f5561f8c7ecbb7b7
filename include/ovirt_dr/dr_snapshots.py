"""The DR snapshot policy: how a run's snapshots are named, found again, passed on, and merged away.

Every DR snapshot's description is ``ovirt-dr:<dag_id>:<run_id>``: a retry of the snapshot step finds its
own run's snapshot and reuses it instead of adding a second, and the merge (and the next run's preflight)
removes every DR snapshot of the pair, whichever run made it, so a VM's chain never grows run after run.

The snapshot step's result travels to the replica cleanup and audit as XCom (JSON); :class:`SnapshotSet`
is that value, read back with every id checked (the ids end up in paths on a Gluster node).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ovirt_dr.replica import ReplicaError, require_uuid, show

if TYPE_CHECKING:
    from ovirt_dr.hooks.ovirt import OvirtHook

#: Every DR snapshot's description starts with this, then the DAG id and the run id.
DR_SNAPSHOT_PREFIX = "ovirt-dr"


def dr_snapshot_description(dag_id: str, run_id: str) -> str:
    """The description that marks a snapshot as this run's: a retry finds and reuses it."""
    return f"{DR_SNAPSHOT_PREFIX}:{dag_id}:{run_id}"


def is_dr_snapshot(description: str | None, dag_id: str) -> bool:
    """True for any DR snapshot of this DAG (any run): what preflight and merge clean up."""
    return bool(description) and description.startswith(f"{DR_SNAPSHOT_PREFIX}:{dag_id}:")


@dataclass(frozen=True)
class SnapshotDisk:
    """One disk of a DR snapshot: the frozen base the replica keeps, the overlay the cleanup deletes."""

    disk_id: str
    base_volume: str
    overlay_volume: str | None = None


@dataclass(frozen=True)
class SnapshotVm:
    """One VM's DR snapshot; ``group``: its consistency group's index, None outside the groups."""

    vm_id: str
    vm_name: str
    snapshot_id: str
    group: int | None
    disks: tuple[SnapshotDisk, ...]


@dataclass(frozen=True)
class SnapshotSet:
    """What one run's snapshot step froze: the snapshot description and, per VM, its disks' volumes.

    ``to_xcom()`` is the snapshot step's return value; ``from_xcom()`` reads it back in the replica cleanup
    and audit, checking every disk and base volume id to be a UUID (``ReplicaError`` otherwise): they come
    from the engine through XCom and end up in paths on the node, so they are never trusted as they are.
    """

    description: str
    vms: tuple[SnapshotVm, ...]

    def to_xcom(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "vms": [
                {
                    "vm_id": vm.vm_id,
                    "vm_name": vm.vm_name,
                    "snapshot_id": vm.snapshot_id,
                    "group": vm.group,
                    "disks": [
                        {
                            "disk_id": d.disk_id,
                            "base_volume": d.base_volume,
                            "overlay_volume": d.overlay_volume,
                        }
                        for d in vm.disks
                    ],
                }
                for vm in self.vms
            ],
        }

    @classmethod
    def from_xcom(cls, value: Any) -> SnapshotSet:
        """The snapshot step's XCom (None or ``{}``: an empty set, as when the domain has no VM)."""
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ReplicaError(f"snapshot set {show(value)} is not a mapping")
        vms = []
        for i, vm in enumerate(value.get("vms") or []):
            if not isinstance(vm, Mapping) or not isinstance(vm.get("disks"), list):
                raise ReplicaError(f"snapshot set: VM entry {i} {show(vm)} has no list of disks")
            disks = []
            for d in vm["disks"]:
                if not isinstance(d, Mapping):
                    raise ReplicaError(f"snapshot set: disk entry {show(d)} is not a mapping")
                overlay = d.get("overlay_volume")
                disks.append(
                    SnapshotDisk(
                        disk_id=require_uuid(d.get("disk_id"), "disk id"),
                        base_volume=require_uuid(d.get("base_volume"), "base volume id"),
                        overlay_volume=str(overlay) if overlay is not None else None,
                    )
                )
            group = vm.get("group")
            vms.append(
                SnapshotVm(
                    vm_id=str(vm.get("vm_id") or ""),
                    vm_name=str(vm.get("vm_name") or ""),
                    snapshot_id=str(vm.get("snapshot_id") or ""),
                    group=group if isinstance(group, int) and not isinstance(group, bool) else None,
                    disks=tuple(disks),
                )
            )
        return cls(description=str(value.get("description") or ""), vms=tuple(vms))

    @property
    def frozen(self) -> dict[str, str]:
        """``{disk id: frozen base volume id}`` of every disk of the set."""
        return {d.disk_id: d.base_volume for vm in self.vms for d in vm.disks}


def merge_dr_snapshots(
    hook: OvirtHook, storage_domain: str, dag_id: str, timeout_s: float, log: Any, poll_s: float = 1.0
) -> list[str]:
    """Remove every DR snapshot of this pair on the domain's VMs and wait until each is gone.

    Shared by the preflight (leftovers) and the merge step. A snapshot still being created (a run that
    died mid-snapshot) is waited for first: it must be ok before it can be merged. Every removal is tried
    even when another fails, the waits for them are batched; the failures are raised together at the end,
    so one stuck VM does not keep the others' chains long. Returns ``vm name/snapshot id`` of each merged.
    """
    from ovirt_dr.hooks.ovirt import OvirtError, status_of

    vms = {vm.id: vm for vm in hook.vms_on_domain(storage_domain)}
    names = {vm_id: vm.name for vm_id, vm in vms.items()}
    targets = [
        (vm_id, snap)
        for vm_id, snaps in hook.snapshots_of(list(vms)).items()
        for snap in snaps
        if is_dr_snapshot(snap.description, dag_id)
    ]
    locked = [(v, s.id) for v, s in targets if status_of(s, "snapshot_status") == "locked"]
    not_ok = hook.wait_snapshots_ok(locked, timeout_s, poll_s) if locked else {}
    errors = [f"{names[v]}/{s}: {why}" for (v, s), why in not_ok.items()]
    started = []
    for vm_id, snap in targets:
        log.info("Merging snapshot %s of %s (%s)", snap.id, names[vm_id], snap.description)
        try:
            hook.remove_snapshot(vm_id, snap.id)
            started.append((vm_id, snap.id))
        except Exception as e:
            errors.append(f"{names[vm_id]}/{snap.id}: {e}")
    for vm_id, snap_id in hook.wait_snapshots_gone(started, timeout_s, poll_s):
        errors.append(f"{names[vm_id]}/{snap_id}: still present after {timeout_s:.0f}s")
    if errors:
        raise OvirtError(f"{len(errors)} DR snapshot(s) could not be merged: {errors}")
    return [f"{names[v]}/{s}" for v, s in started]


__all__ = [
    "DR_SNAPSHOT_PREFIX",
    "SnapshotDisk",
    "SnapshotSet",
    "SnapshotVm",
    "dr_snapshot_description",
    "is_dr_snapshot",
    "merge_dr_snapshots",
]
