"""Transport rules: the engine only over https (a warning for ``insecure``), SSH only with a pinned host key.

Unit tests of the two hooks and the trigger against connections from environment variables; nothing is
contacted (each check happens before any connection is opened, which the recording fakes prove).
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from ovirt_dr.hooks.gluster import GlusterGeoRepHook
from ovirt_dr.hooks.ovirt import OvirtError, OvirtHook
from ovirt_dr.hooks.ssh_pinning import HostKeyNotPinned
from ovirt_dr.triggers.gluster import GeoRepCheckpointTrigger

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ"


def _log(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """Airflow's structlog setup prints to stdout; plain logging goes to caplog."""
    return capsys.readouterr().out + caplog.text


def ovirt_conn(monkeypatch, host: str, **extra) -> OvirtHook:
    conn = {
        "conn_type": "ovirt",
        "host": host,
        "login": "admin@internal",
        "password": "s3cret",
        "extra": extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_ENGINE_T", json.dumps(conn))
    return OvirtHook(ovirt_conn_id="engine_t")


@pytest.mark.parametrize(
    "host",
    [
        "http://engine.example.com/ovirt-engine/api",
        "HTTP://engine.example.com/ovirt-engine/api",
        "ftp://engine.example.com/ovirt-engine/api",
    ],
)
def test_engine_url_must_be_https(monkeypatch, host):
    hook = ovirt_conn(monkeypatch, host, ca_file="/etc/pki/ovirt-engine/ca.pem")
    with pytest.raises(OvirtError, match="must be https://"):
        hook.connection_kwargs()


def test_engine_url_carries_no_credentials(monkeypatch):
    hook = ovirt_conn(monkeypatch, "https://admin:pw@engine.example.com/ovirt-engine/api", ca_file="/ca.pem")
    with pytest.raises(OvirtError, match="no user or password in it"):
        hook.connection_kwargs()


def test_engine_host_alone_becomes_the_https_api_url(monkeypatch):
    kwargs = ovirt_conn(monkeypatch, "engine.example.com", ca_file="/ca.pem").connection_kwargs()
    assert kwargs["url"] == "https://engine.example.com/ovirt-engine/api"
    assert kwargs["insecure"] is False and kwargs["ca_file"] == "/ca.pem"


def test_insecure_engine_connection_warns_loudly(monkeypatch, capsys, caplog):
    caplog.set_level(logging.WARNING)
    kwargs = ovirt_conn(
        monkeypatch, "https://engine.example.com/ovirt-engine/api", insecure=True
    ).connection_kwargs()
    assert kwargs["insecure"] is True
    out = _log(capsys, caplog)
    assert "TLS certificate verification is OFF" in out and "engine_t" in out
    assert "s3cret" not in out


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
    assert isinstance(GlusterGeoRepHook(ssh_conn_id="node_t").ssh_hook, RecordingSSHHook)
    assert recording_ssh.made == ["node_t"]


def test_unpinned_only_by_explicit_opt_out_and_logged(monkeypatch, recording_ssh, capsys, caplog):
    caplog.set_level(logging.WARNING)
    ssh_conn(monkeypatch, "node_t", allow_unpinned_host_key=True)
    assert isinstance(GlusterGeoRepHook(ssh_conn_id="node_t").ssh_hook, RecordingSSHHook)
    assert recording_ssh.made == ["node_t"]
    out = _log(capsys, caplog)
    assert "host key is NOT pinned" in out and "node_t" in out


def trigger(conn_id: str) -> GeoRepCheckpointTrigger:
    return GeoRepCheckpointTrigger(
        ssh_conn_id=conn_id,
        master_volume="gvmaster",
        slave_host="dr.example.com",
        slave_volume="gvslave",
        slave_user="root",
        checkpoint_label="2026-11-21 14:55:49",
        timeout_at=4102444800.0,
        faulty_grace_s=300.0,
        poll_interval_s=30.0,
    )


@pytest.fixture
def recording_async(monkeypatch):
    import airflow.providers.ssh.hooks.ssh as ssh_module

    calls: list[str] = []

    async def run_command(self, command, timeout=None):
        calls.append(command)
        return 0, "<cliOutput/>", ""

    monkeypatch.setattr(ssh_module.SSHHookAsync, "run_command", run_command)
    return calls


def test_trigger_follows_the_same_rule(monkeypatch, recording_async):
    ssh_conn(monkeypatch, "node_t")
    with pytest.raises(HostKeyNotPinned):
        asyncio.run(trigger("node_t").fetch_status_xml())
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
    assert asyncio.run(trigger("node_t").fetch_status_xml()) == "<cliOutput/>"
    assert len(recording_async) == 1
