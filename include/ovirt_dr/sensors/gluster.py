"""GlusterGeoRepCheckpointSensor: wait until geo-replication has completed this run's checkpoint."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from ovirt_dr.triggers.gluster import GeoRepCheckpointTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class GeoRepWaitError(RuntimeError):
    """The checkpoint did not complete: Faulty session, timeout, or status unreadable."""


class GlusterGeoRepCheckpointSensor(BaseSensorOperator):
    """Defer to ``GeoRepCheckpointTrigger`` so the (possibly hour-long) wait holds no worker slot.

    :param ssh_conn_id: SSH connection to a master Gluster node.
    :param checkpoint: the checkpoint step's result ``{"epoch", "label"}`` (templated XComArg).
    :param checkpoint_timeout: how long the wait may last in total.
    :param faulty_grace: how long the session may stay Faulty before the wait fails.
    :param poll_interval: seconds between status polls in the triggerer.
    """

    template_fields: Sequence[str] = ("checkpoint",)

    def __init__(
        self,
        *,
        ssh_conn_id: str,
        master_volume: str,
        slave_host: str,
        slave_volume: str,
        slave_user: str = "root",
        checkpoint: Any,
        checkpoint_timeout: timedelta = timedelta(hours=2),
        faulty_grace: timedelta = timedelta(minutes=5),
        poll_interval: timedelta = timedelta(seconds=30),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ssh_conn_id = ssh_conn_id
        self.master_volume = master_volume
        self.slave_host = slave_host
        self.slave_volume = slave_volume
        self.slave_user = slave_user
        self.checkpoint = checkpoint
        self.checkpoint_timeout = checkpoint_timeout
        self.faulty_grace = faulty_grace
        self.poll_interval = poll_interval

    def execute(self, context: Context) -> None:
        label = (self.checkpoint or {}).get("label") if isinstance(self.checkpoint, dict) else None
        if not label:
            raise GeoRepWaitError(f"no checkpoint label from the checkpoint step: {self.checkpoint!r}")
        self.log.info("Deferring: waiting for checkpoint %s (timeout %s)", label, self.checkpoint_timeout)
        self.defer(
            trigger=GeoRepCheckpointTrigger(
                ssh_conn_id=self.ssh_conn_id,
                master_volume=self.master_volume,
                slave_host=self.slave_host,
                slave_volume=self.slave_volume,
                slave_user=self.slave_user,
                checkpoint_label=label,
                timeout_at=time.time() + self.checkpoint_timeout.total_seconds(),
                faulty_grace_s=self.faulty_grace.total_seconds(),
                poll_interval_s=self.poll_interval.total_seconds(),
            ),
            method_name="execute_complete",
            timeout=self.checkpoint_timeout + timedelta(minutes=5),
        )

    def poke(self, context: Context) -> bool:  # pragma: no cover - always deferred
        raise GeoRepWaitError("this sensor only runs deferred")

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event or event.get("status") != "success":
            raise GeoRepWaitError((event or {}).get("message", "the trigger ended without an event"))
        self.log.info(
            "Checkpoint %s completed at %s after %s poll(s)",
            event["checkpoint_label"],
            event.get("completed_at"),
            event.get("polls"),
        )
        return event
