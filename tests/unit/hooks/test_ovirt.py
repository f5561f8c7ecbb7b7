"""OvirtHook: the connection's transport rules (https only, a warning for ``insecure``; nothing is contacted)
and its waits on scripted engine answers (one batched read per poll; the lab tests use the emulator)."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace as NS

import pytest

from ovirt_dr.hooks.ovirt import OvirtError, OvirtHook, enum_value, status_of


def snap(status: str) -> NS:
    return NS(snapshot_status=NS(value=status))


class Scripted(OvirtHook):
    """Answers ``get_snapshots`` from a list of polls: ``{ref: status or None (gone)}`` per poll."""

    def __init__(self, polls: list[dict]) -> None:
        super().__init__("unused")
        self.polls = polls
        self.reads: list[list] = []

    def get_snapshots(self, refs):
        self.reads.append(list(refs))
        answer = self.polls[min(len(self.reads), len(self.polls)) - 1]
        return {r: (snap(answer[r]) if answer.get(r) else None) for r in refs}


A, B, C = ("vm-a", "s-a"), ("vm-b", "s-b"), ("vm-c", "s-c")


def test_wait_snapshots_ok_reads_all_in_one_request_per_poll_and_reports_each_failure():
    hook = Scripted(
        [{A: "locked", B: "locked", C: "locked"}, {A: "ok", B: "illegal", C: "locked"}, {C: "ok"}]
    )
    assert hook.wait_snapshots_ok([A, B, C], timeout=60, poll=0) == {B: "ended illegal"}
    assert hook.reads == [[A, B, C], [A, B, C], [C]]


def test_wait_snapshots_ok_names_a_vanished_and_a_still_locked_snapshot():
    hook = Scripted([{A: "locked", B: None}])
    out = hook.wait_snapshots_ok([A, B], timeout=0, poll=0)
    assert out == {B: "disappeared while being created", A: "still locked after 0s"}


def test_wait_snapshots_gone_returns_what_is_still_there_at_the_deadline():
    gone = Scripted([{A: "locked", B: "ok"}, {A: "locked"}, {}])
    assert gone.wait_snapshots_gone([A, B], timeout=60, poll=0) == []
    assert gone.reads == [[A, B], [A, B], [A]]
    assert Scripted([{A: "ok"}]).wait_snapshots_gone([A], timeout=0, poll=0) == [A]


def test_sdk_values():
    assert enum_value(NS(value="up")) == "up" and enum_value("up") == "up" and enum_value(None) is None
    assert status_of(NS(status=NS(value="down"))) == "down" and status_of(NS()) is None


# -- transport -------------------------------------------------------------------------------------------
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
