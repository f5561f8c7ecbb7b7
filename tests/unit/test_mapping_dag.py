"""The dr_mapping factory: the DAG loads with a good, a broken and a missing config; typed trigger form."""

from __future__ import annotations

import shutil
from pathlib import Path

from ovirt_dr.mapping_dag import build_mapping_dag

REPO = Path(__file__).resolve().parents[2]


def test_lab_config(tmp_path: Path) -> None:
    for name in ("ovirt_dr.yaml", "disaster_recovery_vars.yml"):
        shutil.copy(REPO / "dags" / name, tmp_path / name)
    dag = build_mapping_dag(tmp_path / "ovirt_dr.yaml")
    assert dag.dag_id == "dr_mapping" and dag.schedule is None and dag.catchup is False
    assert set(dag.task_ids) == {"choose_action", "generate", "validate"}
    params = dag.params
    assert params["action"] == "validate" and params["direction"] == "failover" and params["dry_run"] is False
    assert params["output_path"] == str(tmp_path / "disaster_recovery_vars.generated.yml")
    schema = dag.params.get_param("action").schema
    assert schema["enum"] == ["validate", "generate"]
    assert dag.params.get_param("direction").schema["enum"] == ["failover", "failback"]
    for task in dag.tasks:
        assert task.owner == "ovirt-dr" and task.retries >= 2
    assert "problems" not in dag.doc_md


def test_broken_and_missing_config_still_build(tmp_path: Path) -> None:
    (tmp_path / "ovirt_dr.yaml").write_text("recovery: {mapping_file: m.yml, bogus: 1}\npairs: []\n")
    dag = build_mapping_dag(tmp_path / "ovirt_dr.yaml")
    assert set(dag.task_ids) == {"choose_action", "generate", "validate"}
    assert "recovery.bogus" in dag.doc_md
    dag = build_mapping_dag(tmp_path / "nope.yaml")
    assert "cannot read the ovirt-dr config" in dag.doc_md
    assert dag.params["output_path"].endswith("disaster_recovery_vars.generated.yml")


def test_config_values_are_not_templates(tmp_path: Path) -> None:
    for name in ("ovirt_dr.yaml", "disaster_recovery_vars.yml"):
        shutil.copy(REPO / "dags" / name, tmp_path / name)
    dag = build_mapping_dag(tmp_path / "ovirt_dr.yaml")
    for task_id in ("generate", "validate"):
        assert tuple(dag.get_task(task_id).template_fields) == ()
