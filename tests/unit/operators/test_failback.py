"""Failback and cleanup operators against fake hooks (one class at a time; the lab e2e runs them for real).

A fake Gluster node records every command; the tests check what is sent (and that a dry run sends only
reads), that each step converges when run again, and that the gates skip a cycle when they must.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

import pytest
import yaml

from ovirt_dr.gluster import SessionNotFound
from ovirt_dr.operators.failback_airflow import (
    AirflowPauseSyncOperator,
    AirflowResumeSyncOperator,
    FailbackCycleGateOperator,
)
from ovirt_dr.operators.failback_gluster import (
    GlusterCreateReverseSessionOperator,
    GlusterDeleteReverseSessionOperator,
    GlusterReestablishReplicationOperator,
    build_option_reset_cmd,
)
from ovirt_dr.operators.recovery_base import HookSet, RecoveryError
from ovirt_dr_lab.inprocess_dr import FakeRun, mapping_doc

CONFIG_TEXT = (Path(__file__).parents[2] / "fixtures" / "failback" / "georep-config.txt").read_text()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    mapping = tmp_path / "map.yml"
    mapping.write_text(yaml.safe_dump(mapping_doc("gluster.lab")))
    doc = {
        "sites": {"primary": {"ovirt_conn_id": "p"}, "secondary": {"ovirt_conn_id": "s"}},
        "recovery": {
            "mapping_file": str(mapping),
            "reverse_session": {"ssh_port": 2223, "options": {"change_detector": "xsync", "sync_jobs": 1}},
            "failback": {"sync_dag_timeout": "10s"},
        },
        "pairs": [
            {
                "storage_domain": "data_gluster",
                "target": "t",
                "site": "primary",
                "master_volume": "gvmaster",
                "gluster_ssh_conn_id": "gp",
                "slave_host": "gluster.lab",
                "slave_volume": "gvslave",
                "slave_ssh_conn_id": "gs",
                "schedule": None,
            }
        ],
    }
    path = tmp_path / "ovirt_dr.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


class Node:
    """One Gluster node: sessions (name -> running), volume options, every command run."""

    def __init__(
        self, sessions: dict[str, bool] | None = None, options: dict[str, dict[str, str]] | None = None
    ):
        self.sessions = dict(sessions or {})
        self.options = {k: dict(v) for k, v in (options or {}).items()}
        self.config: dict[str, dict[str, str]] = {}
        self.cmds: list[list[str]] = []

    def status(self, session: Any) -> Any:
        name = str(session)
        if name not in self.sessions:
            raise SessionNotFound(["gluster"], 1, "", "session does not exist", reason="no session")
        running = self.sessions[name]
        return NS(
            is_running=running, faulty_workers=(), workers=(NS(status="Active" if running else "Stopped"),)
        )

    def stop(self, session: Any, force: bool = False) -> bool:
        self.cmds.append(["stop", str(session), str(force)])
        was = self.sessions[str(session)]
        self.sessions[str(session)] = False
        return was

    def volume_info(self, volume: str) -> list[Any]:
        return [NS(options=dict(self.options.get(volume, {})))]

    def run(self, argv: list[str], check: bool = True, timeout: float | None = None) -> Any:
        self.cmds.append(list(argv))
        if argv[:4] == ["gluster", "--mode=script", "volume", "geo-replication"] and len(argv) > 6:
            name = f"{argv[4]} -> {argv[5]}"
            action = argv[6]
            if action == "create":
                self.sessions[name] = False
                self.config[name] = dict(
                    line.split(":", 1)
                    for line in CONFIG_TEXT.splitlines()
                    if ":" in line and "ssh_port" not in line
                )
                self.options.setdefault(argv[4], {})["changelog.changelog"] = "on"
            elif action == "config" and len(argv) == 7:
                return NS(rc=0, stdout="".join(f"{k}:{v}\n" for k, v in self.config.get(name, {}).items()))
            elif action == "config":
                self.config.setdefault(name, {})[argv[7]] = argv[8]
            elif action == "delete":
                self.sessions.pop(name, None)
        elif argv[2:4] == ["volume", "set"]:
            self.options.setdefault(argv[4], {})[argv[5]] = argv[6]
        elif argv[2:4] == ["volume", "reset"]:
            self.options.get(argv[4], {}).pop(argv[5], None)
        elif argv[-2:] == ["status", "--xml"]:
            vols = "".join(
                f"<volume><name>{n.split(' ')[0]}</name><sessions/></volume>" for n in self.sessions
            )
            return NS(rc=0, stdout=f"<cliOutput><geoRep>{vols}</geoRep></cliOutput>")
        return NS(rc=0, stdout="")

    def close(self) -> None:
        pass

    def sent(self) -> list[str]:
        """The commands that change something (reads left out)."""
        reads = ("config", "status")
        return [
            " ".join(c)
            for c in self.cmds
            if not (
                c[:4] == ["gluster", "--mode=script", "volume", "geo-replication"]
                and c[6:] in (["config"], [])
            )
            and not (c[-2:] == ["status", "--xml"] and c[3] == "geo-replication" and c[4] == "status")
            and c[-1] not in reads
        ]


def plan(dry_run: bool = False, phase: str = "sync") -> dict[str, Any]:
    reverse = {
        "master_volume": "gvslave",
        "slave_host": "gluster.lab",
        "slave_volume": "gvmaster",
        "slave_user": "root",
        "master_ssh_conn_id": "gs",
        "slave_ssh_conn_id": "gp",
        "mount_root": "/run/ovirt-dr/mnt",
    }
    forward = {
        "master_volume": "gvmaster",
        "slave_host": "gluster.lab",
        "slave_volume": "gvslave",
        "slave_user": "root",
        "master_ssh_conn_id": "gp",
        "slave_ssh_conn_id": "gs",
        "session": "gvmaster -> gluster.lab::gvslave",
    }
    return {
        "dry_run": dry_run,
        "phase": phase,
        "domains": [
            {
                "source_name": "data_gluster",
                "reverse": reverse,
                "forward": forward,
                "settings": {"change_detector": "xsync", "sync_jobs": "1", "ssh_port": "2223"},
            }
        ],
        "secondary_domains": ["data_gluster"],
        "sync_dags": ["dr_sync__data_gluster__t"],
    }


def build(cls: type, config: Path, **kw: Any) -> Any:
    from airflow.sdk import DAG

    with DAG("dr_failback", schedule=None):
        return cls(task_id=kw.pop("task_id", "t"), config_path=str(config), **kw)


def one_node(op: Any, node: Node) -> None:
    op.__dict__["gluster"] = HookSet(lambda conn_id: node)


def run_with(op: Any, p: dict[str, Any], run: FakeRun | None = None) -> tuple[Any, FakeRun]:
    run = run or FakeRun({"dry_run": p["dry_run"]})
    run.xcoms[("preflight", "return_value", -1)] = p
    return run.execute(op), run


REVERSE = "gvslave -> gluster.lab::gvmaster"
FORWARD = "gvmaster -> gluster.lab::gvslave"


def test_create_reverse_session_creates_configures_and_makes_the_primary_read_only(config):
    node = Node({FORWARD: True}, {"gvslave": {"features.read-only": "off"}})
    op = build(GlusterCreateReverseSessionOperator, config, task_id="create_reverse_session")
    one_node(op, node)
    (out,), run = run_with(op, plan())
    sent = node.sent()
    assert sent[0] == f"stop {FORWARD} True", "two sessions writing each other's master would fight"
    assert sent[1:3] == [
        "gluster --mode=script system:: execute gsec_create",
        "gluster --mode=script volume geo-replication gvslave gluster.lab::gvmaster create ssh-port 2223 push-pem force",
    ]
    assert (
        "gluster --mode=script volume geo-replication gvslave gluster.lab::gvmaster config ssh_port 2223"
        in sent
    )
    assert sent[-1] == "gluster --mode=script volume set gvmaster features.read-only on"
    assert out["master_options_before"] == {"changelog.changelog": None}
    assert node.options["gvmaster"]["features.read-only"] == "on"
    # run again: it converges without creating or setting anything
    node.cmds.clear()
    op2 = build(GlusterCreateReverseSessionOperator, config, task_id="create_reverse_session")
    one_node(op2, node)
    (again,), _ = run_with(op2, plan())
    assert node.sent() == [] and again["create"] == "exists already" and again["options"] == []


def test_create_reverse_session_dry_run_and_resumed_run_send_nothing(config):
    node = Node({FORWARD: False})
    op = build(GlusterCreateReverseSessionOperator, config)
    one_node(op, node)
    (out,), _ = run_with(op, plan(dry_run=True))
    assert node.sent() == [] and out["create"].startswith(
        "would run 'gluster --mode=script system:: execute gsec_create'"
    )
    assert any("would set ssh_port 2223" in o for o in out["options"])
    op = build(GlusterCreateReverseSessionOperator, config)
    one_node(op, node)
    out, _ = run_with(op, plan(phase="import"))
    assert out == [] and node.cmds == []


def test_delete_reverse_session_and_the_changelog_put_back(config):
    node = Node({REVERSE: False, FORWARD: False}, {"gvslave": {"changelog.changelog": "on"}})
    run = FakeRun({"dry_run": False})
    run.xcoms[("create_reverse_session", "return_value", -1)] = [
        {"domain": "data_gluster", "master_options_before": {"changelog.changelog": None}}
    ]
    op = build(GlusterDeleteReverseSessionOperator, config)
    one_node(op, node)
    (out,), _ = run_with(op, plan(), run)
    assert node.sent() == [
        "gluster --mode=script volume geo-replication gvslave gluster.lab::gvmaster stop force",
        "gluster --mode=script volume geo-replication gvslave gluster.lab::gvmaster delete reset-sync-time",
        "gluster --mode=script volume reset gvslave changelog.changelog",
    ]
    assert "changelog.changelog reset" in out["result"] and REVERSE not in node.sessions
    node.cmds.clear()
    op = build(GlusterDeleteReverseSessionOperator, config)
    one_node(op, node)
    (out,), _ = run_with(op, plan(), FakeRun({"dry_run": False}))
    assert node.sent() == [] and out["result"] == "no session (deleted already)"
    with pytest.raises(ValueError):
        build_option_reset_cmd("gvslave", "features.read-only")


def test_changelog_kept_when_the_volume_is_master_of_another_session(config):
    node = Node({REVERSE: False, "gvslave -> far::other": False}, {"gvslave": {"changelog.changelog": "on"}})
    run = FakeRun({"dry_run": False})
    run.xcoms[("create_reverse_session", "return_value", -1)] = [
        {"domain": "data_gluster", "master_options_before": {"changelog.changelog": None}}
    ]
    op = build(GlusterDeleteReverseSessionOperator, config)
    one_node(op, node)
    (out,), _ = run_with(op, plan(), run)
    assert "kept: gvslave is the master of another session" in out["result"]
    assert node.options["gvslave"]["changelog.changelog"] == "on"


def test_reestablish_makes_the_slave_read_only_and_creates_a_missing_forward_session(config):
    node = Node({}, {"gvslave": {"features.read-only": "off"}})
    op = build(GlusterReestablishReplicationOperator, config)
    one_node(op, node)
    (out,), _ = run_with(op, plan())
    sent = node.sent()
    assert sent[0] == "gluster --mode=script volume set gvslave features.read-only on"
    assert (
        "gluster --mode=script volume geo-replication gvmaster gluster.lab::gvslave create ssh-port 2223 push-pem force"
        in sent
    )
    assert out["session_state"] == "created (push-pem force)"
    node.cmds.clear()
    op = build(GlusterReestablishReplicationOperator, config)
    one_node(op, node)
    (out,), _ = run_with(op, plan())
    assert node.sent() == [] and out["session_state"] == "exists (Stopped)"


class Api:
    def __init__(self, paused: bool = False):
        self.paused = {"dr_sync__data_gluster__t": paused}
        self.calls: list[str] = []

    def is_paused(self, dag_id: str) -> bool:
        return self.paused[dag_id]

    def set_paused(self, dag_id: str, paused: bool) -> bool:
        self.calls.append(f"{'pause' if paused else 'resume'} {dag_id}")
        before, self.paused[dag_id] = self.paused[dag_id], paused
        return before

    def wait_idle(self, dag_id: str, timeout: float, poll: float = 5.0) -> None:
        self.calls.append(f"idle {dag_id} {timeout:.0f}")

    def close(self) -> None:
        pass


def test_pause_waits_idle_and_resume_needs_the_import_and_the_replication(config):
    api = Api()
    op = build(AirflowPauseSyncOperator, config)
    op.__dict__["api"] = api
    out, _ = run_with(op, plan())
    assert out == {"dr_sync__data_gluster__t": False} and api.calls == [
        "pause dr_sync__data_gluster__t",
        "idle dr_sync__data_gluster__t 10",
    ]
    dry = Api()
    op = build(AirflowPauseSyncOperator, config)
    op.__dict__["api"] = dry
    run_with(op, plan(dry_run=True))
    assert dry.calls == []

    from airflow.sdk.exceptions import AirflowSkipException

    run = FakeRun({"dry_run": False})
    run.states.update({"import_domains": "success", "reestablish_replication": "failed"})
    op = build(AirflowResumeSyncOperator, config)
    op.__dict__["api"] = api
    with pytest.raises(AirflowSkipException, match="reestablish_replication failed"):
        run_with(op, plan(), run)
    run.states["reestablish_replication"] = "success"
    op = build(AirflowResumeSyncOperator, config, task_id="resume_sync")
    op.__dict__["api"] = api
    out, _ = run_with(op, plan(), run)
    assert (
        out == {"dr_sync__data_gluster__t": "unpaused"} and api.calls[-1] == "resume dr_sync__data_gluster__t"
    )


@pytest.mark.parametrize(
    ("p", "domain", "needle"),
    [
        (plan(dry_run=True), "data_gluster", "dry run"),
        (plan(phase="import"), "data_gluster", "phase import"),
        (plan(), "other", "not failed back in this run"),
    ],
)
def test_gate_skips_the_cycle(config, p, domain, needle):
    from airflow.sdk.exceptions import AirflowSkipException

    op = build(FailbackCycleGateOperator, config, domain=domain, cycle="warm 1 of 1")
    with pytest.raises(AirflowSkipException, match=needle):
        run_with(op, p)


def test_final_gate_refuses_while_a_vm_runs(config, monkeypatch):
    op = build(FailbackCycleGateOperator, config, domain="data_gluster", cycle="final")
    monkeypatch.setattr(FailbackCycleGateOperator, "_running", lambda self, p: ["vm3"])
    with pytest.raises(RecoveryError, match="still running on the secondary: \\['vm3'\\]"):
        run_with(op, plan())
    monkeypatch.setattr(FailbackCycleGateOperator, "_running", lambda self, p: [])
    op = build(FailbackCycleGateOperator, config, domain="data_gluster", cycle="final")
    assert run_with(op, plan())[0] == "final"
