"""DR sync pipelines: one DAG per (storage domain, geo-replication target) pair of ``ovirt_dr.yaml``.

This file only wires: the config next to it (or the file named by ``$OVIRT_DR_CONFIG``) is read and the
factory in ``ovirt_dr.sync`` builds the Airflow DAGs (the words "airflow" and "dag" must
stay in this file: Airflow's safe mode skips files without them). No network, connections or Variables at parse time.
A pair whose DAG cannot be built is left out and named by ``dr_sync_config_check.py``; this file never fails
for one pair. Copied as ``dr_sync_<k>_of_<n>.py`` it builds shard k of n of the pairs (README "Configuration").
"""

from __future__ import annotations

from ovirt_dr.config import default_config_path
from ovirt_dr.sync import build_sync_dags

build_sync_dags(default_config_path(__file__), globals())
