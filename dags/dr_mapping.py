"""DR mapping file DAG (``dr_mapping``): generate a mapping from the primary engine, or validate one.

This file only wires: the ovirt-dr config next to it (or the file named by ``$OVIRT_DR_CONFIG``) is handed
to the factory in ``ovirt_dr.mapping_dag``, which builds the Airflow DAG even when the config is broken (the
words "airflow" and "dag" must stay in this file: Airflow's safe mode skips files without them). No
network, connections or Variables at parse time.
"""

from __future__ import annotations

from ovirt_dr.config import default_config_path
from ovirt_dr.mapping_dag import build_mapping_dag

dr_mapping = build_mapping_dag(default_config_path(__file__))
