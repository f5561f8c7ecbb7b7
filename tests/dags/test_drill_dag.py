"""DAG integrity of ``dr_drill``: loaded from the dags folder, its form, its order, cleanup that always runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk import TriggerRule

REPO = Path(__file__).resolve().parents[2]
ACTION_STEPS = ["validate", "preflight", "make_copy", "import_domains", "register_templates", "register_vms", "check_vms", "start_vms"]  # fmt: skip


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags["dr_drill"]


def test_manual_one_at_a_time_dry_run_by_default(dag):
    assert type(dag.timetable).__name__ == "NullTimetable"  # schedule=None: manual only
    assert dag.max_active_runs == 1 and not dag.catchup
    assert set(dag.tags) >= {"ovirt-dr", "recovery", "drill"}
    assert dag.params["dry_run"] is True and dag.params["domains"] == []
    assert dag.params.get_param("domains").schema["items"]["enum"] == ["data_gluster"]


def test_the_steps_run_in_order_and_the_cleanup_always_runs_after_all_of_them(dag):
    t = dag.task_dict
    assert set(t) == {*ACTION_STEPS, "cleanup", "resume_sync", "report"}
    assert t["preflight"].upstream_task_ids == {"validate"}
    assert t["make_copy"].upstream_task_ids == {"preflight"}
    assert t["import_domains"].upstream_task_ids == {"make_copy"}
    assert t["check_vms"].upstream_task_ids == {"import_domains", "register_vms"}
    assert t["start_vms"].upstream_task_ids == {"import_domains", "check_vms"}
    assert t["cleanup"].upstream_task_ids == set(ACTION_STEPS)
    assert t["resume_sync"].upstream_task_ids == {"cleanup"}
    assert t["report"].upstream_task_ids == {*ACTION_STEPS, "cleanup", "resume_sync"}
    for task_id in ("cleanup", "resume_sync", "report"):
        assert t[task_id].trigger_rule == TriggerRule.ALL_DONE, task_id
    for task_id in ("register_vms", "check_vms", "start_vms"):
        assert t[task_id].trigger_rule == TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, task_id


def test_the_preflight_reads_the_pairs_recovery_points(dag):
    inlets = dag.task_dict["preflight"].inlets
    assert [a.uri for a in inlets] == ["ovirt-dr://data_gluster/lab_dr"]


def test_the_dag_is_built_from_a_broken_config_and_says_so(tmp_path):
    from ovirt_dr.drill_dag import build_drill_dag

    cfg = tmp_path / "ovirt_dr.yaml"
    cfg.write_text(
        "sites: {}\npairs: []\nrecovery: {mapping_file: missing.yml, drill: {name_suffix: 'a b'}}\n"
    )
    dag = build_drill_dag(cfg)
    assert "CONFIG BROKEN" in dag.description and "drill.name_suffix" in dag.doc_md
    assert "cleanup" in dag.task_dict
