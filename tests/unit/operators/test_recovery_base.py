"""What every failover operator shares: bounded request windows, outcomes pushed then failed on."""

from __future__ import annotations

import pytest

from ovirt_dr.operators.recovery_base import OUTCOMES_KEY, RecoveryError, push_outcomes, window


class Future:
    def __init__(self, fn):
        self.fn = fn

    def wait(self):
        return self.fn()


def test_window_bounds_requests_in_flight_and_keeps_going_after_a_failure():
    in_flight, peak = [0], [0]

    def call(ok):
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])

        def wait():
            in_flight[0] -= 1
            if not ok:
                raise RuntimeError("no")
            return "yes"

        return Future(wait)

    out = window([(str(i), lambda i=i: call(i != 2)) for i in range(7)], 3)
    assert peak[0] == 3 and [out[str(i)][0] for i in range(7)] == [True, True, False, True, True, True, True]
    with pytest.raises(ValueError):
        window([], 0)


def test_push_outcomes_pushes_then_fails_naming_each_failure():
    pushed = {}
    ti = type("TI", (), {"xcom_push": lambda self, key, value: pushed.update({key: value})})()
    ok = [{"name": "vm1", "result": "done", "detail": "registered"}]
    assert push_outcomes({"ti": ti}, ok, "VM(s) not registered") == ok and pushed[OUTCOMES_KEY] == ok
    bad = ok + [{"name": "vm2", "result": "failed", "detail": "Cluster X does not exist."}]
    with pytest.raises(RecoveryError, match=r"1 VM\(s\) not registered: vm2: Cluster X does not exist\."):
        push_outcomes({"ti": ti}, bad, "VM(s) not registered")
    assert pushed[OUTCOMES_KEY] == bad  # pushed also when failing: the report reads them
