"""dr_mapping under the real Airflow (scheduler, dag-processor, API server) against the lab's engines.

Triggered through the REST API with ``conf``, as an admin would from the trigger form: validate with a bad
mapping file (the run fails; the validate task's XCom ``report`` lists the faults; generate is skipped; no
retry is wasted on a file), validate with the good one (success, counts in XCom), and generate as a dry run
(the file in XCom, nothing written). The config is a copy of the lab's in this test's own Airflow home.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.lab]

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "dr_mapping"


@pytest.fixture(scope="module")
def lab_env() -> dict[str, str]:
    from ovirt_dr_lab.labenv import load_lab_env

    return load_lab_env()


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("mapping-config")
    for name in ("ovirt_dr.yaml", "disaster_recovery_vars.yml"):
        shutil.copy(REPO / "dags" / name, d / name)
    return d


@pytest.fixture(scope="module")
def airflow(lab_env: dict[str, str], config_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from ovirt_dr_lab.airflow_runner import AirflowStandalone

    home = tmp_path_factory.mktemp("airflow-mapping-e2e")
    env = {k: v for k, v in lab_env.items() if k.startswith("AIRFLOW_CONN_")}
    env["OVIRT_DR_CONFIG"] = str(config_dir / "ovirt_dr.yaml")
    af = AirflowStandalone(home=home, env=env, port=28093)
    started = time.monotonic()
    af.start()
    af.wait_dag(DAG_ID)
    af.unpause(DAG_ID)
    print(f"\nAirflow up and dr_mapping parsed in {time.monotonic() - started:.1f} s")
    yield af
    af.stop()


def states(af: Any, run_id: str) -> dict[str, str | None]:
    return {t["task_id"]: t["state"] for t in af.task_instances(DAG_ID, run_id)}


def test_validate_bad_then_good_then_generate_dry_run(airflow: Any, config_dir: Path) -> None:
    mapping = config_dir / "disaster_recovery_vars.yml"
    good = mapping.read_text()
    doc = yaml.safe_load(good)
    doc["dr_cluster_mappings"][0]["secondary_name"] = "NoSuchCluster"
    doc["dr_role_mappings"][0]["secondary_name"] = "NoSuchRole"
    doc["dr_import_storages"][0]["dr_secondary_dc_name"] = "NoSuchDC"
    mapping.write_text(yaml.safe_dump(doc, sort_keys=False))  # the file is read when the task runs

    timings = {}
    started = time.monotonic()
    bad = airflow.trigger(DAG_ID, {"action": "validate", "direction": "failover"})
    run = airflow.wait_run(DAG_ID, bad, timeout=240)
    timings["validate (bad file)"] = time.monotonic() - started
    assert run["state"] == "failed"
    st = states(airflow, bad)
    assert st == {"choose_action": "success", "validate": "failed", "generate": "skipped"}, st
    ti = next(t for t in airflow.task_instances(DAG_ID, bad) if t["task_id"] == "validate")
    assert ti["try_number"] == 1  # a bad file is not retried
    report = airflow.xcom(DAG_ID, bad, "validate", key="report")
    assert report["ok"] is False
    for fault in (
        "'NoSuchCluster' does not exist",
        "'NoSuchRole' does not exist",
        "'NoSuchDC' is not a data center",
    ):
        assert any(fault in e for e in report["errors"]), (fault, report["errors"])

    mapping.write_text(good)
    started = time.monotonic()
    ok = airflow.trigger(DAG_ID, {"action": "validate", "direction": "failover"})
    run = airflow.wait_run(DAG_ID, ok, timeout=240)
    timings["validate (good file)"] = time.monotonic() - started
    assert run["state"] == "success", airflow.task_log(DAG_ID, ok, "validate")
    result = airflow.xcom(DAG_ID, ok, "validate")
    assert result["ok"] is True and result["errors"] == [] and result["checked"]["vms"] == 6
    assert airflow.xcom(DAG_ID, ok, "validate", key="report") == result

    started = time.monotonic()
    gen = airflow.trigger(DAG_ID, {"action": "generate", "dry_run": True})
    run = airflow.wait_run(DAG_ID, gen, timeout=240)
    timings["generate (dry run)"] = time.monotonic() - started
    assert run["state"] == "success", airflow.task_log(DAG_ID, gen, "generate")
    assert states(airflow, gen)["validate"] == "skipped"
    out = airflow.xcom(DAG_ID, gen, "generate")
    assert out["written"] is False and "dr_import_storages:" in out["text"]
    assert not Path(out["path"]).exists()
    # the trigger form refuses what its params do not allow
    with pytest.raises(Exception, match="400|enum|direction"):
        airflow.trigger(DAG_ID, {"action": "validate", "direction": "sideways"})
    print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
