"""The lab's fault switches do what the reliability tests rely on, and switching them off restores the lab.

Each test switches its fault off in ``finally`` so a failure here cannot leave the lab broken for later tests.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ovirt_dr_lab.labenv import load_lab_env

pytestmark = pytest.mark.lab

CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}


def lab_cli(*args: str) -> str:
    exe = Path(sys.executable).parent / "ovirt-dr-lab"
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "ovirt_dr_lab.cli"]
    proc = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"ovirt-dr-lab {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def georep(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    lab = load_lab_env()
    slave = f"{lab['LAB_SLAVE_HOST']}::{lab['LAB_SLAVE_VOLUME']}"
    argv = ["gluster", "--mode=script", "volume", "geo-replication", lab["LAB_MASTER_VOLUME"], slave, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, env=CLEAN_ENV, timeout=120)
    assert not check or proc.returncode == 0, proc
    return proc


def worker_states() -> list[str]:
    root = ET.fromstring(georep("status", "detail", "--xml").stdout)
    return [n.text or "" for n in root.iter("status")]


def wait_for(states: set[str], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        seen = worker_states()
        if set(seen) & states:
            return seen
        time.sleep(1)
    raise AssertionError(f"geo-rep never reached {states} in {timeout:.0f} s: {seen}")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_drop_ssh_closes_and_reopens_the_lab_sshd() -> None:
    try:
        lab_cli("fault", "drop-ssh", "on")
        assert not port_open(2222)
        status = subprocess.run(
            [sys.executable, "-m", "ovirt_dr_lab.cli", "status"], capture_output=True, text=True
        )
        assert status.returncode == 1 and "drop-ssh" in status.stdout
    finally:
        lab_cli("fault", "drop-ssh", "off")
    assert port_open(2222)


def test_faulty_leaves_the_session_started_and_faulty_then_recovers() -> None:
    georep("stop", "force", check=False)
    try:
        out = lab_cli("fault", "faulty", "on")
        assert "session Faulty" in out, out
        assert "Faulty" in worker_states()
        started = georep("start", check=False)  # what the pipeline does: the session is already started
        assert started.returncode == 1 and "already started" in started.stderr + started.stdout
    finally:
        out = lab_cli("fault", "faulty", "off")
    assert "session Active" in out, out
    assert worker_states() == ["Stopped"], "off must stop the session the fault started"


def test_stop_slave_stops_and_restarts_the_slave_volume() -> None:
    lab = load_lab_env()
    slave_mount = Path(lab["LAB_SLAVE_MOUNT"])

    def volume_status() -> str:
        out = subprocess.run(
            ["gluster", "--mode=script", "volume", "info", lab["LAB_SLAVE_VOLUME"], "--xml"],
            capture_output=True,
            text=True,
            env=CLEAN_ENV,
            check=True,
        ).stdout
        return ET.fromstring(out).findtext(".//volume/statusStr") or ""

    try:
        lab_cli("fault", "stop-slave", "on")
        assert volume_status() == "Stopped"
    finally:
        lab_cli("fault", "stop-slave", "off")
    assert volume_status() == "Started"
    assert slave_mount.is_dir() and list(slave_mount.iterdir()) is not None  # the mount answers again


def test_slow_writes_data_and_limits_rsync() -> None:
    lab = load_lab_env()
    try:
        out = lab_cli("fault", "slow", "on", "--size-mb", "4", "--bwlimit-kbps", "1024")
        assert "4 MiB" in out
        assert georep("config", "rsync_options").stdout.strip() == "--bwlimit=1024"
        assert any((Path(lab["LAB_MASTER_MOUNT"]) / "lab-slow").glob("blob-*.bin"))
    finally:
        lab_cli("fault", "slow", "off")
    assert georep("config", "rsync_options").stdout.strip() == ""
    assert not (Path(lab["LAB_MASTER_MOUNT"]) / "lab-slow").exists()
