"""The factories of dr_cleanup_primary and dr_failback: built from the lab config, from variants, and broken."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ovirt_dr.failback_dags import build_cleanup_primary_dag, build_failback_dag
from ovirt_dr.sync import check_dag

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "dags" / "ovirt_dr.yaml"


def variant(tmp_path: Path, **recovery: object) -> Path:
    doc = yaml.safe_load(LAB.read_text())
    doc["recovery"]["mapping_file"] = str(REPO / "dags" / "disaster_recovery_vars.yml")
    doc["recovery"].update(recovery)
    path = tmp_path / "ovirt_dr.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_cleanup_dag_steps_in_order_and_the_form():
    dag = build_cleanup_primary_dag(LAB)
    check_dag(dag)
    order = ["preflight", "stop_vms", "update_ovf_store", "remove_domains", "remove_orphans"]
    for a, b in zip(order, order[1:], strict=False):
        assert dag.get_task(b).upstream_task_ids == {a}
    assert dag.get_task("report").trigger_rule == "all_done"
    assert dag.params["dry_run"] is True and dag.params["force"] is False
    assert dag.params.get_param("domains").schema["items"]["enum"] == ["data_gluster"]
    assert dag.schedule is None and dag.max_active_runs == 1 and "cleanup" in dag.tags


def test_failback_dag_runs_the_sync_cycle_back_and_the_failover_steps_forward():
    dag = build_failback_dag(LAB)
    check_dag(dag)
    ids = set(dag.task_ids)
    for group in ("reverse_1__data_gluster", "final__data_gluster"):
        for step in (
            "gate",
            "preflight_engine",
            "snapshot_vms",
            "checkpoint_and_start",
            "wait_for_checkpoint",
        ):
            assert f"{group}.{step}" in ids
        assert dag.get_task(f"{group}.merge_snapshots").trigger_rule == "all_done_min_one_success"
        assert f"{group}.gate" in dag.get_task(f"{group}.stop_georep").upstream_task_ids
    assert dag.get_task("reverse_1__data_gluster.gate").upstream_task_ids == {"create_reverse_session"}
    assert dag.get_task("shutdown_vms").upstream_task_ids == {
        "reverse_1__data_gluster.audit_replica",
        "reverse_1__data_gluster.merge_snapshots",
    }
    assert dag.get_task("final__data_gluster.gate").upstream_task_ids == {"shutdown_vms"}
    assert dag.get_task("import_domains").upstream_task_ids == {
        "make_primary_writable",
        "remove_secondary_orphans",
    }
    assert dag.get_task("reestablish_replication").upstream_task_ids == {
        "delete_reverse_session",
        "remove_secondary_orphans",
    }
    report = dag.get_task("report")
    assert report.trigger_rule == "all_done" and report.upstream_task_ids == ids - {"report"}
    # the reverse cycle: the secondary's engine and volume, the primary's volume, the pair's pool
    snap = dag.get_task("reverse_1__data_gluster.snapshot_vms")
    assert (
        snap.ovirt_conn_id.value == "ovirt_secondary" and snap.description_label == "reverse_1.data_gluster"
    )
    check = dag.get_task("final__data_gluster.checkpoint_and_start")
    assert (
        str(check.session) == "gvslave -> 127.0.0.1::gvmaster" and check.pool == "ovirt_dr_georep__gvmaster"
    )
    assert dag.get_task("final__data_gluster.cleanup_replica").ssh_conn_id == "gluster_primary"
    wait = dag.get_task("final__data_gluster.wait_for_checkpoint")
    assert not wait.deferrable and wait.mode == "poke"  # Airflow 3.3's deferral race (see the factory)
    assert dag.get_task("import_domains").direction == "failback"
    assert dag.get_task("import_domains").plan_task_id == "plan_import"
    assert dag.params["dry_run"] is True


@pytest.mark.parametrize(("warm", "groups"), [(0, []), (2, ["reverse_1", "reverse_2"])])
def test_warm_cycles_from_the_config(tmp_path, warm, groups):
    dag = build_failback_dag(variant(tmp_path, failback={"warm_cycles": warm}))
    found = sorted({t.split("__")[0] for t in dag.task_ids if t.startswith("reverse_")})
    assert found == groups
    first = f"{groups[0]}__data_gluster.gate" if groups else "final__data_gluster.gate"
    if groups:
        assert dag.get_task(first).upstream_task_ids == {"create_reverse_session"}
    else:
        assert dag.get_task("shutdown_vms").upstream_task_ids == {"create_reverse_session"}


def test_broken_config_still_builds_both_dags_and_says_why(tmp_path):
    bad = variant(tmp_path, mapping_file=str(tmp_path / "missing.yml"))
    for build in (build_cleanup_primary_dag, build_failback_dag):
        dag = build(bad)
        check_dag(dag)
        assert "CONFIG BROKEN" in (dag.description or "") and "missing.yml" in (dag.doc_md or "")
    assert not [t for t in build_failback_dag(bad).task_ids if "__" in t]  # no cycle it cannot place


def test_a_bad_reverse_session_option_breaks_the_config(tmp_path):
    dag = build_failback_dag(variant(tmp_path, reverse_session={"options": {"rsync_options": "--x"}}))
    assert "CONFIG BROKEN" in (dag.description or "")
    assert "recovery.reverse_session.options" in (dag.doc_md or "")
