"""Test-wide isolation: an Airflow home and a HOME of the tests' own.

Set before Airflow is imported, so no test reads or writes the machine's ~/airflow, and SSH clients
(paramiko writes known_hosts in some modes) never touch the machine's ~/.ssh.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_TMP = Path(tempfile.mkdtemp(prefix="ovirt-dr-tests-"))

os.environ["HOME"] = str(_TMP / "home")
(_TMP / "home").mkdir(exist_ok=True)
os.environ["AIRFLOW_HOME"] = str(_TMP / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.pop("OVIRT_DR_CONFIG", None)
os.environ.pop("OVIRT_DR_STRICT", None)
