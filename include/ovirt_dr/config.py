"""The sync configuration: which (storage domain, geo-replication target) pairs to protect, and how.

The file is YAML, read once per parse. Every check that Airflow or an operator would make later is made
here first (cron expressions through Airflow's own timetable, the geo-rep session rules of the operators,
durations bounded so no timedelta arithmetic can overflow, tag and pool-name lengths), so a bad value is
one clear error naming the pair, the field and its line, and never an exception at DAG build time.

Blast radius: a problem fails only what it touches. A bad pair fails that pair; a bad site fails the pairs
that use it; a bad ``defaults`` value fails the pairs that inherit it; an unknown top-level key or an
unused bad site is reported and ignored. Only a file that cannot be read as a YAML mapping at all raises
(``ConfigFileError``): nothing can be built from it. ``load_sync_config`` returns the good pairs, the pair
errors and the other problems side by side.

Secrets never live here: only Airflow connection ids (letters, digits, ``_.-``: never a template).

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

import functools
import ipaddress
import math
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ovirt_dr.gluster.commands import GeoRepSession
from ovirt_dr.gluster.names import (
    validate_host,
    validate_remote_path,
    validate_user,
    validate_volume_name,
)

CONFIG_ENV = "OVIRT_DR_CONFIG"
STRICT_ENV = "OVIRT_DR_STRICT"

#: Top-level keys. ``recovery`` belongs to the recovery loader (``ovirt_dr.recovery_config``): accepted here,
#: validated there.
TOP_LEVEL_KEYS = ("sites", "defaults", "pairs", "recovery")

#: The longest duration any field takes. Far below what ``timedelta`` arithmetic overflows at (the
#: snapshot step's execution timeout is twice ``snapshot_timeout``; the sensor adds 5 minutes).
MAX_DURATION = timedelta(days=366)
#: ``TAG_MAX_LEN`` of Airflow's DAG model (``airflow.sdk.definitions.dag``): a longer tag fails the DAG.
TAG_MAX_LEN = 100
#: Airflow's pool name column is 256 characters; the pool is ``ovirt_dr_georep__<master_volume>``.
POOL_PREFIX = "ovirt_dr_georep__"
POOL_NAME_MAX = 256
#: Airflow's ``ID_LEN`` (connection ids, DAG ids).
CONN_ID_MAX = 250

_ASCII = re.ASCII
_DURATION = re.compile(r"\s*([0-9]{1,15})\s*([smhd])\s*", _ASCII)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", _ASCII)
_CONN_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}", _ASCII)  # CONN_ID_MAX
# RFC 5322 atext without '{' and '}': an address can never open a Jinja expression.
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`|~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`|~-]+)*", _ASCII)
_MOUNT_COMPONENT = re.compile(r"[A-Za-z0-9_.-]{1,64}", _ASCII)
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class ConfigFileError(ValueError):
    """The file cannot be read as a YAML mapping: nothing can be built from it."""


class ConfigProblem(ValueError):
    """A problem of the config file outside any one pair (a site, a default, a key), with where it is."""


class PairError(ValueError):
    """A pair of the config that cannot be built, with the pair and the field named."""

    def __init__(self, index: int, label: str, messages: list[str]) -> None:
        self.index = index
        self.label = label
        self.messages = messages
        super().__init__(f"pairs[{index}] ({label}): " + "; ".join(messages))


# -- durations ----------------------------------------------------------------------------------------
def parse_duration(value: Any) -> timedelta:
    """Accept ``90s``, ``30m``, ``4h``, ``1d``, a whole number of seconds, or a timedelta.

    Admins write RPOs as "4h", not ISO-8601; anything else is refused with the accepted forms. Only ASCII
    digits count (``\\d`` would take "٣h"), and nothing longer than ``MAX_DURATION`` is built: a huge value
    would raise OverflowError in ``timedelta`` (not a ValueError), far from the field that caused it.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration: use e.g. 90s, 30m, 4h, 1d or a number of seconds")
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"{value!r} is not a whole number of seconds")
        seconds = int(value)
    elif isinstance(value, str) and (m := _DURATION.fullmatch(value)):
        seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration: use e.g. 90s, 30m, 4h, 1d or a number of seconds")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{value!r} is longer than the maximum of {format_duration(MAX_DURATION)}")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative")
    return timedelta(seconds=seconds)


def format_duration(d: timedelta) -> str:
    """``4h``, ``90m``, ``45s``: the way the config writes durations (largest unit that divides evenly)."""
    s = int(d.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


# -- schedules ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _timetable_expression(schedule: str) -> str | None:
    """The cron expression of the timetable ``DAG(schedule=schedule)`` builds (after ``validate()``)."""
    from airflow.sdk import DAG

    timetable = DAG(dag_id="ovirt_dr_schedule_check", schedule=schedule).timetable
    timetable.validate()
    return getattr(timetable, "expression", None)


@functools.lru_cache(maxsize=256)
def schedule_problem(schedule: str) -> str | None:
    """Why Airflow would refuse (or misread) ``schedule``, or None if it is a schedule a pair can use.

    The expression goes through the very timetable a ``DAG(schedule=...)`` builds and its ``validate()``
    (what the DagBag runs before bagging a DAG), then the fire times are computed the way the scheduler
    does (croniter): ``0 0 31 2 *`` passes ``validate()`` but never fires. Six- and seven-field crons are
    refused: croniter reads the sixth field as seconds.
    """
    if schedule != schedule.strip() or not schedule:
        return f"{schedule!r}: no leading or trailing spaces, not empty"
    if not schedule.startswith("@") and len(schedule.split()) != 5:
        return f"{schedule!r} is neither a cron expression (5 fields) nor a preset like @hourly"
    try:
        expression = _timetable_expression(schedule)
    except Exception as e:  # AirflowTimetableInvalid, or a preset the timetable does not know
        return f"{schedule!r} is not a schedule Airflow accepts: {e}"
    if expression is not None:
        if len(expression.split()) != 5:
            return f"{schedule!r} is not a 5-field cron expression once expanded ({expression!r})"
        try:
            _longest_gap(expression)
        except Exception as e:  # CroniterBadDateError: no date ever matches
            return f"{schedule!r} never fires ({e})"
    return None


def schedule_gap(schedule: str | None) -> timedelta | None:
    """The longest time between two runs of a valid ``schedule`` (None: not periodic, e.g. manual)."""
    if schedule is None or schedule == "@once":
        return None
    if schedule == "@continuous":
        return timedelta(0)
    expression = _timetable_expression(schedule)
    return _longest_gap(expression) if expression else None


@functools.lru_cache(maxsize=256)
def _longest_gap(expression: str) -> timedelta:
    """Longest gap between consecutive fire times of a 5-field cron (UTC, as the DAGs are).

    Within a day the gap follows from the minute and hour fields; between days, from the days that fire
    at all, walked with croniter for 400 days (past that when the days are sparser, e.g. February 29th).
    A few milliseconds for a daily or weekday pattern, so it can run at every parse.
    """
    from croniter import croniter

    fields = expression.split()
    expanded = croniter(expression).expanded
    minutes = [m for m in expanded[0] if m != "*"] or list(range(60))
    hours = [h for h in expanded[1] if h != "*"] or list(range(24))
    times = sorted(h * 60 + m for h in hours for m in minutes)
    within = max([b - a for a, b in zip(times, times[1:], strict=False)] + [1440 - times[-1] + times[0]])
    day_gap = 1
    if fields[2:5] != ["*", "*", "*"]:
        start = datetime(2025, 1, 1)
        horizon = start + timedelta(days=400)
        it = croniter(" ".join(["0", "0", *fields[2:5]]), start_time=start)
        previous = it.get_next(datetime)
        day_gap = 0
        while True:
            current = it.get_next(datetime)
            day_gap = max(day_gap, (current - previous).days)
            previous = current
            if current > horizon:
                break
    across = (day_gap - 1) * 1440 + 1440 - times[-1] + times[0]
    return timedelta(minutes=max(within, across))


# -- value checks ---------------------------------------------------------------------------------------
def validate_conn_id(value: str, what: str = "connection id") -> str:
    """An Airflow connection id of letters, digits and ``_.-``: never empty, never a Jinja template."""
    if not isinstance(value, str) or not _CONN_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a {what}: use 1-{CONN_ID_MAX} ASCII letters, digits, '_', '.' or '-'"
        )
    return value


def validate_email(addr: str) -> str:
    """A plain ``local@host`` address (no display name, no braces, host a DNS name)."""
    if not isinstance(addr, str) or len(addr) > 254 or addr.count("@") != 1:
        raise ValueError(f"{addr!r} is not an e-mail address")
    local, _, host = addr.partition("@")
    if not _EMAIL_LOCAL.fullmatch(local) or len(local) > 64:
        raise ValueError(f"{addr!r} is not an e-mail address (local part)")
    try:
        if validate_host(host) != host or ":" in host or re.fullmatch(r"[0-9.]+", host):
            raise ValueError
    except ValueError:
        raise ValueError(f"{addr!r} is not an e-mail address (domain)") from None
    return addr


def _vm_name(v: str) -> str:
    # oVirt's VM name pattern is [\p{L}0-9._-]; up to 255 characters.
    if not isinstance(v, str) or not 1 <= len(v) <= 255 or not all(c.isalnum() or c in "._-" for c in v):
        raise ValueError(f"{v!r} is not a VM name: 1-255 letters, digits, '.', '_' or '-'")
    return v


def _printable(v: str, what: str, max_len: int) -> str:
    if not isinstance(v, str) or not v or len(v) > max_len or not v.isprintable() or v.strip() != v:
        raise ValueError(
            f"{v!r} is not a valid {what}: 1-{max_len} printable characters, no leading/trailing spaces"
        )
    return v


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses: as a slave host, the master's own node."""
    if host.lower().rstrip(".") in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Model(BaseModel):
    # strict: `snapshot_concurrency: true` is not 1 and "8" is not 8.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SiteConfig(_Model):
    """One oVirt engine, by Airflow connection id (type ``ovirt``)."""

    ovirt_conn_id: str

    @field_validator("ovirt_conn_id")
    @classmethod
    def _conn(cls, v: str) -> str:
        return validate_conn_id(v)


class AuditConfig(_Model):
    """How the replica's base volumes are compared with the master's frozen ones.

    ``full`` reads every byte on both sides (the default: anything less can miss a torn block);
    ``sampled`` compares ``sample_blocks`` blocks of ``block_size_kib`` at seeded offsets, for disks too
    large to read whole at every cycle. The sampling settings are refused with ``full`` (they would be
    silently ignored).
    """

    mode: Literal["full", "sampled"] = "full"
    sample_blocks: int = Field(64, ge=1, le=100_000)
    block_size_kib: int = Field(1024, ge=4, le=65536)

    @model_validator(mode="after")
    def _sampling_only_when_sampled(self) -> AuditConfig:
        unused = sorted({"sample_blocks", "block_size_kib"} & self.model_fields_set)
        if self.mode == "full" and unused:
            raise ValueError(f"{', '.join(unused)} only apply to mode 'sampled' (mode is 'full')")
        return self


_DURATION_FIELDS = (
    "rpo",
    "checkpoint_timeout",
    "faulty_grace",
    "poll_interval",
    "snapshot_timeout",
    "merge_timeout",
    "ovf_timeout",
)


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
    alert_emails: list[str] = Field(default_factory=list, max_length=50)
    smtp_conn_id: str = "smtp_default"
    consistency_groups: list[list[str]] = Field(default_factory=list, max_length=1000)
    exclude_vms: list[str] = Field(default_factory=list, max_length=10000)
    snapshot_concurrency: int = Field(8, ge=1, le=256)
    snapshot_timeout: timedelta = timedelta(minutes=30)
    merge_timeout: timedelta = timedelta(hours=1)
    ovf_timeout: timedelta = timedelta(minutes=10)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    mount_root: str = "/run/ovirt-dr/mnt"
    owner: str = "ovirt-dr"
    retries: int = Field(2, ge=2, le=20)
    tags: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("storage_domain", "target", "site")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError(
                f"{v!r}: use 1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
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

    @field_validator("gluster_ssh_conn_id", "slave_ssh_conn_id", "smtp_conn_id")
    @classmethod
    def _conn(cls, v: str) -> str:
        return validate_conn_id(v)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        # None: a pair run only by hand (or by another DAG), never on a timer.
        if v is not None and (problem := schedule_problem(v)):
            raise ValueError(problem)
        return v

    @field_validator(*_DURATION_FIELDS, mode="before")
    @classmethod
    def _duration(cls, v: Any) -> timedelta:
        d = parse_duration(v)
        if d < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return d

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        for addr in v:
            validate_email(addr)
        if len(set(v)) != len(v):
            raise ValueError("lists an address twice")
        return v

    @field_validator("exclude_vms")
    @classmethod
    def _excluded(cls, v: list[str]) -> list[str]:
        for name in v:
            _vm_name(name)
        if len(set(v)) != len(v):
            raise ValueError("lists a VM twice")
        return v

    @field_validator("consistency_groups")
    @classmethod
    def _group_names(cls, v: list[list[str]]) -> list[list[str]]:
        for group in v:
            for name in group:
                _vm_name(name)
        return v

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str) -> str:
        return _printable(v, "owner", 100)

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for tag in v:
            _printable(tag, f"tag (Airflow allows at most {TAG_MAX_LEN} characters)", TAG_MAX_LEN)
        return v

    @field_validator("mount_root")
    @classmethod
    def _mount_root(cls, v: str) -> str:
        stripped = v.rstrip("/") if v != "/" else v
        parts = stripped.split("/")[1:]
        if (
            not v.startswith("/")
            or posixpath.normpath(stripped) != stripped
            or not parts
            or not all(_MOUNT_COMPONENT.fullmatch(p) and p not in (".", "..") for p in parts)
            or len(stripped) > 200
        ):
            raise ValueError(
                f"{v!r}: an absolute, normalized directory below '/' (components of ASCII letters, digits, "
                "'_', '.', '-'; at most 200 characters)"
            )
        return stripped

    @property
    def dag_id(self) -> str:
        return f"dr_sync__{self.storage_domain}__{self.target}"

    @property
    def label(self) -> str:
        return f"{self.storage_domain}/{self.target}"

    @property
    def session(self) -> GeoRepSession:
        """The pair's geo-replication session, as every Gluster operator and the sensor get it."""
        return GeoRepSession(self.master_volume, self.slave_host, self.slave_volume, self.slave_user)


def semantic_problems(pair: PairConfig) -> list[tuple[str, str]]:
    """``(field, message)`` for what is wrong with a pair whose fields are each valid on their own.

    These are the checks that operators and Airflow would otherwise make at build or run time, and the
    relations between fields that make a setting meaningless.
    """
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, group in enumerate(pair.consistency_groups):
        if not group:
            out.append(("consistency_groups", f"group {i} is empty"))
        for vm in group:
            if vm in seen:
                out.append(("consistency_groups", f"VM {vm!r} is in more than one group"))
            if vm in pair.exclude_vms:
                out.append(("consistency_groups", f"VM {vm!r} is also in exclude_vms"))
            seen.add(vm)
    try:  # what every Gluster operator and the sensor get, with the same validation
        pair.session  # noqa: B018 (built for its validation)
    except ValueError as e:
        out.append(("slave_host", str(e)))
    for volume in (pair.master_volume, pair.slave_volume, f"{pair.slave_volume}-rw"):
        try:
            validate_remote_path(f"{pair.mount_root}/{volume}", "mount point")
        except ValueError as e:
            out.append(("mount_root", str(e)))
    if len(POOL_PREFIX) + len(pair.master_volume) > POOL_NAME_MAX:
        out.append(
            (
                "master_volume",
                f"at most {POOL_NAME_MAX - len(POOL_PREFIX)} characters: the Airflow pool "
                f"{POOL_PREFIX}<master_volume> must fit {POOL_NAME_MAX}",
            )
        )
    for tag in (f"domain:{pair.storage_domain}", f"target:{pair.target}"):
        if len(tag) > TAG_MAX_LEN:
            out.append(("tags", f"generated tag {tag!r} is longer than {TAG_MAX_LEN} characters"))
    ct = pair.checkpoint_timeout
    if pair.rpo <= ct:
        out.append(
            (
                "rpo",
                f"{format_duration(pair.rpo)} is not longer than checkpoint_timeout {format_duration(ct)}: "
                "a run could still be waiting legitimately when its recovery point is already too old",
            )
        )
    if pair.poll_interval >= ct:
        out.append(
            (
                "poll_interval",
                f"{format_duration(pair.poll_interval)} is not shorter than checkpoint_timeout "
                f"{format_duration(ct)}: the timeout would be checked once, an interval late",
            )
        )
    if pair.faulty_grace >= ct:
        out.append(
            (
                "faulty_grace",
                f"{format_duration(pair.faulty_grace)} is not shorter than checkpoint_timeout "
                f"{format_duration(ct)}: a Faulty session would never fail fast",
            )
        )
    gap = schedule_gap(pair.schedule)
    if gap is not None and pair.rpo <= gap:
        out.append(
            (
                "rpo",
                f"{format_duration(pair.rpo)} is not longer than the schedule's longest gap between runs "
                f"({format_duration(gap)} for {pair.schedule!r}): the RPO can never be met",
            )
        )
    if pair.slave_volume == pair.master_volume and (
        pair.slave_ssh_conn_id == pair.gluster_ssh_conn_id or is_loopback(pair.slave_host)
    ):
        out.append(
            (
                "slave_volume",
                f"{pair.slave_volume!r} on the master's own node ({pair.slave_host}, via "
                f"{pair.slave_ssh_conn_id}) is the master volume itself: geo-replication would overwrite it",
            )
        )
    return out


# -- YAML with line numbers and duplicate keys ----------------------------------------------------
class _Map(dict):
    """A YAML mapping that remembers where it was and which keys were written twice."""

    line: int = 0
    key_lines: dict[Any, int]
    duplicates: list[tuple[Any, int, int]]


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    pass


def _construct_map(loader: Any, node: yaml.MappingNode) -> Iterator[_Map]:
    data = _Map()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    data.duplicates = []
    yield data
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            ) from None
        line = key_node.start_mark.line + 1
        if key in seen:
            data.duplicates.append((key, seen[key], line))
        else:
            seen[key] = line
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = key_node.start_mark.line + 1


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)


def _line(m: Any, key: Any = None) -> int | None:
    if not isinstance(m, _Map):
        return None
    return m.key_lines.get(key, m.line) if key is not None else m.line


def _duplicates(value: Any, where: str) -> list[str]:
    """Every key written twice in ``value`` or below, as ``'<where>.key' at line N (first at line M)``."""
    out: list[str] = []
    if isinstance(value, _Map):
        for key, first, again in value.duplicates:
            out.append(f"key {where}{key!s} written twice (line {again}, first at line {first})")
        for key, sub in value.items():
            out.extend(_duplicates(sub, f"{where}{key!s}."))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            out.extend(_duplicates(sub, f"{where[:-1]}[{i}]." if where else f"[{i}]."))
    return out


def _undecodable(value: Any, where: str = "") -> list[str]:
    """Fields whose text holds U+FFFD: bytes of the file that were not UTF-8."""
    out: list[str] = []
    if isinstance(value, str):
        if "\ufffd" in value:
            out.append(where or "(value)")
    elif isinstance(value, dict):
        for key, sub in value.items():
            out.extend(_undecodable(sub, f"{where}.{key}" if where else str(key)))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            out.extend(_undecodable(sub, f"{where}[{i}]"))
    return out


def _safe_label(item: Any) -> str:
    def part(key: str) -> str:
        v = item.get(key) if isinstance(item, dict) else None
        if isinstance(v, str) and _NAME.fullmatch(v):
            return v
        return "?" if v is None else repr(v)[:40]

    return f"{part('storage_domain')}/{part('target')}"


# -- loading --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncConfig:
    """What a config file yields: good pairs (sorted by DAG id), one error per bad pair, other problems."""

    path: Path
    sites: dict[str, SiteConfig]
    pairs: list[PairConfig]
    errors: list[PairError]
    problems: list[ConfigProblem] = field(default_factory=list)
    #: DAG id -> index of the pair in the file's ``pairs`` list (for messages naming ``pairs[i]``)
    indexes: dict[str, int] = field(default_factory=dict)

    def site_of(self, pair: PairConfig) -> SiteConfig:
        return self.sites[pair.site]

    def index_of(self, pair: PairConfig) -> int:
        return self.indexes.get(pair.dag_id, -1)

    @property
    def all_errors(self) -> list[ValueError]:
        """File-level problems first, then the pairs' errors in file order."""
        return [*self.problems, *sorted(self.errors, key=lambda e: e.index)]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _format_validation(e: ValidationError, lines: dict[str, str]) -> list[str]:
    out = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"].endswith("_type") or err["type"] in ("literal_error", "extra_forbidden"):
            msg += f" (got {_short(err.get('input'))})"
        if not loc:
            out.append(msg)
            continue
        where = lines.get(str(err["loc"][0]), "")
        out.append(f"field '{loc}'{where}: {msg}")
    return out


def default_config_path(dag_file: str | Path) -> Path:
    """The config named by ``$OVIRT_DR_CONFIG``, else ``ovirt_dr.yaml`` next to the DAG file."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else Path(dag_file).with_name("ovirt_dr.yaml")


def _read(path: Path) -> tuple[Any, list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigFileError(f"{path}: cannot read the ovirt-dr config: {e}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        bad = []
        for n, raw_line in enumerate(data.split(b"\n"), start=1):
            try:
                raw_line.decode("utf-8")
            except UnicodeDecodeError as e:
                bad.append(f"{n} (byte {raw_line[e.start]:#04x} at column {e.start + 1})")
        problems.append(
            ConfigProblem(
                f"{path}: not UTF-8 at line {', '.join(bad[:10])}: those bytes read as U+FFFD, and every "
                "value holding one is refused"
            )
        )
        text = data.decode("utf-8", "replace")
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigFileError(f"{path}:{where}: not valid YAML: {problem}") from e
    if not isinstance(raw, dict):
        raise ConfigFileError(f"{path}: the top level must be a mapping with 'sites' and 'pairs'")
    return raw, problems


def _placeholder() -> dict[str, Any]:
    return {
        "storage_domain": "placeholder",
        "target": "placeholder",
        "site": "placeholder",
        "master_volume": "placeholder",
        "gluster_ssh_conn_id": "placeholder",
        "slave_host": "placeholder.invalid",
        "slave_volume": "placeholder2",
        "slave_ssh_conn_id": "placeholder2",
        "schedule": None,
    }


def load_sync_config(path: str | Path) -> SyncConfig:
    """Read and validate a config file.

    Raises ``ConfigFileError`` (a ``ValueError`` naming the file and line) only when the file is not a
    readable YAML mapping. Everything else is a ``PairError`` (the pair is not built) or a ``ConfigProblem``
    (reported; only what depends on it is not built).
    """
    path = Path(path)
    raw, problems = _read(path)
    for key, first, again in getattr(raw, "duplicates", []):
        problems.append(
            ConfigProblem(
                f"{path}: line {again}: top-level key {key!r} written twice (first at line {first})"
            )
        )
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            problems.append(
                ConfigProblem(
                    f"{path}: line {_line(raw, key)}: unknown top-level key {key!r} (ignored; expected "
                    f"{', '.join(TOP_LEVEL_KEYS)})"
                )
            )

    # sites: each one on its own; a bad site fails only the pairs that use it
    sites: dict[str, SiteConfig] = {}
    bad_sites: dict[str, str] = {}
    raw_sites = raw.get("sites")
    sites_broken: str | None = None
    if raw_sites is None:
        raw_sites = {}
    if not isinstance(raw_sites, dict):
        sites_broken = f"'sites' (line {_line(raw, 'sites')}) is not a mapping of site name to site"
        problems.append(ConfigProblem(f"{path}: {sites_broken}"))
        raw_sites = {}
    for name, value in raw_sites.items():
        where = f"{path}: line {_line(raw_sites, name)}: sites.{name}"
        messages = _duplicates(value, "")
        messages += [f"holds bytes that are not UTF-8 ({w})" for w in _undecodable(value)]
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            messages.append(f"site name {name!r}: use 1-64 ASCII letters, digits, '.', '_' or '-'")
        if not isinstance(value, dict):
            messages.append("must be a mapping like {ovirt_conn_id: ...}")
        elif not messages:
            try:
                site = SiteConfig.model_validate(value)
            except ValidationError as e:
                messages += _format_validation(e, {})
        if messages:
            bad_sites[str(name)] = "; ".join(messages)
            problems.append(ConfigProblem(f"{where}: " + "; ".join(messages)))
        else:
            sites[name] = site
    for name, first, again in getattr(raw_sites, "duplicates", []):
        bad_sites[str(name)] = f"site {name!r} is defined twice (lines {first} and {again})"
        sites.pop(name, None)
        problems.append(
            ConfigProblem(f"{path}: line {again}: site {name!r} defined twice (first at line {first})")
        )

    # defaults: each key on its own; a bad default fails only the pairs that inherit it
    raw_defaults = raw.get("defaults")
    defaults: dict[str, Any] = {}
    bad_defaults: dict[str, str] = {}
    defaults_broken: str | None = None
    if raw_defaults is None:
        raw_defaults = {}
    if not isinstance(raw_defaults, dict):
        defaults_broken = f"'defaults' (line {_line(raw, 'defaults')}) is not a mapping"
        problems.append(
            ConfigProblem(f"{path}: {defaults_broken}: every pair's inherited settings are unknown")
        )
        raw_defaults = {}
    known = set(PairConfig.model_fields)
    for key, first, again in getattr(raw_defaults, "duplicates", []):
        bad_defaults[str(key)] = f"written twice in defaults (lines {first} and {again})"
    for key, messages_ in ((k, _duplicates(v, f"{k}.")) for k, v in raw_defaults.items()):
        if messages_:
            bad_defaults[str(key)] = "; ".join(messages_)
    for key, value in raw_defaults.items():
        if key not in known:
            problems.append(
                ConfigProblem(
                    f"{path}: line {_line(raw_defaults, key)}: defaults.{key}: unknown field (ignored)"
                )
            )
            continue
        if str(key) in bad_defaults:
            continue
        if _undecodable(value):
            bad_defaults[key] = "holds bytes that are not UTF-8"
            continue
        try:
            PairConfig.model_validate({**_placeholder(), key: value})
        except ValidationError as e:
            mine = [err for err in e.errors() if err["loc"] and err["loc"][0] == key]
            if mine:
                bad_defaults[key] = "; ".join(
                    f"field '{'.'.join(str(p) for p in err['loc'])}': {err['msg'].removeprefix('Value error, ')}"
                    for err in mine
                )
                continue
        defaults[key] = value
    for key, message in bad_defaults.items():
        problems.append(ConfigProblem(f"{path}: line {_line(raw_defaults, key)}: defaults.{key}: {message}"))

    items = raw.get("pairs")
    if items is None:
        items = []
        problems.append(ConfigProblem(f"{path}: no 'pairs' list: no sync DAG is built"))
    elif not isinstance(items, list):
        problems.append(ConfigProblem(f"{path}: line {_line(raw, 'pairs')}: 'pairs' must be a list"))
        items = []

    good: list[tuple[int, PairConfig]] = []
    errors: list[PairError] = []
    for i, item in enumerate(items):
        label = _safe_label(item)
        if not isinstance(item, dict):
            errors.append(PairError(i, label, ["must be a mapping"]))
            continue
        at = f"line {_line(item)}"
        messages = _duplicates(item, "")
        inherited = {k: v for k, v in defaults.items() if k not in item}
        for key in sorted(set(bad_defaults) - set(item)):
            messages.append(
                f"field '{key}' (from defaults, line {_line(raw_defaults, key)}): inherited value is invalid "
                f"({bad_defaults[key]})"
            )
        if defaults_broken:
            messages.append(f"its inherited settings are unknown: {defaults_broken}")
        merged = {**inherited, **item}
        messages += [f"field '{w}': holds bytes that are not UTF-8" for w in _undecodable(item)]
        lines = {str(k): f" (line {_line(item, k)})" for k in item}
        lines.update({str(k): f" (from defaults, line {_line(raw_defaults, k)})" for k in inherited})
        if messages:
            errors.append(PairError(i, label, [f"{at}: {m}" for m in messages]))
            continue
        try:
            pair = PairConfig.model_validate(merged)
        except ValidationError as e:
            errors.append(PairError(i, label, _format_validation(e, lines)))
            continue
        semantic = [f"field '{f}'{lines.get(f, '')}: {m}" for f, m in semantic_problems(pair)]
        if pair.site not in sites:
            if sites_broken:
                reason = sites_broken
            elif pair.site in bad_sites:
                reason = f"site {pair.site!r} is invalid: {bad_sites[pair.site]}"
            else:
                reason = f"{pair.site!r} is not one of {sorted(set(sites) | set(bad_sites))}"
            semantic.insert(0, f"field 'site'{lines.get('site', '')}: {reason}")
        if semantic:
            errors.append(PairError(i, label, semantic))
            continue
        good.append((i, pair))

    kept, cross = _cross_pair_checks(good, items)
    errors.extend(cross)
    errors.sort(key=lambda e: e.index)
    kept.sort(key=lambda ip: ip[1].dag_id)
    return SyncConfig(
        path=path,
        sites=sites,
        pairs=[p for _, p in kept],
        errors=errors,
        problems=problems,
        indexes={p.dag_id: i for i, p in kept},
    )


def _cross_pair_checks(
    good: list[tuple[int, PairConfig]], items: list[Any]
) -> tuple[list[tuple[int, PairConfig]], list[PairError]]:
    """Between pairs: one DAG id each, one writer per slave volume, no slave that is another's master.

    Two pairs of one geo-rep session (same master node connection and volume, same slave: e.g. targets
    with other schedules) are one writer: they share the master volume's pool and never overlap. The
    later pair in the file is the one refused, naming the earlier one.
    """
    pairs: list[tuple[int, PairConfig]] = []
    errors: list[PairError] = []
    dag_ids: dict[str, int] = {}
    slaves: dict[tuple[str, str], tuple[int, tuple[str, str]]] = {}
    masters: dict[tuple[str, str], int] = {}
    for i, pair in good:
        where = lambda key, item=items[i]: f" (line {_line(item, key)})" if key in item else ""  # noqa: E731
        messages = []
        if pair.dag_id in dag_ids:
            messages.append(f"duplicate of pairs[{dag_ids[pair.dag_id]}] (same DAG id {pair.dag_id})")
        slave_keys = [
            ("host", pair.slave_host.lower().rstrip(".")),
            ("conn", pair.slave_ssh_conn_id),
        ]
        master = (pair.gluster_ssh_conn_id, pair.master_volume)
        for kind, value in slave_keys:
            seen = slaves.get((f"{kind}:{value}", pair.slave_volume))
            if seen is not None and seen[1] != master and not messages:
                messages.append(
                    f"field 'slave_volume'{where('slave_volume')}: {pair.slave_volume!r} on "
                    f"{pair.slave_host} is already written by pairs[{seen[0]}] from another master volume: "
                    "two geo-rep sessions would overwrite each other's replica"
                )
        other = masters.get((pair.slave_ssh_conn_id, pair.slave_volume))
        if other is not None and not messages:
            messages.append(
                f"field 'slave_volume'{where('slave_volume')}: {pair.slave_volume!r} via "
                f"{pair.slave_ssh_conn_id} is the master volume of pairs[{other}]: geo-replication would "
                "overwrite it"
            )
        seen = slaves.get((f"conn:{pair.gluster_ssh_conn_id}", pair.master_volume))
        if seen is not None and not messages:
            messages.append(
                f"field 'master_volume'{where('master_volume')}: {pair.master_volume!r} via "
                f"{pair.gluster_ssh_conn_id} is the slave volume of pairs[{seen[0]}]: it is overwritten by "
                "geo-replication"
            )
        if messages:
            errors.append(PairError(i, pair.label, messages))
            continue
        dag_ids[pair.dag_id] = i
        for kind, value in slave_keys:
            slaves.setdefault((f"{kind}:{value}", pair.slave_volume), (i, master))
        masters.setdefault((pair.gluster_ssh_conn_id, pair.master_volume), i)
        pairs.append((i, pair))
    return pairs, errors
