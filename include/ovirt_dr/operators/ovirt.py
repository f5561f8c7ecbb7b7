"""Operators of the sync pipeline that act on the oVirt engine.

Each one is one step of DESIGN.md's "One sync run", named System + Action + Noun. All are retry-safe:
a retry finds its own earlier work by the snapshot description (``ovirt-dr:<dag_id>:<run_id>``) instead of
adding a second snapshot, and the merge removes every DR snapshot of the pair, whichever run made it.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ovirt_dr.dr_snapshots import (
    SnapshotDisk,
    SnapshotSet,
    SnapshotVm,
    dr_snapshot_description,
    merge_dr_snapshots,
)
from ovirt_dr.hooks.ovirt import OVF_UPDATED_EVENT_CODE, OvirtError, OvirtHook
from ovirt_dr.hooks.ovirt import status_of as _status
from ovirt_dr.operators.base import HookClosingOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class _OvirtOperator(HookClosingOperator):
    """Shared plumbing: a lazily created hook, closed whatever happens."""

    def __init__(self, *, ovirt_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ovirt_conn_id = ovirt_conn_id

    @cached_property
    def hook(self) -> OvirtHook:
        return OvirtHook(ovirt_conn_id=self.ovirt_conn_id)


class OvirtSyncPreflightOperator(_OvirtOperator):
    """Check the engine side before anything changes, and clear what a failed run left.

    The storage domain must exist, be active in its data center, be a GlusterFS domain and live on the
    configured master volume (a mismatch would replicate the wrong volume). Leftover DR snapshots of this
    pair (an earlier run that died before its merge) are merged first, so the backing chain never grows
    run after run. Returns ``{"sd_id", "sd_name", "dc_id", "removed_leftovers"}``.

    :param storage_domain: name of the oVirt storage domain.
    :param master_volume: Gluster volume the domain must be on.
    :param merge_timeout_s: how long to wait for each leftover merge.
    """

    template_fields: Sequence[str] = ("storage_domain", "master_volume", "ovirt_conn_id")

    def __init__(
        self, *, storage_domain: str, master_volume: str, merge_timeout_s: float = 3600, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.storage_domain = storage_domain
        self.master_volume = master_volume
        self.merge_timeout_s = merge_timeout_s

    def run(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        sd = hook.get_storage_domain(self.storage_domain)
        storage = sd.storage
        stype = _status(storage, "type") if storage else None
        if stype != "glusterfs":
            raise OvirtError(f"storage domain {sd.name!r} is {stype!r}, not a GlusterFS domain")
        volume = (storage.path or "").strip("/").split("/")[0]
        if volume != self.master_volume:
            raise OvirtError(
                f"storage domain {sd.name!r} is on Gluster volume {volume!r} ({storage.address}:{storage.path}), "
                f"but the pair's master_volume is {self.master_volume!r}"
            )
        dc, attached = hook.get_attached_domain(sd.id)
        if _status(attached) != "active":
            raise OvirtError(
                f"storage domain {sd.name!r} is {_status(attached)!r} in data center {dc.name!r}"
            )
        self.log.info(
            "Storage domain %s (%s) active in %s, on %s:%s",
            sd.name,
            sd.id,
            dc.name,
            storage.address,
            storage.path,
        )
        removed = merge_dr_snapshots(hook, self.storage_domain, self.dag_id, self.merge_timeout_s, self.log)
        if removed:
            self.log.warning("Removed %d leftover DR snapshot(s) of earlier runs: %s", len(removed), removed)
        return {"sd_id": sd.id, "sd_name": sd.name, "dc_id": dc.id, "removed_leftovers": removed}


class OvirtUpdateOvfStoreOperator(_OvirtOperator):
    """Write the domain's OVF_STORE now, and wait until the engine reports it written.

    The secondary site registers VMs from the OVF_STORE on the replica, and the engine's own updater runs
    only hourly: without this step a VM created since then would be missing after a failover. Completion is
    the engine's event 199 for this domain, newer than the request.

    :param sd_id: storage domain id (templated; usually from the preflight's XCom).
    :param timeout_s: how long to wait for the event.
    """

    template_fields: Sequence[str] = ("sd_id", "ovirt_conn_id")

    def __init__(self, *, sd_id: str, timeout_s: float = 600, poll_s: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sd_id = sd_id
        self.timeout_s = timeout_s
        self.poll_s = poll_s

    def run(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        last = hook.last_event_id()
        started = time.monotonic()
        hook.update_ovf_store(self.sd_id)
        self.log.info(
            "Asked the engine to update the OVF_STORE of %s; waiting for event %d",
            self.sd_id,
            OVF_UPDATED_EVENT_CODE,
        )
        event = hook.wait_event(OVF_UPDATED_EVENT_CODE, self.sd_id, last, self.timeout_s, self.poll_s)
        if event is None:
            raise OvirtError(f"OVF_STORE of {self.sd_id} not reported written within {self.timeout_s:.0f}s")
        waited = time.monotonic() - started
        self.log.info("OVF_STORE written after %.1fs: %s", waited, event.description)
        return {"event_id": int(event.id), "seconds": round(waited, 3)}


class OvirtSnapshotVmsOperator(_OvirtOperator):
    """Disk-only snapshot of every VM with disks on the domain, consistency groups first and in order.

    Each consistency group (a list of VM names) is frozen in its configured order
    (``freeze_filesystems``), snapshotted together, and thawed in reverse order, the thaw happening
    whatever went wrong. The other VMs are snapshotted concurrently, at most ``concurrency`` at a time, with
    the SDK's asynchronous requests (one connection, no threads). Only the disks on this domain are in the
    snapshot. A snapshot already made by this run (same description) is reused, so a retry adds nothing.

    Returns ``{"description", "vms": [{"vm_id", "vm_name", "snapshot_id", "group", "disks":
    [{"disk_id", "base_volume", "overlay_volume"}]}]}``: the base volume is the frozen one the replica
    keeps, the overlay is what the replica cleanup deletes.

    :param storage_domain: domain name; :param sd_id: its id (templated).
    :param consistency_groups: ordered lists of VM names.
    :param exclude_vms: VM names never snapshotted.
    :param concurrency: snapshots in flight at once outside the groups.
    :param timeout_s: how long one snapshot may take to become ``ok``.
    :param description_label: set when one run makes several cycles (the failback): each cycle's
        snapshots get their own description, so a later cycle never takes an earlier one's for its own.
    """

    template_fields: Sequence[str] = ("storage_domain", "sd_id", "ovirt_conn_id")

    def __init__(
        self,
        *,
        storage_domain: str,
        sd_id: str,
        consistency_groups: list[list[str]] | None = None,
        exclude_vms: list[str] | None = None,
        concurrency: int = 8,
        timeout_s: float = 1800,
        poll_s: float = 1.0,
        description_label: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if description_label is not None and not (
            description_label and all(c.isascii() and (c.isalnum() or c in "._-") for c in description_label)
        ):
            raise ValueError(f"description_label {description_label!r}: ASCII letters, digits, '._-' only")
        self.description_label = description_label
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.storage_domain = storage_domain
        self.sd_id = sd_id
        self.consistency_groups = [list(g) for g in consistency_groups or []]
        self.exclude_vms = list(exclude_vms or [])
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.poll_s = poll_s

    def run(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        run = context["run_id"] + (f":{self.description_label}" if self.description_label else "")
        description = dr_snapshot_description(self.dag_id, run)
        listed = [vm for vm in hook.vms_on_domain(self.storage_domain) if vm.name not in self.exclude_vms]
        on_domain = hook.disks_on_domain([vm.id for vm in listed], self.sd_id)
        vms = {vm.name: vm for vm in listed if on_domain[vm.id]}
        disks = {vm.name: on_domain[vm.id] for vm in vms.values()}
        missing = sorted({n for g in self.consistency_groups for n in g} - set(vms))
        if missing:
            raise OvirtError(
                f"consistency group VM(s) {missing} have no disk on {self.storage_domain!r} (or do not exist): "
                "a group that silently loses a member is not consistent; fix the config or the VM"
            )
        self.log.info(
            "%d VM(s) with disks on %s; snapshot description %r", len(vms), self.storage_domain, description
        )
        results: dict[str, SnapshotVm] = {}
        in_group: set[str] = set()
        for index, group in enumerate(self.consistency_groups):
            in_group.update(group)
            self._snapshot_group(index, [vms[n] for n in group], disks, description, results)
        rest = [vms[n] for n in sorted(vms) if n not in in_group]
        for start in range(0, len(rest), self.concurrency):
            batch = rest[start : start + self.concurrency]
            self._snapshot_batch(batch, disks, description, results, group=None)
        out = SnapshotSet(description, tuple(results[n] for n in sorted(results)))
        self.log.info("Snapshotted %d VM(s), %d disk(s)", len(out.vms), len(out.frozen))
        return out.to_xcom()

    def _snapshot_group(
        self,
        index: int,
        group: list[Any],
        disks: dict[str, list[Any]],
        description: str,
        results: dict[str, Any],
    ) -> None:
        frozen: list[Any] = []
        try:
            for vm in group:
                if _status(vm) == "up":
                    self.log.info("Group %d: freezing %s", index, vm.name)
                    self.hook.freeze(vm.id)
                    frozen.append(vm)
                else:
                    self.log.info("Group %d: %s is %s, nothing to freeze", index, vm.name, _status(vm))
            self._snapshot_batch(group, disks, description, results, group=index)
        finally:
            errors = []
            for vm in reversed(frozen):
                try:
                    self.log.info("Group %d: thawing %s", index, vm.name)
                    self.hook.thaw(vm.id)
                except Exception as e:  # keep thawing the others: a frozen guest is an outage
                    errors.append(f"{vm.name}: {e}")
            if errors:
                raise OvirtError(f"thaw failed for {errors}")

    def _snapshot_batch(
        self,
        batch: list[Any],
        disks: dict[str, list[Any]],
        description: str,
        results: dict[str, Any],
        group: int | None,
    ) -> None:
        """Snapshot a batch of VMs together: every request of a phase is sent before any answer is read."""
        hook = self.hook
        by_id = {vm.id: vm for vm in batch}
        existing = hook.snapshots_of(list(by_id))
        pending: dict[str, str] = {}  # vm id -> snapshot id
        new: list[Any] = []
        for vm in batch:
            mine = [s for s in existing[vm.id] if s.description == description]
            if mine:
                self.log.info("%s: reusing this run's snapshot %s", vm.name, mine[0].id)
                pending[vm.id] = mine[0].id
            else:
                new.append(vm)
        created = hook.gather(
            lambda vm=vm: hook.add_snapshot(vm.id, description, [d.id for d in disks[vm.name]], wait=False)
            for vm in new
        )
        for vm, snap in zip(new, created, strict=True):
            pending[vm.id] = snap.id
            self.log.info("%s: snapshot %s requested", vm.name, snap.id)
        refs = list(pending.items())
        not_ok = hook.wait_snapshots_ok(refs, self.timeout_s, self.poll_s)
        if not_ok:
            raise OvirtError(
                f"{len(not_ok)} snapshot(s) not ok: "
                + "; ".join(f"{by_id[v].name} ({s}): {why}" for (v, s), why in sorted(not_ok.items()))
            )
        self._record(refs, by_id, disks, group, results)

    def _record(
        self,
        done: list[tuple[str, str]],
        by_id: dict[str, Any],
        disks: dict[str, list[Any]],
        group: int | None,
        results: dict[str, SnapshotVm],
    ) -> None:
        """Per disk: the frozen base (the snapshot's volume) and the new overlay (the disk's volume now)."""
        if not done:
            return
        bases = self.hook.snapshot_disks_of(done)
        now = self.hook.get_disks([d.id for v, _ in done for d in disks[by_id[v].name]])
        for vm_id, snap_id in done:
            vm = by_id[vm_id]
            base = {d.id: d.image_id for d in bases[(vm_id, snap_id)]}
            out = []
            for disk in disks[vm.name]:
                if disk.id not in base:
                    raise OvirtError(f"snapshot {snap_id} of {vm.name} does not include disk {disk.id}")
                overlay = now[disk.id].image_id
                if overlay == base[disk.id]:
                    raise OvirtError(f"disk {disk.id} of {vm.name}: the snapshot made no new volume")
                out.append(SnapshotDisk(disk.id, base[disk.id], overlay))
            self.log.info("%s: snapshot %s ok, %d disk(s)", vm.name, snap_id, len(out))
            results[vm.name] = SnapshotVm(vm.id, vm.name, snap_id, group, tuple(out))


class OvirtMergeSnapshotsOperator(_OvirtOperator):
    """Merge (remove) every DR snapshot of this pair and wait until each is gone.

    Runs whatever failed before it (trigger rule ``all_done``), because a snapshot left behind makes the
    VM's chain grow run after run. It finds the snapshots by description on the domain's VMs, not from an
    upstream XCom, so snapshots of a task that died half-way are found too.
    """

    template_fields: Sequence[str] = ("storage_domain", "ovirt_conn_id")

    def __init__(
        self, *, storage_domain: str, timeout_s: float = 3600, poll_s: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.storage_domain = storage_domain
        self.timeout_s = timeout_s
        self.poll_s = poll_s

    def run(self, context: Context) -> dict[str, Any]:
        t0 = time.monotonic()
        removed = merge_dr_snapshots(
            self.hook, self.storage_domain, self.dag_id, self.timeout_s, self.log, self.poll_s
        )
        seconds = round(time.monotonic() - t0, 3)
        self.log.info("Merged %d snapshot(s) in %.1fs", len(removed), seconds)
        return {"merged": removed, "seconds": seconds}


#: Custom event ids of this product: base + a hash of the run, so the engine never de-duplicates two runs.
EVENT_ID_BASE = 0x0D70000


class OvirtSyncReportOperator(_OvirtOperator):
    """Post the run's outcome as an oVirt event, and fail the run visibly when any step failed.

    It runs whatever happened upstream (trigger rule ``all_done``), reads the states of the run's other
    tasks, posts a ``normal`` event with the recovery point on success or an ``alert`` event naming the
    failed steps, and then raises so the DAG run is failed (and Airflow's failure mail fires).

    :param sd_id: storage domain id, for the event's link (templated; may be empty if preflight failed).
    :param pair_label: ``domain/target`` for the text.
    :param audit_task_id: the task whose XCom holds the recovery point.
    """

    template_fields: Sequence[str] = ("sd_id", "pair_label", "ovirt_conn_id")

    def __init__(
        self, *, sd_id: str | None, pair_label: str, audit_task_id: str = "audit_replica", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.sd_id = sd_id
        self.pair_label = pair_label
        self.audit_task_id = audit_task_id

    def run(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        ti = context["ti"]
        run_id = context["run_id"]
        states = ti.get_task_states(dag_id=self.dag_id, run_ids=[run_id]).get(run_id, {})
        bad = sorted(t for t, s in states.items() if t != self.task_id and s not in ("success", "skipped"))
        audit = ti.xcom_pull(task_ids=self.audit_task_id) or {}
        crc = zlib.crc32(f"{self.dag_id}/{run_id}".encode()) & 0xFFFF
        if bad:
            text = (
                f"DR sync {self.pair_label} FAILED in run {run_id}: step(s) {', '.join(bad)} did not succeed"
            )
            severity, custom_id = "alert", EVENT_ID_BASE + 2 * crc + 1
        else:
            text = (
                f"DR sync {self.pair_label} completed: recovery point {audit.get('recovery_point')}, "
                f"{audit.get('vms', '?')} VM(s), {audit.get('volumes', '?')} volume(s), "
                f"{audit.get('bytes_checked', '?')} bytes verified on the replica"
            )
            severity, custom_id = "normal", EVENT_ID_BASE + 2 * crc
        sd_id = self.sd_id or None
        try:
            event = self.hook.add_event(description=text, severity=severity, custom_id=custom_id, sd_id=sd_id)
            self.log.info("Posted oVirt event %s (%s): %s", event.id, severity, text)
        except Exception:
            # The engine may be the reason the run failed: still fail the run with the real reason below.
            self.log.exception("Could not post the oVirt event %r", text)
            if not bad:
                raise
        if bad:
            raise AirflowFailException(text)
        return {"severity": severity, "description": text, "recovery_point": audit.get("recovery_point")}
