"""The drill's pure parts (``ovirt_dr.drill``) and its config (``ovirt_dr.drill_config``)."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from ovirt_dr.drill import (
    DrillParams,
    copy_name,
    copy_sd_id,
    disk_verdicts,
    drill_plan,
    overlay_volume_id,
    plan_text,
    summary,
    vm_outcomes,
)
from ovirt_dr.failover import PlanError, build_plan, outcome
from ovirt_dr.recovery_config import RecoveryConfig
from ovirt_dr.replica import ReplicaError

SD = "9c3f0d51-6a7e-4c2b-b8d4-2f1e6a0b7c11"
RUN = "manual__2026-12-02T10:00:00+00:00"


def u(n: int) -> str:
    return str(uuid.UUID(int=n))


# -- identity -----------------------------------------------------------------------------------------------
def test_the_copy_gets_a_new_id_that_is_stable_per_run():
    a = copy_sd_id(SD, RUN)
    assert a != SD and uuid.UUID(a)
    assert copy_sd_id(SD, RUN) == a  # a retried task finds the same copy
    assert copy_sd_id(SD, RUN + "x") != a  # another run, another copy
    assert copy_sd_id(u(7), RUN) != a
    with pytest.raises(ReplicaError):
        copy_sd_id("../etc", RUN)
    with pytest.raises(PlanError):
        copy_sd_id(SD, "")


def test_overlay_ids_are_per_copy_and_disk():
    cid = copy_sd_id(SD, RUN)
    ov = overlay_volume_id(cid, u(1), u(2))
    assert ov == overlay_volume_id(cid, u(1), u(2)) and ov not in (u(1), u(2), cid)
    assert ov != overlay_volume_id(cid, u(1), u(3)) != overlay_volume_id(copy_sd_id(SD, "r2"), u(1), u(2))
    with pytest.raises(ReplicaError):
        overlay_volume_id(cid, "x", u(2))


def test_the_copy_name_keeps_the_suffix_within_ovirts_50_characters():
    assert copy_name("data_gluster", "_drill") == "data_gluster_drill"
    long = copy_name("d" * 60, "_drill")
    assert len(long) == 50 and long.endswith("_drill")
    with pytest.raises(PlanError):
        copy_name("", "_drill")


def test_params_are_checked_again():
    p = DrillParams.from_context({"params": {"domains": ["b", "a", "a"]}})
    assert p.dry_run is True and p.domains == ("a", "b")  # dry run by default
    assert DrillParams.from_context({"params": {"dry_run": False}}).dry_run is False
    with pytest.raises(ValueError, match="dry_run"):
        DrillParams.from_context({"params": {"dry_run": "false"}})
    with pytest.raises(ValueError, match="domains"):
        DrillParams.from_context({"params": {"domains": "data_gluster"}})


@pytest.mark.parametrize(
    ("drill", "needle"),
    [
        ({"name_suffix": "a b"}, "drill.name_suffix"),
        ({"name_suffix": "{{x}}"}, "drill.name_suffix"),
        ({"airflow_conn_id": "{{ conn }}"}, "drill.airflow_conn_id"),
        ({"sync_dag_timeout": "0s"}, "drill.sync_dag_timeout"),
        ({"keep_up": "2d"}, "drill.keep_up"),
        ({"unknown": 1}, "drill.unknown"),
    ],
)
def test_bad_drill_config_is_refused_naming_the_field(drill, needle):
    with pytest.raises(ValidationError) as e:
        RecoveryConfig(mapping_file="m.yml", drill=drill)
    assert needle in str(e.value).replace("\n", ".")


# -- the plan -----------------------------------------------------------------------------------------------
def inventory() -> dict:
    def vm(n: int, name: str, disks: list[tuple[int, int]], kind: str = "vm") -> dict:
        return {
            "id": u(n),
            "name": name,
            "kind": kind,
            "ha": name == "vm01",
            "priority": 0,
            "cluster": "Default",
            "template_id": None,
            "nics": [{"name": "nic1", "profile": "prod", "network": "prod"}],
            "affinity_groups": [],
            "affinity_labels": [],
            "disks": [{"image": u(i), "volume": u(v)} for i, v in disks],
        }

    return {
        "sd_id": SD,
        "ovf_store": None,
        "entities": [
            vm(1, "vm01", [(11, 12)]),
            vm(2, "vm02", [(21, 22), (23, 24)]),
            vm(3, "tpl", [(31, 32)], kind="template"),
        ],
        "vm_status": {u(1): 1, u(2): 0},
        "unreadable": {},
    }


def a_plan(dry_run: bool = False) -> dict:
    domain = {
        "source_name": "data_gluster",
        "name": "data_gluster",
        "dc": "Recovery",
        "address": "gluster.lab",
        "path": "/gvslave",
        "slave_volume": "gvslave",
        "slave_ssh_conn_id": "gs",
        "recovery_point": {"recovery_point": "2026-12-02T09:00:00+00:00", "run_id": "r1"},
        "recovery_point_age_s": 60.0,
    }
    base = build_plan(
        [domain],
        {"data_gluster": inventory()},
        register_shards=2,
        start_tiers=[],
        start_only_running=True,
        params={"dry_run": dry_run},
        guard={"proceed": True, "reason": "drill"},
        target={"conn_id": "s", "host": "host2"},
    )
    return drill_plan(
        base,
        {"data_gluster": inventory()},
        run_id=RUN,
        suffix="_drill",
        sync={"dr_sync__data_gluster__t": {"paused": False}},
        read_only={"gvslave": "on"},
    )


def test_every_step_of_the_plan_points_at_the_copy():
    plan = a_plan()
    cid = copy_sd_id(SD, RUN)
    (d,) = plan["domains"]
    assert d["sd_id"] == cid and d["name"] == "data_gluster_drill"
    assert d["replica_sd_id"] == SD and d["replica_name"] == "data_gluster"
    assert {v["sd_id"] for v in plan["vms"]} == {cid} and {v["domain"] for v in plan["vms"]} == {d["name"]}
    assert [t["sd_id"] for t in plan["templates"]] == [cid]
    assert {v["sd_id"] for s in plan["shards"] for v in s} == {cid}
    # an overlay per VM disk, none for a template's (nobody writes into a template)
    by_image = {x["image"]: x for x in d["disks"]}
    assert by_image[u(11)]["overlay"] == overlay_volume_id(cid, u(11), u(12))
    assert by_image[u(31)]["overlay"] is None and by_image[u(31)]["kind"] == "template"
    assert sorted(x["image"] for x in plan["vm_disks"][u(2)]) == [u(21), u(23)]
    assert plan["read_only"] == {"gvslave": "on"} and plan["kind"] == "drill"


def test_the_plan_text_says_what_a_real_run_would_do():
    plan = a_plan(dry_run=True)
    plan["blockers"] = ["geo-replication is running"]
    text = plan_text(plan)
    assert text.startswith("DR drill plan, DRY RUN")
    assert "data_gluster_drill" in text and "read-only on -> off for the drill, then on" in text
    assert "active (paused, then resumed)" in text and "shard 0:" in text
    assert "not started: vm02: was not running at the source site" in text
    assert "BLOCKER (a real run now would stop here): geo-replication is running" in text


# -- the gate -----------------------------------------------------------------------------------------------
def good(plan: dict) -> tuple[dict, dict, dict]:
    cid = plan["domains"][0]["sd_id"]
    registered, checks = {}, {}
    for disks in plan["vm_disks"].values():
        for x in disks:
            registered[x["image"]] = {"image_id": x["overlay"], "sd_id": cid}
            checks[x["image"]] = {"copy_sha256": "ab" * 32, "replica_sha256": "ab" * 32, "errors": []}
    return {"copies": [{"disks": {}}]}, registered, checks


def test_good_disks_pass_the_gate():
    plan = a_plan()
    assert disk_verdicts(plan, *good(plan)) == {u(1): [], u(2): []}


def test_the_gate_names_every_reason_a_vm_must_not_start():
    plan = a_plan()
    copy, registered, checks = good(plan)
    copy["copies"][0]["disks"][u(21)] = {"problems": ["volume X is missing on the replica"]}
    registered[u(23)] = {"image_id": u(24), "sd_id": SD}  # on the replica's own volume: would write it
    checks[u(11)] = {"copy_sha256": "cd" * 32, "replica_sha256": "ab" * 32, "errors": []}
    v = disk_verdicts(plan, copy, registered, checks)
    assert v[u(1)] == [
        f"disk {u(11)}: what the VM sees through the copy (sha256 {'cd' * 32}) is not the replica's frozen "
        f"content (sha256 {'ab' * 32})"
    ]
    text = " | ".join(v[u(2)])
    assert "volume X is missing on the replica" in text
    assert (
        f"runs it on volume {u(24)}, not on the copy's overlay" in text and "write into the replica" in text
    )
    assert f"on domain {SD}, not on the copy" in text
    del registered[u(11)], checks[u(11)]
    assert disk_verdicts(plan, copy, registered, checks)[u(1)] == [
        f"disk {u(11)}: not registered on the target",
        f"disk {u(11)}: not checked",
    ]
    checks[u(21)] = {"errors": ["copy view of v: missing backing file"]}
    assert (
        f"disk {u(21)}: copy view of v: missing backing file"
        in disk_verdicts(plan, copy, registered, checks)[u(2)]
    )


# -- outcomes -----------------------------------------------------------------------------------------------
def test_vm_outcomes_pass_only_what_the_drill_proved():
    plan = a_plan()
    reg = [outcome(v["name"], v["id"], "register", "done", "registered") for v in plan["vms"]]
    chk = [
        outcome("vm01", u(1), "check", "done", "1 vNIC(s) unplugged; disks as on the replica"),
        outcome("vm02", u(2), "check", "done", "1 vNIC(s) unplugged; disks as on the replica"),
    ]
    started = [
        outcome("vm01", u(1), "start", "done", "started, up", "2026-12-02T10:00:00+00:00"),
        outcome(
            "vm02", u(2), "start", "not_started", "was not running at the source site (start_only_running)"
        ),
    ]
    kw = {"dry_run": False, "no_register_reason": "r", "no_check_reason": "c", "no_start_reason": "s"}
    out = {v["name"]: v for v in vm_outcomes(plan, reg, chk, started, **kw)}
    assert out["vm01"]["status"] == "passed" and out["vm01"]["reason"].startswith("1 vNIC(s) unplugged")
    assert out["vm02"]["status"] == "passed"  # down at the source: a failover leaves it down too
    chk[0] = outcome("vm01", u(1), "check", "failed", "disk x: missing")
    out = {v["name"]: v for v in vm_outcomes(plan, reg, chk, started, **kw)}
    assert out["vm01"]["status"] == "failed" and out["vm01"]["reason"].startswith("check failed: disk x")
    out = {v["name"]: v for v in vm_outcomes(plan, reg[1:], chk[1:], started, **kw)}
    assert out["vm01"]["status"] == "failed" and "not registered: r" in out["vm01"]["reason"]
    out = {v["name"]: v for v in vm_outcomes(plan, reg, [], started, **kw)}
    assert {v["status"] for v in out.values()} == {"failed"} and "not checked: c" in out["vm01"]["reason"]
    dry = vm_outcomes(plan, reg, [], [], **{**kw, "dry_run": True})
    assert {v["status"] for v in dry} == {"planned"}


def test_the_summary_names_the_failed_vms_and_the_recovery_point():
    report = {
        "dry_run": False,
        "failed": True,
        "vms": [{"name": "vm01", "status": "passed"}, {"name": "vm03", "status": "failed"}],
        "recovery_points": [
            {"domain": "data_gluster", "recovery_point": "2026-12-02T09:00:00+00:00", "age_s": 75}
        ],
    }
    s = summary(report)
    assert s.startswith("DR drill FAILED: 1 failed, 1 passed; failed: vm03")
    assert "data_gluster at 2026-12-02T09:00:00+00:00 (1m 15s old)" in s
    assert summary({**report, "failed": False, "vms": [report["vms"][0]]}).startswith("DR drill passed")
    assert "NO recovery point" in summary(
        {**report, "recovery_points": [{"domain": "d", "recovery_point": None}]}
    )
