"""Recovery points and RPO state: where a pair's newest recovery point is read from, how old it is, and
whether the pair is within its RPO.

One module for the dashboard (``plugins/ovirt_dr_dashboard.py``) and the deadline alert
(``ovirt_dr.deadlines``), so that the page and the mail can never disagree on what "the newest recovery
point" is.

The recovery point of a run is the geo-replication checkpoint time that the audit task
(``audit_replica``) attaches to its event on the pair's asset (``extra={"recovery_point": <ISO time>,
...}``, see ``ovirt_dr.sync.recovery_point_asset``). Only events that this pair's own DAG emitted from that
task count: an asset event posted by hand through the REST API vouches for nothing, and the ``extra`` of
any event is untrusted data (a malformed one is skipped, never trusted).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

RECOVERY_POINT_TASK = "audit_replica"
RECOVERY_POINT_KEY = "recovery_point"
# How many of a pair's newest events are looked at to find one with a usable recovery point.
EVENTS_SCANNED = 50


class PairState(StrEnum):
    """What the dashboard shows for a pair (worst first)."""

    LATE = "late"  # no recovery point, or the newest one is older than the RPO
    FAILING = "failing"  # within the RPO, but the latest finished run failed: the next miss is coming
    OK = "ok"  # within the RPO and the latest finished run did not fail
    UNKNOWN = "unknown"  # the pair's RPO is not known (its DAG is not in the config)


@dataclass(frozen=True)
class RecoveryPoint:
    """A pair's recovery point: the checkpoint time (``time``), and the asset event that recorded it."""

    time: datetime
    recorded_at: datetime
    run_id: str | None = None


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC (what Airflow's DB columns hold)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_recovery_point(extra: Any, recorded_at: datetime) -> datetime | None:
    """The recovery point carried by one asset event's ``extra``, or None when it has none usable.

    A recovery point later than its own event is impossible (the checkpoint precedes the audit); a clock
    skewed that way is clamped to the event time, so an age is never under-reported.
    """
    if not isinstance(extra, dict):
        return None
    raw = extra.get(RECOVERY_POINT_KEY)
    if not isinstance(raw, str) or not raw or len(raw) > 64:
        return None
    try:
        rp = datetime.fromisoformat(raw)
    except ValueError:
        return None
    rp = as_utc(rp)
    return min(rp, as_utc(recorded_at))


def newest_recovery_point(events: Iterable[tuple[Any, datetime, str | None]]) -> RecoveryPoint | None:
    """The newest usable recovery point among ``(extra, event timestamp, run id)`` rows, in any order."""
    best: RecoveryPoint | None = None
    for extra, recorded_at, run_id in events:
        rp = parse_recovery_point(extra, recorded_at)
        if rp is not None and (best is None or rp > best.time):
            best = RecoveryPoint(time=rp, recorded_at=as_utc(recorded_at), run_id=run_id)
    return best


def recovery_point_from_db(session: Session, *, dag_id: str, asset_uri: str) -> RecoveryPoint | None:
    """The pair's newest recovery point from Airflow's own asset events (no second store).

    Runs inside the scheduler or API server (it needs Airflow's ORM), so the imports are deferred: the
    module stays importable at DAG-parse time.
    """
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    rows = session.execute(
        select(AssetEvent.extra, AssetEvent.timestamp, AssetEvent.source_run_id)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(
            AssetModel.uri == asset_uri,
            AssetEvent.source_dag_id == dag_id,
            AssetEvent.source_task_id == RECOVERY_POINT_TASK,
        )
        .order_by(AssetEvent.timestamp.desc())
        .limit(EVENTS_SCANNED)
    ).all()
    return newest_recovery_point((r[0], r[1], r[2]) for r in rows)


def pair_state(
    *,
    now: datetime,
    recovery_point: datetime | None,
    rpo: timedelta | None,
    last_finished_state: str | None,
) -> PairState:
    """The pair's state: late beats failing beats ok (an RPO miss is what the admin must act on first)."""
    if rpo is None:
        return PairState.UNKNOWN
    if recovery_point is None or as_utc(now) - as_utc(recovery_point) > rpo:
        return PairState.LATE
    if last_finished_state == "failed":
        return PairState.FAILING
    return PairState.OK


def format_age(age: timedelta | None) -> str:
    """``45s``, ``4m 07s``, ``2h 05m``, ``3d 04h``: two units, the way an admin reads an RPO; a negative
    age (clock skew) reads ``0s``."""
    if age is None:
        return "never"
    s = max(0, int(age.total_seconds()))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"
