"""The RPO deadline alert, measured from the pair's newest recovery point (not from a run's queue time).

Why not ``DeadlineReference.DAGRUN_QUEUED_AT``: that measures each run on its own. With the last good
recovery point at T0, an RPO of 4h and hourly runs that all fail fast, the run queued at T0+1h alerts at
T0+5h, an hour after the replica really got too old, and a pair whose runs keep failing is never reported
as out of its RPO at the moment it is.

How Airflow 3.3.2 handles deadlines (read in airflow/serialization/definitions/dag.py, models/dagrun.py,
models/deadline.py, jobs/scheduler_job_runner.py):

- A run's deadlines are created once, when the run is created (``create_dagrun``: by the scheduler for
  scheduled runs, by the API server for a triggered one): ``deadline_time = reference + interval``, with
  the reference evaluated in that same DB session.
- Each scheduler loop fires every deadline whose time has passed and that is not yet ``missed``, even if
  its run has ended: a FAILED run's deadline is not deleted. Only a run that SUCCEEDS before its
  deadline gets it deleted (``Deadline.prune_deadlines``, called only on success).

So the references here evaluate to the pair's newest recovery point (``RecoveryPointAgeDeadline``) or,
for a pair that never had one, to the queue time of its first run (``NoRecoveryPointDeadline``); the
interval is the RPO. A run created while the recovery point is already older than the RPO gets a deadline
in the past, which the next scheduler loop fires (a few seconds), however fast the run then fails; a run
created in time fires at the exact moment the recovery point passes its RPO unless it succeeds first.
Each run created while the pair is late sends one mail.

The mail is built here from values (pair names passed as plain strings, the age computed when it is
sent), never from a Jinja template that config values were pasted into. The reference classes are
registered with Airflow by the ``ovirt_dr_dashboard`` plugin (``deadline_references``), which the
scheduler and API server need to deserialize them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk.definitions.deadline import REFERENCE_TYPE_FIELD, BaseDeadlineReference, deadline_reference

from ovirt_dr.rpo import as_utc, format_age, recovery_point_from_db

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ovirt_dr.config import PairConfig

KIND_AGE = "age"
KIND_NONE = "none"
ASSET_SCHEME = "ovirt-dr://"


@dataclass(eq=False)  # keep the base's __eq__/__hash__ (by serialized form)
class _PairRecoveryPointReference(BaseDeadlineReference):
    """Base of the two references: names the pair's recovery-point asset."""

    asset_uri: str = ""
    required_kwargs: ClassVar[set[str]] = {"dag_id", "run_id"}

    def serialize_reference(self) -> dict[str, Any]:
        return {REFERENCE_TYPE_FIELD: self.reference_name, "asset_uri": self.asset_uri}

    @classmethod
    def deserialize_reference(cls, reference_data: dict[str, Any]) -> _PairRecoveryPointReference:
        uri = reference_data.get("asset_uri")
        if not isinstance(uri, str) or not uri.startswith(ASSET_SCHEME):
            raise ValueError(
                f"{cls.__name__}: serialized reference has no valid 'asset_uri' (got {uri!r}); "
                f"expected {ASSET_SCHEME}<domain>/<target>"
            )
        return cls(asset_uri=uri)


@deadline_reference()
@dataclass(eq=False)
class RecoveryPointAgeDeadline(_PairRecoveryPointReference):
    """The pair's newest recovery point; no deadline (None) for a pair that never had one."""

    def _evaluate_with(self, *, session: Session, **kwargs: Any) -> datetime | None:
        rp = recovery_point_from_db(session, dag_id=kwargs["dag_id"], asset_uri=self.asset_uri)
        return rp.time if rp else None


@deadline_reference()
@dataclass(eq=False)
class NoRecoveryPointDeadline(_PairRecoveryPointReference):
    """For a pair that never had a recovery point: the queue time of its first run; else no deadline."""

    def _evaluate_with(self, *, session: Session, **kwargs: Any) -> datetime | None:
        from airflow.models import DagRun
        from sqlalchemy import func, select

        dag_id = kwargs["dag_id"]
        if recovery_point_from_db(session, dag_id=dag_id, asset_uri=self.asset_uri) is not None:
            return None
        first = session.scalar(
            select(func.min(func.coalesce(DagRun.queued_at, DagRun.run_after))).where(DagRun.dag_id == dag_id)
        )
        if isinstance(first, str):  # SQLite hands back an aggregate of datetimes as text
            first = datetime.fromisoformat(first)
        return as_utc(first) if first else datetime.now(UTC)


def _one_line(value: Any) -> str:
    """A value for a mail subject: no line breaks (header injection), printable ASCII only."""
    text = " ".join(str(value).split())
    return text.encode("ascii", "replace").decode("ascii")


def _as_datetime(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    raise ValueError(f"deadline mail: {what} is not a time: {value!r}")


def rpo_mail(
    *,
    kind: str,
    pair: dict[str, str],
    rpo: timedelta,
    deadline_time: datetime,
    run_id: str,
    now: datetime,
) -> tuple[str, str]:
    """(subject, HTML body) of the RPO mail. ``deadline_time - rpo`` is the newest recovery point
    (``kind="age"``) or the first run's queue time (``kind="none"``); the age is measured at ``now``."""
    base = as_utc(deadline_time) - rpo
    age = as_utc(now) - base
    domain, target = pair.get("storage_domain", "?"), pair.get("target", "?")
    slave = f"{pair.get('slave_host', '?')}::{pair.get('slave_volume', '?')}"
    when = base.strftime("%Y-%m-%d %H:%M:%S UTC")
    e = html.escape
    if kind == KIND_AGE:
        subject = (
            f"[ovirt-dr] RPO missed: {domain} -> {target}: recovery point {format_age(age)} old "
            f"(RPO {format_age(rpo)}, run {run_id})"
        )
        what = (
            f"The newest recovery point of storage domain <b>{e(domain)}</b> on <b>{e(slave)}</b> "
            f"(target {e(target)}) is from {e(when)}: it is <b>{e(format_age(age))}</b> old, more than "
            f"the RPO of {e(format_age(rpo))}."
        )
    elif kind == KIND_NONE:
        subject = (
            f"[ovirt-dr] RPO missed: {domain} -> {target}: no recovery point yet, "
            f"{format_age(age)} after the first run (RPO {format_age(rpo)}, run {run_id})"
        )
        what = (
            f"Storage domain <b>{e(domain)}</b> has no recovery point on <b>{e(slave)}</b> "
            f"(target {e(target)}) yet: its first DR sync run was queued at {e(when)}, "
            f"<b>{e(format_age(age))}</b> ago, more than the RPO of {e(format_age(rpo))}."
        )
    else:
        raise ValueError(f"deadline mail: unknown kind {kind!r} (expected {KIND_AGE!r} or {KIND_NONE!r})")
    body = (
        f"<p>{what}</p><p>Alert raised for run {e(run_id)} of {e(pair.get('dag_id', '?'))}. Open the DR "
        "dashboard (Airflow UI, Browse, DR recovery points) and the run's failed step for the cause.</p>"
    )
    return _one_line(subject), body


async def send_rpo_mail(
    *,
    kind: str,
    pair: dict[str, str],
    rpo_seconds: float,
    to: list[str],
    smtp_conn_id: str,
    context: dict[str, Any] | None = None,
) -> None:
    """The deadline callback (runs in the triggerer): compute the age now and mail it.

    ``context`` is what the scheduler gives deadline callbacks: ``dag_run`` (the REST API's
    DAGRunResponse, run id in ``dag_run_id``) and ``deadline`` (``deadline_time``).
    """
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    context = context or {}
    deadline = context.get("deadline") or {}
    run = context.get("dag_run") or {}
    subject, body = rpo_mail(
        kind=kind,
        pair=pair,
        rpo=timedelta(seconds=rpo_seconds),
        deadline_time=_as_datetime(deadline.get("deadline_time"), "deadline.deadline_time"),
        run_id=str(run.get("dag_run_id") or run.get("run_id") or "?"),
        now=datetime.now(UTC),
    )
    async with SmtpHook(smtp_conn_id=smtp_conn_id) as hook:
        await hook.asend_email_smtp(to=to, subject=subject, html_content=body)


def rpo_deadline_alerts(pair: PairConfig) -> list[Any]:
    """The pair's two deadline alerts (newest recovery point + RPO; first run + RPO while there is none),
    mailing ``pair.alert_emails``. Callers only call this when the pair has recipients."""
    from airflow.sdk import AsyncCallback, DeadlineAlert

    from ovirt_dr.sync import recovery_point_asset

    uri = recovery_point_asset(pair).uri
    values = {
        "dag_id": pair.dag_id,
        "storage_domain": pair.storage_domain,
        "target": pair.target,
        "slave_host": pair.slave_host,
        "slave_volume": pair.slave_volume,
    }

    def alert(reference: BaseDeadlineReference, kind: str) -> Any:
        return DeadlineAlert(
            reference=reference,
            interval=pair.rpo,
            callback=AsyncCallback(
                send_rpo_mail,
                kwargs={
                    "kind": kind,
                    "pair": values,
                    "rpo_seconds": pair.rpo.total_seconds(),
                    "to": list(pair.alert_emails),
                    "smtp_conn_id": pair.smtp_conn_id,
                },
            ),
            name=f"rpo_{kind}",
        )

    return [
        alert(RecoveryPointAgeDeadline(asset_uri=uri), KIND_AGE),
        alert(NoRecoveryPointDeadline(asset_uri=uri), KIND_NONE),
    ]
