"""Shows the ovirt-dr config's bad pairs as an Airflow import error of this file; defines no DAG.

Kept apart from ``dr_sync.py`` on purpose: Airflow marks every DAG of a file that has an import error as
stale, so raising there would stop the good pairs too. Here the error names each bad pair and field (or
the file and line), and the good pairs' DAGs keep running. It builds what ``dr_sync.py`` builds, under the
same guard, so a pair whose DAG cannot be built is named here too (the words "airflow" and "dag" must stay
in this file: Airflow's safe mode skips files without them).

For sharded DAG files, copy this file as ``dr_sync_config_check_<k>_of_<n>.py`` next to each
``dr_sync_<k>_of_<n>.py`` (README "Configuration").
"""

from __future__ import annotations

from ovirt_dr.config import default_config_path
from ovirt_dr.sync import check_sync_config

check_sync_config(default_config_path(__file__), __file__)
