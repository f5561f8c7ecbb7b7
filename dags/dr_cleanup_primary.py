"""Clean the old primary after a failover: the ``dr_cleanup_primary`` DAG (manual, dry run by default).

This file only wires: the config next to it (or the file named by ``$OVIRT_DR_CONFIG``) is read and the
factory in ``ovirt_dr.failback_dags`` builds the Airflow DAG (the words "airflow" and "dag" must stay in
this file: Airflow's safe mode skips files without them). The DAG is built even when the config is broken.
"""

from __future__ import annotations

from ovirt_dr.config import default_config_path
from ovirt_dr.failback_dags import build_cleanup_primary_dag

dag = build_cleanup_primary_dag(default_config_path(__file__))
