"""Failover engine operators against fake hooks (one class each; the lab e2e and bench P5 use the real emulator)."""

from __future__ import annotations

from types import SimpleNamespace as NS

import ovirtsdk4
import pytest

from ovirt_dr.hooks.ovirt import OvirtHook
from ovirt_dr.operators.recovery_base import OUTCOMES_KEY, RecoveryError
from ovirt_dr.operators.recovery_ovirt import (
    OvirtFailoverReportOperator,
    OvirtRegisterVmsOperator,
    OvirtStartVmsOperator,
    probe_source,
)
from ovirt_dr_lab.inprocess_dr import FakeRun

SD = "9c3f0d51-6a7e-4c2b-b8d4-2f1e6a0b7c11"


def engine_error(detail: str, code: int = 409) -> ovirtsdk4.Error:
    e = ovirtsdk4.Error(f"Fault detail is {detail}", code=code)
    e.fault = NS(detail=f"[{detail}]", reason="Operation Failed")
    return e


class Future:
    def __init__(self, fn):
        self.fn = fn

    def wait(self):
        return self.fn()


class FakeEngine:
    """A target engine: registered VMs, unregistered ones per domain, VM power with scripted behaviour."""

    def __init__(self, vms=None, unregistered=None, fail_register=None, start_script=None):
        self.vms = {v.id: v for v in (vms or [])}
        self.unregistered = dict(unregistered or {})  # vm id -> name
        self.fail_register = dict(fail_register or {})  # vm id -> (detail, registered anyway?)
        self.start_script = dict(start_script or {})  # vm id -> list of statuses after start, or an error
        self.calls: list[tuple[str, str]] = []
        self.types = ovirtsdk4.types
        self.closed = False

    def close(self):
        self.closed = True

    # the real hook's wait, reading this fake's VMs
    wait_vms = OvirtHook.wait_vms

    # the SDK's shape, only what the operators call
    @property
    def system(self):
        return self

    def vms_service(self):
        eng = self

        class Vms:
            def list(self):
                for vm in eng.vms.values():
                    script = eng.start_script.get(vm.id)
                    if isinstance(script, list) and vm.status.value not in ("down",) and script:
                        vm.status = NS(value=script.pop(0))
                return list(eng.vms.values())

            def vm_service(self, vid):
                return NS(start=lambda wait=True: eng._start(vid))

        return Vms()

    def templates_service(self):
        return NS(list=lambda: [])

    def storage_domains_service(self):
        eng = self

        def domain(sd_id):
            def vms_service():
                return NS(
                    list=lambda unregistered=False: [NS(id=i, name=n) for i, n in eng.unregistered.items()],
                    vm_service=lambda vid: NS(register=lambda wait=True, **kw: eng._register(vid, kw)),
                )

            return NS(vms_service=vms_service)

        return NS(storage_domain_service=domain)

    def _register(self, vid, kwargs):
        self.calls.append(("register", vid))
        assert kwargs["registration_configuration"].cluster_mappings, "the mapping is sent"

        def done():
            if vid in self.fail_register:
                detail, anyway = self.fail_register[vid]
                if anyway:
                    self.vms[vid] = NS(id=vid, name=self.unregistered.pop(vid), status=NS(value="down"))
                raise engine_error(detail)
            self.vms[vid] = NS(id=vid, name=self.unregistered.pop(vid), status=NS(value="down"))

        return Future(done)

    def _start(self, vid):
        self.calls.append(("start", vid))
        script = self.start_script.get(vid)
        if isinstance(script, Exception):

            def fail():
                raise script

            return Future(fail)
        self.vms[vid].status = NS(value="wait_for_launch")
        return Future(lambda: None)


def vm(i, status="down"):
    return NS(id=f"id-{i}", name=f"vm{i}", status=NS(value=status), start_time=None)


def item(i):
    return {"id": f"id-{i}", "name": f"vm{i}", "sd_id": SD, "domain": "data_gluster"}


def run_op(op, engine, run: FakeRun, task_id="t", map_index=-1):
    op.__dict__["target_hook"] = engine
    return run.execute(op, map_index)


# -- registration ----------------------------------------------------------------------------------
def test_register_skips_what_is_there_registers_the_rest_and_fails_naming_each_failure(config, build):
    engine = FakeEngine(
        vms=[vm(1), NS(id="other", name="vm5", status=NS(value="down"))],
        unregistered={"id-2": "vm2", "id-3": "vm3", "id-6": "vm6", "id-5": "vm5"},
        fail_register={"id-3": ("Cluster X does not exist.", False), "id-6": ("same identifier", True)},
    )
    shard = [item(i) for i in (1, 2, 3, 4, 5, 6)]
    run = FakeRun({"dry_run": False})
    op = build(OvirtRegisterVmsOperator, config, task_id="register_vms", shard=shard)
    with pytest.raises(RecoveryError, match="3 VM"):
        run_op(op, engine, run, map_index=0)
    out = {o["name"]: (o["result"], o["detail"]) for o in run.xcoms[("register_vms", OUTCOMES_KEY, 0)]}
    assert out["vm1"] == ("skipped", "already registered (same id)")
    assert out["vm2"][0] == "done"
    assert out["vm3"] == ("failed", "[Cluster X does not exist.]")
    assert out["vm4"][0] == "failed" and "not among the unregistered" in out["vm4"][1]
    assert out["vm5"][0] == "failed" and "another vm named 'vm5'" in out["vm5"][1]
    # a 409 for a VM that is there now: an earlier try's request registered it
    assert out["vm6"] == ("skipped", "registered by an earlier attempt")
    assert sorted(c[1] for c in engine.calls) == ["id-2", "id-3", "id-6"]
    assert engine.closed


def test_register_dry_run_sends_nothing(config, build):
    engine = FakeEngine(unregistered={"id-2": "vm2"})
    run = FakeRun({"dry_run": True})
    out = run_op(build(OvirtRegisterVmsOperator, config, shard=[item(2)]), engine, run)
    assert [(o["result"], o["detail"]) for o in out] == [
        ("planned", "would register from data_gluster with the mapping")
    ]
    assert engine.calls == []


# -- start -----------------------------------------------------------------------------------------------
def plan_for(tiers, not_started=None):
    names = [n for t in tiers for n in t["vms"]] + list(not_started or {})
    return {"vms": [item(int(n[2:])) for n in names], "tiers": tiers, "not_started": not_started or {}}


def test_start_goes_tier_by_tier_skips_running_vms_and_one_failure_does_not_stop_the_rest(config, build):
    engine = FakeEngine(
        vms=[vm(1, "up"), vm(2), vm(3), vm(4), vm(5)],
        start_script={
            "id-2": ["powering_up", "up"],
            "id-3": engine_error("Cannot run VM. The VM has illegal or broken disk images"),
            "id-4": ["powering_up"] * 1000,  # never up: the tier timeout
            "id-5": ["up"],
        },
    )
    run = FakeRun({"dry_run": False})
    run.xcoms[("preflight", "return_value", -1)] = plan_for(
        [
            {"name": "ha", "vms": ["vm1"]},
            {"name": "tier 1", "vms": ["vm2", "vm3", "vm4"]},
            {"name": "rest", "vms": ["vm5"]},
        ],
        {"vm6": "was not running at the source site"},
    )
    run.xcoms[("preflight", "return_value", -1)]["vms"].append(item(6))
    op = build(OvirtStartVmsOperator, config, task_id="start_vms", poll_s=0.01)
    with pytest.raises(RecoveryError, match="2 VM"):
        run_op(op, engine, run)
    out = {o["name"]: o for o in run.xcoms[("start_vms", OUTCOMES_KEY, -1)]}
    assert out["vm1"]["result"] == "skipped" and "already running" in out["vm1"]["detail"]
    assert out["vm2"]["result"] == "done" and out["vm2"]["up_at"]
    assert out["vm3"]["result"] == "failed" and "illegal or broken" in out["vm3"]["detail"]
    assert out["vm4"]["result"] == "failed" and "tier_timeout" in out["vm4"]["detail"]
    assert out["vm5"]["result"] == "done", "a later tier still starts after a failed one"
    assert out["vm6"]["result"] == "not_started"
    starts = [v for c, v in engine.calls if c == "start"]
    assert "id-1" not in starts and starts.index("id-5") > starts.index("id-4")


def test_start_vms_false_skips_the_step(config, build):
    from airflow.sdk.exceptions import AirflowSkipException

    run = FakeRun({"dry_run": False, "start_vms": False})
    run.xcoms[("preflight", "return_value", -1)] = plan_for([{"name": "rest", "vms": ["vm1"]}])
    with pytest.raises(AirflowSkipException):
        run_op(build(OvirtStartVmsOperator, config), FakeEngine(vms=[vm(1)]), run)


# -- split-brain probe -------------------------------------------------------------------------------------
class ProbeHook:
    def __init__(self, error=None, domains=()):
        self.error, self.domains = error, domains

    @property
    def system(self):
        if self.error:
            raise self.error
        return self

    def storage_domains_service(self):
        return NS(
            list=lambda: [
                NS(id=f"sd-{n}", name=n, data_centers=[NS(id="dc")] if s else []) for n, s in self.domains
            ]
        )

    def data_centers_service(self):
        status = dict(self.domains)

        def dc(_):
            return NS(
                get=lambda: NS(name="Default"),
                storage_domains_service=lambda: NS(
                    storage_domain_service=lambda sd: NS(get=lambda: NS(status=NS(value=status[sd[3:]])))
                ),
            )

        return NS(data_center_service=dc)


def test_probe_source_tells_unreachable_from_error_from_active():
    assert probe_source(ProbeHook(ovirtsdk4.ConnectionError("refused")), ["d"]).state == "unreachable"
    assert probe_source(ProbeHook(ovirtsdk4.TimeoutError("timeout")), ["d"]).state == "unreachable"
    err = probe_source(ProbeHook(ovirtsdk4.AuthError("bad password")), ["d"])
    assert err.state == "error" and "AuthError" in err.detail
    p = probe_source(
        ProbeHook(domains=[("a", "active"), ("b", "maintenance"), ("c", None)]), ["a", "b", "c", "x"]
    )
    assert p.state == "answers" and p.active == ("a",)
    assert p.domains == {
        "a": "active in Default",
        "b": "maintenance in Default",
        "c": "unattached",
        "x": "absent",
    }


# -- replica writable -----------------------------------------------------------------------------------
# -- report ----------------------------------------------------------------------------------------------
class EventHook:
    def __init__(self):
        self.events = []

    def add_event(self, **kw):
        self.events.append(kw)
        return NS(id=1)

    def close(self):
        pass


def report_run(dry_run: bool, start_result="done") -> FakeRun:
    from ovirt_dr.failover import outcome

    run = FakeRun({"dry_run": dry_run})
    plan = {
        "dry_run": dry_run,
        "vms": [dict(item(1), ha=True), item(2)],
        "templates": [],
        "domains": [{"source_name": "data_gluster", "name": "data_gluster", "recovery_point": None}],
        "tiers": [],
        "blockers": [],
    }
    run.xcoms[("preflight", "return_value", -1)] = plan
    run.xcoms[("register_vms", OUTCOMES_KEY, 0)] = [outcome("vm1", "id-1", "register", "done")]
    run.xcoms[("register_vms", OUTCOMES_KEY, 1)] = [outcome("vm2", "id-2", "register", "failed", "Cluster X")]
    run.xcoms[("start_vms", OUTCOMES_KEY, -1)] = [
        outcome("vm1", "id-1", "start", start_result, "started, up", run.start.isoformat())
    ]
    run.states.update(
        {
            "validate": "success",
            "preflight": "success",
            "register_vms_0": "success",
            "register_vms_1": "failed",
            "start_vms": "success",
        }
    )
    return run


def test_report_fails_the_run_naming_the_failed_vm_and_posts_an_alert_event(config, build):
    from airflow.sdk.exceptions import AirflowFailException

    hook = EventHook()
    op = build(OvirtFailoverReportOperator, config, task_id="report")
    op.__dict__["target_hook"] = hook
    run = report_run(dry_run=False)
    with pytest.raises(AirflowFailException, match="vm2: registration failed: Cluster X"):
        run.execute(op)
    report = run.xcoms[("report", "report", -1)]
    assert {v["name"]: v["status"] for v in report["vms"]} == {"vm1": "up", "vm2": "failed"}
    assert report["failed_steps"] == ["register_vms_1"] and report["rto_s"] == 0
    assert "NO recovery point" in report["summary"]
    (event,) = hook.events
    assert event["severity"] == "alert" and "Failover to data_gluster" in event["description"]


def test_report_of_a_dry_run_posts_no_event(config, build):
    hook = EventHook()
    op = build(OvirtFailoverReportOperator, config, task_id="report")
    op.__dict__["target_hook"] = hook
    run = report_run(dry_run=True, start_result="planned")
    run.xcoms[("register_vms", OUTCOMES_KEY, 1)] = [
        {
            "name": "vm2",
            "id": "id-2",
            "step": "register",
            "result": "planned",
            "detail": "would",
            "up_at": None,
        }
    ]
    run.states["register_vms_1"] = "success"
    report = run.execute(op)
    assert hook.events == [] and {v["status"] for v in report["vms"]} == {"planned"}
