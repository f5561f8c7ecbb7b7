"""GlusterGeoRepHook (gluster commands: geo-replication, volumes; sync and async) against the scripted fake
node of conftest.py, on the real captured output of tests/fixtures/gluster/."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ovirt_dr.gluster import (
    GeoRepSession,
    GlusterBusy,
    GlusterCommandError,
    GlusterOutputError,
    SessionNotFound,
    build_georep_cmd,
)
from ovirt_dr.hooks.gluster import Checkpoint, GlusterGeoRepHook
from ovirt_dr.hooks.node import GlusterNodeHook

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gluster"
S = GeoRepSession("gvmaster", "127.0.0.1", "gvslave")


def fx(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.fixture
def hook(node) -> GlusterGeoRepHook:
    return GlusterGeoRepHook(ssh_conn_id="gluster_primary")


def test_status(hook, node):
    node.expect(
        build_georep_cmd(S, "status", "detail", xml=True), 0, fx("status-detail-checkpoint-completed.xml")
    )
    status = hook.status(S)
    assert status.checkpoint_completed_for("2026-11-21 14:55:49")
    assert node.commands == [
        "gluster --mode=script volume geo-replication gvmaster 127.0.0.1::gvslave status detail --xml"
    ]


def test_status_missing_session_asks_plain_status_for_the_reason(hook, node):
    node.expect(build_georep_cmd(S, "status", "detail", xml=True), 2, fx("status-xml-no-session.txt"))
    node.expect(build_georep_cmd(S, "status"), 1, "", fx("status-no-session.txt"))
    with pytest.raises(SessionNotFound, match="No active geo-replication sessions between gvmaster"):
        hook.status(S)


def test_status_garbage_is_an_output_error(hook, node):
    node.expect(build_georep_cmd(S, "status", "detail", xml=True), 0, "Welcome to the node!\n")
    with pytest.raises(GlusterOutputError, match="Welcome"):
        hook.status(S)


def test_set_checkpoint(hook, node):
    node.expect(
        build_georep_cmd(S, "config", "checkpoint", "now", xml=True),
        0,
        fx("config-checkpoint-now-xml-prefix.xml"),
    )
    node.expect(build_georep_cmd(S, "config", "checkpoint"), 0, fx("config-checkpoint-get.txt"))
    node.expect(["date", "-d", "@1795272949", "+%Y-%m-%d %H:%M:%S"], 0, "2026-11-21 14:55:49\n")
    cp = hook.set_checkpoint(S)
    assert cp == Checkpoint(1795272949, "2026-11-21 14:55:49")
    assert cp.as_dict() == {"epoch": 1795272949, "label": "2026-11-21 14:55:49"}
    assert node.commands[0].startswith("gluster --mode=script --xml volume geo-replication")
    assert node.commands[0].endswith("config checkpoint now")
    assert node.commands[2] == "date -d @1795272949 '+%Y-%m-%d %H:%M:%S'"


def test_set_checkpoint_failure_in_xml(hook, node):
    bad = (
        fx("config-checkpoint-now-xml-prefix.xml")
        .replace("<opRet>0", "<opRet>-1")
        .replace("config-set successful", "Invalid Checkpoint label")
    )
    node.expect(build_georep_cmd(S, "config", "checkpoint", "now", xml=True), 0, bad)
    with pytest.raises(GlusterCommandError, match="Invalid Checkpoint label"):
        hook.set_checkpoint(S)


@pytest.mark.parametrize("got", ["", "0\n", "checkpoint: now\n"])
def test_set_checkpoint_needs_an_epoch(hook, node, got):
    node.expect(
        build_georep_cmd(S, "config", "checkpoint", "now", xml=True),
        0,
        fx("config-checkpoint-now-xml-prefix.xml"),
    )
    node.expect(build_georep_cmd(S, "config", "checkpoint"), 0, got)
    with pytest.raises(GlusterOutputError):
        hook.set_checkpoint(S)


def test_set_checkpoint_bad_date_output(hook, node):
    node.expect(
        build_georep_cmd(S, "config", "checkpoint", "now", xml=True),
        0,
        fx("config-checkpoint-now-xml-prefix.xml"),
    )
    node.expect(build_georep_cmd(S, "config", "checkpoint"), 0, "1795272949\n")
    node.expect(["date", "-d", "@1795272949", "+%Y-%m-%d %H:%M:%S"], 0, "Sat Nov 21\n")
    with pytest.raises(GlusterOutputError, match="date on the node"):
        hook.set_checkpoint(S)


def test_start(hook, node):
    node.expect(
        build_georep_cmd(S, "start"),
        0,
        "Starting geo-replication session between gvmaster & 127.0.0.1::gvslave has been successful\n",
    )
    assert hook.start(S) is True
    node.expect(
        build_georep_cmd(S, "start"),
        1,
        "geo-replication command failed\n",
        fx("start-already-started-stderr.txt"),
    )
    assert hook.start(S) is False
    node.expect(
        build_georep_cmd(S, "start"),
        1,
        "",
        "Connection failed. Please check if gluster daemon is operational.\n",
    )
    with pytest.raises(GlusterCommandError, match="gluster daemon is operational"):
        hook.start(S)


def test_start_missing_session(hook, node):
    node.expect(
        build_georep_cmd(S, "start"),
        1,
        "",
        "Geo-replication session between gvmaster and 127.0.0.1::gvslave does not exist.\n",
    )
    with pytest.raises(SessionNotFound):
        hook.start(S)


def test_stop(hook, node):
    node.expect(
        build_georep_cmd(S, "status", "detail", xml=True), 0, fx("status-detail-syncing-changelog.xml")
    )
    node.expect(build_georep_cmd(S, "stop"), 0, fx("stop-when-stopped.txt"))
    assert hook.stop(S) is True
    node.expect(build_georep_cmd(S, "status", "detail", xml=True), 0, fx("status-detail-stopped.xml"))
    node.expect(build_georep_cmd(S, "stop"), 0, fx("stop-when-stopped.txt"))
    assert hook.stop(S) is False
    node.expect(
        build_georep_cmd(S, "status", "detail", xml=True), 0, fx("status-detail-created-not-started.xml")
    )
    node.expect(
        build_georep_cmd(S, "stop"),
        1,
        "",
        "geo-replication session between gvmaster & 127.0.0.1::gvslave not active\n",
    )
    assert hook.stop(S) is False
    node.expect(build_georep_cmd(S, "status", "detail", xml=True), 0, fx("status-detail-faulty.xml"))
    node.expect(build_georep_cmd(S, "stop", "force"), 0, "ok\n")
    assert hook.stop(S, force=True) is True


BUSY = "Another transaction is in progress for gvmaster. Please try again after some time.\n"


def test_gluster_busy_is_retried(hook, node):
    hook.busy_delays = (0, 0)
    node.expect(build_georep_cmd(S, "stop"), 1, "", BUSY)
    node.expect(build_georep_cmd(S, "stop"), 0, fx("stop-when-stopped.txt"))
    assert hook.run(build_georep_cmd(S, "stop")).rc == 0
    for _ in range(3):
        node.expect(build_georep_cmd(S, "start"), 1, "", BUSY)
    with pytest.raises(GlusterBusy, match="Another transaction"):
        hook.start(S)


def test_gluster_busy_in_xml_is_retried(hook, node):
    hook.busy_delays = (0,)
    busy_xml = (
        fx("start-already-started.xml")
        .replace("<opErrno>30800", "<opErrno>0")
        .replace(
            "geo-replication session between gvmaster &amp; 127.0.0.1::gvslave already started", BUSY.strip()
        )
    )
    node.expect(build_georep_cmd(S, "status", "detail", xml=True), 0, busy_xml)
    node.expect(build_georep_cmd(S, "status", "detail", xml=True), 0, fx("status-detail-stopped.xml"))
    assert not hook.status(S).is_running


def test_only_gluster_commands_are_retried(hook, node):
    hook.busy_delays = (0, 0)
    node.expect(["cat", "--", "/m/x"], 1, "", BUSY)
    with pytest.raises(GlusterBusy):
        hook.run(["cat", "--", "/m/x"])


def test_volume_info(hook, node):
    node.expect(["gluster", "--mode=script", "volume", "info", "--xml"], 0, fx("volume-info-all.xml"))
    assert [v.name for v in hook.volume_info()] == ["gvmaster", "gvslave"]
    node.expect(
        ["gluster", "--mode=script", "volume", "info", "gvmaster", "--xml"], 0, fx("volume-info-master.xml")
    )
    (vol,) = hook.volume_info("gvmaster")
    assert vol.started
    with pytest.raises(ValueError):
        hook.volume_info("gv; id")


def test_volume_set_only_the_options_the_product_changes(hook, node):
    node.expect(["gluster", "--mode=script", "volume", "set", "gvslave", "features.read-only", "off"])
    hook.volume_set("gvslave", "features.read-only", "off")
    with pytest.raises(ValueError, match="not one the product changes"):
        hook.volume_set("gvslave", "auth.allow", "*")


def test_a_given_node_access_is_shared_and_left_to_its_owner(node, ssh_hooks):
    shared = GlusterNodeHook(ssh_conn_id="gluster_primary")
    georep = GlusterGeoRepHook(node=shared)
    assert georep.ssh_conn_id == "gluster_primary"
    node.expect(["touch", "--", "/m/x"])
    shared.touch("/m/x")
    node.expect(build_georep_cmd(S, "status", "detail", xml=True), 0, fx("status-detail-stopped.xml"))
    georep.status(S)
    (ssh,) = ssh_hooks.instances
    assert ssh.connects == 1  # one SSH client for the node access and the gluster commands
    georep.close()
    assert ssh.client is not None  # the owner closes it
    shared.close()
    assert ssh.client is None


def test_node_methods_of_the_old_hook_are_forwarded_with_a_warning(hook, node):
    node.expect(["touch", "--", "/m/x"])
    with pytest.warns(DeprecationWarning, match="moved to GlusterNodeHook"):
        hook.touch("/m/x")
    with pytest.raises(AttributeError):
        hook.list_files  # noqa: B018 (removed: only tests called it)


class ScriptedAsync:
    """``GlusterNodeHook.async_run`` answering from a script (the async SSH itself: tests/unit/hooks/test_node.py)."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.commands = []

    async def __call__(self, argv):
        from ovirt_dr.hooks.node import CommandResult

        self.commands.append(argv)
        return CommandResult(*self.replies.pop(0))


def test_async_status_is_the_sync_status_on_the_async_path(monkeypatch):
    script = ScriptedAsync([(0, fx("status-detail-checkpoint-completed.xml"), "")])
    monkeypatch.setattr(GlusterNodeHook, "async_run", lambda _node, argv, timeout=None: script(argv))
    status = asyncio.run(GlusterGeoRepHook(ssh_conn_id="x").async_status(S))
    assert status.checkpoint_completed_for("2026-11-21 14:55:49")
    assert script.commands == [build_georep_cmd(S, "status", "detail", xml=True)]


def test_async_status_classifies_a_missing_session_like_the_sync_one(monkeypatch):
    script = ScriptedAsync([(2, fx("status-xml-no-session.txt"), ""), (1, "", fx("status-no-session.txt"))])
    monkeypatch.setattr(GlusterNodeHook, "async_run", lambda _node, argv, timeout=None: script(argv))
    with pytest.raises(SessionNotFound, match="No active geo-replication sessions between gvmaster"):
        asyncio.run(GlusterGeoRepHook(ssh_conn_id="x").async_status(S))
    assert script.commands[1] == build_georep_cmd(S, "status")


def test_async_status_retries_a_busy_glusterd(monkeypatch):
    script = ScriptedAsync([(1, "", BUSY), (0, fx("status-detail-stopped.xml"), "")])
    monkeypatch.setattr(GlusterNodeHook, "async_run", lambda _node, argv, timeout=None: script(argv))
    hook = GlusterGeoRepHook(ssh_conn_id="x")
    hook.busy_delays = (0,)
    assert not asyncio.run(hook.async_status(S)).is_running
    assert len(script.commands) == 2
