"""AirflowApiHook against a small in-process HTTP server speaking the three endpoints it uses."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ovirt_dr.hooks.airflow_api import AirflowApiError, AirflowApiHook


class _Api(BaseHTTPRequestHandler):
    state = {"paused": False, "runs": [], "calls": [], "fail_once": False}

    def log_message(self, *a):  # quiet
        pass

    def _send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"null")

    def do_POST(self):
        s = self.state
        s["calls"].append(("POST", self.path))
        if self.path == "/auth/token":
            b = self._body()
            if b == {"username": "admin", "password": "pw"}:
                return self._send(201, {"access_token": "tok"})
            return self._send(401, {"detail": "bad"})
        self._send(404, {})

    def _authed(self):
        return self.headers.get("Authorization") == "Bearer tok"

    def do_GET(self):
        s = self.state
        s["calls"].append(("GET", self.path))
        if not self._authed():
            return self._send(401, {})
        if s["fail_once"]:
            s["fail_once"] = False
            return self._send(500, {"detail": "Database error"})
        if self.path == "/api/v2/dags/d1":
            return self._send(200, {"dag_id": "d1", "is_paused": s["paused"]})
        if self.path.startswith("/api/v2/dags/d1/dagRuns"):
            runs = s["runs"].pop(0) if s["runs"] else []
            return self._send(200, {"dag_runs": runs})
        self._send(404, {})

    def do_PATCH(self):
        s = self.state
        s["calls"].append(("PATCH", self.path))
        if not self._authed():
            return self._send(401, {})
        s["paused"] = self._body()["is_paused"]
        self._send(200, {"dag_id": "d1", "is_paused": s["paused"]})


@pytest.fixture
def api(monkeypatch):
    _Api.state = {"paused": False, "runs": [], "calls": [], "fail_once": False}
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRFLOW_API",
        json.dumps(
            {
                "conn_type": "http",
                "host": f"http://127.0.0.1:{srv.server_port}",
                "login": "admin",
                "password": "pw",
            }
        ),
    )
    yield _Api.state
    srv.shutdown()


def test_pause_resume_and_restore(api):
    hook = AirflowApiHook()
    assert hook.set_paused("d1", True) is False and api["paused"] is True
    assert hook.set_paused("d1", True) is True  # already paused: no second PATCH
    assert [c for c in api["calls"] if c[0] == "PATCH"] == [("PATCH", "/api/v2/dags/d1")]
    assert hook.set_paused("d1", False) is True and api["paused"] is False


def test_wait_idle_until_no_active_run(api):
    api["runs"] = [[{"dag_run_id": "r1", "state": "running"}], [{"dag_run_id": "r1", "state": "success"}]]
    AirflowApiHook().wait_idle("d1", timeout=10, poll=0.01)
    api["runs"] = [[{"dag_run_id": "r2", "state": "queued"}]] * 50
    with pytest.raises(AirflowApiError, match=r"still has active run\(s\) \['r2'\]"):
        AirflowApiHook().wait_idle("d1", timeout=0.05, poll=0.01)


def test_transient_500_on_get_is_retried(api):
    api["fail_once"] = True
    assert AirflowApiHook().is_paused("d1") is False


def test_bad_password_is_an_error_without_the_password(api, monkeypatch):
    conn = json.loads(__import__("os").environ["AIRFLOW_CONN_AIRFLOW_API"])
    conn["password"] = "wrong-secret"
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(conn))
    with pytest.raises(AirflowApiError) as err:
        AirflowApiHook().is_paused("d1")
    assert "401" in str(err.value) and "wrong-secret" not in str(err.value)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("http://airflow.example.com", "plain http://"),
        ("https://u:p@airflow.example.com", "credentials"),
        ("ftp://airflow.example.com", "not an http"),
    ],
)
def test_transport_is_refused(monkeypatch, host, expected):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRFLOW_API",
        json.dumps({"conn_type": "http", "host": host, "login": "a", "password": "b"}),
    )
    with pytest.raises(AirflowApiError, match=expected):
        AirflowApiHook().is_paused("d1")
