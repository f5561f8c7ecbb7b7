"""GeoRepCheckpointTrigger driven as the triggerer drives it, on real captured `status detail --xml` output."""

from __future__ import annotations

import asyncio
import importlib
import time
from pathlib import Path
from types import SimpleNamespace as NS

from ovirt_dr.gluster import GeoRepSession
from ovirt_dr.hooks.node import CommandResult, GlusterNodeHook
from ovirt_dr.triggers.gluster import GeoRepCheckpointTrigger

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "gluster"
DONE = (FIX / "status-detail-checkpoint-completed.xml").read_text()
DONE_2ND = (FIX / "status-detail-checkpoint-completed-2nd.xml").read_text()
SYNCING = (FIX / "status-detail-syncing-changelog.xml").read_text()
FAULTY = (FIX / "status-detail-faulty.xml").read_text()
LABEL = "2026-11-21 14:55:49"  # the checkpoint time in status-detail-checkpoint-completed.xml


def trigger(**kw) -> GeoRepCheckpointTrigger:
    args = dict(
        ssh_conn_id="gluster_primary",
        session=GeoRepSession("gvmaster", "127.0.0.1", "gvslave").as_dict(),
        checkpoint_label=LABEL,
        timeout_at=time.time() + 60,
        faulty_grace_s=60,
        poll_interval_s=0,
    )
    args.update(kw)
    return GeoRepCheckpointTrigger(**args)


def drive(trig: GeoRepCheckpointTrigger, answers: list, monkeypatch) -> tuple[dict, int]:
    """Run the trigger to its event; the node answers each status command from ``answers`` (XML or an
    exception), through the real hook's ``async_status`` (so its classification is the one tested)."""
    calls = {"n": 0}

    async def async_run(_node, argv, timeout=None):
        a = answers[min(calls["n"], len(answers) - 1)]
        calls["n"] += 1
        if isinstance(a, Exception):
            raise a
        return CommandResult(0, a, "")

    monkeypatch.setattr(GlusterNodeHook, "async_run", async_run)

    async def first():
        async for event in trig.run():
            return event.payload

    return asyncio.run(first()), calls["n"]


def test_serialize_round_trip():
    t = trigger()
    path, kwargs = t.serialize()
    module, name = path.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert path == "ovirt_dr.triggers.gluster.GeoRepCheckpointTrigger"


def test_completes_only_for_this_checkpoint(monkeypatch):
    payload, polls = drive(trigger(), [SYNCING, SYNCING, DONE], monkeypatch)
    assert payload["status"] == "success" and polls == 3
    assert payload["completed_at"].startswith("2026-11-21T14:56:03")


def test_a_completed_older_checkpoint_does_not_count(monkeypatch):
    payload, _ = drive(trigger(timeout_at=time.time() + 0.2, poll_interval_s=0.05), [DONE_2ND], monkeypatch)
    assert payload["status"] == "error" and "not completed by the timeout" in payload["message"]


def test_faulty_longer_than_grace_fails_fast(monkeypatch):
    payload, _ = drive(trigger(faulty_grace_s=0.1, poll_interval_s=0.05), [FAULTY], monkeypatch)
    assert payload["status"] == "error" and "Faulty or not running for more than" in payload["message"]


def test_a_session_that_never_runs_fails_after_the_grace(monkeypatch):
    stopped = (FIX / "status-detail-stopped.xml").read_text()
    payload, _ = drive(trigger(faulty_grace_s=0.1, poll_interval_s=0.05), [stopped], monkeypatch)
    assert payload["status"] == "error" and "not running" in payload["message"]


def test_faulty_within_grace_then_recovers(monkeypatch):
    payload, _ = drive(trigger(faulty_grace_s=30), [FAULTY, FAULTY, DONE], monkeypatch)
    assert payload["status"] == "success"


def test_ssh_blips_are_retried_then_give_up(monkeypatch):
    payload, _ = drive(trigger(), [OSError("reset"), OSError("reset"), DONE], monkeypatch)
    assert payload["status"] == "success"
    payload, polls = drive(trigger(), [OSError("reset")], monkeypatch)
    assert payload["status"] == "error" and polls == 5


def test_one_ssh_connection_for_the_whole_wait(monkeypatch):
    """Every poll of one run of the trigger reuses one asyncssh connection, closed when the wait ends."""
    import airflow.providers.ssh.hooks.ssh as ssh_module

    monkeypatch.setenv(
        "AIRFLOW_CONN_GLUSTER_PRIMARY",
        '{"conn_type": "ssh", "host": "node", "extra": {"host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"}}',
    )
    answers = [SYNCING, SYNCING, DONE]
    conns = []

    class Conn:
        closed = False

        async def run(self, command, check=False, timeout=None):
            return NS(exit_status=0, stdout=answers.pop(0), stderr="")

        def close(self):
            self.closed = True

        async def wait_closed(self):
            pass

    async def get_conn(self):
        conns.append(Conn())
        return conns[-1]

    monkeypatch.setattr(ssh_module.SSHHookAsync, "get_conn", get_conn)

    async def first():
        async for event in trigger().run():
            return event.payload

    payload = asyncio.run(first())
    assert payload["status"] == "success" and payload["polls"] == 3
    assert len(conns) == 1 and conns[0].closed


def test_a_missing_session_ends_the_wait_at_once(monkeypatch):
    missing = (FIX / "status-xml-no-session.txt").read_text()
    plain = (FIX / "status-no-session.txt").read_text()
    replies = [CommandResult(2, missing, ""), CommandResult(1, "", plain)]

    async def async_run(_node, argv, timeout=None):
        return replies.pop(0)

    monkeypatch.setattr(GlusterNodeHook, "async_run", async_run)

    async def first():
        async for event in trigger().run():
            return event.payload

    payload = asyncio.run(first())
    assert payload["status"] == "error" and "No active geo-replication sessions" in payload["message"]
    assert payload["polls"] == 1
