"""GlusterGeoRepHook with a fake node behind the SSH provider's ``SSHHook`` (the one class replaced).

The fake speaks the paramiko surface the hook uses (client -> transport -> channel) and answers each command
from a script of (expected argv, rc, stdout, stderr), so every test also checks the exact command lines sent.
The real node is exercised by tests/lab/test_gluster_hook.py.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import airflow.providers.ssh.hooks.ssh as ssh_module
import pytest

from ovirt_dr.gluster import (
    CommandTimeout,
    GeoRepSession,
    GlusterBusy,
    GlusterCommandError,
    GlusterOutputError,
    SessionNotFound,
    build_georep_cmd,
)
from ovirt_dr.hooks.gluster import Checkpoint, CommandResult, GlusterGeoRepHook

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gluster"
S = GeoRepSession("gvmaster", "127.0.0.1", "gvslave")
Reply = tuple[int, str | bytes, str | bytes]


def fx(name: str) -> str:
    return (FIXTURES / name).read_text()


class FakeNode:
    """A scripted node: each command must be the next expected argv; it gets the scripted reply."""

    def __init__(self) -> None:
        self.script: list[tuple[list[str], Reply | Callable[[bytes], Reply] | None]] = []
        self.commands: list[str] = []
        self.stdins: list[bytes] = []

    def expect(self, argv: list[str], rc: int = 0, out: str | bytes = "", err: str | bytes = "") -> None:
        self.script.append((argv, (rc, out, err)))

    def hang(self, argv: list[str]) -> None:
        self.script.append((argv, None))

    def respond(self, command: str, stdin: bytes) -> Reply | None:
        self.commands.append(command)
        self.stdins.append(stdin)
        assert self.script, f"unexpected command {command!r}"
        argv, reply = self.script.pop(0)
        assert command == shlex.join(argv), f"sent {command!r}, expected {shlex.join(argv)!r}"
        return reply(stdin) if callable(reply) else reply


class FakeChannel:
    def __init__(self, node: FakeNode) -> None:
        self.node = node
        self.stdin = bytearray()
        self.rc: int | None = None
        self.out = bytearray()
        self.err = bytearray()
        self.closed = False
        self.eof_received = False
        self.command: str | None = None

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def exec_command(self, command: str) -> None:
        self.command = command

    def sendall(self, data: bytes) -> None:
        self.stdin += data

    def shutdown_write(self) -> None:
        reply = self.node.respond(self.command or "", bytes(self.stdin))
        if reply is None:  # the command never ends
            return
        rc, out, err = reply
        self.out += out.encode() if isinstance(out, str) else out
        self.err += err.encode() if isinstance(err, str) else err
        self.rc = rc
        self.eof_received = True

    def recv_ready(self) -> bool:
        return bool(self.out)

    def recv(self, n: int) -> bytes:
        chunk = bytes(self.out[:7])  # small chunks: the hook must loop
        del self.out[:7]
        return chunk

    def recv_stderr_ready(self) -> bool:
        return bool(self.err)

    def recv_stderr(self, n: int) -> bytes:
        chunk = bytes(self.err[:5])
        del self.err[:5]
        return chunk

    def exit_status_ready(self) -> bool:
        return self.rc is not None

    def recv_exit_status(self) -> int:
        assert self.rc is not None
        return self.rc

    def close(self) -> None:
        self.closed = True


class FakeTransport:
    def __init__(self, node: FakeNode) -> None:
        self.node = node
        self.channels: list[FakeChannel] = []

    def is_active(self) -> bool:
        return True

    def open_session(self, timeout: float | None = None) -> FakeChannel:
        chan = FakeChannel(self.node)
        self.channels.append(chan)
        return chan


class FakeClient:
    def __init__(self, node: FakeNode) -> None:
        self.transport = FakeTransport(node)
        self.closed = False

    def get_transport(self) -> FakeTransport:
        return self.transport

    def close(self) -> None:
        self.closed = True


class FakeSSHHook:
    """Stands in for ``airflow.providers.ssh.hooks.ssh.SSHHook``: same constructor, ``get_conn``, ``client``."""

    instances: list[FakeSSHHook] = []
    node: FakeNode

    def __init__(self, ssh_conn_id: str | None = None, cmd_timeout: Any = None, **kwargs: Any) -> None:
        self.ssh_conn_id = ssh_conn_id
        self.cmd_timeout = cmd_timeout
        self.client: FakeClient | None = None
        self.connects = 0
        FakeSSHHook.instances.append(self)

    def get_conn(self) -> FakeClient:
        if self.client is None:
            self.client = FakeClient(self.node)
            self.connects += 1
        return self.client


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    fake = FakeNode()
    FakeSSHHook.node = fake
    FakeSSHHook.instances = []
    monkeypatch.setattr(ssh_module, "SSHHook", FakeSSHHook)
    # the hook refuses a connection that does not pin the node's host key: these do
    pinned = (
        '{"conn_type": "ssh", "host": "node", "extra": {"host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"}}'
    )
    for conn_id in ("GLUSTER_PRIMARY", "C", "X"):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", pinned)
    yield fake
    assert fake.script == [], f"expected commands not sent: {fake.script}"


@pytest.fixture
def hook(node: FakeNode) -> GlusterGeoRepHook:
    return GlusterGeoRepHook(ssh_conn_id="gluster_primary")


def test_construction_is_cheap_and_validated(node):
    h = GlusterGeoRepHook(ssh_conn_id="gluster_primary", cmd_timeout=30)
    assert FakeSSHHook.instances == []  # no connection looked up yet
    assert h.ssh_hook.ssh_conn_id == "gluster_primary" and h.ssh_hook.cmd_timeout == 30
    with pytest.raises(ValueError):
        GlusterGeoRepHook(ssh_conn_id="")
    with pytest.raises(ValueError):
        GlusterGeoRepHook(ssh_conn_id="x", cmd_timeout=0)


def test_run_sends_quoted_argv_and_returns_result(hook, node):
    node.expect(["echo", "a b", "$(id)"], 0, "a b $(id)\n", "")
    res = hook.run(["echo", "a b", "$(id)"])
    assert res == CommandResult(0, "a b $(id)\n", "")
    assert node.commands == ["echo 'a b' '$(id)'"]


def test_run_failure_is_typed_with_stderr(hook, node):
    node.expect(["false"], 3, "", "something broke\n")
    with pytest.raises(GlusterCommandError, match="something broke") as info:
        hook.run(["false"])
    assert (info.value.rc, info.value.cmd) == (3, ["false"])
    node.expect(["false"], 3, "", "x")
    assert hook.run(["false"], check=False).rc == 3


@pytest.mark.parametrize("argv", ["ls -l", b"ls", [], ["ls", 1], None])
def test_run_refuses_non_argv(hook, argv):
    with pytest.raises(ValueError, match="argv"):
        hook.run(argv)  # type: ignore[arg-type]


def test_one_client_reused_then_closed(hook, node):
    for _ in range(3):
        node.expect(["true"])
        hook.run(["true"])
    (ssh,) = FakeSSHHook.instances
    assert ssh.connects == 1
    client = ssh.client
    assert all(ch.closed for ch in client.transport.channels)
    hook.close()
    assert client.closed and ssh.client is None
    hook.close()  # twice is fine
    node.expect(["true"])
    hook.run(["true"])  # usable again: reconnects
    assert ssh.connects == 2


def test_context_manager_closes(node):
    with GlusterGeoRepHook(ssh_conn_id="c") as h:
        node.expect(["true"])
        h.run(["true"])
        client = h.ssh_hook.client
    assert client.closed


def test_close_without_use_does_not_connect(node):
    GlusterGeoRepHook(ssh_conn_id="c").close()
    assert FakeSSHHook.instances == []


def test_timeout(hook, node):
    node.hang(["sleep", "100"])
    with pytest.raises(CommandTimeout, match="no exit after 0.05 s"):
        hook.run(["sleep", "100"], timeout=0.05)
    assert FakeSSHHook.instances[0].client.transport.channels[0].closed


def _log(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What the hook logged: Airflow's structlog setup prints to stdout, plain logging goes to caplog."""
    return capsys.readouterr().out + caplog.text


def test_commands_logged_at_info(hook, node, capsys, caplog):
    caplog.set_level(logging.INFO)
    node.expect(["touch", "--", "/mnt/x"])
    hook.touch("/mnt/x")
    lines = [line for line in _log(capsys, caplog).splitlines() if "touch -- /mnt/x" in line]
    assert lines and ("info" in lines[0].lower())


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


MNT = "/run/ovirt-dr/mnt/gvslave"
FINDMNT = ["findmnt", "-n", "-o", "SOURCE", "--mountpoint", MNT]


def test_mount(hook, node):
    node.expect(FINDMNT, 1, "", "")
    node.expect(["mkdir", "-p", "--", MNT])
    node.expect(["mount", "-t", "glusterfs", "-o", "ro", "vm:/gvslave", MNT])
    assert hook.mount("gvslave", "vm", MNT + "/", read_only=True) is True
    node.expect(FINDMNT, 0, "vm:/gvslave\n")
    assert hook.mount("gvslave", "vm", MNT) is False
    node.expect(FINDMNT, 0, "/dev/sda1\n")
    with pytest.raises(GlusterCommandError, match="already has /dev/sda1 mounted"):
        hook.mount("gvslave", "vm", MNT)


@pytest.mark.parametrize(
    ("volume", "host", "mnt"),
    [
        ("gv; rm", "vm", MNT),
        ("gv", "vm;id", MNT),
        ("gv", "vm", "relative"),
        ("gv", "::1", MNT),
        ("-o", "vm", MNT),
    ],
)
def test_mount_refuses_bad_input_before_any_command(hook, node, volume, host, mnt):
    with pytest.raises(ValueError):
        hook.mount(volume, host, mnt)
    assert node.commands == []


def test_umount_and_is_mounted(hook, node):
    node.expect(FINDMNT, 1, "", "")
    assert hook.umount(MNT) is False
    node.expect(FINDMNT, 0, "vm:/gvslave\n")
    node.expect(["umount", MNT])
    assert hook.umount(MNT) is True
    node.expect(FINDMNT, 0, "vm:/gvslave\n")
    assert hook.is_mounted(MNT)
    node.expect(FINDMNT, 2, "", "findmnt: bad usage")
    with pytest.raises(GlusterCommandError, match="bad usage"):
        hook.is_mounted(MNT)


def test_list_files(hook, node):
    node.expect(
        ["find", "/m/sd", "-type", "f", "-printf", "%P\\0%s\\0"], 0, "a/b.meta\x00512\x00with space\x007\x00"
    )
    assert hook.list_files("/m/sd") == {"a/b.meta": 512, "with space": 7}
    node.expect(["find", "/m/sd", "-type", "f", "-printf", "%P\\0%s\\0"], 0, "")
    assert hook.list_files("/m/sd") == {}
    node.expect(
        ["find", "/m/none", "-type", "f", "-printf", "%P\\0%s\\0"],
        1,
        "",
        "find: '/m/none': No such file or directory\n",
    )
    with pytest.raises(GlusterCommandError, match="No such file"):
        hook.list_files("/m/none")


def test_remove_files_batches_and_never_recurses(hook, node):
    paths = [f"/m/f{i}" for i in range(250)]
    node.expect(["rm", "-f", "--", *paths[:200]])
    node.expect(["rm", "-f", "--", *paths[200:]])
    assert hook.remove_files([*paths, paths[0]]) == 250
    with pytest.raises(ValueError):
        hook.remove_files(["/"])
    with pytest.raises(ValueError):
        hook.remove_files(["relative"])


def test_read_file_is_binary_and_not_logged(hook, node, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    blob = bytes(range(256)) * 3 + b"SECRET-CONTENT"
    node.expect(["cat", "--", "/m/x"], 0, blob)
    assert hook.read_file("/m/x") == blob
    logged = _log(capsys, caplog)
    assert "cat -- /m/x" in logged and "SECRET-CONTENT" not in logged
    node.expect(["cat", "--", "/m/y"], 1, "", "cat: /m/y: No such file or directory\n")
    with pytest.raises(GlusterCommandError, match="No such file"):
        hook.read_file("/m/y")


def test_write_file_sends_data_on_stdin_only(hook, node, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    data = b"VOLTYPE=LEAF\nSECRET-CONTENT\n"
    node.expect(["dd", "of=/m/x.meta", "bs=1M", "conv=fsync", "status=none"])
    hook.write_file("/m/x.meta", data)
    assert node.stdins == [data]
    logged = _log(capsys, caplog)
    assert "SECRET" not in node.commands[0] and "of=/m/x.meta" in logged and "SECRET" not in logged
    with pytest.raises(TypeError):
        hook.write_file("/m/x", "text")  # type: ignore[arg-type]


def test_sha256sum(hook, node):
    a, b = "a" * 64, "b" * 64
    node.expect(
        ["sha256sum", "--", "/m/1", "/m/two words", "/m/back\\slash"],
        0,
        f"{a}  /m/1\n{b}  /m/two words\n\\{a}  /m/back\\\\slash\n",
    )
    assert hook.sha256sum(["/m/1", "/m/two words", "/m/back\\slash"]) == {
        "/m/1": a,
        "/m/two words": b,
        "/m/back\\slash": a,
    }
    assert hook.sha256sum([]) == {}
    node.expect(
        ["sha256sum", "--", "/m/1", "/m/gone"],
        1,
        f"{a}  /m/1\n",
        "sha256sum: /m/gone: No such file or directory\n",
    )
    with pytest.raises(GlusterCommandError, match="No such file"):
        hook.sha256sum(["/m/1", "/m/gone"])
    node.expect(["sha256sum", "--", "/m/1"], 0, "garbage\n")
    with pytest.raises(GlusterOutputError):
        hook.sha256sum(["/m/1"])


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


def test_output_after_exit_status_is_not_lost(hook, node):
    """sshd may send the exit status before the last (window-limited) output: read on until EOF."""
    node.expect(["cat", "--", "/m/big"], 0, b"x" * 100)
    real_open = FakeTransport.open_session

    def late_eof(self, timeout=None):
        chan = real_open(self, timeout)
        real_shutdown = chan.shutdown_write

        def shutdown_write():
            real_shutdown()
            tail, chan.out = bytes(chan.out[50:]), chan.out[:50]
            chan.eof_received = False
            reads = {"n": 0}
            real_ready = chan.recv_ready

            def recv_ready():
                reads["n"] += 1
                if reads["n"] == 20:  # the rest arrives later, then EOF
                    chan.out += tail
                    chan.eof_received = True
                return real_ready()

            chan.recv_ready = recv_ready

        chan.shutdown_write = shutdown_write
        return chan

    FakeTransport.open_session = late_eof
    try:
        assert hook.read_file("/m/big") == b"x" * 100
    finally:
        FakeTransport.open_session = real_open


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
