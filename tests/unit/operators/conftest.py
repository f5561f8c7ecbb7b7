"""Shared by the failover operator tests: a recovery config on the in-process harness's mapping, and
``build`` (an operator made inside a DAG, as the factory makes it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ovirt_dr_lab.inprocess_dr import mapping_doc


@pytest.fixture
def config(tmp_path: Path) -> Path:
    mapping = tmp_path / "map.yml"
    mapping.write_text(yaml.safe_dump(mapping_doc("gluster.lab")))
    doc = {
        "sites": {"primary": {"ovirt_conn_id": "p"}, "secondary": {"ovirt_conn_id": "s"}},
        "recovery": {"mapping_file": str(mapping), "register_concurrency": 2, "tier_timeout": "3s"},
        "pairs": [
            {
                "storage_domain": "data_gluster",
                "target": "t",
                "site": "primary",
                "master_volume": "gvmaster",
                "gluster_ssh_conn_id": "gp",
                "slave_host": "gluster.lab",
                "slave_volume": "gvslave",
                "slave_ssh_conn_id": "gs",
                "schedule": None,
            }
        ],
    }
    path = tmp_path / "ovirt_dr.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def build() -> Callable[..., Any]:
    """``build(cls, config, **kw)``: the operator, made inside a DAG ``dr_failover``."""

    def make(cls: type, config: Path, **kw: Any) -> Any:
        from airflow.sdk import DAG

        with DAG("dr_failover", schedule=None):
            return cls(task_id=kw.pop("task_id", "t"), config_path=str(config), **kw)

    return make
