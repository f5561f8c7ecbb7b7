"""The failover's pure parts: split-brain decision, recovery points, OVF reading, plan, shards, tiers, outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ovirt_dr.failover import (
    PlanError,
    SourceProbe,
    build_plan,
    flatten,
    format_age,
    merge_outcomes,
    newest_recovery_point,
    outcome,
    parse_entity_ovf,
    plan_text,
    plan_tiers,
    rto_seconds,
    split_brain_verdict,
    split_shards,
    was_running,
)

LEASE = timedelta(seconds=90)
VM1 = "11111111-1111-1111-1111-111111111111"
TPL = "22222222-2222-2222-2222-222222222222"


# -- split-brain guard ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("probe", "force", "proceed", "forced", "wait", "words"),
    [
        (
            SourceProbe("answers", domains={"d": "maintenance in DC"}),
            False,
            True,
            False,
            0,
            "none of the domains",
        ),
        (
            SourceProbe("answers", domains={"d": "active in DC"}, active=("d",)),
            False,
            False,
            False,
            0,
            "REFUSED",
        ),
        (SourceProbe("answers", domains={"d": "active in DC"}, active=("d",)), True, True, True, 0, "FORCED"),
        (SourceProbe("unreachable", "refused"), False, True, False, 90, "unreachable (refused)"),
        (SourceProbe("unreachable", "timeout"), True, True, True, 90, "waiting 90s"),
        (SourceProbe("error", "AuthError: bad password"), False, False, False, 0, "cannot tell"),
        (SourceProbe("error", "AuthError: bad password"), True, True, True, 90, "FORCED"),
    ],
)
def test_split_brain_verdict(probe, force, proceed, forced, wait, words):
    g = split_brain_verdict(probe, force=force, lease_wait=LEASE)
    assert (g.proceed, g.forced, g.wait_s) == (proceed, forced, wait)
    assert words in g.reason


def test_refusal_names_domain_and_data_center_and_the_way_out():
    probe = SourceProbe("answers", domains={"data_gluster": "active in Default"}, active=("data_gluster",))
    reason = split_brain_verdict(probe, force=False, lease_wait=LEASE).reason
    assert "data_gluster (active in Default)" in reason and "force=true" in reason


# -- recovery points -----------------------------------------------------------------------------------
def ev(rp, stamp, dag="dr_sync__d__t", task="audit_replica", run="r1"):
    return {
        "extra": {"recovery_point": rp},
        "timestamp": stamp,
        "source_dag_id": dag,
        "source_task_id": task,
        "source_run_id": run,
    }


def test_newest_recovery_point_only_from_the_pairs_audit_task():
    t = datetime(2026, 1, 1, 12, tzinfo=UTC)
    events = [
        ev("2026-01-01T10:00:00+00:00", t, run="old"),
        ev("2026-01-01T11:00:00+00:00", t, run="new"),
        ev("2026-01-01T11:30:00+00:00", t, dag="someone_else"),
        ev("2026-01-01T11:40:00+00:00", t, task="by_hand"),
        ev("not a time", t),
        ev(None, t),
        {
            "extra": "junk",
            "timestamp": t,
            "source_dag_id": "dr_sync__d__t",
            "source_task_id": "audit_replica",
        },
    ]
    rp = newest_recovery_point(events, "dr_sync__d__t")
    assert rp["recovery_point"] == "2026-01-01T11:00:00+00:00" and rp["run_id"] == "new"


def test_recovery_point_after_its_event_is_clamped_and_none_when_nothing_usable():
    t = datetime(2026, 1, 1, 12, tzinfo=UTC)
    rp = newest_recovery_point([ev("2026-01-02T00:00:00+00:00", t)], "dr_sync__d__t")
    assert rp["recovery_point"] == t.isoformat()
    assert newest_recovery_point([], "dr_sync__d__t") is None


def test_events_as_objects_work_too():
    class E:
        extra = {"recovery_point": "2026-01-01T10:00:00+00:00"}
        timestamp = datetime(2026, 1, 1, 11)  # naive: UTC
        source_dag_id, source_task_id, source_run_id = "p", "audit_replica", "r"

    assert newest_recovery_point([E()], "p")["recovery_point"] == "2026-01-01T10:00:00+00:00"


def test_format_age():
    assert [format_age(s) for s in (None, 5, 247, 7500, 273600)] == [
        "never",
        "5s",
        "4m 07s",
        "2h 05m",
        "3d 04h",
    ]


# -- OVF -----------------------------------------------------------------------------------------------
def _ovf(kind="vm", **kw):
    from ovirt_dr_lab.engine.ovf import build_ovf

    entity = {
        "id": VM1 if kind == "vm" else TPL,
        "name": "vm01" if kind == "vm" else "tpl",
        "kind": kind,
        "cluster": "Default",
        "memory": 1024 * 1024 * 1024,
        "cpus": 2,
        "ha": True,
        "priority": 100,
        "nics": [{"name": "nic1", "network": "prod", "vnic_profile": "prod", "mac": "56:6f:00:00:00:01"}],
        "disks": [
            {
                "disk_id": "33333333-3333-3333-3333-333333333333",
                "image_id": "33333333-3333-3333-3333-333333333333",
                "volume_id": "44444444-4444-4444-4444-444444444444",
                "size": 1 << 26,
                "format": "cow",
                "storage_domain_id": "55555555-5555-5555-5555-555555555555",
                "alias": "d1",
                "bootable": True,
                "interface": "virtio_scsi",
            }
        ],
        "affinity_groups": ["db_app"],
        "affinity_labels": ["tier1"],
        **kw,
    }
    return build_ovf(entity)


def test_parse_entity_ovf_of_a_vm_as_the_engine_writes_it():
    e = parse_entity_ovf(_ovf())
    assert e["id"] == VM1 and e["name"] == "vm01" and e["kind"] == "vm"
    assert e["ha"] is True and e["priority"] == 100 and e["cluster"] == "Default"
    assert e["nics"] == [{"name": "nic1", "profile": "prod", "network": "prod"}]
    assert e["affinity_groups"] == ["db_app"] and e["affinity_labels"] == ["tier1"]
    assert e["disks"] == [
        {"image": "33333333-3333-3333-3333-333333333333", "volume": "44444444-4444-4444-4444-444444444444"}
    ]


def test_parse_entity_ovf_of_a_template():
    e = parse_entity_ovf(_ovf(kind="template", ha=False))
    assert e["kind"] == "template" and e["id"] == TPL and e["template_id"] is None


@pytest.mark.parametrize("bad", ["", "<x/>", "<Envelope/>", "not xml <", "<a>" * 3])
def test_unreadable_ovf_is_a_plan_error(bad):
    with pytest.raises(PlanError):
        parse_entity_ovf(bad)


def test_was_running():
    status = {"a": 1, "b": 0, "c": "9", "d": "x"}
    assert [was_running(status, k) for k in "abcde"] == [True, False, True, None, None]
    assert was_running(None, "a") is None


# -- shards and tiers ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "shards", "sizes"), [(10, 4, [3, 3, 2, 2]), (3, 8, [1, 1, 1]), (0, 4, []), (5, 1, [5])]
)
def test_split_shards_balanced_and_never_empty(n, shards, sizes):
    out = split_shards(list(range(n)), shards)
    assert [len(s) for s in out] == sizes
    assert sorted(x for s in out for x in s) == list(range(n))


def test_split_shards_round_robin_spreads_the_first_ones():
    assert split_shards(list("abcde"), 2) == [["a", "c", "e"], ["b", "d"]]
    with pytest.raises(PlanError):
        split_shards([1], 0)


def vm(name, ha=False, prio=0, running=True):
    return {"name": name, "ha": ha, "priority": prio, "was_running": running}


def test_tiers_ha_first_then_configured_then_rest_by_priority():
    vms = [
        vm("a"),
        vm("b", ha=True, prio=1),
        vm("c", ha=True, prio=50),
        vm("d", prio=9),
        vm("e"),
        vm("f", running=False),
    ]
    tiers, not_started, warnings = plan_tiers(vms, [["e", "c", "ghost"], ["a"]], only_running=True)
    assert tiers == [
        {"name": "ha", "vms": ["c", "b"]},
        {"name": "tier 1", "vms": ["e"]},
        {"name": "tier 2", "vms": ["a"]},
        {"name": "rest", "vms": ["d"]},
    ]
    assert list(not_started) == ["f"] and "not running" in not_started["f"]
    assert warnings == ["start_tiers[0]: ['ghost'] not among the VMs being recovered"]


def test_tiers_start_everything_without_only_running_and_unknown_status_starts():
    vms = [vm("a", running=False), vm("b", running=None)]
    tiers, not_started, _ = plan_tiers(vms, [], only_running=False)
    assert tiers == [{"name": "rest", "vms": ["a", "b"]}] and not_started == {}
    tiers, not_started, _ = plan_tiers(vms, [], only_running=True)
    assert tiers == [{"name": "rest", "vms": ["b"]}] and list(not_started) == ["a"]


# -- plan ----------------------------------------------------------------------------------------------
def entity(eid, name, kind="vm", ha=False, prio=0):
    return {
        "id": eid,
        "name": name,
        "kind": kind,
        "ha": ha,
        "priority": prio,
        "cluster": "Default",
        "nics": [],
    }


def test_build_plan_master_first_dedupes_and_shards_in_start_order():
    domains = [
        {"source_name": "m", "name": "m_dr", "dc": "R", "master": True},
        {"source_name": "o", "name": "o_dr", "dc": "R", "master": False},
    ]
    inv = {
        "m": {
            "sd_id": "sd-m",
            "entities": [
                entity("v1", "vm1", ha=True),
                entity("t1", "tpl", kind="template"),
                entity("v2", "vm2"),
            ],
            "vm_status": {"v1": 1, "v2": 0},
            "unreadable": {"bad": "not XML"},
        },
        "o": {
            "sd_id": "sd-o",
            "entities": [entity("v1", "vm1"), entity("v3", "vm3")],
            "vm_status": {"v3": 1},
        },
    }
    plan = build_plan(
        domains,
        inv,
        register_shards=2,
        start_tiers=[["vm3"]],
        start_only_running=True,
        params={"dry_run": True},
        guard={"proceed": True, "reason": "ok"},
        target={"conn_id": "s", "host": "h"},
    )
    assert [d["sd_id"] for d in plan["domains"]] == ["sd-m", "sd-o"]
    assert [(v["name"], v["sd_id"]) for v in plan["vms"]] == [
        ("vm1", "sd-m"),
        ("vm2", "sd-m"),
        ("vm3", "sd-o"),
    ]
    assert plan["templates"] == [{"id": "t1", "name": "tpl", "domain": "m_dr", "sd_id": "sd-m"}]
    assert "registered from m_dr" in plan["warnings"][0]
    assert plan["tiers"] == [{"name": "ha", "vms": ["vm1"]}, {"name": "tier 1", "vms": ["vm3"]}]
    assert list(plan["not_started"]) == ["vm2"]
    assert [[v["name"] for v in s] for s in plan["shards"]] == [["vm1", "vm2"], ["vm3"]]
    assert plan["unreadable"] == [{"id": "bad", "domain": "m_dr", "why": "not XML"}]
    text = plan_text(plan)
    assert "DRY RUN" in text and "shard 0: vm1, vm2" in text and "start ha: vm1" in text
    assert "NO recovery point" in text


def test_build_plan_flags_duplicate_vm_names():
    inv = {"m": {"sd_id": "s", "entities": [entity("a", "x"), entity("b", "x")]}}
    plan = build_plan(
        [{"source_name": "m", "name": "m"}],
        inv,
        register_shards=4,
        start_tiers=[],
        start_only_running=False,
        params={},
        guard={},
        target={},
    )
    assert plan["problems"] == ["VM name 'x' is used by more than one VM being recovered"]


# -- outcomes ------------------------------------------------------------------------------------------
PLAN_VMS = [{"id": i, "name": f"vm{i}", "domain": "d"} for i in "12345"]


def test_merge_outcomes_each_vm_gets_one_status_and_a_reason():
    reg = [
        outcome("vm1", "1", "register", "done", "registered"),
        outcome("vm2", "2", "register", "skipped", "already registered"),
        outcome("vm3", "3", "register", "failed", "Cluster X does not exist"),
        outcome("vm4", "4", "register", "done"),
    ]
    st = [
        outcome("vm1", "1", "start", "done", "started, up", "2026-01-01T00:01:00+00:00"),
        outcome("vm2", "2", "start", "failed", "not up within tier_timeout"),
        outcome("vm4", "4", "start", "not_started", "was not running"),
    ]
    out = {
        v["name"]: v
        for v in merge_outcomes(PLAN_VMS, reg, st, dry_run=False, no_register_reason="step x failed")
    }
    assert out["vm1"]["status"] == "up" and out["vm1"]["up_at"]
    assert out["vm2"]["status"] == "failed" and "start failed" in out["vm2"]["reason"]
    assert out["vm3"]["status"] == "failed" and "Cluster X" in out["vm3"]["reason"]
    assert out["vm4"]["status"] == "registered" and "was not running" in out["vm4"]["reason"]
    assert out["vm5"]["status"] == "failed" and "step x failed" in out["vm5"]["reason"]


def test_merge_outcomes_dry_run_is_planned_and_rto():
    reg = [outcome("vm1", "1", "register", "planned", "would register")]
    st = [outcome("vm1", "1", "start", "planned", "would start")]
    (v,) = merge_outcomes(PLAN_VMS[:1], reg, st, dry_run=True)
    assert v["status"] == "planned" and v["reason"] == "would register; would start"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    results = [
        {"up_at": "2026-01-01T00:00:30+00:00"},
        {"up_at": "2026-01-01T00:01:05+00:00"},
        {"up_at": None},
    ]
    assert rto_seconds(start, results) == 65
    assert rto_seconds(start, [{"up_at": None}]) is None


def test_flatten_accepts_every_xcom_shape():
    o = outcome("a", "1", "register", "done")
    assert (
        flatten(None) == []
        and flatten(o) == [o]
        and flatten([o]) == [o]
        and flatten([[o], None, [o]]) == [o, o]
    )
