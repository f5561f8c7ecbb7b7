"""The sync configuration: which (storage domain, geo-replication target) pairs to protect, and how.

The file is YAML, read once per parse. Each pair is validated on its own, so one bad entry produces one
clear error naming the pair and the field, and never takes the other pairs' DAGs down
(``load_sync_config`` returns the good pairs and the errors side by side).

Secrets never live here: only Airflow connection ids.

Example::

    sites:
      primary: {ovirt_conn_id: ovirt_primary}
    defaults:
      owner: dr-team
      schedule: "@hourly"
      rpo: 4h
      alert_emails: [ops@example.com]
    pairs:
      - storage_domain: data_gluster
        target: dr1
        site: primary
        master_volume: gvmaster
        gluster_ssh_conn_id: gluster_primary
        slave_host: dr-gluster1.example.com
        slave_volume: gvslave
        slave_ssh_conn_id: gluster_secondary
        consistency_groups: [[db01, app01]]
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ovirt_dr.gluster.names import validate_host, validate_user, validate_volume_name

CONFIG_ENV = "OVIRT_DR_CONFIG"
STRICT_ENV = "OVIRT_DR_STRICT"

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PRESETS = {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@continuous"}


def parse_duration(value: Any) -> timedelta:
    """Accept ``90s``, ``30m``, ``4h``, ``1d``, a number of seconds, or a timedelta.

    Admins write RPOs as "4h", not ISO-8601; anything else is refused with the accepted forms.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    raise ValueError(f"{value!r} is not a duration: use e.g. 90s, 30m, 4h, 1d or a number of seconds")


def _cron_ok(expr: str) -> bool:
    if expr in _PRESETS:
        return True
    fields = expr.split()
    return len(fields) == 5 and all(re.fullmatch(r"[0-9*/,\-A-Za-z?LW#]+", f) for f in fields)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(_Model):
    """One oVirt engine, by Airflow connection id (type ``ovirt``)."""

    ovirt_conn_id: str


class AuditConfig(_Model):
    """How the replica's base volumes are compared with the master's frozen ones.

    ``full`` reads every byte on both sides (the default: anything less can miss a torn block);
    ``sampled`` compares ``sample_blocks`` blocks of ``block_size_kib`` at seeded offsets, for disks too
    large to read whole at every cycle.
    """

    mode: Literal["full", "sampled"] = "full"
    sample_blocks: int = Field(64, ge=1, le=100_000)
    block_size_kib: int = Field(1024, ge=4, le=65536)


class PairConfig(_Model):
    """One protected (storage domain, geo-replication target) pair: one DAG."""

    storage_domain: str
    target: str
    site: str
    master_volume: str
    gluster_ssh_conn_id: str
    slave_host: str
    slave_volume: str
    slave_user: str = "root"
    slave_ssh_conn_id: str
    schedule: str | None = "@hourly"
    rpo: timedelta = timedelta(hours=4)
    checkpoint_timeout: timedelta = timedelta(hours=2)
    faulty_grace: timedelta = timedelta(minutes=5)
    poll_interval: timedelta = timedelta(seconds=30)
    alert_emails: list[str] = Field(default_factory=list)
    smtp_conn_id: str = "smtp_default"
    consistency_groups: list[list[str]] = Field(default_factory=list)
    exclude_vms: list[str] = Field(default_factory=list)
    snapshot_concurrency: int = Field(8, ge=1, le=256)
    snapshot_timeout: timedelta = timedelta(minutes=30)
    merge_timeout: timedelta = timedelta(hours=1)
    ovf_timeout: timedelta = timedelta(minutes=10)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    mount_root: str = "/run/ovirt-dr/mnt"
    owner: str = "ovirt-dr"
    retries: int = Field(2, ge=2, le=20)
    tags: list[str] = Field(default_factory=list)

    @field_validator("storage_domain", "target", "site")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"{v!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return v

    @field_validator("master_volume", "slave_volume")
    @classmethod
    def _volume(cls, v: str) -> str:
        return validate_volume_name(v)

    @field_validator("slave_host")
    @classmethod
    def _host(cls, v: str) -> str:
        return validate_host(v)

    @field_validator("slave_user")
    @classmethod
    def _user(cls, v: str) -> str:
        return validate_user(v)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        # None: a pair run only by hand (or by another DAG), never on a timer.
        if v is not None and not _cron_ok(v):
            raise ValueError(f"{v!r} is neither a cron expression (5 fields) nor a preset like @hourly")
        return v

    @field_validator(
        "rpo",
        "checkpoint_timeout",
        "faulty_grace",
        "poll_interval",
        "snapshot_timeout",
        "merge_timeout",
        "ovf_timeout",
        mode="before",
    )
    @classmethod
    def _duration(cls, v: Any) -> timedelta:
        d = parse_duration(v)
        if d <= timedelta(0):
            raise ValueError("must be positive")
        return d

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        for addr in v:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", addr):
                raise ValueError(f"{addr!r} is not an e-mail address")
        return v

    @field_validator("mount_root")
    @classmethod
    def _mount_root(cls, v: str) -> str:
        if not v.startswith("/") or not re.fullmatch(r"/[A-Za-z0-9_./-]+", v) or ".." in v:
            raise ValueError(f"{v!r}: an absolute path of letters, digits, '_', '.', '-' and '/'")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _groups(self) -> PairConfig:
        seen: set[str] = set()
        for i, group in enumerate(self.consistency_groups):
            if not group:
                raise ValueError(f"consistency_groups[{i}] is empty")
            for vm in group:
                if vm in seen:
                    raise ValueError(f"consistency_groups: VM {vm!r} is in more than one group")
                if vm in self.exclude_vms:
                    raise ValueError(f"consistency_groups: VM {vm!r} is also in exclude_vms")
                seen.add(vm)
        return self

    @property
    def dag_id(self) -> str:
        return f"dr_sync__{self.storage_domain}__{self.target}"

    @property
    def label(self) -> str:
        return f"{self.storage_domain}/{self.target}"


class PairError(ValueError):
    """A pair of the config that cannot be built, with the pair and the field named."""

    def __init__(self, index: int, label: str, messages: list[str]) -> None:
        self.index = index
        self.label = label
        self.messages = messages
        super().__init__(f"pairs[{index}] ({label}): " + "; ".join(messages))


@dataclass(frozen=True)
class SyncConfig:
    """What a config file yields: good pairs (sorted by DAG id), and one error per bad pair."""

    path: Path
    sites: dict[str, SiteConfig]
    pairs: list[PairConfig]
    errors: list[PairError]

    def site_of(self, pair: PairConfig) -> SiteConfig:
        return self.sites[pair.site]


def _format_validation(e: ValidationError) -> list[str]:
    out = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(pair)"
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"field '{loc}': {msg}")
    return out


def default_config_path(dag_file: str | Path) -> Path:
    """The config named by ``$OVIRT_DR_CONFIG``, else ``ovirt_dr.yaml`` next to the DAG file."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else Path(dag_file).with_name("ovirt_dr.yaml")


def load_sync_config(path: str | Path) -> SyncConfig:
    """Read and validate a config file.

    A broken file (unreadable, not YAML, no ``pairs`` list, bad ``sites``) raises ``ValueError`` naming the
    file: nothing sensible can be built from it. A bad pair only adds a ``PairError``.
    """
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as e:
        raise ValueError(f"{path}: cannot read the ovirt-dr config: {e}") from e
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the top level must be a mapping with 'sites' and 'pairs'")
    unknown = set(raw) - {"sites", "defaults", "pairs", "recovery"}
    if unknown:
        raise ValueError(
            f"{path}: unknown top-level keys {sorted(unknown)} (expected sites, defaults, pairs)"
        )
    try:
        sites = {str(k): SiteConfig.model_validate(v) for k, v in (raw.get("sites") or {}).items()}
    except ValidationError as e:
        raise ValueError(f"{path}: sites: " + "; ".join(_format_validation(e))) from e
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ValueError(f"{path}: 'defaults' must be a mapping")
    items = raw.get("pairs")
    if not isinstance(items, list):
        raise ValueError(f"{path}: 'pairs' must be a list")

    pairs: list[PairConfig] = []
    errors: list[PairError] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        label = (
            f"{item.get('storage_domain', '?')}/{item.get('target', '?')}" if isinstance(item, dict) else "?"
        )
        if not isinstance(item, dict):
            errors.append(PairError(i, label, ["must be a mapping"]))
            continue
        try:
            pair = PairConfig.model_validate({**defaults, **item})
        except ValidationError as e:
            errors.append(PairError(i, label, _format_validation(e)))
            continue
        if pair.site not in sites:
            errors.append(PairError(i, label, [f"field 'site': {pair.site!r} is not one of {sorted(sites)}"]))
            continue
        if pair.dag_id in seen:
            errors.append(PairError(i, label, [f"duplicate of pairs[{seen[pair.dag_id]}]"]))
            continue
        seen[pair.dag_id] = i
        pairs.append(pair)
    pairs.sort(key=lambda p: p.dag_id)
    return SyncConfig(path=path, sites=sites, pairs=pairs, errors=errors)
