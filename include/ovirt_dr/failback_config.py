"""The failback's and the primary cleanup's part of the ``recovery:`` section (pydantic, no I/O).

::

    recovery:
      reverse_session:              # the secondary volume -> primary volume session dr_failback creates
        ssh_port: 2223              # `create ssh-port` (push-pem logs in there) and the session's `ssh_port`
        slave_user: root            # who geo-replication logs in as on the primary's Gluster node
        slave_host: null            # the primary Gluster node as the session names it (default: the
                                    # mapping's dr_primary_address of the domain)
        options:                    # `config OPTION VALUE` after `create` (and checked on every run)
          change_detector: xsync
          sync_jobs: 1
      failback:
        warm_cycles: 1              # reverse sync cycles with the VMs still running, before the final one
        checkpoint_timeout: 2h      # each reverse cycle's checkpoint wait
        shutdown_timeout: 10m       # graceful shutdown of the secondary's VMs, then they are powered off
        sync_dag_timeout: 1h        # how long the pair's paused sync DAG may take to finish its run
        airflow_conn_id: airflow_api  # Airflow's REST API (pause/unpause the pair's sync DAG)

Every value is validated here; none is ever rendered as a template. Option names are a fixed list of
gsyncd options with the values each accepts, so nothing but a plain word or number reaches the gluster
command line (where ``build_georep_cmd`` checks it again).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ovirt_dr.config import parse_duration, validate_conn_id
from ovirt_dr.gluster.names import is_ipv6, validate_host, validate_user

_BOOL = ("true", "false")
#: gsyncd options the product sets on a session it creates, with the values each may take (a tuple of
#: words, or an int range). ``ssh_port`` is its own field (it also goes into ``create ssh-port``).
SESSION_OPTIONS: dict[str, tuple[str, ...] | range] = {
    "change_detector": ("xsync", "changelog"),
    "sync_jobs": range(1, 65),
    "sync_method": ("rsync", "tarssh"),
    "use_meta_volume": _BOOL,
    "sync_xattrs": _BOOL,
    "sync_acls": _BOOL,
    "ignore_deletes": _BOOL,
    "timeout": range(1, 3601),
    "log_level": ("ERROR", "WARNING", "INFO", "DEBUG"),
}


def option_value(name: str, value: Any) -> str:
    """``value`` of gsyncd option ``name`` as the CLI takes it, or ``ValueError`` naming what is allowed."""
    allowed = SESSION_OPTIONS.get(name)
    if allowed is None:
        hint = " (set reverse_session.ssh_port instead)" if name == "ssh_port" else ""
        raise ValueError(
            f"option {name!r} is not one the product sets{hint}: one of {', '.join(SESSION_OPTIONS)}"
        )
    if isinstance(allowed, range):
        if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
            raise ValueError(
                f"option {name}: {value!r} is not a whole number {allowed.start}-{allowed.stop - 1}"
            )
        return str(value)
    text = ("true" if value else "false") if isinstance(value, bool) else value
    if not isinstance(text, str) or text not in allowed:
        raise ValueError(f"option {name}: {value!r} is not one of {', '.join(allowed)}")
    return text


class ReverseSessionConfig(BaseModel):
    """The geo-replication session the failback creates from the secondary volume to the primary volume."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ssh_port: int | None = Field(None, ge=1, le=65535)
    slave_user: str = "root"
    slave_host: str | None = None
    options: dict[str, str] = Field(default_factory=dict)

    @field_validator("slave_user")
    @classmethod
    def _user(cls, v: str) -> str:
        return validate_user(v, "reverse_session.slave_user")

    @field_validator("slave_host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is None:
            return v
        host = validate_host(v, "reverse_session.slave_host")
        if is_ipv6(host):
            raise ValueError("an IPv6 literal cannot be a geo-replication slave host: use a host name")
        return host

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, v: Any) -> dict[str, str]:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError(f"must be a mapping of gsyncd option -> value, got {type(v).__name__}")
        return {str(k): option_value(str(k), value) for k, value in v.items()}

    def settings(self) -> dict[str, str]:
        """Every ``config`` option the session must have: the options plus ``ssh_port`` when set."""
        out = dict(self.options)
        if self.ssh_port is not None:
            out["ssh_port"] = str(self.ssh_port)
        return out


class FailbackConfig(BaseModel):
    """How ``dr_failback`` runs its reverse cycles and waits (and ``dr_cleanup_primary`` its VM stops)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: reverse sync cycles while the VMs still run (each shortens the final, VMs-down cycle)
    warm_cycles: int = Field(1, ge=0, le=20)
    checkpoint_timeout: timedelta = timedelta(hours=2)
    faulty_grace: timedelta = timedelta(minutes=5)
    poll_interval: timedelta = timedelta(seconds=30)
    #: graceful shutdown of the VMs before the final cycle; then they are powered off
    shutdown_timeout: timedelta = timedelta(minutes=10)
    #: a force stop (power off) must have the VM down within this
    stop_timeout: timedelta = timedelta(minutes=5)
    #: the pair's sync DAG, paused, finishes the run it has within this
    sync_dag_timeout: timedelta = timedelta(hours=1)
    airflow_conn_id: str = "airflow_api"

    @field_validator(
        "checkpoint_timeout",
        "faulty_grace",
        "poll_interval",
        "shutdown_timeout",
        "stop_timeout",
        "sync_dag_timeout",
        mode="before",
    )
    @classmethod
    def _duration(cls, v: Any) -> timedelta:
        d = parse_duration(v)
        if d < timedelta(seconds=1) or d > timedelta(days=7):
            raise ValueError("must be between 1s and 7d")
        return d

    @field_validator("airflow_conn_id")
    @classmethod
    def _conn(cls, v: str) -> str:
        return validate_conn_id(v, "failback.airflow_conn_id")

    @model_validator(mode="after")
    def _shorter(self) -> FailbackConfig:
        if self.poll_interval >= self.checkpoint_timeout or self.faulty_grace >= self.checkpoint_timeout:
            raise ValueError("poll_interval and faulty_grace must be shorter than checkpoint_timeout")
        return self
