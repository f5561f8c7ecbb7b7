"""The drill's operators against fake hooks (one class each; the lab e2e runs them on the real lab)."""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

import ovirtsdk4
import pytest
from airflow.sdk.exceptions import AirflowFailException

from ovirt_dr.drill import copy_sd_id, overlay_volume_id
from ovirt_dr.operators import drill_ovirt
from ovirt_dr.operators.drill_airflow import AirflowResumeSyncOperator, pause_and_wait
from ovirt_dr.operators.drill_ovirt import (
    OvirtDrillCheckVmsOperator,
    OvirtDrillCleanupOperator,
    OvirtDrillReportOperator,
    OvirtDrillStartVmsOperator,
)
from ovirt_dr.operators.recovery_base import OUTCOMES_KEY, RecoveryError
from ovirt_dr_lab.inprocess_dr import FakeRun

SD = "9c3f0d51-6a7e-4c2b-b8d4-2f1e6a0b7c11"
RUN = "manual__inprocess"
CID = copy_sd_id(SD, RUN)
OTHER_SD = "6e2b9f4a-1c7d-4a3e-8b5f-0d9c2e7a4b31"


def u(n: int) -> str:
    return f"{n:08d}-0000-4000-8000-000000000000"


class FakeApi:
    """Airflow's REST API: paused flags and running runs per DAG."""

    def __init__(self, paused: dict[str, bool], running: dict[str, list[str]] | None = None) -> None:
        self.paused = dict(paused)
        self.running = dict(running or {})
        self.calls: list[Any] = []

    def is_paused(self, dag_id: str) -> bool:
        return self.paused[dag_id]

    def set_paused(self, dag_id: str, paused: bool) -> bool:
        self.calls.append(("set_paused", dag_id, paused))
        before, self.paused[dag_id] = self.paused[dag_id], paused
        return before

    def active_runs(self, dag_id: str, states: tuple[str, ...] = ("queued", "running")) -> list[str]:
        return list(self.running.get(dag_id, [])) if "running" in states else []

    def wait_idle(self, dag_id: str, timeout: float, poll: float = 5.0, states: tuple[str, ...] = ()) -> None:
        self.calls.append(("wait_idle", dag_id, states))
        self.running[dag_id] = []

    def close(self) -> None:
        pass


def plan() -> dict[str, Any]:
    """A drill plan of two VMs on the copy: vm1 (disk 11/12), vm2 (disk 21/22)."""
    disks = [
        {"vm": f"vm{i}", "vm_id": u(i), "kind": "vm", "image": u(10 * i + 1), "volume": u(10 * i + 2),
         "overlay": overlay_volume_id(CID, u(10 * i + 1), u(10 * i + 2))}
        for i in (1, 2)
    ]  # fmt: skip
    vms = [
        {"id": u(i), "name": f"vm{i}", "sd_id": CID, "domain": "data_gluster_drill", "ha": False}
        for i in (1, 2)
    ]
    return {
        "dry_run": False,
        "domains": [
            {
                "sd_id": CID,
                "name": "data_gluster_drill",
                "replica_sd_id": SD,
                "replica_name": "data_gluster",
                "source_name": "data_gluster",
                "path": "/gvslave",
                "slave_ssh_conn_id": "gs",
                "slave_host": "gluster.lab",
                "mount_root": "/run/ovirt-dr/mnt",
                "disks": disks,
                "recovery_point": {"recovery_point": "2026-12-02T09:00:00+00:00", "run_id": "r"},
            }
        ],  # fmt: skip
        "vms": vms,
        "templates": [],
        "tiers": [{"name": "rest", "vms": ["vm1", "vm2"]}],
        "not_started": {},
        "vm_disks": {d["vm_id"]: [d] for d in disks},
        "read_only": {"gvslave": "on"},
        "sync": {"dr_sync__data_gluster__t": {"paused": False}},
        "blockers": [],
    }


class FakeTarget:
    """The secondary engine as the drill's steps see it: VMs with vNICs and disks, domains, disks."""

    def __init__(self, vms: dict[str, dict[str, Any]], domains: list[str]) -> None:
        self.vms = (
            vms  # id -> {"name", "status", "nics": [{"id","name","plugged"}], "disks": [(id, image_id, sd)]}
        )
        self.domains = list(domains)
        self.orphans: list[Any] = []
        self.calls: list[Any] = []
        self.types = ovirtsdk4.types

    def close(self) -> None:
        pass

    @property
    def system(self) -> FakeTarget:
        return self

    def vms_service(self) -> Any:
        eng = self

        def vm_service(vid: str) -> Any:
            vm = eng.vms[vid]

            def nic_service(nid: str) -> Any:
                nic = next(n for n in vm["nics"] if n["id"] == nid)

                def update(body: Any) -> Any:
                    eng.calls.append(("nic", vm["name"], nid, body.plugged))
                    if vm.get("nic_error"):
                        raise ovirtsdk4.Error("refused")
                    nic["plugged"] = body.plugged
                    return body

                return NS(update=update)

            def nics_list() -> list[Any]:
                return [NS(id=n["id"], name=n["name"], plugged=n["plugged"]) for n in vm["nics"]]

            def atts(follow: str = "") -> list[Any]:
                return [
                    NS(disk=NS(id=d, image_id=img, storage_domains=[NS(id=sd)])) for d, img, sd in vm["disks"]
                ]

            def stop() -> None:
                eng.calls.append(("stop", vm["name"]))
                vm["status"] = "down"

            def remove(detach_only: bool = False) -> None:
                eng.calls.append(("remove", vm["name"], detach_only))
                eng.vms.pop(vid)

            return NS(
                nics_service=lambda: NS(list=nics_list, nic_service=nic_service),
                disk_attachments_service=lambda: NS(list=atts),
                stop=stop,
                remove=remove,
            )

        return NS(
            list=lambda: [
                NS(id=i, name=v["name"], status=NS(value=v["status"])) for i, v in self.vms.items()
            ],
            vm_service=vm_service,
        )

    def storage_domains_service(self) -> Any:
        eng = self

        def one(sd_id: str) -> Any:
            def get() -> Any:
                if sd_id not in eng.domains:
                    raise ovirtsdk4.NotFoundError("404")
                return NS(id=sd_id, data_centers=[NS(id="dc")])

            def remove(host: str, format: bool) -> None:
                eng.calls.append(("remove_sd", sd_id, host, format))
                if eng.__dict__.get("fail_remove"):
                    raise ovirtsdk4.Error("cannot remove")
                eng.domains.remove(sd_id)

            return NS(get=get, remove=remove)

        return NS(list=lambda: [NS(id=i) for i in self.domains], storage_domain_service=one)

    def data_centers_service(self) -> Any:
        eng = self
        status = {"value": "active"}

        def attached(sd_id: str) -> Any:
            def deactivate() -> None:
                eng.calls.append(("deactivate", sd_id))
                status["value"] = "maintenance"

            def remove() -> None:
                eng.calls.append(("detach", sd_id))

            return NS(get=lambda: NS(status=NS(value=status["value"])), deactivate=deactivate, remove=remove)

        dc = NS(storage_domains_service=lambda: NS(storage_domain_service=attached))
        return NS(data_center_service=lambda _id: dc)

    def disks_service(self) -> Any:
        eng = self

        def disk_service(did: str) -> Any:
            def remove() -> None:
                eng.calls.append(("drop_disk", did))
                eng.orphans = [d for d in eng.orphans if d.id != did]

            return NS(remove=remove)

        return NS(list=lambda: list(self.orphans), disk_service=disk_service)

    def hosts_service(self) -> Any:
        return NS(list=lambda search="": [NS(name="host2", status=NS(value="up"))])


class HookSet:
    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def get(self, conn_id: str) -> Any:
        return self.hook

    def close(self) -> None:
        pass


def with_hooks(op: Any, target: Any = None, api: Any = None) -> Any:
    if target is not None:
        op.__dict__["target_hook"] = target
    if api is not None:
        op.__dict__["airflow_api"] = api
    op.__dict__["gluster"] = HookSet(NS(close=lambda: None))
    return op


def vm_on_copy(i: int, plugged: bool = True, image_id: str | None = None, sd: str = CID) -> dict[str, Any]:
    img = u(10 * i + 1)
    return {
        "name": f"vm{i}",
        "status": "down",
        "nics": [{"id": f"nic{i}", "name": "nic1", "plugged": plugged}],
        "disks": [(img, image_id or overlay_volume_id(CID, img, u(10 * i + 2)), sd)],
    }


# -- sync DAGs ----------------------------------------------------------------------------------------------
def test_pause_waits_only_for_the_running_run():
    api = FakeApi({"a": False, "b": True}, {"a": ["run1"]})
    done = pause_and_wait(api, ["b", "a"], timeout=5, poll=1, log=NS(info=lambda *a: None))
    assert done == ["a: paused; no run running", "b: paused already; no run running"]
    assert ("wait_idle", "a", ("running",)) in api.calls and api.paused == {"a": True, "b": True}


def test_resume_gives_each_sync_dag_back_as_it_was(config, build):
    api = FakeApi({"a": True, "b": True, "c": False})
    run = FakeRun({"dry_run": False})
    run.xcoms[("validate", "return_value", -1)] = {
        "sync": {"a": {"paused": False}, "b": {"paused": True}, "c": {"paused": False}}
    }
    out = run.execute(with_hooks(build(AirflowResumeSyncOperator, config, task_id="resume_sync"), api=api))
    assert out == {
        "a": "resumed (it was active before the drill)",
        "b": "paused before the drill: left paused",
        "c": "active (as before the drill)",
    }
    assert api.paused == {"a": False, "b": True, "c": False}
    api = FakeApi({"a": False})
    run = FakeRun({"dry_run": True})
    run.xcoms[("validate", "return_value", -1)] = {"sync": {"a": {"paused": False}}}
    run.execute(with_hooks(build(AirflowResumeSyncOperator, config, task_id="resume_sync"), api=api))
    assert api.calls == []
    assert FakeRun({}).execute(with_hooks(build(AirflowResumeSyncOperator, config), api=FakeApi({}))) == {}


# -- the gate -----------------------------------------------------------------------------------------------
def test_check_unplugs_every_vnic_and_fails_a_vm_that_would_write_into_the_replica(
    config, build, monkeypatch
):
    target = FakeTarget({u(1): vm_on_copy(1), u(2): vm_on_copy(2, image_id=u(22))}, [CID])
    sums = {"copy_sha256": "ab" * 32, "replica_sha256": "ab" * 32, "errors": [], "links": []}
    seen: list[Any] = []

    def verify(hook, domain, disks, **kw):
        seen.append(disks)
        return {d["image"]: dict(sums) for d in disks}

    monkeypatch.setattr(drill_ovirt, "verify_disks", verify)
    run = FakeRun({"dry_run": False})
    run.xcoms[("preflight", "return_value", -1)] = plan()
    op = with_hooks(build(OvirtDrillCheckVmsOperator, config, task_id="check_vms"), target)
    with pytest.raises(AirflowFailException, match="1 VM.*vm2: disk .* would write into the replica"):
        run.execute(op)
    assert sorted(c for c in target.calls if c[0] == "nic") == [
        ("nic", "vm1", "nic1", False),
        ("nic", "vm2", "nic2", False),
    ]
    out = {o["name"]: o for o in run.xcoms[("check_vms", OUTCOMES_KEY, -1)]}
    assert out["vm1"]["result"] == "done" and out["vm1"]["detail"].startswith("1 vNIC(s) unplugged (1 now)")
    assert out["vm2"]["result"] == "failed"
    # what the node checks is the volume the engine registered, against the replica's
    assert {(d["copy_volume"], d["replica_volume"]) for d in seen[0]} == {
        (overlay_volume_id(CID, u(11), u(12)), u(12)),
        (u(22), u(22)),
    }


def test_check_fails_a_vm_whose_vnic_stays_plugged(config, build, monkeypatch):
    target = FakeTarget(
        {u(1): {**vm_on_copy(1), "nic_error": True}, u(2): vm_on_copy(2, plugged=False)}, [CID]
    )
    monkeypatch.setattr(
        drill_ovirt,
        "verify_disks",
        lambda hook, domain, disks, **kw: {
            d["image"]: {"copy_sha256": "a" * 64, "replica_sha256": "a" * 64, "errors": []} for d in disks
        },
    )
    run = FakeRun({"dry_run": False})
    run.xcoms[("preflight", "return_value", -1)] = plan()
    with pytest.raises(AirflowFailException, match="vm1: vNIC nic1 could not be unplugged"):
        run.execute(with_hooks(build(OvirtDrillCheckVmsOperator, config, task_id="check_vms"), target))
    out = {o["name"]: o for o in run.xcoms[("check_vms", OUTCOMES_KEY, -1)]}
    assert "still plugged" in out["vm1"]["detail"] and out["vm2"]["result"] == "done"


def test_check_in_a_dry_run_touches_nothing(config, build):
    target = FakeTarget({}, [])
    run = FakeRun({"dry_run": True})
    run.xcoms[("preflight", "return_value", -1)] = plan()
    out = run.execute(with_hooks(build(OvirtDrillCheckVmsOperator, config, task_id="check_vms"), target))
    assert {o["result"] for o in out} == {"planned"} and target.calls == []


def test_start_starts_only_vms_whose_check_passed(config, build):
    run = FakeRun({"dry_run": False})
    run.xcoms[("preflight", "return_value", -1)] = plan()
    run.xcoms[("check_vms", OUTCOMES_KEY, -1)] = [
        {"name": "vm1", "id": u(1), "step": "check", "result": "done", "detail": "ok"},
        {"name": "vm2", "id": u(2), "step": "check", "result": "failed", "detail": "disk x: missing"},
    ]
    op = build(OvirtDrillStartVmsOperator, config, task_id="start_vms")
    gated = op.plan(run.context("start_vms"))
    assert gated["tiers"] == [{"name": "rest", "vms": ["vm1"]}]
    assert gated["not_started"] == {"vm2": "its check failed: disk x: missing"}
    run.xcoms.pop(("check_vms", OUTCOMES_KEY, -1))
    assert op.plan(run.context("start_vms"))["tiers"] == []  # no check ran: nothing starts


# -- cleanup ------------------------------------------------------------------------------------------------
def test_cleanup_removes_only_what_the_drill_made(config, build, monkeypatch):
    target = FakeTarget(
        {
            u(1): {**vm_on_copy(1), "status": "up"},
            u(2): {**vm_on_copy(2, sd=OTHER_SD), "status": "up"},  # same id, not on the copy: never touched
        },
        [CID, OTHER_SD],
    )
    target.orphans = [NS(id="tpl-disk", alias="tpl_disk1", storage_domains=[NS(id=CID)])]
    calls: list[Any] = []
    monkeypatch.setattr(
        drill_ovirt,
        "remove_copy",
        lambda hook, d, dry_run, log: calls.append(("rm", d["sd_id"])) or {"removed": 9},
    )
    monkeypatch.setattr(
        drill_ovirt, "set_read_only", lambda hook, v, want: calls.append(("ro", v, want)) or f"off -> {want}"
    )
    run = FakeRun({"dry_run": False})
    run.xcoms[("preflight", "return_value", -1)] = plan()
    out = run.execute(with_hooks(build(OvirtDrillCleanupOperator, config, task_id="cleanup"), target))
    assert ("stop", "vm1") in target.calls and ("remove", "vm1", True) in target.calls
    assert not [c for c in target.calls if c[1:2] == ("vm2",)] and u(2) in target.vms
    assert [c for c in target.calls if c[0] in ("deactivate", "detach", "remove_sd")] == [
        ("deactivate", CID),
        ("detach", CID),
        ("remove_sd", CID, "host2", False),  # never formatted
    ]
    assert ("drop_disk", "tpl-disk") in target.calls and out["disks"] == ["tpl_disk1: record dropped"]
    assert calls == [("rm", CID), ("ro", "gvslave", "on")]
    assert target.domains == [OTHER_SD]


def test_cleanup_keeps_the_copys_files_while_the_engine_still_has_it(config, build, monkeypatch):
    target = FakeTarget({}, [CID])
    target.fail_remove = True
    calls: list[Any] = []
    monkeypatch.setattr(drill_ovirt, "remove_copy", lambda *a, **k: calls.append("rm"))
    monkeypatch.setattr(drill_ovirt, "set_read_only", lambda hook, v, want: calls.append(("ro", want)) or "x")
    run = FakeRun({"dry_run": False})
    run.xcoms[("preflight", "return_value", -1)] = plan()
    with pytest.raises(RecoveryError, match="still known to the target engine: its files are kept"):
        run.execute(with_hooks(build(OvirtDrillCleanupOperator, config, task_id="cleanup"), target))
    assert calls == [("ro", "on")]  # the replica is read-only again anyway
    assert run.xcoms[("cleanup", "cleanup", -1)]["errors"]


def test_cleanup_without_a_plan_has_nothing_to_do(config, build):
    out = FakeRun({"dry_run": False}).execute(
        with_hooks(build(OvirtDrillCleanupOperator, config), FakeTarget({}, []))
    )
    assert out == {"skipped": "no plan"}


# -- report -------------------------------------------------------------------------------------------------
def test_report_fails_naming_the_vm_and_posts_an_alert(config, build):
    events: list[Any] = []
    target = NS(add_event=lambda **kw: events.append(kw) or NS(id="1"), close=lambda: None)
    run = FakeRun({"dry_run": False})
    run.states = {"validate": "success", "check_vms": "failed", "cleanup": "success"}
    run.xcoms[("preflight", "return_value", -1)] = plan()
    run.xcoms[("register_vms", OUTCOMES_KEY, 0)] = [
        {"name": f"vm{i}", "id": u(i), "step": "register", "result": "done", "detail": "registered"}
        for i in (1, 2)
    ]
    run.xcoms[("check_vms", OUTCOMES_KEY, -1)] = [
        {"name": "vm1", "id": u(1), "step": "check", "result": "done", "detail": "1 vNIC(s) unplugged"},
        {
            "name": "vm2",
            "id": u(2),
            "step": "check",
            "result": "failed",
            "detail": "disk x: missing on the replica",
        },
    ]
    run.xcoms[("start_vms", OUTCOMES_KEY, -1)] = [
        {"name": "vm1", "id": u(1), "step": "start", "result": "done", "detail": "started, up", "up_at": "2026-12-02T10:00:00+00:00"},
        {"name": "vm2", "id": u(2), "step": "start", "result": "not_started", "detail": "its check failed"},
    ]  # fmt: skip
    op = with_hooks(build(OvirtDrillReportOperator, config, task_id="report"), target)
    with pytest.raises(
        AirflowFailException, match=r"failed: vm2.*vm2: check failed: disk x: missing on the replica"
    ):
        run.execute(op)
    report = run.xcoms[("report", "report", -1)]
    assert {v["name"]: v["status"] for v in report["vms"]} == {"vm1": "passed", "vm2": "failed"}
    assert report["failed_steps"] == ["check_vms"]
    assert [e["severity"] for e in events] == ["alert"] and "vm2" in events[0]["description"]


def test_report_of_a_dry_run_posts_no_event(config, build):
    events: list[Any] = []
    target = NS(add_event=lambda **kw: events.append(kw), close=lambda: None)
    run = FakeRun({"dry_run": True})
    run.states = {"validate": "success", "preflight": "success"}
    p = plan()
    run.xcoms[("preflight", "return_value", -1)] = {**p, "dry_run": True}
    for task, step in (("register_vms", "register"), ("check_vms", "check"), ("start_vms", "start")):
        run.xcoms[(task, OUTCOMES_KEY, 0 if task == "register_vms" else -1)] = [
            {"name": v["name"], "id": v["id"], "step": step, "result": "planned", "detail": "would"}
            for v in p["vms"]
        ]
    out = run.execute(with_hooks(build(OvirtDrillReportOperator, config, task_id="report"), target))
    assert {v["status"] for v in out["vms"]} == {"planned"} and events == []
    assert out["summary"].startswith("DRY RUN of the DR drill planned")


def test_a_big_spec_goes_through_a_spool_file_on_the_node_access_and_is_removed():
    """A spec over the argv bound is written to the node (stdin, never argv) and removed afterwards, through
    the node access itself (not GlusterGeoRepHook's deprecated forwarding)."""
    import json
    import warnings

    from ovirt_dr.hooks.gluster import GlusterGeoRepHook
    from ovirt_dr.hooks.node import CommandResult
    from ovirt_dr.operators.drill_gluster import MAX_ARGV_SPEC, node_program

    class Node:
        ssh_conn_id = "slave"

        def __init__(self):
            self.files, self.argvs = {}, []

        def write_file(self, path, data):
            self.files[path] = data

        def remove_files(self, paths):
            for p in paths:
                self.files.pop(p)

        def run(self, argv, check=False, timeout=None):
            self.argvs.append(list(argv))
            return CommandResult(rc=0, stdout=json.dumps({"ok": True}), stderr="")

    node = Node()
    spec = {"disks": ["x" * 100] * (MAX_ARGV_SPEC // 100 + 1)}
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        out = node_program(GlusterGeoRepHook(node=node), "print(1)", spec, 60, "/run/ovirt-dr/spool.json")
    assert out == {"ok": True}
    assert node.argvs == [["python3", "-c", "print(1)", "@/run/ovirt-dr/spool.json"]]
    assert node.files == {}  # the spool file is gone
