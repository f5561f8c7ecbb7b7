"""GlusterNodeHook (node access over SSH: commands, files, mounts, checksums, node readers, the async path)
against the scripted fake node of conftest.py."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace as NS

import pytest

from ovirt_dr.gluster import CommandTimeout, GlusterCommandError, GlusterOutputError
from ovirt_dr.hooks.node import CommandResult, GlusterNodeHook


@pytest.fixture
def hook(node) -> GlusterNodeHook:
    return GlusterNodeHook(ssh_conn_id="gluster_primary")


def test_construction_is_cheap_and_validated(node, ssh_hooks):
    h = GlusterNodeHook(ssh_conn_id="gluster_primary", cmd_timeout=30)
    assert ssh_hooks.instances == []  # no connection looked up yet
    assert h.ssh_hook.ssh_conn_id == "gluster_primary" and h.ssh_hook.cmd_timeout == 30
    with pytest.raises(ValueError):
        GlusterNodeHook(ssh_conn_id="")
    with pytest.raises(ValueError):
        GlusterNodeHook(ssh_conn_id="x", cmd_timeout=0)


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


def test_one_client_reused_then_closed(hook, node, ssh_hooks):
    for _ in range(3):
        node.expect(["true"])
        hook.run(["true"])
    (ssh,) = ssh_hooks.instances
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
    with GlusterNodeHook(ssh_conn_id="c") as h:
        node.expect(["true"])
        h.run(["true"])
        client = h.ssh_hook.client
    assert client.closed


def test_close_without_use_does_not_connect(node, ssh_hooks):
    GlusterNodeHook(ssh_conn_id="c").close()
    assert ssh_hooks.instances == []


def test_timeout(hook, node, ssh_hooks):
    node.hang(["sleep", "100"])
    with pytest.raises(CommandTimeout, match="no exit after 0.05 s"):
        hook.run(["sleep", "100"], timeout=0.05)
    assert ssh_hooks.instances[0].client.transport.channels[0].closed


def _log(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What the hook logged: Airflow's structlog setup prints to stdout, plain logging goes to caplog."""
    return capsys.readouterr().out + caplog.text


def test_commands_logged_at_info(hook, node, capsys, caplog):
    caplog.set_level(logging.INFO)
    node.expect(["touch", "--", "/mnt/x"])
    hook.touch("/mnt/x")
    lines = [line for line in _log(capsys, caplog).splitlines() if "touch -- /mnt/x" in line]
    assert lines and ("info" in lines[0].lower())


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


def test_remove_files_batches_and_never_recurses(hook, node):
    paths = [f"/m/f{i}" for i in range(250)]
    node.expect(["rm", "-f", "--", *paths[:200]])
    node.expect(["rm", "-f", "--", *paths[200:]])
    assert hook.remove_files([*paths, paths[0]]) == 250
    with pytest.raises(ValueError):
        hook.remove_files(["/"])
    with pytest.raises(ValueError):
        hook.remove_files(["relative"])


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


def test_output_after_exit_status_is_not_lost(hook, node, fake_transport):
    """sshd may send the exit status before the last (window-limited) output: read on until EOF."""
    node.expect(["cat", "--", "/m/big"], 0, b"x" * 100)
    real_open = fake_transport.open_session

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

    fake_transport.open_session = late_eof
    try:
        assert hook.exec_bytes(["cat", "--", "/m/big"])[1] == b"x" * 100
    finally:
        fake_transport.open_session = real_open


def test_exec_bytes_is_binary_and_not_logged(hook, node, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    blob = bytes(range(256)) * 3 + b"SECRET-CONTENT"
    node.expect(["cat", "--", "/m/x"], 0, blob)
    assert hook.exec_bytes(["cat", "--", "/m/x"]) == (0, blob, b"")
    logged = _log(capsys, caplog)
    assert "cat -- /m/x" in logged and "SECRET-CONTENT" not in logged


def test_python_json_returns_the_readers_document(hook, node):
    node.expect(["python3", "-c", "print(1)", "/m/sd"], 0, '{"images": ["a"]}')
    assert hook.python_json("print(1)", "/m/sd", what="image listing") == {"images": ["a"]}
    node.expect(["python3", "-c", "print(1)"], 0, "Traceback: no\n")
    with pytest.raises(GlusterOutputError, match="image listing: the node printed no JSON document"):
        hook.python_json("print(1)", what="image listing")
    node.expect(["python3", "-c", "print(1)"], 1, "", "python3: command not found\n")
    with pytest.raises(GlusterCommandError, match="command not found"):
        hook.python_json("print(1)", what="x")


def test_mounted_unmounts_after_the_block_even_when_it_fails(hook, node):
    findmnt = ["findmnt", "-n", "-o", "SOURCE", "--mountpoint", "/run/m/gvslave"]
    node.expect(findmnt, 1)  # not mounted yet
    node.expect(findmnt, 1)  # mount() checks again
    node.expect(["mkdir", "-p", "--", "/run/m/gvslave"])
    node.expect(["mount", "-t", "glusterfs", "-o", "ro", "vm:/gvslave", "/run/m/gvslave"])
    node.expect(findmnt, 0, "vm:/gvslave\n")
    node.expect(["umount", "/run/m/gvslave"])
    with pytest.raises(RuntimeError, match="inside"):
        with hook.mounted("gvslave", "vm", "/run/m/gvslave", read_only=True) as mnt:
            assert mnt == "/run/m/gvslave"
            raise RuntimeError("inside")


# -- the async path: one asyncssh connection for every call ----------------------------------------------
class FakeAsyncConn:
    """An asyncssh connection: scripted replies (rc, out, err) or an exception, shared by every connection."""

    def __init__(self, replies: list) -> None:
        self.replies = replies
        self.commands: list[str] = []
        self.closed = False

    async def run(self, command, check=False, timeout=None):
        assert check is False
        self.commands.append(command)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        rc, out, err = reply
        return NS(exit_status=rc, stdout=out, stderr=err)

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None


@pytest.fixture
def async_conns(node, monkeypatch):
    import airflow.providers.ssh.hooks.ssh as ssh_module

    made: list[FakeAsyncConn] = []
    replies: list = []

    async def get_conn(self):
        made.append(FakeAsyncConn(replies))
        return made[-1]

    monkeypatch.setattr(ssh_module.SSHHookAsync, "get_conn", get_conn)
    return NS(made=made, replies=replies)


def test_async_run_reuses_one_connection_until_closed(hook, async_conns):
    async_conns.replies += [(0, "a b\n", ""), (3, "", "bad\n"), (None, "", "killed")]

    async def three():
        out = [await hook.async_run(["echo", "a b"]), await hook.async_run(["false"])]
        out.append(await hook.async_run(["sleep", "9"]))
        await hook.async_close()
        return out

    results = asyncio.run(three())
    assert results == [
        CommandResult(0, "a b\n", ""),
        CommandResult(3, "", "bad\n"),
        CommandResult(-1, "", "killed"),
    ]
    (conn,) = async_conns.made  # one connection for the three commands
    assert conn.commands == ["echo 'a b'", "false", "sleep 9"] and conn.closed


def test_async_run_drops_a_broken_connection_and_reconnects(hook, async_conns):
    async_conns.replies += [OSError("connection reset"), (0, "ok", "")]

    async def twice():
        with pytest.raises(OSError, match="reset"):
            await hook.async_run(["true"])
        return await hook.async_run(["true"])

    assert asyncio.run(twice()) == CommandResult(0, "ok", "")
    first, second = async_conns.made
    assert first.closed and not second.closed


def test_async_run_timeout_is_typed(hook, async_conns):
    async_conns.replies.append(TimeoutError("took too long"))
    with pytest.raises(CommandTimeout, match="no exit after 120 s"):
        asyncio.run(hook.async_run(["sleep", "1000"]))


def test_async_run_refuses_non_argv(hook):
    with pytest.raises(ValueError, match="argv"):
        asyncio.run(hook.async_run("ls -l"))  # type: ignore[arg-type]
