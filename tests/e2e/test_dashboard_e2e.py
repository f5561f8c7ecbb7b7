"""The RPO dashboard and the recovery-point deadline, end to end: real lab, real Airflow (scheduler,
triggerer, dag-processor, API server with the ``plugins/`` folder), real SMTP sink, real Chromium.

1. Without a valid Airflow login the plugin's JSON and page give nothing (401/403, redirect to login).
2. One real sync run of ``lab_dash`` (RPO 1h). In headless Chromium, logged in through Airflow's own login
   form and opened from the Browse menu, the page lists every pair of the config with the age of its
   recovery point, which the test computes itself from the asset event that the REST API returns.
3. The admin tightens the pair (RPO 30s, a checkpoint timeout of 3s) by editing the config, as in
   production; the lab's ``slow`` fault (new data, rsync throttled) makes the checkpoint wait time out, so
   the run fails fast. A run triggered once the recovery point is older than 30 s fails
   fast, yet the deadline mail arrives within seconds of the run being queued (measured from the recovery
   point, not from the queue time: the old reference would have waited 30 s after queueing), says how old
   the recovery point is and names the pair; the deadline the scheduler stored is exactly recovery point +
   RPO; the page shows the pair late, with the newest recovery point (a run whose checkpoint wait timed
   out still audits the replica, and records a recovery point when the audit verifies it).

Run it alone under the lab lock: ``flock /tmp/ovirt-dr-lab.lock .venv/bin/pytest tests/e2e/test_dashboard_e2e.py``.
Screenshots go to pytest's tmp dir (printed with ``-s``).
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.lab]

PORT = 28091
POOL = "ovirt_dr_georep__gvmaster"
DASH = "dr_sync__data_gluster__lab_dash"
IDLE = "dr_sync__data_gluster__lab_idle"
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1500,900",
]
COMMON = {
    "storage_domain": "data_gluster",
    "site": "primary",
    "master_volume": "gvmaster",
    "gluster_ssh_conn_id": "gluster_primary",
    "slave_host": "127.0.0.1",
    "slave_volume": "gvslave",
    "slave_ssh_conn_id": "gluster_secondary",
    "smtp_conn_id": "smtp_lab",
    "schedule": None,
    "poll_interval": "3s",
    "checkpoint_timeout": "10m",  # shorter than the RPO, as the config requires
}


def write_config(path: Path, dash: dict[str, Any]) -> None:
    doc = {
        "sites": {"primary": {"ovirt_conn_id": "ovirt_primary"}},
        "pairs": [
            {**COMMON, "target": "lab_dash", "alert_emails": ["dr-admins@example.com"], **dash},
            # never run (its replica volume does not even exist): shown late with no recovery point; no mails
            {**COMMON, "target": "lab_idle", "rpo": "2h", "slave_volume": "gvslave-idle"},
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab_env() -> dict[str, str]:
    from ovirt_dr_lab.labenv import load_lab_env

    return load_lab_env()


@pytest.fixture(scope="module")
def engine(lab_env):
    from ovirt_dr_lab.demo import engine_connection

    c = engine_connection(lab_env)
    yield c
    c.close()


@pytest.fixture(scope="module")
def config_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "ovirt_dr.yaml"
    write_config(path, {"rpo": "1h"})
    return path


@pytest.fixture(scope="module")
def airflow(lab_env, config_path, tmp_path_factory):
    from ovirt_dr_lab.airflow_runner import AirflowStandalone

    home = tmp_path_factory.mktemp("airflow-dashboard")
    env = {k: v for k, v in lab_env.items() if k.startswith("AIRFLOW_CONN_")}
    env["OVIRT_DR_CONFIG"] = str(config_path)
    af = AirflowStandalone(home=home, env=env, port=PORT)
    try:
        af.start()
        af.ensure_pool(POOL, 1, "e2e dashboard")
        for dag_id in (DASH, IDLE):
            af.wait_dag(dag_id)
        yield af
    finally:
        af.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    """What the tests of this module hand on to each other (they run in order)."""
    return {}


# -- helpers -------------------------------------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def raw_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """GET without following redirects: (status, headers, body)."""
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode(errors="replace")


def wait_for(predicate, timeout: float, what: str, step: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def mails(lab_env) -> list[tuple[Path, email.message.Message]]:
    return [
        (p, email.message_from_bytes(p.read_bytes(), policy=email.policy.default))
        for p in sorted(Path(lab_env["LAB_MAILDIR"]).glob("*.eml"))
    ]


def recovery_point(airflow, dag_id: str) -> datetime:
    """The newest recovery point of a pair, read by the test itself from the REST API's asset events."""
    events = airflow.api(
        "GET",
        f"/assets/events?source_dag_id={dag_id}&source_task_id=audit_replica&order_by=-timestamp&limit=1",
    )["asset_events"]
    assert events, f"no recovery-point asset event from {dag_id}"
    (ev,) = events
    assert ev["uri"] == "ovirt-dr://data_gluster/lab_dash"
    return datetime.fromisoformat(ev["extra"]["recovery_point"]).astimezone(UTC)


def age_text(seconds: float) -> str:
    """The page's age format, written out here for the ages this test sees (under an hour)."""
    s = int(seconds)
    assert 0 <= s < 3600
    return f"{s}s" if s < 60 else f"{s // 60}m {s % 60:02d}s"


def lab_fault(*args: str) -> None:
    """``ovirt-dr-lab fault ...``, the lab's own switch (``up`` also turns any fault left on off)."""
    cli = Path(sys.executable).parent / "ovirt-dr-lab"
    subprocess.run([str(cli), "fault", *args], check=True, capture_output=True, text=True, timeout=300)


def dr_snapshots(engine) -> list[str]:
    out = []
    vms = engine.system_service().vms_service()
    for vm in vms.list():
        for s in vms.vm_service(vm.id).snapshots_service().list():
            if (s.description or "").startswith("ovirt-dr:"):
                out.append(f"{vm.name}:{s.description}")
    return out


def login(browser, airflow) -> None:
    """Airflow's real login: the simple auth manager's form, as a person types it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{airflow.url}/")
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.NAME, "username"))
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(airflow.admin_password())
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 60).until(lambda d: any(c["name"] == "_token" for c in d.get_cookies()))


def open_dashboard(browser, airflow) -> dict[str, dict[str, Any]]:
    """Browse -> DR recovery points in the Airflow UI; read the rows from the plugin's frame."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.switch_to.default_content()
    browser.get(f"{airflow.url}/")
    xpath = "//*[normalize-space(text())='{}']"
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.XPATH, xpath.format("Browse")))
    browser.find_element(By.XPATH, xpath.format("Browse")).click()
    entry = WebDriverWait(browser, 30).until(
        lambda d: d.find_elements(By.XPATH, xpath.format("DR recovery points"))
    )
    entry[0].click()
    WebDriverWait(browser, 30).until(lambda d: "/plugin/ovirt-dr-rpo" in d.current_url)
    frame = WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.TAG_NAME, "iframe"))[0]
    browser.switch_to.frame(frame)
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr.pair"))
    body = browser.find_element(By.TAG_NAME, "body")
    rows = {}
    for tr in browser.find_elements(By.CSS_SELECTOR, "tr.pair"):
        cell = {
            c: tr.find_element(By.CSS_SELECTOR, f"td.{c}") for c in ("domain", "target", "age", "rpo", "rp")
        }
        rows[tr.get_attribute("data-dag-id")] = {
            "state": tr.get_attribute("data-state"),
            "domain": cell["domain"].text,
            "target": cell["target"].text,
            "age": cell["age"].text,
            "age_seconds": cell["age"].get_attribute("data-age-seconds"),
            "rpo": cell["rpo"].text,
            "rp": cell["rp"].text,
            "last_run": tr.find_element(By.CSS_SELECTOR, "td.last-run").get_attribute("data-run-state"),
            "href": tr.find_element(By.CSS_SELECTOR, "a").get_attribute("href"),
        }
    rows["_generated_at"] = {"at": datetime.fromisoformat(body.get_attribute("data-generated-at"))}
    browser.switch_to.default_content()
    return rows


def screenshot(browser, path: Path) -> None:
    time.sleep(0.5)  # let the frame paint
    assert browser.save_screenshot(str(path)), path
    assert path.stat().st_size > 10_000, "screenshot is empty"
    print(f"screenshot: {path}")


def assert_age(row: dict[str, Any], generated_at: datetime, rp: datetime) -> None:
    expected = (generated_at - rp).total_seconds()
    assert abs(float(row["age_seconds"]) - expected) <= 0.1, (row, expected)
    assert row["age"] == age_text(expected), (row, expected)
    assert row["rp"] == rp.strftime("%Y-%m-%d %H:%M:%S UTC")


# -- tests ---------------------------------------------------------------------------------------------
def test_no_login_no_data(airflow):
    status, _, body = raw_get(f"{airflow.url}/ovirt-dr/api/pairs")
    assert status == 401 and DASH not in body
    status, _, body = raw_get(f"{airflow.url}/ovirt-dr/api/pairs", {"Authorization": "Bearer not-a-jwt"})
    assert status == 403 and DASH not in body
    status, headers, body = raw_get(f"{airflow.url}/ovirt-dr/dashboard", {"Cookie": "_token=forged"})
    assert status == 303 and DASH not in body
    assert headers["location"].startswith("/auth/login?next=")
    # the same request with Airflow's own token: the pairs
    status, _, body = raw_get(
        f"{airflow.url}/ovirt-dr/api/pairs", {"Authorization": f"Bearer {airflow.token()}"}
    )
    assert status == 200
    assert [p["dag_id"] for p in json.loads(body)["pairs"]] == [DASH, IDLE]


def test_dashboard_shows_every_pair_with_its_age(airflow, browser, engine, state, tmp_path):
    assert dr_snapshots(engine) == [], "a DR snapshot is left from before the test"
    airflow.unpause(DASH)
    t0 = time.monotonic()
    run_id = airflow.trigger(DASH)
    final = airflow.wait_run(DASH, run_id, 900)
    print(f"sync run of {DASH}: {final['state']} in {time.monotonic() - t0:.0f}s")
    assert final["state"] == "success"
    rp = recovery_point(airflow, DASH)
    state["rp"] = rp

    login(browser, airflow)
    rows = open_dashboard(browser, airflow)
    generated_at = rows.pop("_generated_at")["at"]
    screenshot(browser, tmp_path / "dashboard-ok.png")
    assert set(rows) == {DASH, IDLE}

    dash = rows[DASH]
    assert (dash["domain"], dash["target"], dash["state"], dash["rpo"]) == (
        "data_gluster",
        "lab_dash",
        "ok",
        "1h 00m",
    )
    assert dash["last_run"] == "success"
    assert dash["href"] == f"{airflow.url}/dags/{DASH}"
    assert_age(dash, generated_at, rp)
    idle = rows[IDLE]
    assert (idle["state"], idle["age"], idle["rp"], idle["rpo"]) == ("late", "never", "-", "2h 00m")
    assert idle["last_run"] == ""

    # the JSON endpoint, as a script reads it, says the same
    data = json.loads(
        raw_get(f"{airflow.url}/ovirt-dr/api/pairs", {"Authorization": f"Bearer {airflow.token()}"})[2]
    )
    by_id = {p["dag_id"]: p for p in data["pairs"]}
    assert datetime.fromisoformat(by_id[DASH]["recovery_point"]) == rp
    assert by_id[DASH]["recovery_point_run_id"] == run_id
    assert by_id[DASH]["state"] == "ok" and by_id[IDLE]["state"] == "late"
    assert dr_snapshots(engine) == []


def test_late_pair_failing_fast_gets_the_deadline_mail_and_shows_late(
    airflow, browser, config_path, engine, lab_env, state, tmp_path
):
    rp = state.get("rp")
    assert rp is not None, "needs the successful run of the previous test"
    versions = airflow.api("GET", f"/dags/{DASH}/dagVersions")["total_entries"]
    tight = {"rpo": "30s", "checkpoint_timeout": "3s", "poll_interval": "1s", "faulty_grace": "2s"}
    write_config(config_path, tight)
    wait_for(
        lambda: airflow.api("GET", f"/dags/{DASH}/dagVersions")["total_entries"] > versions,
        120,
        "the dag-processor to parse the tightened config",
        step=2,
    )
    # the recovery point must be past its new RPO before the run is queued
    while datetime.now(UTC) - rp <= timedelta(seconds=31):
        time.sleep(1)

    # 16 MiB of new data on the master and rsync held at 256 KB/s: the checkpoint cannot complete
    # within 3 s, so the run fails at its checkpoint wait, whatever the lab's speed
    lab_fault("slow", "on", "--size-mb", "16", "--bwlimit-kbps", "256")
    try:
        n_mails = len(mails(lab_env))
        t_trigger = time.monotonic()
        run_id = airflow.trigger(DASH)
        mail_path, mail = wait_for(
            lambda: next(
                (
                    (p, m)
                    for p, m in mails(lab_env)[n_mails:]
                    if "RPO missed" in m["Subject"] and "lab_dash" in m["Subject"]
                ),
                None,
            ),
            60,
            "the RPO deadline mail",
            step=0.5,
        )
        mail_after = time.monotonic() - t_trigger
        # ...and the run itself fails fast, after its snapshots, which it still merges
        final = airflow.wait_run(DASH, run_id, 600)
    finally:
        lab_fault("slow", "off")
    print(f"deadline mail {mail_after:.1f}s after the run was triggered: {mail['Subject']}")
    # from the recovery point: due already when the run was queued, not 30 s (the RPO) after it
    assert mail_after < 25, mail_after

    subject = mail["Subject"]
    assert subject.startswith("[ovirt-dr] RPO missed: data_gluster -> lab_dash: recovery point ")
    assert f"(RPO 30s, run {run_id})" in subject
    said = re.search(r"recovery point (?:(\d+)m )?(\d+)s old", subject)
    assert said, subject
    said_age = int(said.group(1) or 0) * 60 + int(said.group(2))
    sent_at = parsedate_to_datetime(mail["Date"]).astimezone(UTC)
    assert abs(said_age - (sent_at - rp).total_seconds()) <= 2, (said_age, sent_at, rp)
    body = mail.get_body(("html", "plain")).get_content()
    assert "data_gluster" in body and "127.0.0.1::gvslave" in body and rp.strftime("%H:%M:%S") in body
    assert "dr-admins@example.com" in mail["To"]

    tis = {t["task_id"]: t["state"] for t in airflow.task_instances(DASH, run_id)}
    assert final["state"] == "failed", tis
    assert tis["wait_for_checkpoint"] == "failed" and tis["merge_snapshots"] == "success", tis
    ran = datetime.fromisoformat(final["end_date"]) - datetime.fromisoformat(final["start_date"])
    print(f"failing run took {ran.total_seconds():.0f}s")

    # the deadline the scheduler stored and fired: exactly recovery point + RPO
    deadlines = airflow._request("GET", f"/ui/dags/{DASH}/dagRuns/{run_id}/deadlines")["deadlines"]
    by_name = {d["alert_name"]: d for d in deadlines}
    assert set(by_name) == {"rpo_age"}, deadlines  # a pair with a recovery point: no "none yet" deadline
    assert datetime.fromisoformat(by_name["rpo_age"]["deadline_time"]) == rp + timedelta(seconds=30)
    assert by_name["rpo_age"]["missed"] is True

    # A run whose checkpoint wait timed out still stops, cleans and audits the replica: when the audit
    # verifies it (here the data had arrived), that run records a recovery point too. The page must show
    # the newest one, whichever run recorded it; wait until it, too, is past the RPO.
    newest = recovery_point(airflow, DASH)
    print(f"newest recovery point {newest.isoformat()} (the first run's: {rp.isoformat()})")
    while datetime.now(UTC) - newest <= timedelta(seconds=31):
        time.sleep(1)
    rows = open_dashboard(browser, airflow)
    generated_at = rows.pop("_generated_at")["at"]
    screenshot(browser, tmp_path / "dashboard-late.png")
    dash = rows[DASH]
    assert (dash["state"], dash["rpo"], dash["last_run"]) == ("late", "30s", "failed")
    assert_age(dash, generated_at, newest)
    assert rows[IDLE]["state"] == "late"
    airflow.pause(DASH)
    assert dr_snapshots(engine) == []
    assert mail_path.exists()
