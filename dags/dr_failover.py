"""Failover to the secondary site: the ``dr_failover`` DAG (manual, dry run by default).

This file only wires: the config next to it (or the file named by ``$OVIRT_DR_CONFIG``) is read and the
factory in ``ovirt_dr.recovery`` builds the Airflow DAG (the words "airflow" and "dag" must stay in this
file: Airflow's safe mode skips files without them). The DAG is built even when the recovery config or
the mapping file is broken, so that it is there in an emergency; its first task then names every problem.
"""

from __future__ import annotations

from ovirt_dr.config import default_config_path
from ovirt_dr.recovery import build_failover_dag

dag = build_failover_dag(default_config_path(__file__))
