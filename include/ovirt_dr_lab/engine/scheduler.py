"""The engine's background scheduler: a latency is a timer, not a sleeping thread.

Asynchronous behaviour (snapshot ``locked`` -> ``ok``, live merge, OVF_STORE writes, storage domain and VM
status transitions) runs on one scheduler thread plus a bounded worker pool, so 100 concurrent snapshots
at 0.5 s each finish in about 0.5 s plus the real ``qemu-img`` work.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


class Scheduler:
    """Run callables at a time, on a bounded pool: latencies cost no thread while they elapse."""

    def __init__(self, workers: int = 8) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine-task")
        self._thread = threading.Thread(target=self._loop, name="engine-scheduler", daemon=True)
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), fn))
            self._cond.notify()

    def sequence(self, steps: list[tuple[float, Callable[[], None]]]) -> None:
        """Run steps one after the other, each ``delay`` seconds after the previous one finished.

        Status transitions must never overtake each other (``up`` before ``powering_up`` would leave a
        VM stuck), which independent timers on a busy pool cannot promise.
        """
        if not steps:
            return
        (delay, fn), rest = steps[0], steps[1:]

        def run() -> None:
            try:
                fn()
            finally:
                self.sequence(rest)

        self.call_later(delay, run)

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # a background task must never kill the pool; the task records its own failure
            log.exception("engine background task failed")

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = None if not self._heap else self._heap[0][0] - time.monotonic()
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._heap)
            self._pool.submit(self._run, fn)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
