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


def test_step_states_and_the_first_step_that_did_not_succeed():
    from ovirt_dr.operators.recovery_base import first_bad_step, step_states

    states = {"validate": "success", "preflight": "success", "register_vms_0": "failed", "report": "running"}
    ti = type("TI", (), {"get_task_states": lambda self, dag_id, run_ids: {run_ids[0]: states}})()
    steps, bad = step_states({"ti": ti, "run_id": "r1"}, "dr_failover", "report")
    assert "report" not in steps and bad == ["register_vms_0"]
    assert first_bad_step(steps, "preflight", "register_vms") == "step register_vms failed"
    assert first_bad_step(steps, "start_vms") == "step start_vms did not run"
    assert first_bad_step(steps, "validate") == "its step did not run"


def test_failure_reasons_name_vms_steps_and_dry_run_blockers():
    from ovirt_dr.operators.recovery_base import failure_reasons

    failures = [{"name": f"vm{i}", "reason": "no"} for i in range(12)]
    reasons = failure_reasons(failures, ["start_vms"], ["target: no host up"], dry_run=True)
    assert reasons[0].startswith("12 VM(s)/template(s) failed: vm0: no;") and "vm10" not in reasons[0]
    assert reasons[1:] == [
        "step(s) not successful: start_vms",
        "a real run now would be blocked: target: no host up",
    ]
    assert failure_reasons([], [], ["x"], dry_run=False) == []


def test_the_report_event_never_raises_and_the_mail_needs_recipients(caplog):
    import logging

    from ovirt_dr.operators.recovery_base import mail_report, post_report_event

    log = logging.getLogger("report-test")
    posted = []

    class Engine:
        def add_event(self, **kw):
            posted.append(kw)
            return type("E", (), {"id": 7})()

    post_report_event(Engine(), base=0x0D80000, dag_id="d", run_id="r", text="x" * 1000, failed=True, log=log)
    (event,) = posted
    assert event["severity"] == "alert" and len(event["description"]) == 900 and event["custom_id"] % 2 == 1

    class Down:
        def add_event(self, **kw):
            raise ConnectionError("engine gone")

    post_report_event(Down(), base=0, dag_id="d", run_id="r", text="t", failed=False, log=log)  # no raise
    with caplog.at_level(logging.INFO, logger="report-test"):
        mail_report(None, ["a@example.com"], subject="s", html_body="b", log=log)
    assert "no mail" in caplog.text
