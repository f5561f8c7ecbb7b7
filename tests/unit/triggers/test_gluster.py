"""GeoRepCheckpointTrigger driven as the triggerer drives it, on real captured `status detail --xml` output."""

from __future__ import annotations

import asyncio
import importlib
import time
from pathlib import Path

import pytest

from ovirt_dr.sensors.gluster import GeoRepWaitError, GlusterGeoRepCheckpointSensor
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
        master_volume="gvmaster",
        slave_host="127.0.0.1",
        slave_volume="gvslave",
        slave_user="root",
        checkpoint_label=LABEL,
        timeout_at=time.time() + 60,
        faulty_grace_s=60,
        poll_interval_s=0,
    )
    args.update(kw)
    return GeoRepCheckpointTrigger(**args)


def drive(trig: GeoRepCheckpointTrigger, answers: list) -> tuple[dict, int]:
    calls = {"n": 0}

    async def fetch() -> str:
        a = answers[min(calls["n"], len(answers) - 1)]
        calls["n"] += 1
        if isinstance(a, Exception):
            raise a
        return a

    trig.fetch_status_xml = fetch

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


def test_completes_only_for_this_checkpoint():
    payload, polls = drive(trigger(), [SYNCING, SYNCING, DONE])
    assert payload["status"] == "success" and polls == 3
    assert payload["completed_at"].startswith("2026-11-21T14:56:03")


def test_a_completed_older_checkpoint_does_not_count():
    payload, _ = drive(trigger(timeout_at=time.time() + 0.2, poll_interval_s=0.05), [DONE_2ND])
    assert payload["status"] == "error" and "not completed by the timeout" in payload["message"]


def test_faulty_longer_than_grace_fails_fast():
    payload, _ = drive(trigger(faulty_grace_s=0.1, poll_interval_s=0.05), [FAULTY])
    assert payload["status"] == "error" and "Faulty or not running for more than" in payload["message"]


def test_a_session_that_never_runs_fails_after_the_grace():
    stopped = (FIX / "status-detail-stopped.xml").read_text()
    payload, _ = drive(trigger(faulty_grace_s=0.1, poll_interval_s=0.05), [stopped])
    assert payload["status"] == "error" and "not running" in payload["message"]


def test_faulty_within_grace_then_recovers():
    payload, _ = drive(trigger(faulty_grace_s=30), [FAULTY, FAULTY, DONE])
    assert payload["status"] == "success"


def test_ssh_blips_are_retried_then_give_up():
    payload, _ = drive(trigger(), [OSError("reset"), OSError("reset"), DONE])
    assert payload["status"] == "success"
    payload, polls = drive(trigger(), [OSError("reset")])
    assert payload["status"] == "error" and polls == 5


def test_sensor_defers_and_checks_the_event():
    from airflow.sdk.exceptions import TaskDeferred

    s = GlusterGeoRepCheckpointSensor(
        task_id="w",
        ssh_conn_id="g",
        master_volume="gvmaster",
        slave_host="127.0.0.1",
        slave_volume="gvslave",
        checkpoint={"epoch": 1, "label": LABEL},
    )
    with pytest.raises(TaskDeferred) as exc:
        s.execute({})
    assert exc.value.trigger.checkpoint_label == LABEL
    with pytest.raises(GeoRepWaitError, match="Faulty"):
        s.execute_complete({}, {"status": "error", "message": "session Faulty for more than 300s"})
    assert s.execute_complete({}, {"status": "success", "checkpoint_label": LABEL})["status"] == "success"
    bad = GlusterGeoRepCheckpointSensor(
        task_id="w2",
        ssh_conn_id="g",
        master_volume="gvmaster",
        slave_host="h",
        slave_volume="gvslave",
        checkpoint=None,
    )
    with pytest.raises(GeoRepWaitError, match="no checkpoint label"):
        bad.execute({})
