"""GeoRepCheckpointTrigger: wait for a geo-replication checkpoint in the triggerer, holding no worker slot.

It reads the session's status through ``GlusterGeoRepHook.async_status`` (the same commands and error
classification as the worker's ``status``, host key pinning checked first) on ONE asyncssh connection for
the whole wait, logs progress at every poll (entry/data/meta pending and last synced per worker), and
lets ``ovirt_dr.gluster.checkpoint.CheckpointWait`` decide: done when every Active worker reports
``checkpoint_completed=Yes`` for *this* checkpoint's time; Faulty (or not running) for longer than the
grace period, or the overall timeout, ends it with an error event instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from ovirt_dr.gluster import GeoRepSession, SessionNotFound
from ovirt_dr.gluster.checkpoint import CheckpointWait
from ovirt_dr.hooks.gluster import GlusterGeoRepHook
from ovirt_dr.hooks.ssh_pinning import HostKeyNotPinned

#: Status reads that may fail in a row (an SSH blip, a busy glusterd) before the wait gives up.
MAX_ERRORS_IN_ROW = 5
#: The soonest the sensor lets its trigger send the event, in seconds after the trigger started. Airflow 3.3
#: marks a deferred task FAILED when the trigger fires before the scheduler processed the worker's report of
#: the deferral itself (its "success" then arrives for a task already queued to resume: apache/airflow
#: #67287, #72716); seen in the lab when a checkpoint completed within ~5 s of the deferral.
MIN_EVENT_DELAY_S = 15.0


class GeoRepCheckpointTrigger(BaseTrigger):
    """Poll a geo-rep session until the checkpoint ``checkpoint_label`` is completed.

    :param ssh_conn_id: SSH connection to a master Gluster node.
    :param session: the geo-rep session, as ``GeoRepSession.as_dict()`` (a trigger's kwargs are JSON).
    :param checkpoint_label: node-local checkpoint time, as ``status detail`` shows it.
    :param timeout_at: epoch seconds after which the wait fails.
    :param faulty_grace_s: how long the session may stay Faulty before the wait fails.
    :param poll_interval_s: seconds between polls.
    :param min_event_delay_s: never send the event sooner than this after the trigger started (the sensor
        passes ``MIN_EVENT_DELAY_S``; 0 sends it at once).
    """

    def __init__(
        self,
        *,
        ssh_conn_id: str,
        session: Mapping[str, Any],
        checkpoint_label: str,
        timeout_at: float,
        faulty_grace_s: float,
        poll_interval_s: float,
        min_event_delay_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.ssh_conn_id = ssh_conn_id
        self.session = GeoRepSession.from_dict(session)
        self.checkpoint_label = checkpoint_label
        self.timeout_at = timeout_at
        self.faulty_grace_s = faulty_grace_s
        self.poll_interval_s = poll_interval_s
        self.min_event_delay_s = min_event_delay_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ssh_conn_id": self.ssh_conn_id,
                "session": self.session.as_dict(),
                "checkpoint_label": self.checkpoint_label,
                "timeout_at": self.timeout_at,
                "faulty_grace_s": self.faulty_grace_s,
                "poll_interval_s": self.poll_interval_s,
                "min_event_delay_s": self.min_event_delay_s,
            },
        )

    def make_hook(self) -> GlusterGeoRepHook:
        """The hook of one run of the trigger: its node access holds the one SSH connection of the wait."""
        return GlusterGeoRepHook(ssh_conn_id=self.ssh_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        hook = self.make_hook()
        try:
            payload = await self._wait(hook)
        finally:
            await hook.async_close()
        early = self.min_event_delay_s - (time.monotonic() - started)
        if early > 0:  # see MIN_EVENT_DELAY_S
            await asyncio.sleep(early)
        yield TriggerEvent(payload)

    async def _wait(self, hook: GlusterGeoRepHook) -> dict[str, Any]:
        wait = CheckpointWait(self.checkpoint_label, self.timeout_at, self.faulty_grace_s)
        polls = 0
        errors_in_row = 0
        while True:
            polls += 1
            try:
                status = await hook.async_status(self.session)
                errors_in_row = 0
            except (SessionNotFound, HostKeyNotPinned) as e:  # nothing will ever complete: say so at once
                return {"status": "error", "message": str(e), "polls": polls}
            except Exception as e:  # SSH blips and a busy glusterd happen: give up only when they persist
                errors_in_row += 1
                self.log.warning("poll %d: status failed (%d in a row): %s", polls, errors_in_row, e)
                if errors_in_row >= MAX_ERRORS_IN_ROW:
                    return {
                        "status": "error",
                        "message": f"geo-rep status failed {MAX_ERRORS_IN_ROW} times: {e}",
                        "polls": polls,
                    }
                await asyncio.sleep(self.poll_interval_s)
                continue
            self.log.info(
                "poll %d: checkpoint %s: %s", polls, self.checkpoint_label, status.progress_summary()
            )
            verdict = wait.verdict(status, time.time())
            if verdict is not None:
                return {**verdict, "polls": polls}
            await asyncio.sleep(self.poll_interval_s)
