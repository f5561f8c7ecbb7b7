"""What every part of the emulated engine shares: faults as the REST layer answers them, constants, time.

Kept apart from the engine's parts (``state``, ``jobs``, ``vms``, ``snapshots``, ``ovfstore``, ``domains``,
``registration``) so that each imports only this and the part it builds on, and the API layer can raise
the same faults without importing the engine.
"""

from __future__ import annotations

import datetime as dt

MIB = 1024 * 1024
DEFAULT_LATENCY = {
    "snapshot": 0.3,
    "merge": 0.5,
    "ovf_update": 0.3,
    "register": 0.3,
    "start": 0.6,
    "stop": 0.3,
    "attach": 0.6,
    "activate": 0.3,
    "deactivate": 0.3,
}
#: oVirt VMStatus numbers, as written into the OVF_STORE's metadata.json.
VM_STATUS_NUM = {
    "down": 0,
    "up": 1,
    "powering_up": 2,
    "paused": 4,
    "unknown": 7,
    "not_responding": 8,
    "wait_for_launch": 9,
    "reboot_in_progress": 10,
    "suspended": 13,
    "image_illegal": 14,
    "image_locked": 15,
    "powering_down": 16,
}
MAX_EVENTS = 5000
MAX_JOBS = 2000
MAX_WRITES = 200000


class EngineFault(Exception):
    """An answer other than success: HTTP status plus the engine's ``<fault>`` (or an empty body).

    The real engine answers validation failures (wrong state) 409, missing parameters 400, unknown ids
    404 with an empty body; the SDK maps them to ``Error``/``NotFoundError`` with ``.fault``.
    """

    def __init__(self, status: int, detail: str = "", reason: str = "Operation Failed", empty: bool = False):
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail
        self.empty = empty


def not_found() -> EngineFault:
    return EngineFault(404, empty=True)


def conflict(detail: str) -> EngineFault:
    return EngineFault(409, f"[{detail}]")


def incomplete(entity: str, fields: list[str], action: str = "add") -> EngineFault:
    return EngineFault(
        400, f"{entity} [{', '.join(fields)}] required for {action}", reason="Incomplete parameters"
    )


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def display(status: str) -> str:
    """``wait_for_launch`` -> ``WaitForLaunch``: how the engine names a status in its messages."""
    return "".join(part.capitalize() for part in status.split("_"))
