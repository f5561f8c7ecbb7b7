"""Parsers of ``geo-replication status detail --xml`` and ``volume info --xml``.

The XML, not the table: the plain ``status detail`` table leaves the SECONDARY NODE column blank while a
worker is Active, so its columns shift (reference pitfall 7). Gluster >= 10 names the fields
``primary_*``/``secondary*``; older releases say ``master_*``/``slave*``: both are read (pitfall 6).
"N/A" and empty elements become None; times are the node's local wall-clock time as Gluster prints it,
returned as naive datetimes because that is exactly what the checkpoint label is compared with.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime

from ovirt_dr.gluster.errors import GlusterOutputError, classify_error

#: The format of every time in Gluster's status output, and of checkpoint labels.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Worker states in which the worker's gsyncd is alive (the session counts as started).
RUNNING_STATES = frozenset({"Active", "Passive", "Faulty", "Initializing...", "Paused"})

# New (Gluster >= 10) tag -> old tag. Both are accepted, the new one wins if a document had both.
_ALIASES = {
    "primary_node": "master_node",
    "primary_brick": "master_brick",
    "primary_node_uuid": "master_node_uuid",
    "secondary_user": "slave_user",
    "secondary": "slave",
    "secondary_node": "slave_node",
    "session_secondary": "session_slave",
}


def parse_time(text: str | None) -> datetime | None:
    """Gluster's ``YYYY-mm-dd HH:MM:SS`` (or N/A / empty -> None) as a naive datetime."""
    value = _clean(text)
    if value is None:
        return None
    try:
        return datetime.strptime(value, TIME_FORMAT)
    except ValueError:
        raise GlusterOutputError(f"unexpected time {value!r} (expected {TIME_FORMAT})", text) from None


def format_time(value: datetime) -> str:
    """A naive datetime in Gluster's format: the form of a checkpoint label."""
    return value.strftime(TIME_FORMAT)


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    value = text.strip()
    return None if value in ("", "N/A") else value


def _int(text: str | None, what: str, xml: str) -> int | None:
    value = _clean(text)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise GlusterOutputError(f"{what} is {value!r}, not a number", xml) from None


def _get(elem: ET.Element, tag: str) -> str | None:
    found = elem.find(tag)
    if found is None and tag in _ALIASES:
        found = elem.find(_ALIASES[tag])
    return None if found is None else (found.text or "")


def _root(xml: str | bytes) -> ET.Element:
    """Parse a ``cliOutput`` document; a failed operation (opRet != 0) raises the classified error."""
    if isinstance(xml, bytes):
        xml = xml.decode("utf-8", "replace")
    if not isinstance(xml, str) or not xml.strip():
        raise GlusterOutputError(
            "empty output where Gluster XML was expected", xml if isinstance(xml, str) else None
        )
    try:
        root = ET.fromstring(xml.strip())
    except ET.ParseError as e:
        raise GlusterOutputError(f"not XML ({e})", xml) from None
    if root.tag != "cliOutput":
        raise GlusterOutputError(f"root element is <{root.tag}>, not <cliOutput>", xml)
    op_ret = (root.findtext("opRet") or "").strip()
    if op_ret != "0":
        raise classify_error(0, xml, "", None)
    return root


@dataclass(frozen=True)
class GeoRepWorker:
    """One row of ``status detail``: the gsyncd worker of one primary brick."""

    primary_node: str | None
    primary_brick: str | None
    secondary: str | None
    secondary_node: str | None
    secondary_user: str | None
    status: str | None
    crawl_status: str | None
    last_synced: datetime | None
    entry: int | None
    data: int | None
    meta: int | None
    failures: int | None
    checkpoint_time: datetime | None
    checkpoint_completed: bool
    checkpoint_completion_time: datetime | None
    primary_node_uuid: str | None = None

    @property
    def is_active(self) -> bool:
        return self.status == "Active"

    @property
    def is_faulty(self) -> bool:
        return self.status == "Faulty"

    def summary(self) -> str:
        """``node:brick Active/Changelog Crawl pending entry=0 data=24 meta=0 last_synced=...``"""

        def n(v: object) -> str:
            return "N/A" if v is None else str(v)

        crawl = f"/{self.crawl_status}" if self.crawl_status else ""
        cp = "none"
        if self.checkpoint_time:
            done = (
                f"completed {format_time(self.checkpoint_completion_time)}"
                if self.checkpoint_completed and self.checkpoint_completion_time
                else ("completed" if self.checkpoint_completed else "pending")
            )
            cp = f"{format_time(self.checkpoint_time)} {done}"
        return (
            f"{n(self.primary_node)}:{n(self.primary_brick)} {n(self.status)}{crawl} "
            f"pending entry={n(self.entry)} data={n(self.data)} meta={n(self.meta)} failures={n(self.failures)} "
            f"last_synced={n(self.last_synced and format_time(self.last_synced))} checkpoint={cp}"
        )


@dataclass(frozen=True)
class GeoRepStatus:
    """The parsed ``status detail --xml`` of one session: one worker per primary brick."""

    workers: tuple[GeoRepWorker, ...]
    primary_volume: str | None = None
    session: str | None = field(default=None)

    @property
    def active_workers(self) -> tuple[GeoRepWorker, ...]:
        return tuple(w for w in self.workers if w.is_active)

    @property
    def faulty_workers(self) -> tuple[GeoRepWorker, ...]:
        return tuple(w for w in self.workers if w.is_faulty)

    @property
    def is_running(self) -> bool:
        """True if any worker's gsyncd is alive (Active, Passive, Faulty, Initializing..., Paused)."""
        return any(w.status in RUNNING_STATES for w in self.workers)

    def checkpoint_completed_for(self, label: str | datetime) -> bool:
        """True when the checkpoint set at ``label`` (node-local ``%Y-%m-%d %H:%M:%S``) is complete.

        Stricter than "some worker says Yes", because a completed checkpoint is the pipeline's proof that the
        replica caught up: at least one worker is Active; every Active worker reports completed for exactly
        this checkpoint time (a completed *earlier* checkpoint does not count); and no worker is in any state
        but Active or Passive, since a Faulty or initializing worker's brick may hold changes not yet synced.
        """
        wanted = _label_time(label)
        active = self.active_workers
        if not active:
            return False
        if any(w.status not in ("Active", "Passive") for w in self.workers):
            return False
        return all(w.checkpoint_completed and w.checkpoint_time == wanted for w in active)

    def progress_summary(self) -> str:
        """One line for the sensor log: per worker node, status, crawl, entry/data/meta pending, last synced."""
        if not self.workers:
            return "no workers"
        return "; ".join(w.summary() for w in self.workers)


def _label_time(label: str | datetime) -> datetime:
    if isinstance(label, datetime):
        return label.replace(tzinfo=None, microsecond=0)
    try:
        return datetime.strptime(str(label).strip(), TIME_FORMAT)
    except ValueError:
        raise ValueError(f"checkpoint label {label!r} is not in the form {TIME_FORMAT!r}") from None


def parse_georep_status(xml: str | bytes) -> GeoRepStatus:
    """Parse ``gluster volume geo-replication PRIMARY SECONDARY status detail --xml``.

    Raises the classified ``GlusterCommandError`` if the document reports a failed operation (opRet != 0),
    ``GlusterOutputError`` (a ValueError) if it is not Gluster's XML.
    """
    root = _root(xml)
    text = xml.decode("utf-8", "replace") if isinstance(xml, bytes) else xml
    geo = root.find("geoRep")
    if geo is None:
        raise GlusterOutputError("no <geoRep> element in the status output", text)
    workers: list[GeoRepWorker] = []
    volume_name = None
    session_id = None
    for volume in geo.iter("volume"):
        volume_name = volume_name or _clean(volume.findtext("name"))
        for session in volume.iter("session"):
            session_id = session_id or _clean(_get(session, "session_secondary"))
            for pair in session.iter("pair"):
                completed = (_clean(_get(pair, "checkpoint_completed")) or "").lower() == "yes"
                workers.append(
                    GeoRepWorker(
                        primary_node=_clean(_get(pair, "primary_node")),
                        primary_brick=_clean(_get(pair, "primary_brick")),
                        secondary=_clean(_get(pair, "secondary")),
                        secondary_node=_clean(_get(pair, "secondary_node")),
                        secondary_user=_clean(_get(pair, "secondary_user")),
                        status=_clean(_get(pair, "status")),
                        crawl_status=_clean(_get(pair, "crawl_status")),
                        last_synced=parse_time(_get(pair, "last_synced")),
                        entry=_int(_get(pair, "entry"), "entry", text),
                        data=_int(_get(pair, "data"), "data", text),
                        meta=_int(_get(pair, "meta"), "meta", text),
                        failures=_int(_get(pair, "failures"), "failures", text),
                        checkpoint_time=parse_time(_get(pair, "checkpoint_time")),
                        checkpoint_completed=completed,
                        checkpoint_completion_time=parse_time(_get(pair, "checkpoint_completion_time")),
                        primary_node_uuid=_clean(_get(pair, "primary_node_uuid")),
                    )
                )
    return GeoRepStatus(workers=tuple(workers), primary_volume=volume_name, session=session_id)


@dataclass(frozen=True)
class VolumeInfo:
    """One volume of ``volume info --xml``."""

    name: str
    id: str | None
    status: str | None
    type: str | None
    brick_count: int | None
    replica_count: int | None
    distribute_count: int | None
    bricks: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def started(self) -> bool:
        return self.status == "Started"


def parse_volume_info(xml: str | bytes) -> list[VolumeInfo]:
    """Parse ``gluster volume info [NAME] --xml`` into one ``VolumeInfo`` per volume."""
    root = _root(xml)
    text = xml.decode("utf-8", "replace") if isinstance(xml, bytes) else xml
    vols = root.find("volInfo/volumes")
    if vols is None:
        raise GlusterOutputError("no <volInfo><volumes> element in the volume info output", text)
    out = []
    for v in vols.findall("volume"):
        name = _clean(v.findtext("name"))
        if name is None:
            raise GlusterOutputError("a <volume> without a name", text)
        bricks = []
        for b in v.findall("bricks/brick"):
            bname = _clean(b.findtext("name")) or _clean(b.text)
            if bname:
                bricks.append(bname)
        options = {}
        for o in v.findall("options/option"):
            key = _clean(o.findtext("name"))
            if key:
                options[key] = (o.findtext("value") or "").strip()
        out.append(
            VolumeInfo(
                name=name,
                id=_clean(v.findtext("id")),
                status=_clean(v.findtext("statusStr")),
                type=_clean(v.findtext("typeStr")),
                brick_count=_int(v.findtext("brickCount"), "brickCount", text),
                replica_count=_int(v.findtext("replicaCount"), "replicaCount", text),
                distribute_count=_int(v.findtext("distCount"), "distCount", text),
                bricks=tuple(bricks),
                options=options,
            )
        )
    return out
