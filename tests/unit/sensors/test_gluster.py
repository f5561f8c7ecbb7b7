"""GlusterGeoRepCheckpointSensor: deferred to the trigger by default; without deferral, ``poke()`` reads the
status through the same hook and decides with the same ``CheckpointWait`` (real captured output)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ovirt_dr.gluster import GeoRepSession, build_georep_cmd
from ovirt_dr.hooks.node import CommandResult, GlusterNodeHook
from ovirt_dr.sensors.gluster import GeoRepWaitError, GlusterGeoRepCheckpointSensor

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "gluster"
DONE = (FIX / "status-detail-checkpoint-completed.xml").read_text()
SYNCING = (FIX / "status-detail-syncing-changelog.xml").read_text()
FAULTY = (FIX / "status-detail-faulty.xml").read_text()
LABEL = "2026-11-21 14:55:49"  # the checkpoint time in status-detail-checkpoint-completed.xml
S = GeoRepSession("gvmaster", "127.0.0.1", "gvslave")


def sensor(**kw) -> GlusterGeoRepCheckpointSensor:
    args = dict(task_id="w", ssh_conn_id="g", session=S, checkpoint={"epoch": 1795272949, "label": LABEL})
    args.update(kw)
    return GlusterGeoRepCheckpointSensor(**args)


def test_sensor_defers_and_checks_the_event():
    from airflow.sdk.exceptions import TaskDeferred

    s = sensor()
    with pytest.raises(TaskDeferred) as exc:
        s.execute({})
    assert exc.value.trigger.checkpoint_label == LABEL
    assert exc.value.trigger.session == S
    with pytest.raises(GeoRepWaitError, match="Faulty"):
        s.execute_complete({}, {"status": "error", "message": "session Faulty for more than 300s"})
    assert s.execute_complete({}, {"status": "success", "checkpoint_label": LABEL})["status"] == "success"
    with pytest.raises(GeoRepWaitError, match="no checkpoint label"):
        sensor(checkpoint=None).execute({})


def test_the_session_is_a_value_object():
    with pytest.raises(TypeError, match="session must be a GeoRepSession"):
        sensor(session={"master_volume": "gvmaster"})


class Node:
    """``GlusterNodeHook.run`` answering status commands from a list (XML, or an exception); counts closes."""

    def __init__(self, monkeypatch, answers: list) -> None:
        self.answers = list(answers)
        self.commands: list[list[str]] = []
        self.closes = 0
        node = self

        def run(_self, argv, check=True, timeout=None):
            node.commands.append(list(argv))
            a = node.answers.pop(0) if len(node.answers) > 1 else node.answers[0]
            if isinstance(a, Exception):
                raise a
            return CommandResult(*a) if isinstance(a, tuple) else CommandResult(0, a, "")

        def close(_self):
            node.closes += 1

        monkeypatch.setattr(GlusterNodeHook, "run", run)
        monkeypatch.setattr(GlusterNodeHook, "close", close)


def test_poke_works_without_deferral_through_the_hook(monkeypatch):
    node = Node(monkeypatch, [SYNCING, SYNCING, DONE])
    s = sensor(deferrable=False, poll_interval=timedelta(0))
    out = s.execute({})
    assert out["status"] == "success" and out["checkpoint_label"] == LABEL
    assert out["completed_at"].startswith("2026-11-21T14:56:03")
    assert node.commands == [build_georep_cmd(S, "status", "detail", xml=True)] * 3
    assert node.closes == 1  # the one SSH client of the wait is closed at its end


def test_poke_is_one_status_read_and_the_verdict(monkeypatch):
    Node(monkeypatch, [SYNCING])
    s = sensor(deferrable=False)
    assert s.poke({}) is False
    Node(monkeypatch, [DONE])
    assert s.poke({}).is_done


def test_poke_fails_when_faulty_past_the_grace(monkeypatch):
    Node(monkeypatch, [FAULTY])
    s = sensor(deferrable=False, faulty_grace=timedelta(0), poll_interval=timedelta(0))
    with pytest.raises(GeoRepWaitError, match="Faulty or not running for more than 0s"):
        s.execute({})


def test_poke_fails_at_once_on_a_missing_session(monkeypatch):
    missing = (FIX / "status-xml-no-session.txt").read_text()
    plain = (FIX / "status-no-session.txt").read_text()
    node = Node(monkeypatch, [(2, missing, ""), (1, "", plain)])
    with pytest.raises(GeoRepWaitError, match="No active geo-replication sessions"):
        sensor(deferrable=False, poll_interval=timedelta(0)).execute({})
    assert len(node.commands) == 2


def test_poke_rides_out_ssh_blips_then_gives_up(monkeypatch):
    Node(monkeypatch, [OSError("reset"), OSError("reset"), DONE])
    assert sensor(deferrable=False, poll_interval=timedelta(0)).execute({})["status"] == "success"
    Node(monkeypatch, [OSError("reset")])
    with pytest.raises(GeoRepWaitError, match="failed 5 times"):
        sensor(deferrable=False, poll_interval=timedelta(0)).execute({})
