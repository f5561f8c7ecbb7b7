"""Shows the ovirt-dr config's bad pairs as an Airflow import error of this file; defines no DAG.

Kept apart from ``dr_sync.py`` on purpose: Airflow marks every DAG of a file that has an import error as
stale, so raising there would stop the good pairs too. Here the error names each bad pair and field, and
the good pairs' DAGs keep running.
"""

from __future__ import annotations

from ovirt_dr.config import default_config_path
from ovirt_dr.sync import check_sync_config

check_sync_config(default_config_path(__file__))
