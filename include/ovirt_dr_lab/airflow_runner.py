"""Run the real Airflow (``airflow standalone``: scheduler, triggerer, dag-processor, API server) for the lab.

Used by ``make demo`` and the end-to-end tests, so both exercise exactly what a user runs. Airflow is
started in its own process group with ``setsid`` and stopped by signalling that group (SIGTERM to the
parent alone orphans the scheduler and triggerer; see reference/airflow-3.3.md), by the PID this module
recorded, never by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


class AirflowRunError(RuntimeError):
    """Airflow did not start, or the API refused a request: the message has the log's tail."""


def _group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` is still running (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@dataclass
class AirflowStandalone:
    """One ``airflow standalone`` for the lab.

    :param home: ``AIRFLOW_HOME`` (database, logs, generated admin password).
    :param env: extra environment (the lab's ``AIRFLOW_CONN_*``, ``OVIRT_DR_CONFIG``...).
    :param port: API server port on 127.0.0.1.
    """

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 28080
    dags_folder: Path = REPO / "dags"
    parallelism: int = 4
    _token: str | None = None

    @property
    def pid_file(self) -> Path:
        return self.home / "standalone.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "standalone.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "_AIRFLOW_PARSING_CONTEXT"))
        }
        env.update(
            {
                "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                # the RPO dashboard, and the deadline references the sync DAGs' alerts need
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                # task workers reach the API server here; it must follow the port above
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            }
        )
        env.update(self.env)
        return env

    # -- lifecycle ------------------------------------------------------------------------------------
    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def start(self, timeout: float = 180) -> None:
        """Start (or reuse a running) standalone and wait until the API answers and the DAGs are parsed."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.running_pid() is None:
            with self.log_file.open("ab") as log:
                proc = subprocess.Popen(
                    ["setsid", str(Path(sys.executable).parent / "airflow"), "standalone"],
                    env=self.environment(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.home,
                )
            self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as r:
                    health = json.load(r)
                if all(
                    (health.get(part) or {}).get("status") == "healthy"
                    for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                ):
                    return
            except (OSError, ValueError):
                pass
            if self.running_pid() is None:
                raise AirflowRunError(f"airflow standalone exited; log tail:\n{self.log_tail()}")
            time.sleep(2)
        raise AirflowRunError(
            f"airflow standalone not healthy after {timeout:.0f}s; log tail:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 60) -> None:
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        try:
            os.killpg(pid, signal.SIGTERM)  # setsid made pid the group leader
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:  # reap the leader when this process started it, or it lingers as a zombie
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not _group_alive(pid):
                break
            time.sleep(0.5)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.pid_file.unlink(missing_ok=True)
        self._token = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def admin_password(self) -> str:
        path = self.home / "simple_auth_manager_passwords.json.generated"
        return json.loads(path.read_text())["admin"]

    # -- REST API ------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(6):
            req = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    text = r.read().decode()
                return json.loads(text) if text else None
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:500]
                # SQLite behind the lab's Airflow answers 500 "Database error" while another component
                # writes; GET and PATCH are idempotent here, so try again.
                if e.code >= 500 and method in ("GET", "PATCH") and attempt < 5:
                    time.sleep(1 + attempt)
                    continue
                raise AirflowRunError(f"{method} {path}: {e.code} {detail}") from e
        raise AirflowRunError(f"{method} {path}: no answer")

    def token(self) -> str:
        if self._token is None:
            res = self._request(
                "POST", "/auth/token", {"username": "admin", "password": self.admin_password()}, auth=False
            )
            self._token = res["access_token"]
        return self._token

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return self._request(method, f"/api/v2{path}", body)

    def ensure_pool(self, name: str, slots: int = 1, description: str = "") -> None:
        """Create or reset a pool; deferred tasks count, so a checkpoint wait keeps its session's slot."""
        body = {"name": name, "slots": slots, "description": description, "include_deferred": True}
        try:
            self.api("GET", f"/pools/{name}")
            self.api("PATCH", f"/pools/{name}", body)
        except AirflowRunError:
            self.api("POST", "/pools", body)

    def set_pool_slots(self, name: str, slots: int) -> None:
        self.api("PATCH", f"/pools/{name}", {"name": name, "slots": slots, "include_deferred": True})

    def wait_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has serialized ``dag_id``; fail with the import errors otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self.api("GET", f"/dags/{dag_id}")
            except AirflowRunError:
                time.sleep(2)
        errors = self.api("GET", "/importErrors")
        raise AirflowRunError(f"DAG {dag_id} not parsed within {timeout:.0f}s; import errors: {errors}")

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": True})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        res = self.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return res["dag_run_id"]

    def first_run(self, dag_id: str, timeout: float = 30) -> str:
        """The run an unpause starts (the schedule's latest tick), or a manual one if none comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = [r for r in self.runs(dag_id) if r["state"] in ("queued", "running")]
            if runs:
                return runs[-1]["dag_run_id"]
            time.sleep(2)
        return self.trigger(dag_id)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns?order_by=-start_date&limit=100")["dag_runs"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float, progress: Any = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if progress:
                states = {t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)}
                if states != last:
                    progress(states)
                    last = states
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(3)
        raise AirflowRunError(f"run {run_id} of {dag_id} not finished within {timeout:.0f}s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        try:
            res = self.api(
                "GET",
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}?deserialize=true",
            )
        except AirflowRunError:
            return None
        value = res.get("value")
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        res = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}?full_content=true",
        )
        content = res.get("content") if isinstance(res, dict) else res
        if isinstance(content, list):
            return "\n".join(_log_line(c) for c in content)
        return str(content)


def _log_line(entry: Any) -> str:
    """One structured log entry as the UI shows it: the event, then each exception's type and message
    (a failed task's reason is in ``error_detail``, not in the event)."""
    if not isinstance(entry, dict):
        return str(entry)
    lines = [str(entry.get("event", entry))]
    for err in entry.get("error_detail") or []:
        if isinstance(err, dict):
            lines.append(f"{err.get('exc_type')}: {err.get('exc_value')}")
    return "\n".join(lines)
