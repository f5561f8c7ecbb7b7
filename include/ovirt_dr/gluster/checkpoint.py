"""A geo-replication checkpoint, and the wait for it: what the checkpoint step hands on, what the wait decides.

Pure (no I/O): the checkpoint step returns a :class:`Checkpoint` as XCom, the checkpoint wait (the trigger
in the triggerer, or the sensor's ``poke()`` without deferral) feeds every status it reads to one
:class:`CheckpointWait`, and the audit turns the checkpoint into the run's recovery point. So the rules
(this checkpoint, not an earlier one; Faulty or not running only for a grace period; the timeout) are
written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ovirt_dr.gluster.status import TIME_FORMAT, GeoRepStatus


@dataclass(frozen=True)
class Checkpoint:
    """A geo-replication checkpoint: ``epoch`` as Gluster stores it, ``label`` as ``status detail`` shows it.

    The label is the node's local time ``%Y-%m-%d %H:%M:%S``; comparing it with ``checkpoint_time`` is what
    tells *this* checkpoint from an earlier completed one.
    """

    epoch: int
    label: str

    def as_dict(self) -> dict[str, Any]:
        """The XCom form: ``{"epoch", "label"}``."""
        return {"epoch": self.epoch, "label": self.label}

    @classmethod
    def from_xcom(cls, value: Any) -> Checkpoint:
        """The checkpoint step's XCom, checked: a positive integer epoch and a label in Gluster's format."""
        if not isinstance(value, dict):
            raise ValueError(f"no checkpoint label from the checkpoint step: {value!r}")
        epoch, label = value.get("epoch"), value.get("label")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch <= 0:
            raise ValueError(f"checkpoint epoch {epoch!r} is not a positive whole number")
        if not isinstance(label, str):
            raise ValueError(f"no checkpoint label from the checkpoint step: {value!r}")
        try:
            datetime.strptime(label, TIME_FORMAT)
        except ValueError:
            raise ValueError(f"checkpoint label {label!r} is not in the form {TIME_FORMAT!r}") from None
        return cls(epoch, label)

    @property
    def recovery_point(self) -> str:
        """The checkpoint time as an ISO 8601 UTC time: the recovery point of a run whose audit passed."""
        return datetime.fromtimestamp(self.epoch, tz=UTC).isoformat()


@dataclass
class CheckpointWait:
    """The state of one wait for a checkpoint, and its verdict on each status read.

    :param label: the checkpoint's label (``Checkpoint.label``).
    :param timeout_at: epoch seconds after which the wait fails.
    :param faulty_grace_s: how long the session may stay Faulty (or not running) before the wait fails.
    """

    label: str
    timeout_at: float
    faulty_grace_s: float
    faulty_since: float | None = None

    def verdict(self, status: GeoRepStatus, now: float) -> dict[str, Any] | None:
        """None: keep waiting. Otherwise the outcome, ``{"status": "success", ...}`` or ``"error"``."""
        if status.checkpoint_completed_for(self.label):
            done = [w.checkpoint_completion_time for w in status.active_workers]
            return {
                "status": "success",
                "checkpoint_label": self.label,
                "completed_at": max(d for d in done if d).isoformat() if any(done) else None,
            }
        # Faulty, or not running at all: a session started while its slave is unreachable reads
        # "Stopped" (not Faulty) and never moves; either way nothing will complete.
        if status.faulty_workers or not status.is_running:
            self.faulty_since = self.faulty_since or now
            if now - self.faulty_since > self.faulty_grace_s:
                bad = status.faulty_workers or status.workers
                nodes = [f"{w.primary_node}:{w.primary_brick} {w.status}" for w in bad]
                return {
                    "status": "error",
                    "message": f"session Faulty or not running for more than {self.faulty_grace_s:.0f}s: "
                    f"{nodes}",
                }
        else:
            self.faulty_since = None
        if now > self.timeout_at:
            return {
                "status": "error",
                "message": f"checkpoint {self.label} not completed by the timeout; "
                f"last status: {status.progress_summary()}",
            }
        return None


__all__ = ["Checkpoint", "CheckpointWait"]
