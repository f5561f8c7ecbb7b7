"""The dr_failover factory: the DAG's shape, its form, and that it exists even with a broken config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ovirt_dr.operators.recovery_ovirt import OvirtFailoverValidateOperator
from ovirt_dr.recovery import build_failover_dag
from ovirt_dr_lab.inprocess_dr import FakeRun

REPO = Path(__file__).resolve().parents[2]
LAB_CONFIG = REPO / "dags" / "ovirt_dr.yaml"


def test_lab_failover_dag_shape():
    dag = build_failover_dag(LAB_CONFIG)
    assert dag.dag_id == "dr_failover" and dag.schedule is None and dag.max_active_runs == 1
    order = ["validate", "preflight", "make_replica_writable", "import_domains", "register_templates"]
    for up, down in zip(order, order[1:], strict=False):
        assert up in dag.get_task(down).upstream_task_ids
    reg = dag.get_task("register_vms")
    assert reg.trigger_rule == "all_done_min_one_success" and reg.max_active_tis_per_dagrun == 4
    assert dag.get_task("start_vms").trigger_rule == "all_done_min_one_success"
    report = dag.get_task("report")
    assert report.trigger_rule == "all_done" and set(report.upstream_task_ids) == set(dag.task_ids) - {
        "report"
    }
    (inlet,) = dag.get_task("preflight").inlets
    assert inlet.uri == "ovirt-dr://data_gluster/lab_dr"
    for task in dag.tasks:
        assert not task.template_fields, f"{task.task_id}: no field is ever rendered as a template"


def test_form_params():
    from airflow.sdk.exceptions import ParamValidationError

    params = build_failover_dag(LAB_CONFIG).params
    assert params["dry_run"] is True and params["force"] is False and params["start_vms"] is True
    assert params["domains"] == []
    schema = params.get_param("domains").schema
    assert schema["items"]["enum"] == ["data_gluster"] and schema["uniqueItems"]
    with pytest.raises(ParamValidationError):
        params.get_param("domains").resolve(["no_such_domain"])
    with pytest.raises(ParamValidationError):
        params.get_param("dry_run").resolve("yes")


@pytest.mark.parametrize(
    ("section", "mapping", "words"),
    [
        (None, None, "no 'recovery:' section"),
        ({"mapping_file": "missing.yml"}, None, "missing.yml: cannot read"),
        ({"mapping_file": "m.yml", "register_shards": 0}, "dr_import_storages: []", "register_shards"),
        ({"mapping_file": "m.yml"}, "dr_cluster_mappings:\n  - {secondry_name: x}", "unknown key"),
    ],
)
def test_broken_config_still_builds_the_dag_and_validate_names_the_problem(tmp_path, section, mapping, words):
    from airflow.sdk.exceptions import AirflowFailException

    doc = {"sites": {"primary": {"ovirt_conn_id": "p"}, "secondary": {"ovirt_conn_id": "s"}}, "pairs": []}
    if section is not None:
        doc["recovery"] = section
    (tmp_path / "ovirt_dr.yaml").write_text(yaml.safe_dump(doc))
    if mapping is not None:
        (tmp_path / "m.yml").write_text(mapping)
    dag = build_failover_dag(tmp_path / "ovirt_dr.yaml")
    assert (
        dag.dag_id == "dr_failover" and "cannot be used" in dag.doc_md and "CONFIG BROKEN" in dag.description
    )
    assert words in dag.doc_md
    validate = dag.get_task("validate")
    assert isinstance(validate, OvirtFailoverValidateOperator)
    with pytest.raises(AirflowFailException, match=words):
        FakeRun({"dry_run": True}).execute(validate)


def test_a_domain_without_sync_pair_and_an_unknown_choice_are_named(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    doc = yaml.safe_load(LAB_CONFIG.read_text())
    doc["pairs"] = []
    doc["recovery"]["mapping_file"] = str(REPO / "dags" / "disaster_recovery_vars.yml")
    (tmp_path / "ovirt_dr.yaml").write_text(yaml.safe_dump(doc))
    validate = build_failover_dag(tmp_path / "ovirt_dr.yaml").get_task("validate")
    with pytest.raises(AirflowFailException) as err:
        FakeRun({"dry_run": True, "domains": ["data_gluster", "nope"]}).execute(validate)
    assert "'nope' is not a primary domain" in str(err.value)
    assert "data_gluster: no sync pair replicates it" in str(err.value)


def recovery_dags():
    from ovirt_dr.drill_dag import build_drill_dag
    from ovirt_dr.failback_dags import build_cleanup_primary_dag, build_failback_dag

    return [
        b(LAB_CONFIG)
        for b in (build_failover_dag, build_cleanup_primary_dag, build_failback_dag, build_drill_dag)
    ]


def test_the_exclusive_recovery_dags_are_exactly_the_ones_that_change_things():
    from ovirt_dr.operators.recovery_base import RECOVERY_DAG_IDS

    assert sorted(d.dag_id for d in recovery_dags()) == sorted(RECOVERY_DAG_IDS)
    assert all(d.max_active_runs == 1 for d in recovery_dags())


@pytest.mark.parametrize("state", ["queued", "running"])
def test_no_recovery_dag_starts_while_another_one_runs(state):
    """Each recovery DAG's first task fails, without retry and before it reads a config or an engine,
    naming the other run; the DAG's own runs (held by max_active_runs=1) and ended runs do not count."""
    from airflow.sdk.exceptions import AirflowFailException

    from ovirt_dr.operators.recovery_base import RECOVERY_DAG_IDS

    for dag in recovery_dags():
        first = next(t for t in dag.tasks if not t.upstream_task_ids)
        for other in RECOVERY_DAG_IDS:
            if other == dag.dag_id:
                continue
            run = FakeRun({"dry_run": True}, other_runs={other: [state, "success", "failed"]})
            first.config_path = "/nonexistent/ovirt_dr.yaml"  # the check comes before any config read
            with pytest.raises(AirflowFailException) as err:
                run.execute(first)
            assert f"another recovery is in progress: {other} (1 run(s) queued or running)" in str(err.value)
            assert f"trigger {dag.dag_id} again" in str(err.value)


def test_ended_runs_and_own_runs_do_not_block_a_recovery(tmp_path):
    """With only ended runs of the others and a queued run of its own DAG, the first task goes past the
    check (and then fails on the config it was pointed at, which proves it got there)."""
    for dag in recovery_dags():
        first = next(t for t in dag.tasks if not t.upstream_task_ids)
        first.config_path = str(tmp_path / "missing.yaml")
        others = {
            d: ["success", "failed"] for d in ("dr_failover", "dr_cleanup_primary", "dr_failback", "dr_drill")
        }
        others[dag.dag_id] = ["queued"]
        with pytest.raises(Exception) as err:
            FakeRun({"dry_run": True}, other_runs=others).execute(first)
        assert "another recovery" not in str(err.value) and "missing.yaml" in str(err.value)
