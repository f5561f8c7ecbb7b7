"""The DR drill's part of the ``recovery:`` section (pydantic, no I/O)::

    recovery:
      drill:
        airflow_conn_id: airflow_api  # Airflow's REST API: pause the pair's sync DAG, resume it after
        sync_dag_timeout: 1h          # how long the paused sync DAG may take to finish the run it has
        name_suffix: _drill           # the copy is imported as <secondary domain name><suffix>
        verify_timeout: 1h            # the disk checks on the slave node (they read every disk)
        keep_up: 0s                   # how long the VMs stay up before the drill removes them

Every value is validated here; none is ever rendered as a template.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from ovirt_dr.config import parse_duration, validate_conn_id

#: oVirt storage domain names: letters, digits, ``_`` and ``-`` (the engine's own rule), here also the
#: copy's ``DESCRIPTION`` in its ``dom_md/metadata``.
_SUFFIX = re.compile(r"[A-Za-z0-9_-]{1,20}")


class DrillConfig(BaseModel):
    """How ``dr_drill`` holds the sync still, names the copy and bounds its waits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    airflow_conn_id: str = "airflow_api"
    #: the pair's sync DAG, paused, finishes the run it has within this
    sync_dag_timeout: timedelta = timedelta(hours=1)
    #: appended to the mapping's secondary domain name: the copy never takes the real domain's name
    name_suffix: str = "_drill"
    #: the slave node's disk checks (every disk read twice: through the copy and on the replica)
    verify_timeout: timedelta = timedelta(hours=1)
    #: how long the drill leaves the VMs up (e.g. for an application check) before removing them
    keep_up: timedelta = timedelta(0)

    @field_validator("sync_dag_timeout", "verify_timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> timedelta:
        d = parse_duration(v)
        if d < timedelta(seconds=1) or d > timedelta(days=7):
            raise ValueError("must be between 1s and 7d")
        return d

    @field_validator("keep_up", mode="before")
    @classmethod
    def _keep_up(cls, v: Any) -> timedelta:
        d = parse_duration(v)
        if d < timedelta(0) or d > timedelta(days=1):
            raise ValueError("must be between 0s and 1d")
        return d

    @field_validator("airflow_conn_id")
    @classmethod
    def _conn(cls, v: str) -> str:
        return validate_conn_id(v, "drill.airflow_conn_id")

    @field_validator("name_suffix")
    @classmethod
    def _suffix(cls, v: str) -> str:
        if not isinstance(v, str) or not _SUFFIX.fullmatch(v):
            raise ValueError(f"{v!r}: use 1-20 ASCII letters, digits, '_' or '-' (an oVirt domain name)")
        return v


__all__ = ["DrillConfig"]
