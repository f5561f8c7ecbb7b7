"""The checkpoint trigger never fires sooner than ``min_event_delay_s`` after it started (Airflow 3.3 fails a
deferred task whose trigger fires before the scheduler processed the deferral: apache/airflow#67287)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from airflow.sdk.exceptions import TaskDeferred

from ovirt_dr.gluster import GeoRepSession
from ovirt_dr.hooks.node import CommandResult, GlusterNodeHook
from ovirt_dr.sensors.gluster import GlusterGeoRepCheckpointSensor
from ovirt_dr.triggers.gluster import MIN_EVENT_DELAY_S, GeoRepCheckpointTrigger

DONE = (
    Path(__file__).resolve().parents[2] / "fixtures" / "gluster" / "status-detail-checkpoint-completed.xml"
).read_text()
LABEL = "2026-11-21 14:55:49"


def _first(trig: GeoRepCheckpointTrigger, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, float]:
    async def async_run(_node, argv, timeout=None):  # type: ignore[no-untyped-def]
        return CommandResult(0, DONE, "")

    monkeypatch.setattr(GlusterNodeHook, "async_run", async_run)

    async def first() -> dict:
        async for event in trig.run():
            return event.payload
        return {}

    t0 = time.monotonic()
    payload = asyncio.run(first())
    return payload, time.monotonic() - t0


def trigger(delay: float) -> GeoRepCheckpointTrigger:
    return GeoRepCheckpointTrigger(
        ssh_conn_id="gluster_primary",
        session=GeoRepSession("gvmaster", "127.0.0.1", "gvslave").as_dict(),
        checkpoint_label=LABEL,
        timeout_at=time.time() + 60,
        faulty_grace_s=60,
        poll_interval_s=0,
        min_event_delay_s=delay,
    )


def test_a_checkpoint_done_at_once_is_reported_after_the_delay(monkeypatch):
    payload, took = _first(trigger(0.6), monkeypatch)
    assert payload["status"] == "success" and took >= 0.6
    payload, took = _first(trigger(0.0), monkeypatch)
    assert payload["status"] == "success" and took < 0.5


def test_the_sensor_defers_with_the_delay_and_it_survives_serialization():
    sensor = GlusterGeoRepCheckpointSensor(
        task_id="wait",
        ssh_conn_id="gluster_primary",
        session=GeoRepSession("gvmaster", "127.0.0.1", "gvslave"),
        checkpoint={"epoch": 1, "label": LABEL},
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trig = deferred.value.trigger
    assert trig.min_event_delay_s == MIN_EVENT_DELAY_S >= 10
    path, kwargs = trig.serialize()
    assert kwargs["min_event_delay_s"] == MIN_EVENT_DELAY_S
    assert GeoRepCheckpointTrigger(**kwargs).min_event_delay_s == MIN_EVENT_DELAY_S
