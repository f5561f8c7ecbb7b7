"""Failover end to end: real lab, real Airflow scheduler, the REAL slave volume imported by the secondary emulator.

One sync cycle of the lab pair runs first in the same Airflow, while the guest writer writes into the
primary's VMs, so the replica holds a recovery point recorded on the pair's asset. Then, in order:

1. a dry run (``force`` so that the plan goes all the way) leaves both engines' state and Gluster exactly as
   they were (the only differences allowed are named in ``comparable``), and plans every VM;
2. a real run while the primary engine answers with its domain active is REFUSED by the split-brain guard
   and changes nothing either;
3. with the primary engine down (``engine_down``) the real run proceeds; one registration shard and then
   the start step are SIGKILLed mid-way (the task process titled ``airflow worker -- <ti id>``) and Airflow's
   retries finish the job: every VM exists once, was registered once and started once, is ``up``, carries
   the mappings (cluster, vNIC profile, affinity group and label, role through its permission), and each
   disk holds the primary's content at snapshot time, computed from the writer's log.

The teardown puts the lab back as it was (VMs stopped, domain deactivated, detached and removed WITHOUT
format, the OVF_STORE files the secondary engine rewrote on deactivation restored byte for byte, the slave
read-only again) and checks it: every file of the replica hashes as before the failover.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ovirt_dr_lab.recovery_e2e import (
    SHARD,
    brick_shards,
    comparable,
    e2e_config,
    gluster_state,
    guest_view,
    mails,
    replica_tree,
    restore_lab,
    slave_brick,
    stop_runs,
    task_pid,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.lab]

SYNC = "dr_sync__data_gluster__lab_dr"
FAILOVER = "dr_failover"
CLEANUP = "dr_cleanup_primary"
POOL = "ovirt_dr_georep__gvmaster"
PORT = 28092
#: what the secondary's VMs must carry after registration (the lab mapping file, dags/disaster_recovery_vars.yml)
CLUSTER, GROUP, LABEL, ROLE = "Recovery", "db_app_dr", "tier1_dr", "DrOperatorRecovery"


# -- helpers ------------------------------------------------------------------------------------------------
# -- fixtures -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab_env() -> dict[str, str]:
    from ovirt_dr_lab.labenv import load_lab_env

    return load_lab_env()


def _connect(lab_env, site: str):
    from ovirt_dr_lab.demo import engine_connection

    return engine_connection(lab_env, site)


@pytest.fixture(scope="module")
def labs(lab_env):
    from ovirt_dr_lab.demo import lab_client

    primary, secondary = lab_client(lab_env, "PRIMARY"), lab_client(lab_env, "SECONDARY")
    latency = secondary.latency()
    yield primary, secondary
    primary.stop_writer()
    secondary.set_latency({k: latency[k] for k in ("register", "start")})


@pytest.fixture(scope="module")
def airflow(lab_env, tmp_path_factory):
    from ovirt_dr_lab.airflow_runner import AirflowStandalone

    home = tmp_path_factory.mktemp("airflow-failover")
    env = {k: v for k, v in lab_env.items() if k.startswith("AIRFLOW_CONN_")}
    env["OVIRT_DR_CONFIG"] = str(e2e_config(home / "ovirt_dr.yaml"))
    af = AirflowStandalone(home=home, env=env, port=PORT)
    af.start()
    try:
        af.ensure_pool(POOL, 1, "failover e2e")
        for dag_id in (SYNC, FAILOVER):
            af.wait_dag(dag_id)
            af.unpause(dag_id)
        yield af
    finally:
        af.stop()


@pytest.fixture(scope="module")
def world(lab_env, labs, airflow):
    """State shared by the ordered tests, and the teardown that gives the lab back as it was."""
    secondary = _connect(lab_env, "SECONDARY")
    assert secondary.system_service().storage_domains_service().list() == [], "the secondary must start empty"
    assert secondary.system_service().vms_service().list() == []
    state: dict[str, Any] = {"saved": {}}
    yield state
    stop_runs(airflow, FAILOVER)
    errors = restore_lab(lab_env, secondary, state)
    secondary.close()
    assert not errors, errors


# -- the tests ----------------------------------------------------------------------------------------------
def test_sync_cycle_then_dry_run_changes_nothing(airflow, labs, lab_env, world):
    plab, slab = labs
    primary = _connect(lab_env, "PRIMARY")
    try:
        system = primary.system_service()
        (sd,) = system.storage_domains_service().list(search="name=data_gluster")
        vms = {v.name: v for v in system.vms_service().list() if v.name.startswith("vm")}
        disks = {}
        for name, vm in vms.items():
            for att in system.vms_service().vm_service(vm.id).disk_attachments_service().list():
                disks[att.disk.id] = name
    finally:
        primary.close()
    world.update({"sd_id": sd.id, "vms": {n: v.id for n, v in vms.items()}, "disks": disks})
    master = Path(lab_env["LAB_MASTER_MOUNT"]) / sd.id / "images"
    t0 = {d: bytearray(guest_view(master / d / plab.disk_chain(d)[-1])) for d in disks}
    seq0 = max((w["seq"] for w in plab.writes()), default=0)

    # one real sync cycle while the guest writer writes
    plab.start_writer(sorted(world["vms"].values()), 1.0, 65536)
    try:
        run_id = airflow.trigger(SYNC)
        final = airflow.wait_run(SYNC, run_id, 600)
    finally:
        plab.stop_writer()
    states = {t["task_id"]: t["state"] for t in airflow.task_instances(SYNC, run_id)}
    assert final["state"] == "success", states
    snaps = airflow.xcom(SYNC, run_id, "snapshot_vms")
    audit = airflow.xcom(SYNC, run_id, "audit_replica")
    world["recovery_point"] = audit["recovery_point"]
    writes = [w for w in plab.writes() if w["seq"] > seq0]
    expected = {}
    for v in snaps["vms"]:
        for d in v["disks"]:
            after = [
                w["seq"]
                for w in writes
                if w["disk_id"] == d["disk_id"] and w["volume_id"] == d["overlay_volume"]
            ]
            assert after, f"no guest write landed in {v['vm_name']}'s overlay: the writer was not writing"
            content = bytearray(t0[d["disk_id"]])
            for w in writes:
                if w["disk_id"] == d["disk_id"] and w["seq"] < min(after):
                    content[w["offset"] : w["offset"] + w["length"]] = bytes([w["pattern"]]) * w["length"]
            expected[d["disk_id"]] = hashlib.sha256(content).hexdigest()
    assert set(expected) == set(disks)
    world["expected"] = expected

    # the dry run: plan everything, change nothing
    before = (comparable(plab.state()), comparable(slab.state()), gluster_state())
    assert before[2]["read_only"] == "on"
    run_id = airflow.trigger(FAILOVER, {"dry_run": True, "force": True})
    final = airflow.wait_run(FAILOVER, run_id, 300)
    tis = {
        t["task_id"] + ("" if t["map_index"] < 0 else f"[{t['map_index']}]"): t["state"]
        for t in airflow.task_instances(FAILOVER, run_id)
    }
    assert final["state"] == "success", tis
    after = (comparable(plab.state()), comparable(slab.state()), gluster_state())
    assert after[0] == before[0], "the dry run changed the primary engine"
    assert after[1] == before[1], "the dry run changed the secondary engine"
    assert after[2] == before[2], "the dry run changed Gluster"
    assert "/run/ovirt-dr/mnt/gvslave-failover" not in Path("/proc/mounts").read_text()
    report = airflow.xcom(FAILOVER, run_id, "report")
    assert report["dry_run"] and report["guard"]["forced"]
    assert sorted(v["name"] for v in report["vms"]) == sorted(world["vms"])
    assert {v["status"] for v in report["vms"]} == {"planned"}
    assert [t["status"] for t in report["templates"]] == ["planned"]
    assert report["recovery_points"][0]["recovery_point"] == world["recovery_point"]
    plan = airflow.xcom(FAILOVER, run_id, "preflight")
    assert plan["tiers"][0] == {"name": "ha", "vms": ["vm01"]} and plan["tiers"][1]["vms"] == ["vm02"]
    assert sum(len(s) for s in plan["shards"]) == len(world["vms"]) and len(plan["shards"]) == 2
    log = airflow.task_log(FAILOVER, run_id, "preflight")
    assert "DRY RUN" in log and "shard 0:" in log


def test_real_run_is_refused_while_the_primary_is_active(airflow, labs, world):
    plab, slab = labs
    before = (comparable(plab.state()), comparable(slab.state()), gluster_state())
    run_id = airflow.trigger(FAILOVER, {"dry_run": False})
    final = airflow.wait_run(FAILOVER, run_id, 300)
    states = {t["task_id"]: t["state"] for t in airflow.task_instances(FAILOVER, run_id)}
    assert final["state"] == "failed"
    assert states["validate"] == "success" and states["preflight"] == "failed", states
    assert states["make_replica_writable"] == "upstream_failed" and states["report"] == "failed"
    guard = airflow.xcom(FAILOVER, run_id, "preflight", key="guard")
    assert (
        not guard["proceed"]
        and "REFUSED" in guard["reason"]
        and "data_gluster (active in Default)" in guard["reason"]
    )
    report = airflow.xcom(FAILOVER, run_id, "report", key="report")
    assert "REFUSED" in report["summary"]
    # the report's alert event on the target engine is the one change a refused run makes: it is the record
    after_s = comparable(slab.state())
    added = [e for e in after_s["events"] if e not in before[1]["events"]]
    assert [(e["origin"], e["severity"]) for e in added] == [("ovirt-dr", "alert")], added
    assert "REFUSED" in added[0]["description"]
    after_s["events"] = [e for e in after_s["events"] if e not in added]
    assert (comparable(plab.state()), after_s, gluster_state()) == before


def test_failover_with_the_primary_down_survives_killed_tasks(airflow, labs, lab_env, world):
    plab, slab = labs
    slave = Path(lab_env["LAB_SLAVE_MOUNT"])
    domain = slave / world["sd_id"]
    world["shards_before"] = brick_shards()
    world["replica_before"] = replica_tree(world["sd_id"])
    brick = slave_brick() / world["sd_id"]
    for meta in brick.glob("images/*/*.meta"):  # keep the OVF_STORE volumes: deactivation rewrites them
        if "OVF_STORE" in meta.read_text(errors="replace"):
            for f in meta.parent.iterdir():
                world["saved"][str(f.relative_to(brick))] = (
                    f.read_bytes(),
                    f.stat().st_size < SHARD and f.suffix == ".meta",
                )
    assert world["saved"], "no OVF_STORE on the replica"
    slab.set_latency({"register": 4.0, "start": 4.0})
    n_mails = len(mails(lab_env))
    first_event = max((e["id"] for e in slab.state()["events"]), default=0)  # earlier runs' events stay
    t_trigger = time.monotonic()
    plab.engine_down(90)
    run_id = airflow.trigger(FAILOVER, {"dry_run": False, "force": False})
    sconn = _connect(lab_env, "SECONDARY")
    try:
        system = sconn.system_service()
        ids = set(world["vms"].values())

        def running(task_id: str) -> list[dict[str, Any]]:
            return [
                t
                for t in airflow.task_instances(FAILOVER, run_id)
                if t["task_id"] == task_id and t["state"] == "running"
            ]

        def kill(task_id: str, ready) -> dict[str, Any]:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                for ti in running(task_id):
                    pid = task_pid(ti["id"])
                    if pid and ready(ti):
                        os.kill(pid, signal.SIGKILL)
                        return ti
                time.sleep(0.3)
            raise AssertionError(f"no running {task_id} to kill")

        def registered() -> set[str]:
            return {v.id for v in system.vms_service().list()} & ids

        plans: list[dict[str, Any]] = []

        def mid_registration(ti: dict[str, Any]) -> bool:
            if not plans:
                plans.append(airflow.xcom(FAILOVER, run_id, "preflight"))
            shard = {v["id"] for v in plans[0]["shards"][ti["map_index"]]}
            done = registered() & shard
            return 0 < len(done) < len(shard)

        killed_reg = kill("register_vms", mid_registration)
        # while this failover runs no other recovery DAG may start: the cleanup's first task refuses
        airflow.wait_dag(CLEANUP)
        airflow.unpause(CLEANUP)
        blocked = airflow.trigger(CLEANUP, {"dry_run": True})

        def mid_start(ti: dict[str, Any]) -> bool:
            states = {v.id: v.status.value for v in system.vms_service().list()}
            return any(s in ("wait_for_launch", "powering_up", "up") for s in states.values()) and not all(
                states.get(i) == "up" for i in ids
            )

        killed_start = kill("start_vms", mid_start)
        final = airflow.wait_run(FAILOVER, run_id, 600)
        assert airflow.wait_run(CLEANUP, blocked, 300)["state"] == "failed"
        cleanup_states = {t["task_id"]: t["state"] for t in airflow.task_instances(CLEANUP, blocked)}
        assert cleanup_states["preflight"] == "failed", cleanup_states
        assert cleanup_states["stop_vms"] == "upstream_failed", cleanup_states
        refusal = airflow.task_log(CLEANUP, blocked, "preflight")
        assert "another recovery is in progress: dr_failover (1 run(s) queued or running)" in refusal
        tis = airflow.task_instances(FAILOVER, run_id)
        states = {
            t["task_id"] + ("" if t["map_index"] < 0 else f"[{t['map_index']}]"): (
                t["state"],
                t["try_number"],
            )
            for t in tis
        }
        assert final["state"] == "success", states
        tries = {(t["task_id"], t["map_index"]): t["try_number"] for t in tis}
        assert tries[("register_vms", killed_reg["map_index"])] >= 2, states
        assert tries[("start_vms", killed_start["map_index"])] >= 2, states
        guard = airflow.xcom(FAILOVER, run_id, "preflight", key="guard")
        assert guard["probe"] == "unreachable" and guard["wait_s"] == 5, guard

        # every VM once, registered once, started once, up
        vms = system.vms_service().list()
        assert sorted(Counter(v.name for v in vms).items()) == sorted((n, 1) for n in world["vms"])
        assert {v.name: v.id for v in vms} == world["vms"]
        assert {v.status.value for v in vms} == {"up"}
        events = [e for e in system.events_service().list(max=5000) if int(e.id) > first_event]
        started = Counter(e.vm.id for e in events if e.code == 153 and e.vm is not None)
        registered_ev = Counter(e.vm.id for e in events if e.code == 1150 and e.vm is not None)
        assert started == Counter(ids), f"start requests per VM: {started}"
        assert registered_ev == Counter(ids), f"registrations per VM: {registered_ev}"

        # the mappings
        clusters = {c.id: c.name for c in system.clusters_service().list()}
        assert {clusters[v.cluster.id] for v in vms} == {CLUSTER}
        profiles = {p.id: p.name for p in system.vnic_profiles_service().list()}
        by_name = {v.name: v for v in vms}
        nic_profiles = {
            n: [
                profiles.get(nic.vnic_profile.id)
                for nic in system.vms_service().vm_service(v.id).nics_service().list()
            ]
            for n, v in by_name.items()
        }
        assert nic_profiles["vm01"] == ["prod_dr"] and nic_profiles["vm03"] == ["ovirtmgmt"], nic_profiles
        (cluster_id,) = [i for i, n in clusters.items() if n == CLUSTER]
        groups = system.clusters_service().cluster_service(cluster_id).affinity_groups_service().list()
        (group,) = [g for g in groups if g.name == GROUP]
        assert sorted(v.id for v in group.vms) == sorted(by_name[n].id for n in ("vm01", "vm02"))
        (label,) = [lbl for lbl in system.affinity_labels_service().list() if lbl.name == LABEL]
        assert sorted(v.id for v in label.vms) == sorted(by_name[n].id for n in ("vm01", "vm02"))
        roles = {r.id: r.name for r in system.roles_service().list()}
        perms = system.vms_service().vm_service(by_name["vm01"].id).permissions_service().list()
        assert ROLE in {roles.get(p.role.id) for p in perms}, [(p.role.id, p.user) for p in perms]

        # the data: each disk is the primary's disk at snapshot time
        for disk_id, name in world["disks"].items():
            disk = system.disks_service().disk_service(disk_id).get()
            got = guest_view(domain / "images" / disk_id / disk.image_id)
            assert hashlib.sha256(got).hexdigest() == world["expected"][disk_id], (
                f"{name}: disk {disk_id} differs"
            )

        report = airflow.xcom(FAILOVER, run_id, "report")
        assert {v["status"] for v in report["vms"]} == {"up"} and report["rto_s"] > 0
        assert report["recovery_points"][0]["recovery_point"] == world["recovery_point"]
        world["rto_s"] = report["rto_s"]
        world["run_s"] = time.monotonic() - t_trigger
        print(
            f"\nfailover RTO {report['rto_s']:.1f}s (run {world['run_s']:.0f}s, 2 tasks killed and retried)"
        )
        ev = system.events_service().list(search="origin=ovirt-dr", max=20)
        assert any("Failover to data_gluster" in e.description and e.severity.value == "normal" for e in ev)
        mail = wait_for(
            lambda: [
                m
                for m in mails(lab_env)[n_mails:]
                if "failover OK" in m["Subject"] and "DRY RUN" not in m["Subject"]
            ],
            60,
            "the report mail",
        )
        assert "dr-admins@example.com" in mail[0]["To"]
        assert gluster_state()["read_only"] == "off"
    finally:
        sconn.close()
        wait_for(lambda: _primary_answers(lab_env), 120, "the primary engine back")


def _primary_answers(lab_env) -> bool:
    try:
        c = _connect(lab_env, "PRIMARY")
        ok = c.test()
        c.close()
        return ok
    except Exception:
        return False
