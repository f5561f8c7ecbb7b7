"""GlusterGeoRepCheckpointSensor: wait until geo-replication has completed this run's checkpoint."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from ovirt_dr.gluster import GeoRepSession, SessionNotFound
from ovirt_dr.gluster.checkpoint import Checkpoint, CheckpointWait
from ovirt_dr.hooks.gluster import GlusterGeoRepHook
from ovirt_dr.hooks.ssh_pinning import HostKeyNotPinned
from ovirt_dr.triggers.gluster import MAX_ERRORS_IN_ROW, MIN_EVENT_DELAY_S, GeoRepCheckpointTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class GeoRepWaitError(RuntimeError):
    """The checkpoint did not complete: Faulty session, timeout, or status unreadable."""


class GlusterGeoRepCheckpointSensor(BaseSensorOperator):
    """Wait for the checkpoint step's checkpoint; deferred by default, so the (possibly hour-long) wait
    holds no worker slot.

    Deferred, ``GeoRepCheckpointTrigger`` polls in the triggerer. With ``deferrable=False`` the sensor pokes
    itself (``poke()``: one ``GlusterGeoRepHook.status`` and the same ``CheckpointWait`` verdict as the
    trigger, on one SSH connection for the whole wait), every ``poll_interval`` for at most
    ``checkpoint_timeout``. The Faulty grace is counted within one try, so in ``mode="reschedule"``
    (a fresh sensor per poke) only the timeout applies.

    :param ssh_conn_id: SSH connection to a master Gluster node.
    :param session: the geo-replication session.
    :param checkpoint: the checkpoint step's result ``{"epoch", "label"}`` (templated XComArg).
    :param checkpoint_timeout: how long the wait may last in total.
    :param faulty_grace: how long the session may stay Faulty before the wait fails.
    :param poll_interval: seconds between status polls.
    :param deferrable: wait in the triggerer (default) or poke from the worker.
    """

    template_fields: Sequence[str] = ("checkpoint",)

    def __init__(
        self,
        *,
        ssh_conn_id: str,
        session: GeoRepSession,
        checkpoint: Any,
        checkpoint_timeout: timedelta = timedelta(hours=2),
        faulty_grace: timedelta = timedelta(minutes=5),
        poll_interval: timedelta = timedelta(seconds=30),
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        kwargs.setdefault("timeout", checkpoint_timeout)
        super().__init__(**kwargs)
        self.ssh_conn_id = ssh_conn_id
        if not isinstance(session, GeoRepSession):
            raise TypeError(f"session must be a GeoRepSession, got {type(session).__name__}")
        self.session = session
        self.checkpoint = checkpoint
        self.checkpoint_timeout = checkpoint_timeout
        self.faulty_grace = faulty_grace
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self._wait: CheckpointWait | None = None
        self._errors_in_row = 0

    def _checkpoint(self) -> Checkpoint:
        try:
            return Checkpoint.from_xcom(self.checkpoint)
        except ValueError as e:
            raise GeoRepWaitError(str(e)) from None

    @cached_property
    def hook(self) -> GlusterGeoRepHook:
        return GlusterGeoRepHook(ssh_conn_id=self.ssh_conn_id)

    def execute(self, context: Context) -> Any:
        checkpoint = self._checkpoint()
        if not self.deferrable:
            self.log.info("Poking for checkpoint %s (timeout %s)", checkpoint.label, self.checkpoint_timeout)
            try:
                return super().execute(context)
            finally:
                if "hook" in self.__dict__:
                    self.hook.close()
        self.log.info(
            "Deferring: waiting for checkpoint %s (timeout %s)", checkpoint.label, self.checkpoint_timeout
        )
        self.defer(
            trigger=GeoRepCheckpointTrigger(
                ssh_conn_id=self.ssh_conn_id,
                session=self.session.as_dict(),
                checkpoint_label=checkpoint.label,
                timeout_at=time.time() + self.checkpoint_timeout.total_seconds(),
                faulty_grace_s=self.faulty_grace.total_seconds(),
                poll_interval_s=self.poll_interval.total_seconds(),
                min_event_delay_s=MIN_EVENT_DELAY_S,
            ),
            method_name="execute_complete",
            timeout=self.checkpoint_timeout + timedelta(minutes=5),
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """One status read and the checkpoint wait's verdict: done, keep waiting, or fail."""
        if self._wait is None:
            self._wait = CheckpointWait(
                self._checkpoint().label,
                time.time() + self.checkpoint_timeout.total_seconds(),
                self.faulty_grace.total_seconds(),
            )
        try:
            status = self.hook.status(self.session)
            self._errors_in_row = 0
        except (SessionNotFound, HostKeyNotPinned) as e:  # nothing will ever complete
            raise GeoRepWaitError(str(e)) from e
        except Exception as e:  # an SSH blip or a busy glusterd: as the trigger, give up when they persist
            self._errors_in_row += 1
            self.log.warning("status failed (%d in a row): %s", self._errors_in_row, e)
            if self._errors_in_row >= MAX_ERRORS_IN_ROW:
                raise GeoRepWaitError(f"geo-rep status failed {MAX_ERRORS_IN_ROW} times: {e}") from e
            return False
        self.log.info("checkpoint %s: %s", self._wait.label, status.progress_summary())
        verdict = self._wait.verdict(status, time.time())
        if verdict is None:
            return False
        if verdict["status"] != "success":
            raise GeoRepWaitError(verdict["message"])
        return PokeReturnValue(is_done=True, xcom_value=verdict)

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
