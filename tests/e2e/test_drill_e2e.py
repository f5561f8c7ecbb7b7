"""DR drill end to end: real lab, real Airflow scheduler, a COPY of the real slave volume's replica imported.

One sync cycle of the lab pair runs first in the same Airflow while the guest writer writes, so the replica
holds a recovery point recorded on the pair's asset, and the writer's log says what each disk held at
snapshot time. Then, in order:

1. the drill's dry run leaves both engines' state and Gluster exactly as they were (the failover e2e's
   comparison rules: only login events differ) and plans every VM;
2. a real drill passes: every VM registered from the copy with the mappings, vNICs unplugged, up; each
   disk as the VM sees it through the copy is the snapshot-time content (sha256 from the writer's log);
   everything removed again; the sync DAG active again; a mail and an event;
3. with one volume of vm03's data disk "deleted" on the slave (moved aside through geo-replication's own
   client, so that moving it back restores the same file, same gfid) and the sync DAG paused beforehand,
   the drill FAILS naming vm03 (the others pass) and leaves the sync DAG paused; the volume is put back and
   the brick proves the replica is as it was;
4. a following sync cycle succeeds.

In 2 and 3 production is unchanged: the primary engine's state identical, every replica file (hashed on the
slave BRICK, never through FUSE) byte-identical, the slave read-only again, nothing of the copy left. The
teardown gives the lab back as it found it even when a test failed half-way.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.lab]

REPO = Path(__file__).resolve().parents[2]
SYNC = "dr_sync__data_gluster__lab_dr"
DRILL = "dr_drill"
POOL = "ovirt_dr_georep__gvmaster"
PORT = 28095
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
SESSION = ["gvmaster", "127.0.0.1::gvslave"]
HIDDEN = ".ovirt-dr-e2e-hidden"
#: what the drill's VMs must carry after registration (the lab mapping file, dags/disaster_recovery_vars.yml)
CLUSTER = "Recovery"


def e2e_config(path: Path) -> Path:
    doc = {
        "sites": {
            "primary": {"ovirt_conn_id": "ovirt_primary"},
            "secondary": {"ovirt_conn_id": "ovirt_secondary"},
        },
        "recovery": {
            "mapping_file": str(REPO / "dags" / "disaster_recovery_vars.yml"),
            "primary_site": "primary",
            "secondary_site": "secondary",
            "start_tiers": [["vm02"], ["vm03", "vm04"]],
            "register_shards": 2,
            "register_concurrency": 4,
            "retry_delay": "2s",
            "poll_interval": "1s",
            "tier_timeout": "2m",
            "import_timeout": "3m",
            "retries": 2,
            "alert_emails": ["dr-admins@example.com"],
            "smtp_conn_id": "smtp_lab",
            "drill": {"airflow_conn_id": "airflow_api", "sync_dag_timeout": "10m", "verify_timeout": "10m"},
        },
        "pairs": [
            {
                "storage_domain": "data_gluster",
                "target": "lab_dr",
                "site": "primary",
                "master_volume": "gvmaster",
                "gluster_ssh_conn_id": "gluster_primary",
                "slave_host": "127.0.0.1",
                "slave_volume": "gvslave",
                "slave_ssh_conn_id": "gluster_secondary",
                "schedule": None,
                "rpo": "4h",
                "checkpoint_timeout": "10m",
                "poll_interval": "3s",
                "alert_emails": ["dr-admins@example.com"],
                "smtp_conn_id": "smtp_lab",
            }
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# -- helpers ------------------------------------------------------------------------------------------------
def gluster(*args: str) -> str:
    proc = subprocess.run(
        ["gluster", "--mode=script", *args], capture_output=True, text=True, env=CLEAN_ENV, timeout=120
    )
    assert proc.returncode == 0, f"gluster {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def gluster_state() -> dict[str, Any]:
    """The slave's read-only option and each geo-rep worker's status (what a drill must not change)."""
    info = ET.fromstring(gluster("volume", "info", "gvslave", "--xml"))
    options = {o.findtext("name"): o.findtext("value") for o in info.iter("option")}
    status = ET.fromstring(gluster("volume", "geo-replication", *SESSION, "status", "--xml"))
    workers = sorted(
        (w.findtext("primary_brick") or w.findtext("master_brick") or "", w.findtext("status") or "")
        for w in status.iter("pair")
    )
    return {"read_only": options.get("features.read-only"), "workers": workers}


def slave_brick() -> Path:
    info = ET.fromstring(gluster("volume", "info", "gvslave", "--xml"))
    (brick,) = [b.text.split(":", 1)[1] for b in info.iter("brick") if b.text]
    return Path(brick)


def brick_tree(sd_id: str) -> dict[str, str]:
    """Every file of the replica domain as the slave brick stores it: Gluster size, gfid, first-shard hash.

    On the brick, not through FUSE: reading a read-only sharded slave past a shard that was never written
    fails with EROFS, and on a writable one creates empty shards. Later shards are ``brick_shards``.
    """
    root = slave_brick() / sd_id
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            try:
                size = int.from_bytes(os.getxattr(path, "trusted.glusterfs.shard.file-size")[:8], "big")
            except OSError:
                size = path.stat().st_size
            gfid = os.getxattr(path, "trusted.gfid").hex()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(root))] = f"{size}:{gfid}:{digest}"
    return out


def brick_shards() -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((slave_brick() / ".shard").glob("*"))
        if p.is_file()
    }


def brick_top() -> list[str]:
    """The slave brick's top level (a drill's copy would show here as another domain directory)."""
    return sorted(p.name for p in slave_brick().iterdir() if p.name not in (".glusterfs", ".trashcan"))


def guest_view(path: Path) -> bytes:
    with tempfile.TemporaryDirectory(prefix="ovirt-dr-e2e-") as tmp:
        out = Path(tmp) / "disk.raw"
        subprocess.run(
            ["qemu-img", "convert", "-U", "-O", "raw", str(path), str(out)], check=True, capture_output=True
        )
        return out.read_bytes()


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """An engine's state minus what a read changes: its login events (code 30) and the event counter."""
    s = json.loads(json.dumps(state))
    s["events"] = [e for e in s.get("events", []) if e.get("code") != 30]
    s["next_event_id"] = None
    return s


def inventory(state: dict[str, Any]) -> dict[str, Any]:
    """An engine's inventory: its state minus the audit trail (events, jobs, id counters), which a drill
    adds to by design; every entity (domains, VMs, disks, templates, groups, permissions) must be as before."""
    s = comparable(state)
    for key in ("events", "jobs", "created"):
        s.pop(key, None)
    return s


def wait_for(predicate, timeout: float, what: str, step: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def mails(lab_env) -> list[email.message.Message]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted(Path(lab_env["LAB_MAILDIR"]).glob("*.eml"))
    ]


class GeoRepMount:
    """The slave volume mounted as geo-replication's own client (``--client-pid=-1``): the only client a
    read-only slave lets write. Renames through it keep the file (inode, gfid) as it is."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.path = Path(tempfile.mkdtemp(prefix="ovirt-dr-e2e-georep-"))

    def __enter__(self) -> Path:
        subprocess.run(
            [
                "glusterfs",
                "--client-pid=-1",
                f"--volfile-server={self.host}",
                "--volfile-id=gvslave",
                str(self.path),
            ],
            check=True,
            env=CLEAN_ENV,
            timeout=60,
        )
        wait_for(lambda: os.path.ismount(self.path), 30, "the geo-rep client mount", 0.2)
        return self.path

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["umount", str(self.path)], check=False, timeout=60)
        self.path.rmdir()


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
    yield primary, secondary
    primary.stop_writer()


@pytest.fixture(scope="module")
def airflow(lab_env, tmp_path_factory):
    from ovirt_dr_lab.airflow_runner import AirflowStandalone

    home = tmp_path_factory.mktemp("airflow-drill")
    env = {k: v for k, v in lab_env.items() if k.startswith("AIRFLOW_CONN_")}
    env["OVIRT_DR_CONFIG"] = str(e2e_config(home / "ovirt_dr.yaml"))
    af = AirflowStandalone(home=home, env=env, port=PORT)
    af.start()
    try:
        # the drill pauses/resumes the sync DAG through this Airflow's own REST API, as its admin
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
        af.ensure_pool(POOL, 1, "drill e2e")
        for dag_id in (SYNC, DRILL):
            af.wait_dag(dag_id)
            af.unpause(dag_id)
        yield af
    finally:
        af.stop()


@pytest.fixture(scope="module")
def world(lab_env, labs, airflow):
    """State shared by the ordered tests, and the teardown that gives the lab back as it was."""
    secondary = _connect(lab_env, "SECONDARY")
    system = secondary.system_service()
    assert system.storage_domains_service().list() == [], "the secondary must start without domains"
    assert system.vms_service().list() == []
    # A disk record of a domain that is gone (an earlier import's template disk: the engine keeps it at
    # detach) would be taken over by the drill's registration of the same template and then dropped by its
    # cleanup: drop it first, so the before/after comparison is about the drill alone.
    for disk in system.disks_service().list():
        if disk.storage_type is not None and disk.storage_type.value == "image" and disk.storage_domains:
            print(f"\nsecondary: dropping the orphan disk record {disk.alias} ({disk.id}) of a gone domain")
            system.disks_service().disk_service(disk.id).remove()
    state: dict[str, Any] = {"top": brick_top(), "read_only": gluster_state()["read_only"]}
    assert state["read_only"] == "on"
    yield state
    errors = restore_lab(lab_env, airflow, secondary, state)
    secondary.close()
    assert not errors, errors


def restore_lab(lab_env, airflow, conn, state: dict[str, Any]) -> list[str]:
    """Stop drill runs, remove what a failed one left (VMs, copy domains, copy files), put the hidden volume
    back, read-only on. Only what a drill makes: the secondary had no domain and no VM before."""
    errors: list[str] = []

    def step(what: str, fn) -> None:
        try:
            fn()
        except Exception as e:  # keep undoing the rest
            errors.append(f"{what}: {e}")

    airflow.pause(DRILL)
    for run in airflow.runs(DRILL):
        if run["state"] in ("queued", "running"):
            step(
                "stop drill run",
                lambda r=run: airflow.api(
                    "PATCH", f"/dags/{DRILL}/dagRuns/{r['dag_run_id']}", {"state": "failed"}
                ),
            )
    system = conn.system_service()
    vms = system.vms_service()
    for vm in vms.list():
        if vm.status.value != "down":
            step(f"stop {vm.name}", vms.vm_service(vm.id).stop)
    step(
        "VMs down",
        lambda: wait_for(lambda: all(v.status.value == "down" for v in vms.list()), 120, "VMs down"),
    )
    for vm in vms.list():
        step(f"remove {vm.name}", lambda vm=vm: vms.vm_service(vm.id).remove(detach_only=True))
    sds = system.storage_domains_service()
    for sd in sds.list():
        for dc_ref in sd.data_centers or []:
            attached = system.data_centers_service().data_center_service(dc_ref.id).storage_domains_service()
            one = attached.storage_domain_service(sd.id)
            if one.get().status.value != "maintenance":
                step(f"deactivate {sd.name}", one.deactivate)
                step(
                    f"{sd.name} maintenance",
                    lambda one=one: wait_for(
                        lambda: one.get().status.value == "maintenance", 120, "maintenance"
                    ),
                )
            step(f"detach {sd.name}", one.remove)
        step(f"remove {sd.name}", lambda sd=sd: sds.storage_domain_service(sd.id).remove(host="host2"))
    with GeoRepMount(lab_env["LAB_GLUSTER_HOST"]) as mnt:
        for name in sorted(os.listdir(mnt)):
            marker = mnt / name / "ovirt-dr-drill.json"
            if name not in state["top"] and (marker.exists() or name.startswith(".ovirt-dr-drill-")):
                errors.append(f"a drill copy was left on the slave: {name}")
                step(
                    f"remove {name}",
                    lambda name=name: subprocess.run(["rm", "-rf", "--", str(mnt / name)], check=True),
                )
        if state.get("hidden"):
            rel = state["hidden"]
            if (mnt / HIDDEN / Path(rel).name).exists():
                step("restore the hidden volume", lambda: os.rename(mnt / HIDDEN / Path(rel).name, mnt / rel))
        if (mnt / HIDDEN).exists():
            step("remove the hiding place", lambda: (mnt / HIDDEN).rmdir())
    if gluster_state()["read_only"] != state["read_only"]:
        errors.append("the slave was not read-only again")
        step(
            "read-only on",
            lambda: gluster("volume", "set", "gvslave", "features.read-only", state["read_only"]),
        )
    if state.get("replica_good") and brick_tree(state["sd_id"]) != state["replica_good"]:
        errors.append("replica files differ from before the drills")
    step("sync DAG resumed", lambda: airflow.unpause(SYNC))
    return errors


def drill(airflow, conf: dict[str, Any], timeout: float = 480) -> tuple[str, dict[str, Any], dict[str, Any]]:
    run_id = airflow.trigger(DRILL, conf)
    t0 = time.monotonic()
    final = airflow.wait_run(DRILL, run_id, timeout)
    seconds = time.monotonic() - t0
    raw = airflow.task_instances(DRILL, run_id)
    tis = {t["task_id"] + ("" if t["map_index"] < 0 else f"[{t['map_index']}]"): t["state"] for t in raw}
    took = {
        t["task_id"] + ("" if t["map_index"] < 0 else f"[{t['map_index']}]"): round(t["duration"] or 0, 1)
        for t in raw
    }
    print(f"\ntask durations (s): {took}")
    report = airflow.xcom(DRILL, run_id, "report") or airflow.xcom(DRILL, run_id, "report", key="report")
    print(f"\ndrill {conf} -> {final['state']} in {seconds:.0f}s: {tis}")
    return final["state"], tis, {**(report or {}), "_seconds": seconds, "_run_id": run_id}


# -- the tests ----------------------------------------------------------------------------------------------
def test_sync_cycle_then_the_dry_run_changes_nothing(airflow, labs, lab_env, world):
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

    plab.start_writer(sorted(world["vms"].values()), 1.0, 65536)
    try:
        run_id = airflow.trigger(SYNC)
        final = airflow.wait_run(SYNC, run_id, 600)
    finally:
        plab.stop_writer()
    states = {t["task_id"]: t["state"] for t in airflow.task_instances(SYNC, run_id)}
    assert final["state"] == "success", states
    snaps = airflow.xcom(SYNC, run_id, "snapshot_vms")
    world["recovery_point"] = airflow.xcom(SYNC, run_id, "audit_replica")["recovery_point"]
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
    world["replica_good"] = brick_tree(sd.id)
    world["shards_good"] = brick_shards()

    before = (comparable(plab.state()), comparable(slab.state()), gluster_state(), world["replica_good"])
    state, tis, report = drill(airflow, {"dry_run": True})
    assert state == "success", tis
    after = (comparable(plab.state()), comparable(slab.state()), gluster_state(), brick_tree(sd.id))
    assert after[0] == before[0], "the dry run changed the primary engine"
    assert after[1] == before[1], "the dry run changed the secondary engine"
    assert after[2] == before[2], "the dry run changed Gluster"
    assert after[3] == before[3], "the dry run changed the replica"
    assert brick_top() == world["top"] and brick_shards() == world["shards_good"]
    assert not airflow.api("GET", f"/dags/{SYNC}")["is_paused"], "the dry run paused the sync DAG"
    assert report["dry_run"] and {v["status"] for v in report["vms"]} == {"planned"}
    assert sorted(v["name"] for v in report["vms"]) == sorted(world["vms"])
    assert report["recovery_points"][0]["recovery_point"] == world["recovery_point"]
    log = airflow.task_log(DRILL, report["_run_id"], "preflight")
    assert "DR drill plan, DRY RUN" in log and "shard 0:" in log and "data_gluster_drill" in log
    world["dry_run_s"] = report["_seconds"]


def test_the_drill_passes_on_a_good_replica(airflow, labs, lab_env, world):
    plab, slab = labs
    n_mails = len(mails(lab_env))
    first_event = max((e["id"] for e in slab.state()["events"]), default=0)
    before = (comparable(plab.state()), inventory(slab.state()), gluster_state())
    state, tis, report = drill(airflow, {"dry_run": False})
    assert state == "success", (tis, report.get("summary"))
    assert {t: s for t, s in tis.items() if s != "success"} == {}, tis
    world["drill_s"] = report["_seconds"]

    # every VM passed: registered from the copy, vNICs unplugged, disks as on the replica, up
    by_name = {v["name"]: v for v in report["vms"]}
    assert sorted(by_name) == sorted(world["vms"])
    assert {v["status"] for v in report["vms"]} == {"passed"}, report["vms"]
    assert all("vNIC(s) unplugged" in v["reason"] for v in report["vms"]), report["vms"]
    assert report["recovery_points"][0]["recovery_point"] == world["recovery_point"]
    # what each VM saw through the copy is the primary's disk at snapshot time (the writer's log)
    seen = {d["image"]: d for v in report["vms"] for d in v["disks"]}
    assert set(seen) == set(world["expected"])
    for disk_id, want in world["expected"].items():
        assert seen[disk_id]["sha256"] == want, f"{world['disks'][disk_id]}: disk {disk_id} differs"
        assert seen[disk_id]["replica_sha256"] == want
    start = airflow.xcom(DRILL, report["_run_id"], "start_vms", key="outcomes")
    assert {o["name"] for o in start if o["result"] == "done"} == set(world["vms"]), start

    # the secondary engine saw it all: import, registrations with the mapping, unplugged vNICs, starts
    events = [e for e in slab.state()["events"] if e["id"] > first_event]
    texts = [e.get("description", "") for e in events]
    assert any("data_gluster_drill" in t and "added" in t for t in texts), texts[:20]
    assert sum(1 for e in events if e.get("code") == 1150) == len(world["vms"])
    assert sum(1 for e in events if e.get("code") == 153) == len(world["vms"])
    drill_events = [e for e in events if e.get("origin") == "ovirt-dr"]
    assert [e["severity"] for e in drill_events] == ["normal"] and "DR drill passed" in drill_events[0][
        "description"
    ]
    mail = wait_for(
        lambda: [m for m in mails(lab_env)[n_mails:] if "DR drill PASSED" in m["Subject"]],
        60,
        "the report mail",
    )
    assert "dr-admins@example.com" in mail[0]["To"]

    # production and the lab as before; nothing of the copy left
    after = (comparable(plab.state()), inventory(slab.state()), gluster_state())
    assert after[0] == before[0], "the drill changed the primary engine"
    assert after[1] == before[1], "the drill left something on the secondary engine"
    assert after[2] == before[2], "Gluster differs after the drill"
    assert brick_tree(world["sd_id"]) == world["replica_good"], "the replica changed"
    assert brick_shards() == world["shards_good"] and brick_top() == world["top"]
    assert not airflow.api("GET", f"/dags/{SYNC}")["is_paused"], "the sync DAG was not resumed"
    print(f"\ndrill passed in {world['drill_s']:.0f}s (dry run {world['dry_run_s']:.0f}s)")


def test_the_drill_fails_naming_the_vm_whose_volume_is_gone(airflow, labs, lab_env, world):
    plab, slab = labs
    vm03 = world["vms"]["vm03"]
    primary = _connect(lab_env, "PRIMARY")
    try:
        atts = primary.system_service().vms_service().vm_service(vm03).disk_attachments_service().list()
        disk = next(
            primary.system_service().disks_service().disk_service(a.disk.id).get()
            for a in atts
            if not a.bootable
        )
    finally:
        primary.close()
    assert disk.alias == "vm03_data"
    rel = f"{world['sd_id']}/images/{disk.id}/{disk.image_id}"
    assert (slave_brick() / rel).is_file(), "the replica's volume is not where the OVF says"
    airflow.pause(SYNC)  # paused before the drill: the drill must leave it paused
    with GeoRepMount(lab_env["LAB_GLUSTER_HOST"]) as mnt:
        (mnt / HIDDEN).mkdir()
        os.rename(mnt / rel, mnt / HIDDEN / disk.image_id)
        world["hidden"] = rel
    assert not (slave_brick() / rel).exists()
    broken = brick_tree(world["sd_id"])
    before = (comparable(plab.state()), inventory(slab.state()), gluster_state())

    state, tis, report = drill(airflow, {"dry_run": False})
    assert state == "failed", tis
    assert tis["report"] == "failed" and tis["cleanup"] == "success" and tis["resume_sync"] == "success", tis
    by_name = {v["name"]: v for v in report["vms"]}
    assert by_name["vm03"]["status"] == "failed", by_name["vm03"]
    assert (
        disk.image_id in by_name["vm03"]["reason"] and "missing on the replica" in by_name["vm03"]["reason"]
    )
    assert {n for n, v in by_name.items() if v["status"] == "failed"} == {"vm03"}, report["vms"]
    assert "failed: vm03" in report["summary"]
    log = airflow.task_log(DRILL, report["_run_id"], "report")
    assert "VM vm03: failed: check failed:" in log, log[-3000:]
    assert [v["name"] for v in report["vms"] if v["status"] == "passed"] == sorted(
        n for n in world["vms"] if n != "vm03"
    ), report["vms"]
    start = airflow.xcom(DRILL, report["_run_id"], "start_vms", key="outcomes")
    assert [o["result"] for o in start if o["name"] == "vm03"] == ["not_started"], start

    after = (comparable(plab.state()), inventory(slab.state()), gluster_state())
    assert after[0] == before[0], "the drill changed the primary engine"
    assert after[1] == before[1], "the failed drill left something on the secondary engine"
    assert after[2] == before[2], "Gluster differs after the drill"
    assert brick_tree(world["sd_id"]) == broken, "the drill changed the replica"
    assert brick_top() == [*world["top"], HIDDEN] or sorted([*world["top"], HIDDEN]) == brick_top()
    assert airflow.api("GET", f"/dags/{SYNC}")["is_paused"], "a sync DAG paused before the drill was resumed"

    # the lab as it was: the volume back (same file, same gfid), proven on the brick
    with GeoRepMount(lab_env["LAB_GLUSTER_HOST"]) as mnt:
        os.rename(mnt / HIDDEN / disk.image_id, mnt / rel)
        (mnt / HIDDEN).rmdir()
    world.pop("hidden")
    assert brick_tree(world["sd_id"]) == world["replica_good"], "the replica is not restored"
    assert brick_shards() == world["shards_good"] and brick_top() == world["top"]
    airflow.unpause(SYNC)


def test_a_following_sync_cycle_succeeds(airflow, world):
    run_id = airflow.trigger(SYNC)
    final = airflow.wait_run(SYNC, run_id, 600)
    states = {t["task_id"]: t["state"] for t in airflow.task_instances(SYNC, run_id)}
    assert final["state"] == "success", states
    audit = airflow.xcom(SYNC, run_id, "audit_replica")
    assert audit["recovery_point"] > world["recovery_point"] and audit["vms"] >= len(world["vms"])
    world.pop("replica_good")  # the replica moved on: the teardown compares nothing more
