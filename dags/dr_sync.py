"""DR sync pipelines: one DAG per (storage domain, geo-replication target) pair of ``ovirt_dr.yaml``.

This file only wires: the config next to it (or the file named by ``$OVIRT_DR_CONFIG``) is read and the
factory in ``ovirt_dr.sync`` builds the Airflow DAGs (the words "airflow" and "dag" must
stay in this file: Airflow's safe mode skips files without them). No network, connections or Variables at parse time.
"""

from __future__ import annotations

from ovirt_dr.config import default_config_path
from ovirt_dr.sync import build_sync_dags

build_sync_dags(default_config_path(__file__), globals())
