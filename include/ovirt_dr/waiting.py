"""The one shape of every wait in the product: try, then try again every ``interval`` until ``timeout``.

The hooks wait for engine and node states (snapshots ok or gone, a domain's or a VM's status, an event)
and the operators only say what they wait for, so the deadline arithmetic and the sleeping live here once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator


def polls(
    timeout: float,
    interval: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[int]:
    """The tries of a wait: yields 1 at once, then 2, 3, ... every ``interval`` seconds.

    It stops after the first try made once ``timeout`` seconds have passed, so the state is always read
    once more at the deadline. Use it as ``for _ in polls(t, p): ... break`` with ``else:`` for the
    timeout. ``interval`` 0 polls without sleeping (tests).
    """
    if timeout < 0 or interval < 0:
        raise ValueError(f"timeout and interval must be >= 0, got {timeout!r} and {interval!r}")
    deadline = clock() + timeout
    tries = 0
    while True:
        tries += 1
        yield tries
        if clock() > deadline:
            return
        if interval:
            sleep(interval)
