"""The sync pipeline end to end: real lab, real Airflow scheduler, triggerer and dag-processor.

The proof of DESIGN.md: while a guest writer writes into the running VMs, each sync run leaves on the
SLAVE volume base volumes that are bit-for-bit what each disk held at its snapshot moment (computed from
the writer's log, independently of the pipeline), with no overlay left and `qemu-img check` clean; on the
primary no DR snapshot remains and every chain is as before; the consistency group was frozen in order and
thawed in reverse; an oVirt event was posted. Three scheduled cycles in a row. Then a failing run (mail,
merge, alert event), an RPO deadline mail, and a broken pair shown as an import error while the rest load.

Between two scheduled cycles the test closes the geo-rep pool (0 slots), so the next run cannot touch the
slave before the previous one has been checked; the emulator's OVF-update latency keeps the next run's
snapshots seconds away from the primary-side checks.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.lab]

REPO = Path(__file__).resolve().parents[2]
POOL = "ovirt_dr_georep__gvmaster"
MAIN = "dr_sync__data_gluster__lab_dr"
FAILING = "dr_sync__data_gluster__lab_fail"
SLOW = "dr_sync__data_gluster__lab_rpo"
GROUP = ["vm01", "vm02"]
COMMON = {
    "storage_domain": "data_gluster",
    "site": "primary",
    "master_volume": "gvmaster",
    "gluster_ssh_conn_id": "gluster_primary",
    "slave_host": "127.0.0.1",
    "slave_volume": "gvslave",
    "slave_ssh_conn_id": "gluster_secondary",
    "smtp_conn_id": "smtp_lab",
    "alert_emails": ["dr-admins@example.com"],
    "poll_interval": "3s",
}


def e2e_config(path: Path) -> Path:
    doc = {
        "sites": {"primary": {"ovirt_conn_id": "ovirt_primary"}},
        "pairs": [
            {
                **COMMON,
                "target": "lab_dr",
                "schedule": "* * * * *",
                "rpo": "1h",
                "checkpoint_timeout": "30m",  # shorter than the RPO, as the config requires
                "consistency_groups": [GROUP],
            },
            # fails in the middle: the checkpoint cannot complete within 2 s (geo-rep must crawl first; it
            # takes 9-12 s in the lab). Poll and Faulty grace shorter than the timeout, as the config requires.
            {
                **COMMON,
                "target": "lab_fail",
                "schedule": None,
                "checkpoint_timeout": "2s",
                "poll_interval": "1s",
                "faulty_grace": "1s",
            },
            # a normal run (~40 s) lasts longer than this RPO: the deadline alert must fire; its checkpoint
            # (9-12 s) completes within the timeout, which the config requires to be shorter than the RPO
            {
                **COMMON,
                "target": "lab_rpo",
                "schedule": None,
                "rpo": "30s",
                "checkpoint_timeout": "25s",
                "faulty_grace": "20s",
            },
            {**COMMON, "storage_domain": "data_broken", "target": "lab_dr", "schedule": "whenever"},
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab_env() -> dict[str, str]:
    from ovirt_dr_lab.labenv import load_lab_env

    return load_lab_env()


@pytest.fixture(scope="module")
def engine(lab_env):
    import ovirtsdk4

    conn = json.loads(lab_env["AIRFLOW_CONN_OVIRT_PRIMARY"])
    c = ovirtsdk4.Connection(
        url=conn["host"], username=conn["login"], password=conn["password"], ca_file=conn["extra"]["ca_file"]
    )
    yield c
    c.close()


@pytest.fixture(scope="module")
def lab(lab_env):
    from ovirt_dr_lab.demo import lab_client

    client = lab_client(lab_env)
    client.set_latency({"ovf_update": 5.0})
    yield client
    client.stop_writer()
    client.set_latency({"ovf_update": 0.0})


@pytest.fixture(scope="module")
def airflow(lab_env, tmp_path_factory):
    from ovirt_dr_lab.airflow_runner import AirflowStandalone

    home = tmp_path_factory.mktemp("airflow-e2e")
    env = {k: v for k, v in lab_env.items() if k.startswith("AIRFLOW_CONN_")}
    env["OVIRT_DR_CONFIG"] = str(e2e_config(home / "ovirt_dr.yaml"))
    af = AirflowStandalone(home=home, env=env, port=28090)
    af.start()
    af.ensure_pool(POOL, 1, "e2e")
    for dag_id in (MAIN, FAILING, SLOW):
        af.wait_dag(dag_id)
    yield af
    af.stop()


def vm_by_name(engine) -> dict[str, Any]:
    return {vm.name: vm for vm in engine.system_service().vms_service().list()}


def disks_of(engine, vm) -> list[str]:
    atts = engine.system_service().vms_service().vm_service(vm.id).disk_attachments_service().list()
    return [a.disk.id for a in atts]


def sd_id(engine) -> str:
    (sd,) = engine.system_service().storage_domains_service().list(search="name=data_gluster")
    return sd.id


def guest_view(path: Path) -> bytes:
    """The disk as the guest sees it through the chain below ``path`` (qemu-img convert to raw).

    The scratch file goes to a local temp dir: never next to the volume (the slave is read-only, and a
    file on the master would be geo-replicated).
    """
    with tempfile.TemporaryDirectory(prefix="ovirt-dr-e2e-") as tmp:
        out = Path(tmp) / "disk.raw"
        subprocess.run(
            ["qemu-img", "convert", "-U", "-O", "raw", str(path), str(out)], check=True, capture_output=True
        )
        return out.read_bytes()


def dr_snapshots(engine, prefix: str = "ovirt-dr:") -> list[str]:
    out = []
    for vm in engine.system_service().vms_service().list():
        for s in engine.system_service().vms_service().vm_service(vm.id).snapshots_service().list():
            if (s.description or "").startswith(prefix):
                out.append(f"{vm.name}:{s.description}")
    return out


def mails(lab_env) -> list[email.message.Message]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted(Path(lab_env["LAB_MAILDIR"]).glob("*.eml"))
    ]


def iso_utc(text: str) -> str:
    """An ISO time as Airflow's API writes it (UTC, Z), so times from both sides compare as strings."""
    from datetime import UTC, datetime

    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wait_for(predicate, timeout: float, what: str, step: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---------------------------------------------------------------------------------------------------
def test_broken_pair_is_an_import_error_and_the_others_load(airflow):
    errors = airflow.api("GET", "/importErrors")["import_errors"]
    (err,) = [e for e in errors if "data_broken" in e["stack_trace"]]
    assert err["filename"].endswith("dr_sync_config_check.py")
    assert "field 'schedule'" in err["stack_trace"] and "whenever" in err["stack_trace"]
    dags = {d["dag_id"]: d for d in airflow.api("GET", "/dags?limit=100")["dags"]}
    assert {MAIN, FAILING, SLOW} <= set(dags)
    assert not any(d.startswith("dr_sync__data_broken") for d in dags)


def test_three_scheduled_cycles_leave_a_consistent_replica(airflow, engine, lab, lab_env):
    vms = vm_by_name(engine)
    disks = {d: name for name, vm in vms.items() for d in disks_of(engine, vm)}
    assert len({disks[d] for d in disks}) >= 6, "the lab must have at least 6 VMs"
    domain = sd_id(engine)
    master = Path(lab_env["LAB_MASTER_MOUNT"]) / domain / "images"
    slave = Path(lab_env["LAB_SLAVE_MOUNT"]) / domain / "images"
    assert dr_snapshots(engine) == [], "a DR snapshot is left from before the test"

    # T0: every disk's content before any write of this test, and the log position
    t0 = {d: bytearray(guest_view(master / d / lab.disk_chain(d)[-1])) for d in disks}
    seq0 = max((w["seq"] for w in lab.writes()), default=0)
    lab.start_writer([vms[n].id for n in sorted({disks[d] for d in disks})], 1.0, 65536)

    # every cycle must leave each chain exactly as it found it: the same before every cycle
    chains_before = {d: lab.disk_chain(d) for d in disks}
    seen_runs: set[str] = set()
    airflow.unpause(MAIN)
    try:
        for cycle in (1, 2, 3):
            run = wait_for(
                lambda: next(
                    (
                        r
                        for r in airflow.runs(MAIN)
                        if r["dag_run_id"] not in seen_runs and r["run_type"] == "scheduled"
                    ),
                    None,
                ),
                150,
                f"scheduled run {cycle}",
            )
            run_id = run["dag_run_id"]
            seen_runs.add(run_id)
            final = airflow.wait_run(MAIN, run_id, 900)
            # keep the next run away from the slave until this one is checked
            airflow.set_pool_slots(POOL, 0)
            states = {t["task_id"]: t["state"] for t in airflow.task_instances(MAIN, run_id)}
            assert final["state"] == "success", states
            assert set(states.values()) == {"success"}, states

            # primary: no DR snapshot left, every chain exactly as before the run
            assert dr_snapshots(engine) == []
            assert {d: lab.disk_chain(d) for d in disks} == chains_before

            snaps = airflow.xcom(MAIN, run_id, "snapshot_vms")
            audit = airflow.xcom(MAIN, run_id, "audit_replica")
            assert audit["recovery_point"] and audit["bytes_checked"] > 0
            by_disk = {d["disk_id"]: d for v in snaps["vms"] for d in v["disks"]}
            assert set(by_disk) == set(disks)

            # slave: base volume == the disk at its snapshot moment, from the writer's log; no overlay left
            writes = [w for w in lab.writes() if w["seq"] > seq0]
            for d, info in by_disk.items():
                after = [
                    w["seq"] for w in writes if w["disk_id"] == d and w["volume_id"] == info["overlay_volume"]
                ]
                assert after, (
                    f"cycle {cycle}: no guest write landed in {disks[d]}'s overlay: the writer was not writing during the run"
                )
                cut = min(after)
                expected = bytearray(t0[d])
                for w in writes:
                    if w["disk_id"] == d and w["seq"] < cut:
                        expected[w["offset"] : w["offset"] + w["length"]] = (
                            bytes([w["pattern"]]) * w["length"]
                        )
                base = slave / d / info["base_volume"]
                got = guest_view(base)
                assert hashlib.sha256(got).digest() == hashlib.sha256(expected).digest(), (
                    f"cycle {cycle}: {disks[d]} disk {d} differs on the slave"
                )
                assert not (slave / d / info["overlay_volume"]).exists(), (
                    f"overlay of {disks[d]} left on the slave"
                )
                assert "VOLTYPE=LEAF" in (slave / d / f"{info['base_volume']}.meta").read_text()
                check = subprocess.run(["qemu-img", "check", "-U", str(base)], capture_output=True, text=True)
                assert check.returncode == 0, check.stdout + check.stderr

            # consistency group: frozen in order, thawed in reverse, around the snapshots
            start, end = iso_utc(final["start_date"]), iso_utc(final["end_date"])
            log = [e for e in lab.freeze_log() if start <= iso_utc(e["time"]) <= end]
            group_events = [(e["action"], e["vm_name"]) for e in log if e["vm_name"] in GROUP]
            assert group_events == [
                ("freeze", "vm01"),
                ("freeze", "vm02"),
                ("thaw", "vm02"),
                ("thaw", "vm01"),
            ], group_events

            # the oVirt event of this run
            events = engine.system_service().events_service().list(search="origin=ovirt-dr", max=20)
            assert any(
                "DR sync data_gluster/lab_dr completed" in e.description
                and audit["recovery_point"] in e.description
                for e in events
            )
            airflow.set_pool_slots(POOL, 1)
    finally:
        airflow.pause(MAIN)
        airflow.set_pool_slots(POOL, 1)
        lab.stop_writer()
    # let a run the scheduler had already queued finish, so the next tests start from a quiet lab
    for r in airflow.runs(MAIN):
        if r["state"] in ("queued", "running"):
            airflow.unpause(MAIN)
            airflow.wait_run(MAIN, r["dag_run_id"], 900)
            airflow.pause(MAIN)
    assert dr_snapshots(engine) == []


def test_failure_in_the_middle_mails_merges_and_posts_an_alert(airflow, engine, lab, lab_env):
    chains_before = {d: lab.disk_chain(d) for vm in vm_by_name(engine).values() for d in disks_of(engine, vm)}
    n_mails = len(mails(lab_env))
    airflow.unpause(FAILING)
    run_id = airflow.trigger(FAILING)
    final = airflow.wait_run(FAILING, run_id, 600)
    states = {t["task_id"]: t["state"] for t in airflow.task_instances(FAILING, run_id)}
    assert final["state"] == "failed"
    assert states["snapshot_vms"] == "success"  # it failed after the snapshots were taken...
    assert states["wait_for_checkpoint"] == "failed"
    assert states["merge_snapshots"] == "success"  # ...and still merged them
    assert states["stop_georep"] == "success"
    assert states["report"] == "failed"
    assert dr_snapshots(engine) == []
    assert {d: lab.disk_chain(d) for d in chains_before} == chains_before
    events = (
        engine.system_service().events_service().list(search="origin=ovirt-dr and severity=alert", max=10)
    )
    assert any(run_id in e.description and "wait_for_checkpoint" in e.description for e in events)
    new = wait_for(
        lambda: [
            m for m in mails(lab_env)[n_mails:] if "FAILED" in m["Subject"] and "lab_fail" in m["Subject"]
        ],
        60,
        "the failure mail",
    )
    assert "dr-admins@example.com" in new[0]["To"]


def test_run_past_its_rpo_sends_the_deadline_mail(airflow, engine, lab_env):
    n_mails = len(mails(lab_env))
    airflow.unpause(SLOW)
    run_id = airflow.trigger(SLOW)
    deadline_mail = wait_for(
        lambda: [
            m for m in mails(lab_env)[n_mails:] if "RPO missed" in m["Subject"] and "lab_rpo" in m["Subject"]
        ],
        120,
        "the RPO deadline mail",
    )
    assert run_id in deadline_mail[0]["Subject"]
    # measured from the pair's recovery point; lab_rpo never had one, so from its first run's queue time
    assert "no recovery point yet" in deadline_mail[0]["Subject"]
    final = airflow.wait_run(SLOW, run_id, 900)
    assert final["state"] == "success"
    assert dr_snapshots(engine) == []
