"""DR drill: the ``dr_drill`` DAG (manual, dry run by default) proves the replica recoverable.

This file only wires: the config next to it (or the file named by ``$OVIRT_DR_CONFIG``) is read and the
factory in ``ovirt_dr.drill_dag`` builds the Airflow DAG (the words "airflow" and "dag" must stay in this
file: Airflow's safe mode skips files without them). The DAG is built even when the recovery config or
the mapping file is broken; its first task then names every problem.
"""

from __future__ import annotations

from ovirt_dr.config import default_config_path
from ovirt_dr.drill_dag import build_drill_dag

dag = build_drill_dag(default_config_path(__file__))
