"""Failback end to end: real lab, real Airflow scheduler; the whole way out and back.

1. One sync cycle of the lab pair, then a real ``dr_failover`` (``force``: the old primary still answers
   with its domain active and its VMs running, as a site that comes back does).
2. The guest writer writes into the VMs on the SECONDARY (its log says what each disk must hold).
3. ``dr_cleanup_primary``: its dry run changes nothing; a domain the mapping does not name is refused; the
   real run takes the domain out of the primary engine (VMs powered off, OVF_STORE written, deactivated,
   detached, removed WITHOUT format: every volume file on the primary's brick as it was; the template
   disk the engine still listed removed).
4. ``dr_failback``: its dry run changes nothing on either engine or on Gluster; the real run creates the
   reverse session, runs a reverse cycle with the VMs running and the final one with them shut down,
   cleans the secondary (its removal step SIGKILLed half-way and retried by Airflow), imports and starts
   on the primary, deletes the reverse session, re-establishes primary -> secondary replication and
   unpauses the pair's sync DAG; triggered again, it converges. Afterwards every disk on the primary
   holds, bit for bit, what the writer wrote on the secondary; the VMs are up with the primary's cluster,
   profiles, affinity group and label and role; the secondary is empty; the slave is read-only.
5. A following sync cycle of the pair succeeds: replication runs again.

The test leaves the lab as it found it (the primary as after ``up``, checked against the picture taken
at the start); if it fails half-way the teardown undoes what is left (``ovirt_dr_lab.recovery_e2e``).
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from ovirt_dr_lab.recovery_e2e import (
    comparable,
    e2e_config,
    gluster_state,
    guest_view,
    put_options_back,
    remove_orphan_disks,
    replica_tree,
    restore_lab,
    restore_primary,
    site_picture,
    stop_runs,
    task_pid,
    volume_options,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.lab]

SYNC = "dr_sync__data_gluster__lab_dr"
FAILOVER = "dr_failover"
CLEANUP = "dr_cleanup_primary"
FAILBACK = "dr_failback"
POOL = "ovirt_dr_georep__gvmaster"
PORT = 28094
SD = "data_gluster"
GEOREP_DIR = Path("/var/lib/glusterd/geo-replication")
#: fast emulated operations: the test measures the product's own time, not the emulator's sleeps
LATENCY = {
    "snapshot": 0.1,
    "merge": 0.1,
    "ovf_update": 0.1,
    "register": 0.1,
    "start": 0.2,
    "stop": 0.1,
    "shutdown": 0.3,
    "attach": 0.3,
    "activate": 0.1,
    "deactivate": 0.1,
}
RECOVERY = {
    "retries": 2,
    "retry_delay": "2s",
    "reverse_session": {"ssh_port": 2223, "options": {"change_detector": "xsync", "sync_jobs": 1}},
    "failback": {
        "warm_cycles": 1,
        "checkpoint_timeout": "10m",
        "poll_interval": "2s",
        "faulty_grace": "2m",
        "shutdown_timeout": "1m",
        "stop_timeout": "1m",
        "sync_dag_timeout": "5m",
        "airflow_conn_id": "airflow_api",
    },
}


@pytest.fixture(scope="module")
def lab_env() -> dict[str, str]:
    from ovirt_dr_lab.labenv import load_lab_env

    return load_lab_env()


def _connect(lab_env: dict[str, str], site: str) -> Any:
    from ovirt_dr_lab.demo import engine_connection

    return engine_connection(lab_env, site)


@pytest.fixture(scope="module")
def labs(lab_env):  # type: ignore[no-untyped-def]
    from ovirt_dr_lab.demo import lab_client

    clients = lab_client(lab_env, "PRIMARY"), lab_client(lab_env, "SECONDARY")
    before = [c.latency() for c in clients]
    for c in clients:
        c.set_latency(LATENCY)
    yield clients
    for c, lat in zip(clients, before, strict=True):
        c.stop_writer()
        c.set_latency({k: lat.get(k, v) for k, v in LATENCY.items()})


@pytest.fixture(scope="module")
def airflow(lab_env, tmp_path_factory):  # type: ignore[no-untyped-def]
    from ovirt_dr_lab.airflow_runner import AirflowStandalone

    home = tmp_path_factory.mktemp("airflow-failback")
    env = {k: v for k, v in lab_env.items() if k.startswith("AIRFLOW_CONN_")}
    env["OVIRT_DR_CONFIG"] = str(
        e2e_config(home / "ovirt_dr.yaml", recovery=RECOVERY, pair={"poll_interval": "2s"})
    )
    af = AirflowStandalone(home=home, env=env, port=PORT)
    af.start()
    try:
        af.ensure_pool(POOL, 1, "failback e2e")
        # the failback pauses and resumes the sync DAG through the REST API, as this test's own admin
        af.api(
            "POST",
            "/connections",
            {
                "connection_id": "airflow_api",
                "conn_type": "http",
                "host": af.url,
                "login": "admin",
                "password": af.admin_password(),
            },
        )
        for dag_id in (SYNC, FAILOVER, CLEANUP, FAILBACK):
            af.wait_dag(dag_id)
            af.unpause(dag_id)
        yield af
    finally:
        af.stop()


@pytest.fixture(scope="module")
def world(lab_env, labs, airflow):  # type: ignore[no-untyped-def]
    """The lab as the test found it, and the teardown that gives it back whatever happened."""
    primary, secondary = _connect(lab_env, "PRIMARY"), _connect(lab_env, "SECONDARY")
    assert secondary.system_service().storage_domains_service().list() == [], "the secondary must start empty"
    before = {
        "primary": site_picture(primary),
        "gluster": gluster_state(),
        "options": {v: volume_options(v) for v in ("gvmaster", "gvslave")},
        "georep_files": sorted(
            p.name for p in GEOREP_DIR.iterdir() if not p.name.startswith("gvslave_gvmaster_")
        ),
    }
    assert before["gluster"]["read_only"] == "on" and before["gluster"]["reverse_session"] is None
    assert before["primary"]["domains"][SD]["states"] == ["active in Default"]
    state: dict[str, Any] = {"before": before, "timings": {}}
    yield state
    for dag_id in (FAILBACK, CLEANUP, FAILOVER, SYNC):
        stop_runs(airflow, dag_id)
    labs[1].stop_writer()
    errors: list[str] = []
    if site_picture(primary) != before["primary"] or gluster_state()["reverse_session"] is not None:
        from ovirt_dr_lab.labparts.gluster import repair_replication

        errors += [f"teardown had to: {x}" for x in repair_replication()]
        errors += restore_lab(lab_env, secondary, {"saved": {}})
        remove_orphan_disks(secondary, errors)
        restore_primary(lab_env, primary, before["primary"], errors)
        remove_orphan_disks(primary, errors)
    # Gluster keeps what geo-replication's create set on a volume that was a master once (the product resets
    # the changelog; the protected geo-replication.* options need force): put the lab's options back
    state["options_reset"] = put_options_back(before["options"])
    # gluster's delete keeps the reverse session's key copy (<master>_<slave>_common_secret.pem.pub) in the
    # geo-replication dir; down removes it, and so does the test: the lab as it found it
    from ovirt_dr_lab.labparts.gluster import delete_reverse_session

    delete_reverse_session()
    georep_files = sorted(p.name for p in GEOREP_DIR.iterdir())
    after = site_picture(primary)
    secondary_after = site_picture(secondary)
    primary.close()
    secondary.close()
    print("\ntimings: " + ", ".join(f"{k} {v:.0f}s" for k, v in state["timings"].items()))
    print(f"volume options put back by the test: {state['options_reset']}")
    assert not errors, errors
    assert after == before["primary"], "the primary is not as the test found it"
    assert georep_files == before["georep_files"]
    assert not secondary_after["domains"] and not secondary_after["vms"] and not secondary_after["disks"]
    g = gluster_state()
    assert (g["read_only"], g["master_read_only"], g["reverse_session"]) == (
        "on",
        before["gluster"]["master_read_only"],
        None,
    )


def run_dag(
    airflow: Any, dag_id: str, conf: dict[str, Any], timeout: float, world: dict[str, Any], label: str
) -> tuple[str, dict[str, Any], dict[str, str]]:
    t0 = time.monotonic()
    run_id = airflow.trigger(dag_id, conf)
    final = airflow.wait_run(dag_id, run_id, timeout)
    world["timings"][label] = time.monotonic() - t0
    states = {
        t["task_id"] + ("" if t["map_index"] < 0 else f"[{t['map_index']}]"): t["state"]
        for t in airflow.task_instances(dag_id, run_id)
    }
    return run_id, final, states


def _secondary_state(lab_env: dict[str, str]) -> bool:
    """The secondary's domain half-way out: deactivation asked, not yet detached."""
    conn = _connect(lab_env, "SECONDARY")
    try:
        return any(
            s.startswith(("preparing_for_maintenance", "maintenance"))
            for d in site_picture(conn)["domains"].values()
            for s in d["states"]
        )
    finally:
        conn.close()


def kill_when(airflow: Any, run_id: str, task_id: str, ready: Any, timeout: float = 900) -> bool:
    """SIGKILL the task process of ``task_id`` of the run once it runs and ``ready()`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ti in airflow.task_instances(FAILBACK, run_id):
            if ti["task_id"] == task_id and ti["state"] == "running" and ti["try_number"] == 1:
                pid = task_pid(ti["id"])
                if pid and ready():
                    os.kill(pid, signal.SIGKILL)
                    return True
        if airflow.api("GET", f"/dags/{FAILBACK}/dagRuns/{run_id}")["state"] in ("success", "failed"):
            return False
        time.sleep(0.3)
    return False


def dry_state(labs: Any) -> tuple[Any, ...]:
    return comparable(labs[0].state()), comparable(labs[1].state()), gluster_state()


# -- the tests ----------------------------------------------------------------------------------------------
def test_sync_then_failover_with_the_old_primary_still_running(airflow, labs, lab_env, world):  # type: ignore[no-untyped-def]
    run_id, final, states = run_dag(airflow, SYNC, {}, 600, world, "sync")
    assert final["state"] == "success", states
    run_id, final, states = run_dag(
        airflow, FAILOVER, {"dry_run": False, "force": True}, 600, world, "failover"
    )
    assert final["state"] == "success", states
    sconn = _connect(lab_env, "SECONDARY")
    try:
        picture = site_picture(sconn)
    finally:
        sconn.close()
    assert {v["status"] for v in picture["vms"].values()} == {"up"} and len(picture["vms"]) == 6
    pconn = _connect(lab_env, "PRIMARY")
    try:  # the old primary "came back": its domain active, its VMs running
        assert {v["status"] for v in site_picture(pconn)["vms"].values()} == {"up"}
    finally:
        pconn.close()
    world["sd_id"] = world["before"]["primary"]["domains"][SD]["id"]
    world["vm_ids"] = {n: v["id"] for n, v in picture["vms"].items()}


def test_writes_on_the_secondary_then_cleanup_primary(airflow, labs, lab_env, world):  # type: ignore[no-untyped-def]
    plab, slab = labs
    sconn = _connect(lab_env, "SECONDARY")
    try:
        system = sconn.system_service()
        disks = {}
        for name, vm_id in world["vm_ids"].items():
            for att in system.vms_service().vm_service(vm_id).disk_attachments_service().list(follow="disk"):
                if att.disk.storage_type is None or att.disk.storage_type.value == "image":
                    disks[att.disk.id] = (name, att.disk.image_id)
    finally:
        sconn.close()
    slave = Path(lab_env["LAB_SLAVE_MOUNT"]) / world["sd_id"] / "images"
    world["t0"] = {d: guest_view(slave / d / leaf) for d, (_, leaf) in disks.items()}
    world["disks"] = {d: name for d, (name, _) in disks.items()}
    world["seq0"] = max((w["seq"] for w in slab.writes()), default=0)
    slab.start_writer(sorted(world["vm_ids"].values()), 0.5, 65536)
    wait_for(
        lambda: len([w for w in slab.writes() if w["seq"] > world["seq0"]]) >= 14,
        60,
        "writes on the secondary",
    )

    # the dry run: nothing changes anywhere
    before = dry_state(labs)
    run_id, final, states = run_dag(airflow, CLEANUP, {"dry_run": True}, 300, world, "cleanup dry run")
    assert final["state"] == "success", states
    assert dry_state(labs) == before, "the cleanup's dry run changed something"
    plan = airflow.xcom(CLEANUP, run_id, "preflight")
    assert plan["domains"][0]["steps"] == ["stop_vms", "update_ovf_store", "deactivate", "detach", "remove"]
    assert "DRY RUN" in airflow.task_log(CLEANUP, run_id, "preflight")

    # a domain the mapping does not name is refused before anything runs
    from ovirt_dr_lab.airflow_runner import AirflowRunError

    with pytest.raises(AirflowRunError, match="400"):
        airflow.trigger(CLEANUP, {"dry_run": False, "domains": ["hosted_storage"]})
    assert dry_state(labs) == before

    files_before = {k: v for k, v in replica_tree(world["sd_id"], "gvmaster").items() if "OVF" not in k}
    stores = _ovf_store_images(lab_env, world["sd_id"])
    run_id, final, states = run_dag(airflow, CLEANUP, {"dry_run": False}, 600, world, "cleanup")
    assert final["state"] == "success", states
    done = airflow.xcom(CLEANUP, run_id, "remove_domains")
    assert done == {SD: ["deactivated", "detached", "removed (not formatted)"]}
    assert airflow.xcom(CLEANUP, run_id, "remove_orphans")["disks"] == ["tpl-base_disk1"]
    pconn = _connect(lab_env, "PRIMARY")
    try:
        after = site_picture(pconn)
    finally:
        pconn.close()
    assert SD not in after["domains"] and after["vms"] == {} and after["templates"] == []
    assert set(after["domains"]) == set(world["before"]["primary"]["domains"]) - {SD}
    assert after["disks"] == ["db_quorum_lun"]
    files_after = replica_tree(world["sd_id"], "gvmaster")
    kept = {k: v for k, v in files_after.items() if not any(k.startswith(f"images/{s}/") for s in stores)}
    assert kept == {
        k: v for k, v in files_before.items() if not any(k.startswith(f"images/{s}/") for s in stores)
    }, "the cleanup changed a volume file on the primary's brick: it must never format"


def _ovf_store_images(lab_env: dict[str, str], sd_id: str) -> set[str]:
    root = Path(lab_env["LAB_MASTER_MOUNT"]) / sd_id / "images"
    return {m.parent.name for m in root.glob("*/*.meta") if "OVF_STORE" in m.read_text(errors="replace")}


def test_failback_dry_run_changes_nothing(airflow, labs, world):  # type: ignore[no-untyped-def]
    before = dry_state(labs)
    run_id, final, states = run_dag(airflow, FAILBACK, {"dry_run": True}, 600, world, "failback dry run")
    assert final["state"] == "success", states
    assert dry_state(labs) == before, "the failback's dry run changed an engine or Gluster"
    assert "/run/ovirt-dr/mnt/gvmaster-failover" not in Path("/proc/mounts").read_text()
    plan = airflow.xcom(FAILBACK, run_id, "preflight")
    assert plan["phase"] == "sync" and not plan["blockers"] and len(plan["running"]) == 6
    assert {s for t, s in states.items() if ".gate" in t} == {"skipped"}
    report = airflow.xcom(FAILBACK, run_id, "report")
    assert report["dry_run"] and {v["status"] for v in report["vms"]} == {"planned"}
    log = airflow.task_log(FAILBACK, run_id, "preflight")
    assert "create the reverse session gvslave -> 127.0.0.1::gvmaster" in log


def test_failback_brings_every_write_home(airflow, labs, lab_env, world):  # type: ignore[no-untyped-def]
    plab, slab = labs
    # a slow deactivation on the secondary, so that its removal step can be killed half-way (SIGKILL of the
    # task process, as a worker dies) and Airflow's retry continues from where the domain is
    slab.set_latency({"deactivate": 3.0})
    t0 = time.monotonic()
    run_id = airflow.trigger(FAILBACK, {"dry_run": False})
    killed = kill_when(airflow, run_id, "remove_secondary_domains", lambda: _secondary_state(lab_env))
    final = airflow.wait_run(FAILBACK, run_id, 1200)
    world["timings"]["failback"] = time.monotonic() - t0
    slab.set_latency({"deactivate": LATENCY["deactivate"]})
    slab.stop_writer()
    tis = airflow.task_instances(FAILBACK, run_id)
    states = {t["task_id"] + ("" if t["map_index"] < 0 else f"[{t['map_index']}]"): t["state"] for t in tis}
    assert final["state"] == "success", states
    tries = {t["task_id"]: t["try_number"] for t in tis if t["map_index"] < 0}
    assert killed and tries["remove_secondary_domains"] >= 2, tries
    writes = sorted((w for w in slab.writes() if w["seq"] > world["seq0"]), key=lambda w: w["seq"])
    assert {w["disk_id"] for w in writes} == set(world["disks"]), "the writer did not write every disk"
    world["writes"] = len(writes)
    pconn = _connect(lab_env, "PRIMARY")
    try:
        system = pconn.system_service()
        picture = site_picture(pconn)
        master = Path(lab_env["LAB_MASTER_MOUNT"]) / world["sd_id"] / "images"
        for disk_id, name in world["disks"].items():
            content = bytearray(world["t0"][disk_id])
            for w in writes:
                if w["disk_id"] == disk_id:
                    content[w["offset"] : w["offset"] + w["length"]] = bytes([w["pattern"]]) * w["length"]
            leaf = system.disks_service().disk_service(disk_id).get().image_id
            got = guest_view(master / disk_id / leaf)
            assert hashlib.sha256(got).hexdigest() == hashlib.sha256(content).hexdigest(), (
                f"{name}: disk {disk_id} on the primary is not what was written on the secondary"
            )
    finally:
        pconn.close()
    # back as the primary was: same ids, up, the primary's cluster, profiles, groups, labels, roles
    assert picture == world["before"]["primary"]
    sconn = _connect(lab_env, "SECONDARY")
    try:
        sec = site_picture(sconn)
    finally:
        sconn.close()
    assert not sec["domains"] and not sec["vms"] and not sec["disks"]
    g = gluster_state()
    assert (g["read_only"], g["reverse_session"]) == ("on", None)
    assert (g["master_read_only"] or "off") == "off", "the primary's volume must be writable again"
    assert not airflow.api("GET", f"/dags/{SYNC}")["is_paused"], "the sync DAG was not unpaused"
    report = airflow.xcom(FAILBACK, run_id, "report")
    assert {v["status"] for v in report["vms"]} == {"up"} and report["downtime_s"] > 0
    assert report["cycles"][f"final__{SD}"]["recovery_point"]
    world["downtime_s"] = report["downtime_s"]
    print(f"\nfailback: {len(writes)} writes home, VMs down {report['downtime_s']:.0f}s")


def test_failback_triggered_again_converges(airflow, labs, lab_env, world):  # type: ignore[no-untyped-def]
    """A failback triggered again after it got through (or after it stopped past the final cycle) reads
    where things stand and only checks: nothing is imported, registered or started twice."""
    plab, _ = labs
    before = comparable(plab.state())
    run_id, final, states = run_dag(airflow, FAILBACK, {"dry_run": False}, 600, world, "failback again")
    assert final["state"] == "success", states
    plan = airflow.xcom(FAILBACK, run_id, "preflight")
    assert plan["phase"] == "import" and plan["running"] is None
    assert {s for t, s in states.items() if t.startswith(("reverse_", "final__"))} == {"skipped"}
    after = comparable(plab.state())
    added = [e for e in after["events"] if e not in before["events"]]
    assert [e["origin"] for e in added] == ["ovirt-dr"], added  # the report's event, nothing else
    after["events"] = before["events"]
    assert after == before, "a second failback changed the primary"
    outcomes = airflow.xcom(FAILBACK, run_id, "start_vms", key="outcomes")
    assert {o["result"] for o in outcomes} == {"skipped"}
    pconn = _connect(lab_env, "PRIMARY")
    try:
        assert site_picture(pconn) == world["before"]["primary"]
    finally:
        pconn.close()


def test_replication_runs_again(airflow, world):  # type: ignore[no-untyped-def]
    run_id, final, states = run_dag(airflow, SYNC, {}, 600, world, "sync after failback")
    assert final["state"] == "success", states
    audit = airflow.xcom(SYNC, run_id, "audit_replica")
    assert audit["vms"] == 7 and audit["bytes_checked"] > 0
