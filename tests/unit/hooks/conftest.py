"""A fake Gluster node behind the SSH provider's ``SSHHook`` (the one class replaced) for the hook tests.

The fake speaks the paramiko surface the node access uses (client -> transport -> channel) and answers
each command from a script of (expected argv, rc, stdout, stderr), so every test also checks the exact
command lines sent. The real node is exercised by tests/lab/test_gluster_hook.py.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

import airflow.providers.ssh.hooks.ssh as ssh_module
import pytest

Reply = tuple[int, str | bytes, str | bytes]


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
def ssh_hooks() -> type[FakeSSHHook]:
    """The fake ``SSHHook`` class: ``.instances`` are the SSH hooks made, each with its ``connects``."""
    return FakeSSHHook


@pytest.fixture
def fake_transport() -> type[FakeTransport]:
    return FakeTransport
