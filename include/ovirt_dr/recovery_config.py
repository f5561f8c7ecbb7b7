"""The recovery side config: the ``recovery:`` section of ``ovirt_dr.yaml``, and what it ties together.

The mapping file (the Ansible role's ``disaster_recovery_vars.yml``, read by ``ovirt_dr.mapping``) names
engines by URL and user; it holds no password. This section says which Airflow ``ovirt`` connection reaches
each engine (a site of the ``sites:`` section), where the mapping file is, and how a recovery runs (bounds,
tiers, timeouts). The Gluster side of each mapped domain comes from the sync pair that protects it
(``pairs:``), so it is written once::

    sites:
      primary: {ovirt_conn_id: ovirt_primary}
      secondary: {ovirt_conn_id: ovirt_secondary}
    recovery:
      mapping_file: disaster_recovery_vars.yml   # relative to this file
      primary_site: primary
      secondary_site: secondary
      start_tiers: [[vm01], [vm02, vm03]]        # after the HA VMs; the rest start last
    pairs: [...]

A mapped GlusterFS domain is linked to the pair whose ``storage_domain`` is its primary name and whose
``slave_volume`` is its secondary path (``/gvslave``).

Loading never raises for content problems: :func:`load_recovery` returns what it could build and every
problem found, so the recovery DAGs always exist (in an emergency an admin must see them) and their first
task fails naming the problems.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ovirt_dr.config import PairConfig, SiteConfig, load_sync_config, parse_duration
from ovirt_dr.drill_config import DrillConfig
from ovirt_dr.failback_config import FailbackConfig, ReverseSessionConfig
from ovirt_dr.mapping import Direction, DrMapping, ImportStorage, MappingError, load_mapping, sides

RECOVERY_TAGS = ["ovirt-dr", "recovery"]


class RecoveryConfig(BaseModel):
    """The ``recovery:`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mapping_file: str
    primary_site: str = "primary"
    secondary_site: str = "secondary"
    #: host used to import domains on each side; default: the first ``up`` host of the target data center
    primary_host: str | None = None
    secondary_host: str | None = None
    #: registrations in flight at once, per mapped task instance
    register_concurrency: int = Field(10, ge=1, le=256)
    #: mapped task instances that register VMs side by side (Airflow dynamic task mapping)
    register_shards: int = Field(4, ge=1, le=64)
    #: ordered VM-name tiers started after the HA VMs and before the rest; each tier waited until up
    start_tiers: list[list[str]] = Field(default_factory=list)
    #: start only the VMs that were running at the source site (the OVF_STORE's "VM Status"), as the role does
    start_only_running: bool = True
    tier_timeout: timedelta = timedelta(minutes=10)
    import_timeout: timedelta = timedelta(minutes=15)
    #: with the source engine unreachable, wait this long before importing: its hosts' sanlock leases on the
    #: replica must have expired (vdsm's default lease expiry is 80 s) or the target hosts fail to acquire them
    lease_wait: timedelta = timedelta(seconds=90)
    #: how long the split-brain probe waits for the source engine before calling it unreachable
    probe_timeout: timedelta = timedelta(seconds=20)
    reassign_bad_macs: bool = True
    allow_partial_import: bool = False
    alert_emails: list[str] = Field(default_factory=list)
    smtp_conn_id: str = "smtp_default"
    owner: str = "ovirt-dr"
    retries: int = Field(3, ge=0, le=20)
    #: wait before a failed recovery task is retried (a retry does only what is still missing)
    retry_delay: timedelta = timedelta(seconds=30)
    #: how often the recovery tasks poll the engine while waiting (domain active, VMs up)
    poll_interval: timedelta = timedelta(seconds=2)
    #: dr_failback / dr_cleanup_primary (``ovirt_dr.failback_config``): the reverse geo-rep session, the cycles
    reverse_session: ReverseSessionConfig = Field(default_factory=ReverseSessionConfig)
    failback: FailbackConfig = Field(default_factory=FailbackConfig)
    #: dr_drill (``ovirt_dr.drill_config``): the sync DAG's pause, the copy's name, the checks' bounds
    drill: DrillConfig = Field(default_factory=DrillConfig)

    @field_validator("tier_timeout", "import_timeout", "lease_wait", "probe_timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> timedelta:
        d = parse_duration(v)
        if d < timedelta(0) or d > timedelta(days=7):
            raise ValueError("must be between 0s and 7d")
        return d

    @field_validator("retry_delay", "poll_interval", mode="before")
    @classmethod
    def _short_duration(cls, v: Any) -> timedelta:
        d = parse_duration(v)
        if d < timedelta(seconds=1) or d > timedelta(hours=1):
            raise ValueError("must be between 1s and 1h")
        return d

    @model_validator(mode="after")
    def _tiers(self) -> RecoveryConfig:
        seen: set[str] = set()
        for i, tier in enumerate(self.start_tiers):
            if not tier:
                raise ValueError(f"start_tiers[{i}] is empty")
            for vm in tier:
                if vm in seen:
                    raise ValueError(f"start_tiers: VM {vm!r} is in more than one tier")
                seen.add(vm)
        if self.primary_site == self.secondary_site:
            raise ValueError("primary_site and secondary_site are the same site")
        if self.probe_timeout < timedelta(seconds=1):
            # the SDK reads a timeout of 0 as "no limit": a probe of a black-holed engine would never end
            raise ValueError("probe_timeout must be at least 1s")
        return self


@dataclass(frozen=True)
class StorageLink:
    """One mapped storage domain with the sync pair that replicates it (None when no pair does)."""

    storage: ImportStorage
    pair: PairConfig | None


@dataclass
class Recovery:
    """Everything a recovery DAG needs, or the problems that stop it (``problems`` non-empty)."""

    config_path: Path
    config: RecoveryConfig | None = None
    mapping: DrMapping | None = None
    mapping_path: Path | None = None
    sites: dict[str, SiteConfig] = field(default_factory=dict)
    pairs: list[PairConfig] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.config is not None and self.mapping is not None

    def site(self, side: str) -> SiteConfig | None:
        """The ``sites:`` entry of ``primary`` or ``secondary``."""
        if self.config is None:
            return None
        return self.sites.get(self.config.primary_site if side == "primary" else self.config.secondary_site)

    def conn_id(self, side: str) -> str:
        site = self.site(side)
        if site is None:
            raise ValueError(f"recovery: no {side} site")
        return site.ovirt_conn_id

    def links(self, direction: Direction, names: list[str] | None = None) -> list[StorageLink]:
        """Mapped storages (master first) with their sync pair; ``names`` are source-side domain names."""
        if self.mapping is None:
            return []
        return [StorageLink(s, pair_of(s, self.pairs)) for s in self.mapping.storages(direction, names)]

    def domain_names(self, direction: Direction) -> list[str]:
        source, _ = sides(direction)
        if self.mapping is None:
            return []
        return sorted(n for s in self.mapping.dr_import_storages if (n := s.side(source, "name")))


def pair_of(storage: ImportStorage, pairs: list[PairConfig]) -> PairConfig | None:
    """The sync pair replicating this domain: same primary name, slave volume = the secondary path."""
    path = (storage.dr_secondary_path or "").strip("/")
    for pair in pairs:
        if pair.storage_domain == storage.dr_primary_name and pair.slave_volume == path:
            return pair
    return None


def load_recovery(config_path: str | Path) -> Recovery:
    """Read the ``recovery:`` section, its mapping file and the pairs; collect every problem found."""
    config_path = Path(config_path)
    rec = Recovery(config_path=config_path)
    try:
        raw = yaml.load(
            config_path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        rec.problems.append(f"{config_path}: cannot read the ovirt-dr config: {e}")
        return rec
    section = raw.get("recovery") if isinstance(raw, dict) else None
    if section is None:
        rec.problems.append(f"{config_path}: no 'recovery:' section (see README 'Recovery')")
        return rec
    try:
        rec.config = RecoveryConfig.model_validate(section)
    except ValidationError as e:
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(section)"
            rec.problems.append(f"recovery.{loc}: {err['msg'].removeprefix('Value error, ')}")
        return rec
    try:
        sync = load_sync_config(config_path)
    except ValueError as e:
        rec.problems.append(str(e))
        return rec
    rec.sites = dict(sync.sites)
    rec.pairs = list(sync.pairs)
    for side, name in (("primary", rec.config.primary_site), ("secondary", rec.config.secondary_site)):
        if name not in rec.sites:
            rec.problems.append(f"recovery.{side}_site: {name!r} is not one of sites {sorted(rec.sites)}")
    mapping_path = Path(os.path.expanduser(rec.config.mapping_file))
    if not mapping_path.is_absolute():
        mapping_path = config_path.parent / mapping_path
    rec.mapping_path = mapping_path
    try:
        rec.mapping = load_mapping(mapping_path)
    except MappingError as e:
        rec.problems.extend(f"{mapping_path}: {p}" for p in e.problems)
    return rec
