"""Lab dir layout, the state file, command running and processes by PID.

``up`` records every change it makes outside the lab dir (packages, root's SSH files, /etc/hosts, which
daemons it started) in ``<lab>/state.json`` *before* making it, so that ``down`` undoes exactly that, also
after a half-finished ``up``. Processes are stopped only by the PID the lab recorded, checked against the
process start time so a recycled PID is never killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovirt_dr_lab.labenv import lab_dir

#: The environment glusterd and gluster commands get (reference pitfall 5: glusterd passes its PATH on to
#: gsyncd, which then runs under the venv's python3 instead of the system one).
CLEAN_ENV: dict[str, str] = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}


class LabError(RuntimeError):
    """A lab step failed; the message says which step and carries the command's output."""


def log(msg: str) -> None:
    """Progress on stderr so that stdout stays for the summary."""
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class LabPaths:
    """Every path of the lab dir, in one place so ``up``, ``down`` and ``status`` agree."""

    root: Path

    @classmethod
    def default(cls) -> LabPaths:
        return cls(lab_dir())

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def bricks(self) -> Path:
        return self.root / "bricks"

    @property
    def mnt(self) -> Path:
        return self.root / "mnt"

    @property
    def master_mount(self) -> Path:
        return self.mnt / "gvmaster"

    @property
    def slave_mount(self) -> Path:
        return self.mnt / "gvslave"

    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    @property
    def mail(self) -> Path:
        return self.root / "mail"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def env_json(self) -> Path:
        return self.root / "env.json"

    @property
    def env_sh(self) -> Path:
        return self.root / "env.sh"

    def engine_dir(self, site: str) -> Path:
        return self.root / f"engine-{site}"

    def pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"


class State:
    """``<lab>/state.json``: what ``up`` changed, read back by ``down``; saved after every change."""

    def __init__(self, paths: LabPaths) -> None:
        self.paths = paths
        try:
            self.data: dict[str, Any] = json.loads(paths.state_file.read_text())
        except (FileNotFoundError, ValueError):
            self.data = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def section(self, key: str) -> dict[str, Any]:
        return self.data.setdefault(key, {})

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def save(self) -> None:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        tmp = self.paths.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.paths.state_file)


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; on failure raise :class:`LabError` with the command and its output."""
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout:.0f} s: {' '.join(argv)}") from exc
    except FileNotFoundError as exc:
        raise LabError(f"command not found: {argv[0]}") from exc
    if check and proc.returncode != 0:
        raise LabError(
            f"command failed (rc {proc.returncode}): {' '.join(argv)}\n"
            f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
        )
    return proc


BUSY = "Another transaction is in progress"


def gluster(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``gluster --mode=script ...`` with the clean environment.

    glusterd takes a cluster-wide lock per volume: while another client (a test, the pipeline) runs a command
    on the same volume, it answers "Another transaction is in progress"; retry that for up to 30 s.
    """
    deadline = time.monotonic() + 30
    while True:
        proc = run(["gluster", "--mode=script", *args], check=False, timeout=timeout, env=CLEAN_ENV)
        if proc.returncode == 0 or BUSY not in proc.stdout + proc.stderr or time.monotonic() > deadline:
            break
        time.sleep(1)
    if check and proc.returncode != 0:
        raise LabError(
            f"command failed (rc {proc.returncode}): gluster {' '.join(args)}\n"
            f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
        )
    return proc


# --- processes by PID -------------------------------------------------------------------------------------


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie is as good as gone
        return None
    return int(fields[19])


def proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def record_process(paths: LabPaths, name: str, pid: int) -> None:
    """Write ``<lab>/pids/<name>.pid`` (just the PID, as every tool expects) and ``<name>.start`` (its start time).

    The start time lets ``down`` tell the recorded process from a later one that got the same PID.
    """
    paths.pids.mkdir(parents=True, exist_ok=True)
    start = proc_start_time(pid)
    paths.pid_file(name).write_text(f"{pid}\n")
    paths.pid_file(name).with_suffix(".start").write_text(f"{start if start is not None else ''}\n")


def recorded_pid(paths: LabPaths, name: str) -> int | None:
    """The PID in ``<lab>/pids/<name>.pid`` if that very process (same start time) is still alive."""
    try:
        pid = int(paths.pid_file(name).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    start = proc_start_time(pid)
    if start is None:
        return None
    try:
        recorded = paths.pid_file(name).with_suffix(".start").read_text().strip()
    except OSError:
        recorded = ""
    if recorded and int(recorded) != start:
        return None  # PID reused by another process since the lab recorded it
    return pid


def spawn(
    paths: LabPaths,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached (own session, so it outlives ``ovirt-dr-lab up``), log to ``<lab>/logs/<name>.log``."""
    paths.logs.mkdir(parents=True, exist_ok=True)
    with open(paths.log_file(name), "ab") as logf:
        logf.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(argv)}\n".encode())
        logf.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd else None,
        )
    record_process(paths, name, proc.pid)
    return proc.pid


def descendants(pid: int) -> list[tuple[int, int]]:
    """``(pid, start time)`` of every live descendant of ``pid`` (by PPID in /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[tuple[int, int]] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        start = proc_start_time(child)
        if start is not None:
            found.append((child, start))
        todo.extend(children.get(child, []))
    return found


def stop_recorded(paths: LabPaths, name: str, timeout: float = 15, with_descendants: bool = False) -> bool:
    """Stop the process recorded as ``name`` (SIGTERM, then SIGKILL); True if one was running.

    Only the recorded PID is signalled, and only while its start time matches the record. With
    ``with_descendants`` its children (found before it exits, checked by start time) go too: an sshd
    listener's per-connection processes live in sessions of their own and outlive the listener otherwise.
    """
    pid = recorded_pid(paths, name)
    if pid is None:
        forget_process(paths, name)
        return False
    kids = descendants(pid) if with_descendants else []
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and recorded_pid(paths, name) == pid:
        _reap(pid)
        time.sleep(0.1)
    if recorded_pid(paths, name) == pid:
        log(f"{name} (pid {pid}) ignored SIGTERM for {timeout:.0f} s: SIGKILL")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        time.sleep(0.3)
        _reap(pid)
    for kid, start in kids:
        if proc_start_time(kid) == start:
            try:
                os.kill(kid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    forget_process(paths, name)
    return True


def forget_process(paths: LabPaths, name: str) -> None:
    paths.pid_file(name).unlink(missing_ok=True)
    paths.pid_file(name).with_suffix(".start").unlink(missing_ok=True)


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child (only when up and down run in one process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(what: str, predicate: Any, timeout: float, interval: float = 0.2) -> None:
    """Poll ``predicate()`` until true, else raise :class:`LabError` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def is_mounted(path: Path) -> bool:
    """True if ``path`` is a mount point per /proc/mounts (works even when the FUSE mount is dead: ENOTCONN)."""
    target = str(path)
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 1 and fields[1].replace("\\040", " ") == target:
                return True
    except OSError:
        pass
    return False


@contextlib.contextmanager
def lab_lock(paths: LabPaths) -> Iterator[None]:
    """Serialize ``up``, ``down`` and ``fault`` (make targets and tests may call them at the same time)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.root / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another ovirt-dr-lab up/down/fault is running: waiting for it")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield
