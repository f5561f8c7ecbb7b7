"""ovirt-dr RPO dashboard: one page in the Airflow UI answering "how old is each domain's recovery point, and
is it within its RPO?", plus the same data as JSON for scripts.

UI only (DESIGN.md: hooks and operators stay in the ``ovirt_dr`` package). Mounted into Airflow's API
server as a FastAPI sub-app under ``/ovirt-dr``, with a nav entry (``external_views``, Browse menu) that
shows the page inside the Airflow UI:

- ``/ovirt-dr/dashboard``: the HTML page, one row per sync pair;
- ``/ovirt-dr/api/pairs``: the same rows as JSON.

Data comes only from Airflow's own DB, read in the API server: the DAGs tagged ``ovirt-dr`` + ``sync``, their
runs, and the recovery-point asset events that each pair's audit task emits (``ovirt_dr.rpo``). The RPO
of a pair is read from the sync config with ``ovirt_dr.config.load_sync_config``, the same validated object
the DAG factory and its deadline alert are built from; it is the one place that has an RPO for every
pair (a pair without alert mails has no deadline alert in the DB to read an interval from).

Auth: Airflow gives plugin apps no auth of their own. Every route resolves the user exactly like the
REST API does (``airflow.api_fastapi.core_api.security.get_user``: the ``Authorization: Bearer`` token, or
the UI's ``_token`` cookie, validated by the configured auth manager), and shows only the DAGs that the
user may read (``get_authorized_dag_ids``). Without a valid login the JSON route answers 401/403 and the
page redirects to Airflow's login. Every value rendered is escaped, and the page carries a
Content-Security-Policy that allows no script at all.

This plugin also registers the deadline references of ``ovirt_dr.deadlines`` (``deadline_references``):
the scheduler and the API server need them to deserialize the sync DAGs' RPO deadline alerts.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ovirt_dr.config import PairConfig, default_config_path, load_sync_config
from ovirt_dr.deadlines import NoRecoveryPointDeadline, RecoveryPointAgeDeadline
from ovirt_dr.rpo import (
    RECOVERY_POINT_TASK,
    PairState,
    as_utc,
    format_age,
    pair_state,
    recovery_point_from_db,
)
from ovirt_dr.sync import SYNC_TAGS

URL_PREFIX = "/ovirt-dr"
_BASE_PATH = urlsplit(conf.get("api", "base_url", fallback="/") or "/").path.rstrip("/")

_bearer = HTTPBearer(auto_error=False)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


# -- auth --------------------------------------------------------------------------------------------
async def current_user(request: Request, credentials: BearerDep) -> Any:
    """The logged-in Airflow user, resolved by the API server's own code (401/403 otherwise)."""
    from airflow.api_fastapi.core_api.security import get_user

    return await get_user(request, None, credentials)


def readable_dag_ids(user: Any) -> set[str]:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_authorized_dag_ids(user=user, method="GET")


def collect_for(user: Any) -> dict[str, Any]:
    """``collect_pairs`` for this user, now (blocking DB work: called in a worker thread)."""
    return collect_pairs(datetime.now(UTC), readable_dag_ids(user))


# -- config (the RPO per pair) -----------------------------------------------------------------------
@dataclass
class _ConfigCache:
    key: tuple[str, int] | None = None
    pairs: dict[str, PairConfig] | None = None
    error: str | None = None


_config = _ConfigCache()


def config_pairs() -> tuple[dict[str, PairConfig], str | None]:
    """The config's pairs by DAG id (re-read when the file changes), and the error if it cannot be read."""
    dags_folder = Path(conf.get("core", "dags_folder"))
    path = default_config_path(dags_folder / "dr_sync.py")
    try:
        key = (str(path), os.stat(path).st_mtime_ns)
    except OSError as e:
        return {}, f"{path}: cannot read the ovirt-dr config: {e.strerror}"
    if key != _config.key:
        try:
            cfg = load_sync_config(path)
            _config.pairs, _config.error = {p.dag_id: p for p in cfg.pairs}, None
        except ValueError as e:
            _config.pairs, _config.error = {}, str(e)
        _config.key = key
    return dict(_config.pairs or {}), _config.error


# -- data ----------------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value else None


def _tag(tags: list[str], prefix: str) -> str | None:
    return next((t.removeprefix(prefix) for t in tags if t.startswith(prefix)), None)


def collect_pairs(now: datetime, readable: set[str]) -> dict[str, Any]:
    """Every sync pair the user may read, with its recovery point, RPO state, runs and schedule."""
    from airflow.models.asset import AssetModel, TaskOutletAssetReference
    from airflow.models.dag import DagModel, DagTag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    pairs_by_dag, config_error = config_pairs()
    rows: list[dict[str, Any]] = []
    with create_session() as session:
        tagged = select(DagModel).where(~DagModel.is_stale)
        for tag in SYNC_TAGS:
            tagged = tagged.where(DagModel.dag_id.in_(select(DagTag.dag_id).where(DagTag.name == tag)))
        dags = [d for d in session.scalars(tagged.order_by(DagModel.dag_id)) if d.dag_id in readable]
        outlets = dict(
            session.execute(
                select(TaskOutletAssetReference.dag_id, AssetModel.uri)
                .join(AssetModel, AssetModel.id == TaskOutletAssetReference.asset_id)
                .where(
                    TaskOutletAssetReference.dag_id.in_([d.dag_id for d in dags]),
                    TaskOutletAssetReference.task_id == RECOVERY_POINT_TASK,
                )
            ).all()
        )
        for dag in dags:
            tags = sorted(t.name for t in dag.tags)
            pair = pairs_by_dag.get(dag.dag_id)
            uri = outlets.get(dag.dag_id)
            rp = recovery_point_from_db(session, dag_id=dag.dag_id, asset_uri=uri) if uri else None
            last = session.scalar(
                select(DagRun).where(DagRun.dag_id == dag.dag_id).order_by(DagRun.run_after.desc()).limit(1)
            )
            finished = session.scalar(
                select(DagRun)
                .where(DagRun.dag_id == dag.dag_id, DagRun.state.in_(("success", "failed")))
                .order_by(DagRun.end_date.desc())
                .limit(1)
            )
            rpo = pair.rpo if pair else None
            age = now - rp.time if rp else None
            state = pair_state(
                now=now,
                recovery_point=rp.time if rp else None,
                rpo=rpo,
                last_finished_state=str(finished.state) if finished else None,
            )
            last_run = None
            if last is not None:
                start = as_utc(last.start_date) if last.start_date else None
                end = as_utc(last.end_date) if last.end_date else None
                last_run = {
                    "run_id": last.run_id,
                    "state": str(last.state),
                    "start_date": _iso(start),
                    "end_date": _iso(end),
                    "duration_seconds": round(((end or now) - start).total_seconds(), 1) if start else None,
                }
            scheduled = bool(dag.timetable_summary) and dag.timetable_summary not in ("None", "null")
            next_run = dag.next_dagrun_create_after if scheduled and not dag.is_paused else None
            rows.append(
                {
                    "dag_id": dag.dag_id,
                    "storage_domain": pair.storage_domain if pair else _tag(tags, "domain:"),
                    "target": pair.target if pair else _tag(tags, "target:"),
                    "asset_uri": uri,
                    "recovery_point": _iso(rp.time) if rp else None,
                    "recovery_point_run_id": rp.run_id if rp else None,
                    "age_seconds": round(age.total_seconds(), 1) if age is not None else None,
                    "age": format_age(age),
                    "rpo_seconds": rpo.total_seconds() if rpo else None,
                    "rpo": format_age(rpo) if rpo else "unknown",
                    "state": state.value,
                    "last_run": last_run,
                    "last_finished_state": str(finished.state) if finished else None,
                    "schedule": dag.timetable_summary if scheduled else None,
                    "is_paused": bool(dag.is_paused),
                    "next_run": _iso(next_run),
                    "url": f"{_BASE_PATH}/dags/{quote(dag.dag_id, safe='')}",
                }
            )
    return {"generated_at": now.isoformat(), "config_error": config_error, "pairs": rows}


# -- HTML -------------------------------------------------------------------------------------------------
_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.2rem;color:#1f2933;background:#fff}
h1{font-size:1.35rem;margin:0 0 .3rem}
p.meta{color:#52606d;margin:.2rem 0 1rem;font-size:.9rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{background:#f5f7fa;font-weight:600}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.state{display:inline-block;padding:.1rem .55rem;border-radius:.7rem;font-weight:600;font-size:.8rem}
.state-ok{background:#e3f9e5;color:#0e5814}
.state-late{background:#ffe3e3;color:#8a041a}
.state-failing{background:#fff3c4;color:#8d2b0b}
.state-unknown{background:#e4e7eb;color:#323f4b}
.small{color:#616e7c;font-size:.8rem}
.error{background:#ffe3e3;color:#8a041a;padding:.5rem .7rem;border-radius:.3rem}
a{color:#0b69a3}
"""
_STATE_HELP = {
    PairState.OK.value: "recovery point within the RPO",
    PairState.LATE.value: "no recovery point, or older than the RPO",
    PairState.FAILING.value: "within the RPO, but the latest finished run failed",
    PairState.UNKNOWN.value: "RPO unknown: the DAG is not in the ovirt-dr config",
}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _time(value: str | None) -> str:
    if not value:
        return "-"
    shown = datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f'<time datetime="{_e(value)}">{_e(shown)}</time>'


def render_page(data: dict[str, Any]) -> str:
    """The dashboard's HTML; every value from the DB or the config goes through ``html.escape``."""
    counts = {s.value: 0 for s in PairState}
    for row in data["pairs"]:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no pairs"
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta http-equiv='refresh' content='60'>",
        "<title>ovirt-dr: recovery points</title>",
        f"<style>{_STYLE}</style></head>",
        f"<body data-generated-at='{_e(data['generated_at'])}'>",
        "<h1>DR recovery points</h1>",
        f"<p class='meta'>{len(data['pairs'])} sync pair(s): {_e(summary)}. Generated {_time(data['generated_at'])}; "
        f"refreshes every minute. <a href='{_e(_BASE_PATH + URL_PREFIX)}/api/pairs'>JSON</a></p>",
    ]
    if data.get("config_error"):
        out.append(f"<p class='error' id='config-error'>RPOs unknown: {_e(data['config_error'])}</p>")
    out.append(
        "<table id='pairs'><thead><tr><th>Domain</th><th>Target</th><th>State</th><th>Recovery point</th>"
        "<th>Age</th><th>RPO</th><th>Last run</th><th>Duration</th><th>Next run</th><th>DAG</th>"
        "</tr></thead><tbody>"
    )
    for r in data["pairs"]:
        last = r["last_run"] or {}
        duration = last.get("duration_seconds")
        next_run = _time(r["next_run"]) if r["next_run"] else ("paused" if r["is_paused"] else "manual only")
        out.append(
            f"<tr class='pair' data-dag-id='{_e(r['dag_id'])}' data-state='{_e(r['state'])}'>"
            f"<td class='domain'>{_e(r['storage_domain'])}</td>"
            f"<td class='target'>{_e(r['target'])}</td>"
            f"<td><span class='state state-{_e(r['state'])}' title='{_e(_STATE_HELP.get(r['state'], ''))}'>"
            f"{_e(r['state'])}</span></td>"
            f"<td class='rp num'>{_time(r['recovery_point'])}</td>"
            f"<td class='age num' data-age-seconds='{_e(r['age_seconds'])}'>{_e(r['age'])}</td>"
            f"<td class='rpo num' data-rpo-seconds='{_e(r['rpo_seconds'])}'>{_e(r['rpo'])}</td>"
            f"<td class='last-run' data-run-state='{_e(last.get('state'))}'>{_e(last.get('state') or '-')}"
            f"<div class='small'>{_e(last.get('run_id') or '')}</div></td>"
            f"<td class='duration num'>{_e(format_age(timedelta(seconds=duration)) if duration is not None else '-')}</td>"
            f"<td class='next num'>{next_run}</td>"
            f"<td><a href='{_e(r['url'])}' target='_top'>{_e(r['dag_id'])}</a></td></tr>"
        )
    if not data["pairs"]:
        out.append("<tr><td colspan='10'>No sync pair is visible to you.</td></tr>")
    out.append("</tbody></table>")
    out.append(
        "<p class='small'>"
        + " &middot; ".join(f"<b>{_e(s)}</b>: {_e(h)}" for s, h in _STATE_HELP.items())
        + "</p>"
    )
    out.append("</body></html>")
    return "".join(out)


_HEADERS = {
    # no script may run on this page, whatever a value contains; framed only by Airflow's own UI
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

app = FastAPI(title="ovirt-dr RPO dashboard", docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/api/pairs")
async def pairs_json(user: Annotated[Any, Depends(current_user)]) -> JSONResponse:
    """The dashboard's rows as JSON (same data as the page), for admins' scripts."""
    from starlette.concurrency import run_in_threadpool

    data = await run_in_threadpool(collect_for, user)
    return JSONResponse(data, headers=_HEADERS)


@app.get("/dashboard", response_class=HTMLResponse, response_model=None)
async def dashboard(request: Request, credentials: BearerDep) -> HTMLResponse | RedirectResponse:
    """The page; without a valid login, a redirect to Airflow's login page and back (no data)."""
    from airflow.api_fastapi.app import get_auth_manager
    from starlette.concurrency import run_in_threadpool

    try:
        user = await current_user(request, credentials)
    except HTTPException:
        login = get_auth_manager().get_url_login(next_url=str(request.url))
        return RedirectResponse(login, status_code=303, headers=_HEADERS)
    data = await run_in_threadpool(collect_for, user)
    return HTMLResponse(render_page(data), headers=_HEADERS)


class OvirtDrDashboardPlugin(AirflowPlugin):
    """The RPO dashboard (page + JSON) and the RPO deadline references."""

    name = "ovirt_dr_dashboard"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "ovirt-dr RPO dashboard"}]
    external_views = [
        {
            "name": "DR recovery points",
            "href": f"{_BASE_PATH}{URL_PREFIX}/dashboard",
            "destination": "nav",
            "category": "browse",
            "url_route": "ovirt-dr-rpo",
        }
    ]
    deadline_references = [RecoveryPointAgeDeadline, NoRecoveryPointDeadline]
