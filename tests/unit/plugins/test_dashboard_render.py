"""The dashboard plugin's pure parts: the page escapes every value, shows each state, and the plugin
registers what Airflow needs (the FastAPI app, the nav entry, the deadline references)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def plugin():
    """The plugin file loaded the way Airflow loads it (a module named after the file)."""
    path = REPO / "plugins" / "ovirt_dr_dashboard.py"
    spec = importlib.util.spec_from_file_location("ovirt_dr_dashboard", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def row(**over):
    base = {
        "dag_id": "dr_sync__data1__dr",
        "storage_domain": "data1",
        "target": "dr",
        "asset_uri": "ovirt-dr://data1/dr",
        "recovery_point": "2026-11-05T11:58:53+00:00",
        "recovery_point_run_id": "manual__1",
        "age_seconds": 67.0,
        "age": "1m 07s",
        "rpo_seconds": 3600.0,
        "rpo": "1h 00m",
        "state": "ok",
        "last_run": {
            "run_id": "manual__1",
            "state": "success",
            "start_date": "2026-11-05T11:57:00+00:00",
            "end_date": "2026-11-05T11:59:30+00:00",
            "duration_seconds": 150.0,
        },
        "last_finished_state": "success",
        "schedule": "*/30 * * * *",
        "is_paused": False,
        "next_run": "2026-11-05T12:30:00+00:00",
        "url": "/dags/dr_sync__data1__dr",
    }
    return {**base, **over}


def page(plugin, *rows, error=None):
    return plugin.render_page(
        {"generated_at": "2026-11-05T12:00:00+00:00", "config_error": error, "pairs": list(rows)}
    )


def test_page_shows_the_row(plugin):
    html = page(plugin, row())
    assert "data-dag-id='dr_sync__data1__dr' data-state='ok'" in html
    assert "<td class='age num' data-age-seconds='67.0'>1m 07s</td>" in html
    assert "2026-11-05 11:58:53 UTC" in html and "2m 30s" in html  # recovery point, run duration
    assert "2026-11-05 12:30:00 UTC" in html  # next run
    assert "href='/dags/dr_sync__data1__dr' target='_top'" in html
    assert "1 sync pair(s): 1 ok." in html


@pytest.mark.parametrize(
    ("over", "shown"),
    [
        ({"next_run": None, "is_paused": True}, "paused"),
        ({"next_run": None, "is_paused": False}, "manual only"),
        ({"recovery_point": None, "age": "never", "age_seconds": None, "state": "late"}, "never"),
        ({"last_run": None}, "<td class='duration num'>-</td>"),
    ],
)
def test_page_cases(plugin, over, shown):
    assert shown in page(plugin, row(**over))


def test_every_value_is_escaped(plugin):
    evil = "<img src=x onerror=alert(1)>'\""
    html = page(
        plugin,
        row(
            dag_id=evil,
            storage_domain=evil,
            target=evil,
            state=evil,
            url=f"/dags/{evil}",
            last_run={"run_id": evil, "state": evil, "duration_seconds": None},
        ),
        error=evil,
    )
    assert "<img" not in html and "onerror=alert(1)>'" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;&#x27;&quot;" in html


def test_no_pairs_and_config_error(plugin):
    html = page(plugin, error="/etc/ovirt_dr.yaml: not valid YAML")
    assert "No sync pair is visible to you." in html
    assert "id='config-error'" in html and "not valid YAML" in html


def test_plugin_registers_app_nav_entry_and_deadline_references(plugin):
    from ovirt_dr.deadlines import NoRecoveryPointDeadline, RecoveryPointAgeDeadline

    p = plugin.OvirtDrDashboardPlugin
    (app,) = p.fastapi_apps
    assert app["url_prefix"] == "/ovirt-dr" and app["app"] is plugin.app
    (view,) = p.external_views
    assert view["href"] == "/ovirt-dr/dashboard" and view["url_route"] == "ovirt-dr-rpo"
    assert set(p.deadline_references) == {RecoveryPointAgeDeadline, NoRecoveryPointDeadline}
    paths = {r.path for r in plugin.app.routes}
    assert {"/dashboard", "/api/pairs"} <= paths
    assert plugin.app.openapi_url is None  # nothing of the app is served without auth


def test_reserved_prefixes_are_avoided(plugin):
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES

    assert not any(plugin.URL_PREFIX.startswith(p) for p in RESERVED_URL_PREFIXES)
