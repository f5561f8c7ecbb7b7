"""The sync DAG factory: shape of a pair's DAG, isolation of bad pairs, parsing context."""

from __future__ import annotations

from pathlib import Path

import yaml

GOOD = {
    "storage_domain": "data1",
    "target": "dr",
    "site": "primary",
    "master_volume": "gvmaster",
    "gluster_ssh_conn_id": "gluster_primary",
    "slave_host": "dr-node.example.com",
    "slave_volume": "gvslave",
    "slave_ssh_conn_id": "gluster_secondary",
}

REPO = Path(__file__).resolve().parents[3]


def write_config(tmp_path: Path, pairs: list) -> Path:
    path = tmp_path / "ovirt_dr.yaml"
    doc = {
        "sites": {"primary": {"ovirt_conn_id": "ovirt_primary"}},
        "defaults": {"alert_emails": ["ops@example.com"]},
        "pairs": pairs,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def dagbag_for(tmp_path: Path, config: Path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    dags = tmp_path / "dags"
    dags.mkdir()
    for name in ("dr_sync.py", "dr_sync_config_check.py"):
        (dags / name).write_text((REPO / "dags" / name).read_text())
    monkeypatch.setenv("OVIRT_DR_CONFIG", str(config))
    return DagBag(dag_folder=str(dags))


def test_pair_dag_shape(tmp_path, monkeypatch):
    bag = dagbag_for(tmp_path, write_config(tmp_path, [GOOD]), monkeypatch)
    assert bag.import_errors == {}
    dag = bag.dags["dr_sync__data1__dr"]
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    ids = {t.task_id for t in dag.tasks}
    assert ids == {
        "preflight_engine",
        "preflight_georep",
        "update_ovf_store",
        "snapshot_vms",
        "checkpoint_and_start",
        "wait_for_checkpoint",
        "stop_georep",
        "cleanup_replica",
        "audit_replica",
        "merge_snapshots",
        "report",
    }
    t = dag.task_dict
    assert t["merge_snapshots"].trigger_rule == "all_done"
    assert t["report"].trigger_rule == "all_done"
    assert t["stop_georep"].trigger_rule == "all_done"
    assert {"snapshot_vms", "audit_replica"} <= t["merge_snapshots"].upstream_task_ids
    assert t["report"].upstream_task_ids == {"merge_snapshots"}
    # the geo-rep session is driven by one pair at a time per master volume
    assert t["checkpoint_and_start"].pool == "ovirt_dr_georep__gvmaster"
    assert t["snapshot_vms"].retry_exponential_backoff
    assert dag.deadline is not None


def test_bad_pair_is_an_import_error_and_others_load(tmp_path, monkeypatch):
    bad = {**GOOD, "storage_domain": "broken", "schedule": "whenever"}
    bag = dagbag_for(tmp_path, write_config(tmp_path, [GOOD, bad]), monkeypatch)
    assert "dr_sync__data1__dr" in bag.dags
    assert not any(d.startswith("dr_sync__broken") for d in bag.dags)
    ((path, msg),) = bag.import_errors.items()
    assert path.endswith("dr_sync_config_check.py")  # not the file that defines the DAGs
    assert "pairs[1] (broken/dr)" in msg and "schedule" in msg and "whenever" in msg


def test_strict_mode_fails_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("OVIRT_DR_STRICT", "1")
    bad = {**GOOD, "storage_domain": "broken", "rpo": "soon"}
    bag = dagbag_for(tmp_path, write_config(tmp_path, [GOOD, bad]), monkeypatch)
    assert bag.dags == {}
    assert any(p.endswith("dr_sync.py") and "rpo" in m for p, m in bag.import_errors.items())


def test_parsing_context_builds_only_that_dag(tmp_path, monkeypatch):
    from ovirt_dr.sync import build_sync_dags

    pairs = [{**GOOD, "target": f"t{i}"} for i in range(5)]
    config = write_config(tmp_path, pairs)
    ns: dict = {}
    assert len(build_sync_dags(config, ns)) == 5
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "dr_sync__data1__t3")
    ns = {}
    built = build_sync_dags(config, ns)
    assert [d.dag_id for d in built] == ["dr_sync__data1__t3"]
    assert list(ns) == ["dr_sync__data1__t3"]


def test_no_alert_emails_means_no_mail_callbacks(tmp_path):
    from ovirt_dr.sync import build_sync_dags

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"sites": {"primary": {"ovirt_conn_id": "x"}}, "pairs": [GOOD]}))
    (dag,) = build_sync_dags(path, {})
    assert dag.deadline is None
