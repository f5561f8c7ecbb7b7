"""The engine's background scheduler: latencies as timers on a bounded pool, sequences kept in order."""

from __future__ import annotations

import threading
import time

from ovirt_dr_lab.engine.scheduler import Scheduler


def test_call_later_runs_after_the_delay_without_a_thread_per_timer() -> None:
    sched = Scheduler(workers=2)
    done = threading.Event()
    started = time.monotonic()
    before = threading.active_count()
    for _ in range(50):
        sched.call_later(0.3, lambda: None)
    sched.call_later(0.3, done.set)
    assert threading.active_count() <= before + 2
    assert done.wait(5)
    assert time.monotonic() - started >= 0.29
    sched.stop()


def test_sequences_never_overtake_on_a_busy_pool() -> None:
    sched = Scheduler(workers=4)
    order: dict[int, list[str]] = {i: [] for i in range(40)}
    lock = threading.Lock()

    def step(i: int, name: str) -> None:
        time.sleep(0.002 * (i % 5))  # uneven work, like qemu-img calls of different disks
        with lock:
            order[i].append(name)

    for i in range(40):
        sched.sequence(
            [(0.01, lambda i=i, n=n: step(i, n)) for n in ("wait_for_launch", "powering_up", "up")]
        )
    deadline = time.monotonic() + 10
    while any(len(v) < 3 for v in order.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    sched.stop()
    assert all(v == ["wait_for_launch", "powering_up", "up"] for v in order.values())


def test_a_failing_task_does_not_stop_the_sequence_or_the_pool() -> None:
    sched = Scheduler(workers=1)
    ran = threading.Event()

    def boom() -> None:
        raise RuntimeError("task failed")

    sched.sequence([(0.0, boom), (0.0, ran.set)])
    assert ran.wait(5)
    sched.stop()
