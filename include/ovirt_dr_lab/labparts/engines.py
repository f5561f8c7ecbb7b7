"""The two oVirt engine emulators (helper A1's ``ovirt-dr-lab engine``), run as subprocesses of the lab.

Each prints ``API_URL=...`` and ``CA_FILE=...`` once it listens; ``up`` waits for both lines in the engine's
log, and on a timeout or an early exit fails with the log's tail so the reason is on screen.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import ovirt_dr_lab
from ovirt_dr_lab.labparts.common import (
    LabError,
    LabPaths,
    log,
    port_open,
    recorded_pid,
    spawn,
    stop_recorded,
    tail,
)

SITES: dict[str, int] = {"primary": 18443, "secondary": 18444}
START_TIMEOUT = 90.0


def sites_dir() -> Path:
    return Path(ovirt_dr_lab.__file__).resolve().parent / "sites"


def lab_cli() -> list[str]:
    """``<venv>/bin/ovirt-dr-lab`` next to this interpreter, else ``python -m ovirt_dr_lab.cli``."""
    exe = Path(sys.executable).parent / "ovirt-dr-lab"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "ovirt_dr_lab.cli"]


def api_url(site: str) -> str:
    return f"https://127.0.0.1:{SITES[site]}/ovirt-engine/api"


def ca_file(paths: LabPaths, site: str) -> Path:
    return paths.engine_dir(site) / "ca.pem"


def name(site: str) -> str:
    return f"engine-{site}"


def start(paths: LabPaths, site: str, lab_env: dict[str, str]) -> bool:
    """Start one engine unless it already runs; True if started. Waits for its API_URL/CA_FILE lines."""
    port = SITES[site]
    if recorded_pid(paths, name(site)) is not None and port_open(port):
        return False
    if port_open(port):
        raise LabError(f"127.0.0.1:{port} is taken by a process the lab did not start; free it and retry")
    site_yaml = sites_dir() / f"{site}.yaml"
    if not site_yaml.exists():
        raise LabError(
            f"site file {site_yaml} is missing (the engine emulator's sites); run `up --no-engines`?"
        )
    state_dir = paths.engine_dir(site)
    state_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(lab_env)
    argv = [
        *lab_cli(),
        "engine",
        "--site",
        str(site_yaml),
        "--port",
        str(port),
        "--state-dir",
        str(state_dir),
    ]
    logf = paths.log_file(name(site))
    offset = logf.stat().st_size if logf.exists() else 0
    t0 = time.monotonic()
    pid = spawn(paths, name(site), argv, env=env)
    found: dict[str, str] = {}
    while time.monotonic() - t0 < START_TIMEOUT:
        with open(logf, "rb") as f:
            f.seek(offset)
            for line in f.read().decode(errors="replace").splitlines():
                for key in ("API_URL", "CA_FILE"):
                    if line.startswith(key + "="):
                        found[key] = line.split("=", 1)[1].strip()
        if len(found) == 2:
            break
        if recorded_pid(paths, name(site)) != pid:
            raise LabError(f"engine {site} exited during start-up; log tail:\n{tail(logf)}")
        time.sleep(0.2)
    else:
        stop_recorded(paths, name(site))
        raise LabError(
            f"engine {site} printed no API_URL/CA_FILE in {START_TIMEOUT:.0f} s; log tail:\n{tail(logf)}"
        )
    if found["API_URL"] != api_url(site):
        log(f"engine {site}: API_URL {found['API_URL']} differs from the contract's {api_url(site)}")
    if Path(found["CA_FILE"]) != ca_file(paths, site):
        log(f"engine {site}: CA_FILE {found['CA_FILE']} differs from the contract's {ca_file(paths, site)}")
    log(f"engine {site} up at {found['API_URL']} ({time.monotonic() - t0:.1f} s)")
    return True


def stop(paths: LabPaths, site: str) -> bool:
    return stop_recorded(paths, name(site), timeout=20)


def healthy(paths: LabPaths, site: str) -> bool:
    return recorded_pid(paths, name(site)) is not None and port_open(SITES[site])


def remove_state(paths: LabPaths) -> None:
    for site in SITES:
        shutil.rmtree(paths.engine_dir(site), ignore_errors=True)
