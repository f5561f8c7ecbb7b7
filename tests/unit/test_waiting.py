"""The one wait loop: tries at once, then every interval, and once more at the deadline."""

from __future__ import annotations

import pytest

from ovirt_dr.waiting import polls


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_tries_until_past_the_deadline_then_stops():
    clock = Clock()
    tries = list(polls(10, 3, clock=clock, sleep=clock.sleep))
    # at 0, 3, 6, 9, 12: the try at 12 is the first one past the deadline, and the last
    assert tries == [1, 2, 3, 4, 5]
    assert clock.sleeps == [3, 3, 3, 3]


def test_a_break_ends_the_wait_without_sleeping_again():
    clock = Clock()
    for n in polls(100, 1, clock=clock, sleep=clock.sleep):
        if n == 2:
            break
    assert clock.sleeps == [1]


def test_zero_timeout_still_tries_once():
    clock = Clock()
    assert list(polls(0, 5, clock=clock, sleep=clock.sleep)) == [1, 2]  # at 0 (not past), at 5 (past)


def test_negative_values_are_refused():
    with pytest.raises(ValueError, match="must be >= 0"):
        next(polls(-1, 1))
