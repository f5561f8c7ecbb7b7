"""AirflowApiHook: pause and resume the product's own DAGs through Airflow's REST API.

A task cannot pause a DAG through the task SDK (Airflow 3 keeps tasks away from the metadata DB), yet a
drill or a failback must hold a pair's sync DAG still while it works on the replica, and resume it after.
So this hook talks to the API server like an admin's script does, with the credentials of an Airflow
connection (secrets by connection id only):

- ``host``: the API server's base URL (``https://airflow.example.com``; plain ``http://`` only on loopback),
- ``login`` / ``password``: an Airflow user allowed to edit those DAGs (a token is fetched from
  ``/auth/token``, Airflow 3's own login endpoint, and never logged),
- extras: ``ca_file`` (TLS is verified by default).
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from airflow.sdk import BaseHook

_ACTIVE = ("queued", "running")


class AirflowApiError(RuntimeError):
    """The API server refused or failed a request: the method, path and status are named."""


def _is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AirflowApiHook(BaseHook):
    """Airflow's REST API (v2) as one user.

    :param airflow_conn_id: connection with the API server URL, user and password.
    :param timeout: seconds per HTTP request.
    """

    conn_name_attr = "airflow_conn_id"
    default_conn_name = "airflow_api"
    conn_type = "http"
    hook_name = "Airflow REST API"

    def __init__(self, airflow_conn_id: str = default_conn_name, timeout: float = 30) -> None:
        super().__init__()
        self.airflow_conn_id = airflow_conn_id
        self.timeout = timeout
        self._token: str | None = None
        self._base: str | None = None
        self._context: ssl.SSLContext | None = None

    # -- connection --------------------------------------------------------------------------------
    def _setup(self) -> None:
        if self._base is not None:
            return
        conn = self.get_connection(self.airflow_conn_id)
        host = (conn.host or "").strip().rstrip("/")
        if "://" not in host:
            scheme = (conn.schema or "https").strip() or "https"
            host = f"{scheme}://{host}{f':{conn.port}' if conn.port else ''}"
        url = urllib.parse.urlsplit(host)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise AirflowApiError(f"connection {self.airflow_conn_id!r}: {host!r} is not an http(s) URL")
        if url.username or url.password:
            raise AirflowApiError(f"connection {self.airflow_conn_id!r}: put credentials in login/password")
        if url.scheme == "http" and not _is_loopback(url.hostname):
            raise AirflowApiError(
                f"connection {self.airflow_conn_id!r}: plain http:// would send the password in clear; "
                "use https:// (http is accepted only on loopback)"
            )
        if not conn.login:
            raise AirflowApiError(f"connection {self.airflow_conn_id!r}: the user (login) is empty")
        extra = conn.extra_dejson or {}
        if url.scheme == "https":
            self._context = ssl.create_default_context(cafile=extra.get("ca_file") or None)
        self._base = host
        self._credentials = (conn.login, conn.password or "")

    def _call(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        self._setup()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._get_token()}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(4):
            req = urllib.request.Request(f"{self._base}{path}", data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout, context=self._context) as r:
                    text = r.read().decode()
                return json.loads(text) if text else None
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:300]
                # a SQLite-backed API server answers 500 while another component writes: GET/PATCH are idempotent
                if e.code >= 500 and method in ("GET", "PATCH") and attempt < 3:
                    time.sleep(1 + attempt)
                    continue
                raise AirflowApiError(f"{method} {path}: HTTP {e.code} {detail}") from None
            except OSError as e:
                raise AirflowApiError(f"{method} {path}: {e}") from None
        raise AirflowApiError(f"{method} {path}: no answer")

    def _get_token(self) -> str:
        if self._token is None:
            user, password = self._credentials
            res = self._call("POST", "/auth/token", {"username": user, "password": password}, auth=False)
            if not isinstance(res, dict) or not res.get("access_token"):
                raise AirflowApiError("/auth/token gave no access_token")
            self._token = str(res["access_token"])
        return self._token

    def close(self) -> None:
        self._token = None

    # -- DAGs ----------------------------------------------------------------------------------------
    def is_paused(self, dag_id: str) -> bool:
        return bool(self._call("GET", f"/api/v2/dags/{urllib.parse.quote(dag_id)}")["is_paused"])

    def set_paused(self, dag_id: str, paused: bool) -> bool:
        """Pause or resume ``dag_id``; return whether it was paused before (to restore it exactly)."""
        before = self.is_paused(dag_id)
        if before != paused:
            self._call("PATCH", f"/api/v2/dags/{urllib.parse.quote(dag_id)}", {"is_paused": paused})
            self.log.info("%s %s", "Paused" if paused else "Resumed", dag_id)
        return before

    def active_runs(self, dag_id: str, states: tuple[str, ...] = _ACTIVE) -> list[str]:
        """Run ids of ``dag_id`` in ``states`` (default queued or running; a paused DAG finishes the run it
        has, and starts no queued one until it is resumed)."""
        res = self._call(
            "GET", f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns?limit=50&order_by=-start_date"
        )
        return [r["dag_run_id"] for r in res.get("dag_runs", []) if r.get("state") in states]

    def wait_idle(
        self, dag_id: str, timeout: float, poll: float = 5.0, states: tuple[str, ...] = _ACTIVE
    ) -> None:
        """Wait until ``dag_id`` has no run in ``states`` (after pausing it; ``("running",)``: a queued
        run of a paused DAG waits for the resume and touches nothing meanwhile)."""
        deadline = time.monotonic() + timeout
        while runs := self.active_runs(dag_id, states):
            if time.monotonic() > deadline:
                raise AirflowApiError(f"{dag_id} still has active run(s) {runs} after {timeout:.0f}s")
            self.log.info("Waiting for %s to finish %s", dag_id, runs)
            time.sleep(poll)
