"""The engine-side operators and OvirtHook against the engine emulator, through the real ovirtsdk4.

No Gluster here: the emulator's domain lives in tmp dirs (as in the conformance suite); the Gluster half
of the pipeline is tested on the real lab in tests/lab and tests/e2e.
"""

from __future__ import annotations

import json
import os

import pytest
import yaml

from ovirt_dr.hooks.ovirt import OvirtError, OvirtHook
from ovirt_dr.operators.ovirt import (
    OvirtMergeSnapshotsOperator,
    OvirtSnapshotVmsOperator,
    OvirtSyncPreflightOperator,
    OvirtUpdateOvfStoreOperator,
)
from ovirt_dr_lab.engine.server import EngineServer
from ovirt_dr_lab.engine.site import SITES_DIR

pytestmark = pytest.mark.lab
DAG_ID = "dr_sync__data_gluster__t"
CTX = {"run_id": "manual__e1"}


@pytest.fixture
def engine(tmp_path, monkeypatch):
    for name in ("gvmaster", "gvslave"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("LAB_MASTER_MOUNT", str(tmp_path / "gvmaster"))
    monkeypatch.setenv("LAB_SLAVE_MOUNT", str(tmp_path / "gvslave"))
    monkeypatch.setenv("LAB_GLUSTER_HOST", "gluster.lab")
    site = yaml.safe_load((SITES_DIR / "primary.yaml").read_text())
    site["latency"] = {"snapshot": 0.2, "merge": 0.2, "ovf_update": 0.2}
    server = EngineServer(site, tmp_path / "state").start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_OVIRT_TEST",
        json.dumps(
            {
                "conn_type": "ovirt",
                "host": server.url,
                "login": "admin@internal",
                "password": "lab-admin-pw",
                "extra": {"ca_file": str(server.ca_file)},
            }
        ),
    )
    yield server
    server.stop()


def op(cls, **kw):
    from airflow.sdk import DAG

    with DAG(DAG_ID, schedule=None):
        return cls(task_id=cls.__name__, ovirt_conn_id="ovirt_test", **kw)


def test_hook_refuses_unverified_tls_by_default(engine, monkeypatch):
    conn = json.loads(os.environ["AIRFLOW_CONN_OVIRT_TEST"])
    conn["extra"] = {}
    monkeypatch.setenv("AIRFLOW_CONN_OVIRT_TEST", json.dumps(conn))
    with pytest.raises(OvirtError, match="ca_file"):
        OvirtHook("ovirt_test").get_conn()


def test_preflight_ovf_snapshot_merge_on_the_emulator(engine):
    pre = op(OvirtSyncPreflightOperator, storage_domain="data_gluster", master_volume="gvmaster").execute(CTX)
    sd_id = pre["sd_id"]
    ovf = op(OvirtUpdateOvfStoreOperator, sd_id=sd_id, timeout_s=30, poll_s=0.2).execute(CTX)
    assert ovf["event_id"] > 0

    snap = op(
        OvirtSnapshotVmsOperator,
        storage_domain="data_gluster",
        sd_id=sd_id,
        consistency_groups=[["vm01", "vm02"]],
        poll_s=0.2,
    )
    out = snap.execute(CTX)
    names = sorted(v["vm_name"] for v in out["vms"])
    assert len(names) >= 6
    freeze = [(e["action"], e["vm_name"]) for e in engine.lab.freeze_log()]
    assert freeze == [("freeze", "vm01"), ("freeze", "vm02"), ("thaw", "vm02"), ("thaw", "vm01")]
    for vm in out["vms"]:
        for d in vm["disks"]:
            chain = engine.lab.disk_chain(d["disk_id"])
            assert chain[-2:] == [d["base_volume"], d["overlay_volume"]]
    # a retry of the same run reuses the snapshots
    again = op(OvirtSnapshotVmsOperator, storage_domain="data_gluster", sd_id=sd_id, poll_s=0.2).execute(CTX)
    assert {v["snapshot_id"] for v in again["vms"]} == {v["snapshot_id"] for v in out["vms"]}

    merged = op(OvirtMergeSnapshotsOperator, storage_domain="data_gluster", poll_s=0.2).execute(CTX)
    assert len(merged["merged"]) == len(out["vms"])
    for vm in out["vms"]:
        for d in vm["disks"]:
            assert engine.lab.disk_chain(d["disk_id"])[-1] == d["base_volume"]


def test_preflight_refuses_wrong_volume_and_cleans_leftovers(engine):
    with pytest.raises(OvirtError, match="master_volume is 'othervol'"):
        op(OvirtSyncPreflightOperator, storage_domain="data_gluster", master_volume="othervol").execute(CTX)
    pre = op(OvirtSyncPreflightOperator, storage_domain="data_gluster", master_volume="gvmaster").execute(CTX)
    # a run that died after its snapshots: the next preflight merges them
    op(OvirtSnapshotVmsOperator, storage_domain="data_gluster", sd_id=pre["sd_id"], poll_s=0.2).execute(
        {"run_id": "dead_run"}
    )
    again = op(OvirtSyncPreflightOperator, storage_domain="data_gluster", master_volume="gvmaster").execute(
        CTX
    )
    assert len(again["removed_leftovers"]) >= 6
    with OvirtHook("ovirt_test") as hook:
        vms = hook.vms_on_domain("data_gluster")
        for vm_id, snaps in hook.snapshots_of([vm.id for vm in vms]).items():
            assert [s.description for s in snaps if (s.description or "").startswith("ovirt-dr")] == [], vm_id


def test_unknown_domain_is_a_clear_error(engine):
    with pytest.raises(OvirtError, match="storage domain 'nope' does not exist"):
        op(OvirtSyncPreflightOperator, storage_domain="nope", master_volume="gvmaster").execute(CTX)
