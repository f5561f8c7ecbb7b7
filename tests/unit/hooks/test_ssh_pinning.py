"""SSH host-key pinning on every path: the node access (paramiko) and the trigger's async path (asyncssh).

Connections come from environment variables; nothing is contacted (each check happens before any
connection is opened, which the recording fakes prove).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from ovirt_dr.gluster import GeoRepSession
from ovirt_dr.hooks.gluster import GlusterGeoRepHook
from ovirt_dr.hooks.node import GlusterNodeHook
from ovirt_dr.hooks.ssh_pinning import HostKeyNotPinned
from ovirt_dr.triggers.gluster import GeoRepCheckpointTrigger

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ"
DONE = (
    Path(__file__).resolve().parents[2] / "fixtures" / "gluster" / "status-detail-checkpoint-completed.xml"
).read_text()


def _log(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """Airflow's structlog setup prints to stdout; plain logging goes to caplog."""
    return capsys.readouterr().out + caplog.text


# -- SSH --------------------------------------------------------------------------------------------
class RecordingSSHHook:
    """Stands in for the SSH provider's hook: records that it was made (it would connect)."""

    made: list[str] = []

    def __init__(self, ssh_conn_id: str, cmd_timeout=None) -> None:
        RecordingSSHHook.made.append(ssh_conn_id)


@pytest.fixture
def recording_ssh(monkeypatch):
    import airflow.providers.ssh.hooks.ssh as ssh_module

    RecordingSSHHook.made = []
    monkeypatch.setattr(ssh_module, "SSHHook", RecordingSSHHook)
    return RecordingSSHHook


def ssh_conn(monkeypatch, conn_id: str, **extra) -> None:
    conn = {"conn_type": "ssh", "host": "gluster1.example.com", "login": "root", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"host_key": ""},
        {"no_host_key_check": True},
        {"host_key": HOST_KEY, "allow_host_key_change": "true"},
        {"allow_unpinned_host_key": "false"},
    ],
)
def test_gluster_hook_refuses_an_unpinned_connection_before_connecting(monkeypatch, recording_ssh, extra):
    ssh_conn(monkeypatch, "node_t", **extra)
    hook = GlusterGeoRepHook(ssh_conn_id="node_t")
    with pytest.raises(HostKeyNotPinned, match="does not pin the node's host key"):
        hook.run(["true"])
    assert recording_ssh.made == []


def test_gluster_hook_takes_a_pinned_connection(monkeypatch, recording_ssh):
    ssh_conn(monkeypatch, "node_t", host_key=HOST_KEY)
    assert isinstance(GlusterNodeHook(ssh_conn_id="node_t").ssh_hook, RecordingSSHHook)
    assert recording_ssh.made == ["node_t"]


def test_unpinned_only_by_explicit_opt_out_and_logged(monkeypatch, recording_ssh, capsys, caplog):
    caplog.set_level(logging.WARNING)
    ssh_conn(monkeypatch, "node_t", allow_unpinned_host_key=True)
    assert isinstance(GlusterNodeHook(ssh_conn_id="node_t").ssh_hook, RecordingSSHHook)
    assert recording_ssh.made == ["node_t"]
    out = _log(capsys, caplog)
    assert "host key is NOT pinned" in out and "node_t" in out


def trigger(conn_id: str) -> GeoRepCheckpointTrigger:
    return GeoRepCheckpointTrigger(
        ssh_conn_id=conn_id,
        session=GeoRepSession("gvmaster", "dr.example.com", "gvslave").as_dict(),
        checkpoint_label="2026-11-21 14:55:49",
        timeout_at=4102444800.0,
        faulty_grace_s=300.0,
        poll_interval_s=30.0,
    )


@pytest.fixture
def recording_async(monkeypatch):
    """``SSHHookAsync.get_conn`` recorded (it would connect); the connection answers ``DONE`` to anything."""
    import airflow.providers.ssh.hooks.ssh as ssh_module

    calls: list[str] = []

    class Conn:
        async def run(self, command, check=False, timeout=None):
            calls.append(command)
            return NS(exit_status=0, stdout=DONE, stderr="")

        def close(self):
            pass

        async def wait_closed(self):
            pass

    async def get_conn(self):
        calls.append(f"connect {self.ssh_conn_id}")
        return Conn()

    monkeypatch.setattr(ssh_module.SSHHookAsync, "get_conn", get_conn)
    return calls


def test_the_async_path_follows_the_same_rule(monkeypatch, recording_async):
    ssh_conn(monkeypatch, "node_t")
    with pytest.raises(HostKeyNotPinned):
        asyncio.run(GlusterNodeHook(ssh_conn_id="node_t").async_run(["true"]))
    assert recording_async == []


def test_trigger_fails_at_once_on_an_unpinned_connection(monkeypatch, recording_async):
    ssh_conn(monkeypatch, "node_t", no_host_key_check=True)

    async def first_event():
        async for event in trigger("node_t").run():
            return event.payload

    payload = asyncio.run(first_event())
    assert payload["status"] == "error" and "does not pin the node's host key" in payload["message"]
    assert recording_async == []


def test_trigger_takes_a_pinned_connection(monkeypatch, recording_async):
    ssh_conn(monkeypatch, "node_t", host_key=HOST_KEY)

    async def first_event():
        async for event in trigger("node_t").run():
            return event.payload

    assert asyncio.run(first_event())["status"] == "success"
    assert recording_async[0] == "connect node_t" and len(recording_async) == 2
