"""The sync DAG factory: shape of a pair's DAG, isolation of bad pairs, parsing context."""

from __future__ import annotations

from pathlib import Path

import pytest
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

REPO = Path(__file__).resolve().parents[2]


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

    pairs = [{**GOOD, "target": f"t{i}", "slave_volume": f"gvslave{i}"} for i in range(5)]
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


# -- the build guard: one pair's failure is that pair's named error, never the DAG file's ----------------
def test_a_pair_whose_build_fails_is_left_out_and_named(tmp_path, monkeypatch):
    """Whatever breaks one pair's DAG (here: an operator raising half-way, inside `with dag:`)."""
    import ovirt_dr.sync as sync

    real_asset = sync.recovery_point_asset

    def exploding_asset(pair):  # called inside `with dag:`, when most tasks already exist
        if pair.storage_domain == "boom":
            raise RuntimeError("operator blew up")
        return real_asset(pair)

    monkeypatch.setattr(sync, "recovery_point_asset", exploding_asset)
    bad = {**GOOD, "storage_domain": "boom", "master_volume": "gvboom", "slave_volume": "gvboom_dr"}
    bag = dagbag_for(tmp_path, write_config(tmp_path, [GOOD, bad]), monkeypatch)
    assert sorted(bag.dags) == ["dr_sync__data1__dr"]  # the half-built DAG never reached the DagBag
    ((path, msg),) = bag.import_errors.items()
    assert path.endswith("dr_sync_config_check.py")
    assert "pairs[1] (boom/dr): its DAG could not be built: RuntimeError: operator blew up" in msg


def test_a_pair_the_dag_processor_could_not_serialize_is_left_out_and_named(tmp_path, monkeypatch):
    """A serialization failure is an import error of the whole file in the processor: caught per pair."""
    import structlog
    from airflow.dag_processing.processor import DagFileParseRequest, _parse_file
    from airflow.serialization.serialized_objects import DagSerialization

    real = DagSerialization.to_dict.__func__

    def to_dict(cls, dag):
        if dag.dag_id == "dr_sync__boom__dr":
            raise TypeError("cannot serialize this one")
        return real(cls, dag)

    monkeypatch.setattr(DagSerialization, "to_dict", classmethod(to_dict))
    bad = {**GOOD, "storage_domain": "boom", "master_volume": "gvboom", "slave_volume": "gvboom_dr"}
    dags = tmp_path / "dags"
    dags.mkdir()
    for name in ("dr_sync.py", "dr_sync_config_check.py"):
        (dags / name).write_text((REPO / "dags" / name).read_text())
    monkeypatch.setenv("OVIRT_DR_CONFIG", str(write_config(tmp_path, [GOOD, bad])))

    def parse(name):
        request = DagFileParseRequest(file=str(dags / name), bundle_path=dags, bundle_name="dags-folder")
        return _parse_file(request, structlog.get_logger())

    dag_file, check_file = parse("dr_sync.py"), parse("dr_sync_config_check.py")
    assert dag_file.import_errors == {}
    assert [d.dag_id for d in dag_file.serialized_dags] == ["dr_sync__data1__dr"]
    (msg,) = check_file.import_errors.values()
    assert "pairs[1] (boom/dr): its DAG could not be built: TypeError: cannot serialize this one" in msg


# -- templating: nothing from the config is ever rendered -------------------------------------------------
class _Secrets:
    """What `{{ conn.x.password }}` reaches in a real context: here, a password that must never appear."""

    def __getattr__(self, name):
        from types import SimpleNamespace

        return SimpleNamespace(password="TOPSECRET", login="admin")


def _context():
    from types import SimpleNamespace

    return {
        "conn": _Secrets(),
        "var": SimpleNamespace(value=_Secrets()),
        "dag_run": SimpleNamespace(run_id="manual__1", dag_run_id="manual__1"),
        "reason": "task_failure",
        "run_id": "manual__1",
        "ti": SimpleNamespace(xcom_pull=lambda *a, **k: "5d5d5d5d-0000-4000-8000-000000000001"),
    }


def _hostile_pair():
    """A pair as validation would never let through: a check of the structure, not of the validator."""
    from ovirt_dr.config import PairConfig, SiteConfig

    pair = PairConfig.model_construct(
        **GOOD,
        schedule=None,
        alert_emails=["{{ conn.smtp_lab.password }}@evil.example"],
        smtp_conn_id="{{ conn.smtp_lab.password }}",
    )
    return pair, SiteConfig.model_construct(ovirt_conn_id="{{ conn.ovirt_primary.password }}")


def test_the_failure_mail_renders_no_config_value():
    from ovirt_dr.sync import build_sync_dag

    pair, site = _hostile_pair()
    notifier = build_sync_dag(pair, site).on_failure_callback
    notifier = notifier[0] if isinstance(notifier, list) else notifier
    context = _context()
    notifier._update_context(context)  # what BaseNotifier.__call__ does before notify()
    notifier.render_template_fields(context)
    assert notifier.to == ["{{ conn.smtp_lab.password }}@evil.example"]
    assert notifier.smtp_conn_id == "{{ conn.smtp_lab.password }}"
    assert (
        "TOPSECRET" not in f"{notifier.to} {notifier.smtp_conn_id} {notifier.subject} {notifier.html_content}"
    )
    # the product's own templates are still rendered, with the config values as data
    assert notifier.subject == "[ovirt-dr] DR sync FAILED: data1 -> dr (manual__1)"
    assert "task_failure" in notifier.html_content


def test_operator_template_fields_render_no_config_value():
    from ovirt_dr.sync import build_sync_dag

    pair, site = _hostile_pair()
    dag = build_sync_dag(pair, site)
    context = _context()
    for task in dag.tasks:
        task.render_template_fields(context)  # once, as a task run does
        for name in task.template_fields:
            if name in ("sd_id", "snapshots", "checkpoint"):
                continue  # upstream XComs, not config
            value = getattr(task, name)
            assert "TOPSECRET" not in str(value), f"{task.task_id}.{name} rendered a config value"
    assert dag.task_dict["preflight_engine"].ovirt_conn_id == "{{ conn.ovirt_primary.password }}"
    assert dag.task_dict["report"].pair_label == "data1/dr"


# -- sharding and the per-file limit -------------------------------------------------------------------
def test_shards_split_the_pairs_and_the_limit_names_the_rest(tmp_path, monkeypatch):
    from ovirt_dr.config import load_sync_config
    from ovirt_dr.sync import Shard, build_pairs, shard_of

    pairs = [
        {**GOOD, "storage_domain": f"sd{i}", "master_volume": f"gv{i}", "slave_volume": f"s{i}"}
        for i in range(30)
    ]
    config = load_sync_config(write_config(tmp_path, pairs))
    assert shard_of("/x/dr_sync.py") == Shard(1, 1) and shard_of("dr_sync_2_of_3.py") == Shard(2, 3)
    assert shard_of("dr_sync_config_check_3_of_3.py") == Shard(3, 3)
    with pytest.raises(ValueError, match="does not exist"):
        shard_of("dr_sync_4_of_3.py")
    built = [sorted(d.dag_id for d in build_pairs(config, Shard(k, 3)).dags) for k in (1, 2, 3)]
    assert sorted(sum(built, [])) == sorted(p.dag_id for p in config.pairs)  # each pair in one shard
    assert all(built)
    monkeypatch.setenv("OVIRT_DR_MAX_PAIRS_PER_FILE", "5")
    result = build_pairs(config)
    assert [d.dag_id for d in result.dags] == [p.dag_id for p in config.pairs[:5]]
    assert len(result.errors) == 25 and all("already holds 5 pairs" in str(e) for e in result.errors)
    monkeypatch.setenv("OVIRT_DR_MAX_PAIRS_PER_FILE", "lots")
    with pytest.raises(ValueError, match="OVIRT_DR_MAX_PAIRS_PER_FILE"):
        build_pairs(config)


def test_sharded_dag_files_under_the_dagbag(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    pairs = [
        {**GOOD, "storage_domain": f"sd{i}", "master_volume": f"gv{i}", "slave_volume": f"s{i}"}
        for i in range(6)
    ]
    dags = tmp_path / "dags"
    dags.mkdir()
    for k in (1, 2):
        (dags / f"dr_sync_{k}_of_2.py").write_text((REPO / "dags" / "dr_sync.py").read_text())
        (dags / f"dr_sync_config_check_{k}_of_2.py").write_text(
            (REPO / "dags" / "dr_sync_config_check.py").read_text()
        )
    monkeypatch.setenv("OVIRT_DR_CONFIG", str(write_config(tmp_path, pairs)))
    bag = DagBag(dag_folder=str(dags))
    assert bag.import_errors == {}
    assert sorted(bag.dags) == sorted(f"dr_sync__sd{i}__dr" for i in range(6))
    files = {Path(d.fileloc).name for d in bag.dags.values()}
    assert files == {"dr_sync_1_of_2.py", "dr_sync_2_of_2.py"}
    # a missing shard file is named: its pairs would silently not be built
    (dags / "dr_sync_2_of_2.py").unlink()
    bag = DagBag(dag_folder=str(dags))
    ((path, msg),) = bag.import_errors.items()
    assert path.endswith("dr_sync_config_check_1_of_2.py") and "missing for k = [2]" in msg
