"""Engine-side operators against a fake OvirtHook (unit tests of one class each; the lab tests use the emulator)."""

from __future__ import annotations

import itertools
from types import SimpleNamespace as NS

import pytest

from ovirt_dr.dr_snapshots import dr_snapshot_description
from ovirt_dr.hooks.ovirt import OvirtError, OvirtHook
from ovirt_dr.operators.ovirt import OvirtMergeSnapshotsOperator, OvirtSnapshotVmsOperator

SD = "sd-1"


class FakeOvirt:
    """Just enough engine: VMs with one disk each, snapshots that become ok at once, a call log."""

    def __init__(self, vms: dict[str, str], fail_snapshot_of: str | None = None) -> None:
        self.vms = [NS(id=f"id-{n}", name=n, status=NS(value=s)) for n, s in sorted(vms.items())]
        self.snaps: dict[str, list[NS]] = {v.id: [] for v in self.vms}
        self.leaf = {f"disk-{v.name}": f"vol0-{v.name}" for v in self.vms}
        self.calls: list[tuple] = []
        self.fail_snapshot_of = fail_snapshot_of
        self.ids = itertools.count(1)

    def vms_on_domain(self, name):
        return self.vms

    def disks_on_domain(self, vm_ids, sd_id):
        return {v: [NS(id=f"disk-{v.removeprefix('id-')}")] for v in vm_ids}

    def snapshots_of(self, vm_ids):
        return {v: list(self.snaps[v]) for v in vm_ids}

    def snapshots(self, vm_id):
        return list(self.snaps[vm_id])

    @staticmethod
    def gather(calls, missing_ok=False):
        futures = [c() for c in calls]
        return [f.wait() for f in futures]

    def freeze(self, vm_id):
        self.calls.append(("freeze", vm_id))

    def thaw(self, vm_id):
        self.calls.append(("thaw", vm_id))

    def add_snapshot(self, vm_id, description, disk_ids, wait=True):
        self.calls.append(("snapshot", vm_id))
        if self.fail_snapshot_of == vm_id:
            raise OvirtError("engine said no")
        sid = f"snap-{next(self.ids)}"
        (disk,) = disk_ids
        snap = NS(
            id=sid, description=description, snapshot_status=NS(value="ok"), base={disk: self.leaf[disk]}
        )
        self.leaf[disk] = f"vol-{sid}"
        self.snaps[vm_id].append(snap)
        return NS(wait=lambda: snap)

    def get_snapshot(self, vm_id, sid):
        return next((s for s in self.snaps[vm_id] if s.id == sid), None)

    def get_snapshots(self, refs):
        return {(v, s): self.get_snapshot(v, s) for v, s in refs}

    def snapshot_disks_of(self, refs):
        return {
            (v, s): [NS(id=d, image_id=vol) for d, vol in self.get_snapshot(v, s).base.items()]
            for v, s in refs
        }

    def get_disks(self, disk_ids):
        return {d: NS(id=d, image_id=self.leaf[d]) for d in disk_ids}

    def remove_snapshot(self, vm_id, sid):
        self.calls.append(("remove", vm_id, sid))
        self.snaps[vm_id] = [s for s in self.snaps[vm_id] if s.id != sid]

    # the real hook's waits, reading this fake's snapshots
    wait_snapshots_ok = OvirtHook.wait_snapshots_ok
    wait_snapshots_gone = OvirtHook.wait_snapshots_gone

    def close(self):
        self.calls.append(("close",))


def snapshot_op(fake, **kw):
    from airflow.sdk import DAG

    with DAG("dr_sync__d__t", schedule=None):
        op = OvirtSnapshotVmsOperator(
            task_id="snapshot_vms", ovirt_conn_id="x", storage_domain="d", sd_id=SD, poll_s=0, **kw
        )
    op.hook = fake
    return op


CTX = {"run_id": "scheduled__2026-11-21T10:00:00+00:00"}


def test_groups_frozen_in_order_thawed_in_reverse_then_rest():
    fake = FakeOvirt({"db": "up", "app": "up", "web": "up", "off": "down", "x": "up"})
    op = snapshot_op(fake, consistency_groups=[["db", "app", "off"]], exclude_vms=["x"], concurrency=2)
    out = op.execute(CTX)
    group_calls = fake.calls[:6]
    assert group_calls[:2] == [("freeze", "id-db"), ("freeze", "id-app")]  # 'off' is down: not frozen
    assert {c[1] for c in group_calls[2:5]} == {"id-db", "id-app", "id-off"}
    assert fake.calls[5:7] == [("thaw", "id-app"), ("thaw", "id-db")]
    assert ("snapshot", "id-x") not in fake.calls
    vms = {v["vm_name"]: v for v in out["vms"]}
    assert set(vms) == {"db", "app", "off", "web"}
    assert vms["db"]["group"] == 0 and vms["web"]["group"] is None
    assert vms["web"]["disks"] == [
        {
            "disk_id": "disk-web",
            "base_volume": "vol0-web",
            "overlay_volume": vms["web"]["disks"][0]["overlay_volume"],
        }
    ]
    assert out["description"] == dr_snapshot_description("dr_sync__d__t", CTX["run_id"])
    assert fake.calls[-1] == ("close",)


def test_thaw_happens_even_when_the_group_snapshot_fails():
    fake = FakeOvirt({"db": "up", "app": "up"}, fail_snapshot_of="id-app")
    op = snapshot_op(fake, consistency_groups=[["db", "app"]])
    with pytest.raises(OvirtError, match="engine said no"):
        op.execute(CTX)
    thaws = [c for c in fake.calls if c[0] == "thaw"]
    assert thaws == [("thaw", "id-app"), ("thaw", "id-db")]


def test_retry_reuses_this_runs_snapshot():
    fake = FakeOvirt({"a": "up", "b": "up"})
    op = snapshot_op(fake)
    first = op.execute(CTX)
    second = snapshot_op(fake).execute(CTX)
    assert sum(1 for c in fake.calls if c[0] == "snapshot") == 2
    assert [v["snapshot_id"] for v in first["vms"]] == [v["snapshot_id"] for v in second["vms"]]


def test_group_member_missing_is_refused():
    fake = FakeOvirt({"a": "up"})
    with pytest.raises(OvirtError, match=r"\['ghost'\]"):
        snapshot_op(fake, consistency_groups=[["a", "ghost"]]).execute(CTX)
    assert not [c for c in fake.calls if c[0] in ("freeze", "snapshot")]


def test_bad_concurrency_refused_at_construction():
    with pytest.raises(ValueError, match="concurrency"):
        OvirtSnapshotVmsOperator(task_id="s", ovirt_conn_id="x", storage_domain="d", sd_id=SD, concurrency=0)


def test_merge_removes_every_dr_snapshot_of_this_dag_only():
    from airflow.sdk import DAG

    fake = FakeOvirt({"a": "up", "b": "up"})
    fake.add_snapshot("id-a", "ovirt-dr:dr_sync__d__t:run1", ["disk-a"])
    fake.add_snapshot("id-b", "ovirt-dr:dr_sync__d__t:run2", ["disk-b"])
    fake.add_snapshot("id-b", "ovirt-dr:dr_sync__other__t:run1", ["disk-b"])
    fake.add_snapshot("id-b", "nightly backup", ["disk-b"])
    with DAG("dr_sync__d__t", schedule=None):
        op = OvirtMergeSnapshotsOperator(
            task_id="merge_snapshots", ovirt_conn_id="x", storage_domain="d", poll_s=0
        )
    op.hook = fake
    out = op.execute(CTX)
    assert len(out["merged"]) == 2
    left = [s.description for s in fake.snaps["id-b"]]
    assert left == ["ovirt-dr:dr_sync__other__t:run1", "nightly backup"]
