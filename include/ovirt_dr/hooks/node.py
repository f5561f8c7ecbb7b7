"""GlusterNodeHook: access to one Gluster node over SSH: commands, files, mounts, checksums, node readers.

The product reaches Gluster nodes the way an administrator does: commands over SSH. The SSH side is the
SSH provider's ``SSHHook`` (paramiko: the connection's key file, pinned host key, timeouts) and, in the
triggerer, its ``SSHHookAsync`` (asyncssh). This hook owns what runs on them:

- every command is an argv list sent as ``shlex.join(argv)``, built from validated names only;
- failures raise typed errors (``ovirt_dr.gluster.errors``) carrying the command's stderr;
- file contents never travel on a command line or into a log (``write_file`` feeds stdin);
- the node-side readers (``ovirt_dr.node_readers``) print one JSON document, read by ``python_json``;
- the node's host key must be pinned (``ovirt_dr.hooks.ssh_pinning``), checked before anything is sent,
  on the paramiko and the asyncssh path alike.

It executes on the paramiko client itself rather than through ``SSHHook.exec_ssh_client_command`` because
that method closes stdin (no way to stream a file's content) and logs every output line at info level (a
file read through it would end up in the task log).

One SSH client per hook instance, opened on first use and reused; ``close()`` (or ``with``) closes it.
Likewise one asyncssh connection for all ``async_run`` calls (a trigger's polls), closed by ``async_close()``.
Gluster's own commands (geo-replication, volumes) are ``GlusterGeoRepHook``'s, on top of this one.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from ovirt_dr.gluster import (
    CommandTimeout,
    GlusterCommandError,
    GlusterOutputError,
    classify_error,
    validate_host,
    validate_remote_path,
    validate_volume_name,
)
from ovirt_dr.gluster.names import is_ipv6

if TYPE_CHECKING:
    from airflow.providers.ssh.hooks.ssh import SSHHook

#: Paths per command for rm / sha256sum: far below ARG_MAX, and a failure names a small batch.
_BATCH = 200
#: Seconds to wait for EOF after the exit status when no more output arrives.
_EOF_GRACE = 5.0
_SHA_LINE = re.compile(r"^\\?([0-9a-f]{64}) [ *](.*)$")


@dataclass(frozen=True)
class CommandResult:
    """Exit status and output (decoded as UTF-8, undecodable bytes replaced) of one remote command."""

    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


class GlusterNodeHook(BaseHook):
    """Commands, files and mounts on one Gluster node, over SSH.

    :param ssh_conn_id: Airflow SSH connection to the node (``host``, ``port``, ``login``; extras
        ``key_file``, ``host_key`` to pin the node's key (required, see ``ssh_pinning``),
        ``look_for_keys``...).
    :param cmd_timeout: seconds a command may take (None: no limit).
    """

    conn_name_attr = "ssh_conn_id"
    default_conn_name = "ssh_default"
    conn_type = "ssh"
    hook_name = "Gluster node (SSH)"

    def __init__(self, ssh_conn_id: str = default_conn_name, cmd_timeout: float | None = 120) -> None:
        super().__init__()
        if not ssh_conn_id:
            raise ValueError("ssh_conn_id is required")
        if cmd_timeout is not None and cmd_timeout <= 0:
            raise ValueError(f"cmd_timeout must be positive or None, got {cmd_timeout!r}")
        self.ssh_conn_id = ssh_conn_id
        self.cmd_timeout = cmd_timeout
        self._async_conn: Any = None

    # -- SSH plumbing (paramiko) ---------------------------------------------------------------------
    @cached_property
    def ssh_hook(self) -> SSHHook:
        """The SSH provider's hook, made on first use (reads the connection then, not at construction).

        The connection must pin the node's host key (``ovirt_dr.hooks.ssh_pinning``): refused otherwise,
        before anything is sent.
        """
        from airflow.providers.ssh.hooks.ssh import SSHHook

        from ovirt_dr.hooks.ssh_pinning import check_host_key_pinning

        check_host_key_pinning(self.ssh_conn_id, self.get_connection(self.ssh_conn_id).extra_dejson, self.log)
        return SSHHook(ssh_conn_id=self.ssh_conn_id, cmd_timeout=self.cmd_timeout)

    def get_conn(self) -> Any:
        """The (cached) paramiko ``SSHClient``; reconnects if the previous transport died."""
        return self.ssh_hook.get_conn()

    def close(self) -> None:
        """Close the SSH client if one was opened. The hook stays usable: the next command reconnects."""
        hook = self.__dict__.get("ssh_hook")
        client = getattr(hook, "client", None) if hook is not None else None
        if client is not None:
            try:
                client.close()
            finally:
                hook.client = None

    def __enter__(self) -> GlusterNodeHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exec_bytes(
        self, argv: Sequence[str], stdin: bytes | None = None, timeout: float | None = None
    ) -> tuple[int, bytes, bytes]:
        """Run ``shlex.join(argv)`` on the node; feed ``stdin``; return (rc, stdout, stderr) as bytes.

        Nothing of stdin or the output is logged (only sizes). ``timeout`` None: the hook's ``cmd_timeout``.
        """
        timeout = self.cmd_timeout if timeout is None else timeout
        command = shlex.join(argv)
        extra = f" (stdin: {len(stdin)} bytes)" if stdin else ""
        self.log.info("Running on %s: %s%s", self.ssh_conn_id, command, extra)
        started = time.monotonic()
        transport = self.get_conn().get_transport()
        if transport is None or not transport.is_active():
            raise GlusterCommandError(argv, -1, "", f"SSH connection {self.ssh_conn_id!r} is not active")
        chan = transport.open_session(timeout=timeout)
        try:
            chan.settimeout(timeout)
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = None if timeout is None else started + timeout
            delay = 0.001
            last_data = time.monotonic()
            while True:
                got = False
                while chan.recv_ready():
                    out += chan.recv(1 << 16)
                    got = True
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(1 << 16)
                    got = True
                now = time.monotonic()
                if got:
                    last_data = now
                # sshd may send the exit status before the last of the output (window-limited): the output
                # is complete only at EOF. A server that never sends EOF gets _EOF_GRACE s of silence.
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    if chan.eof_received or chan.closed or now - last_data > _EOF_GRACE:
                        break
                if deadline is not None and now > deadline:
                    raise CommandTimeout(
                        argv,
                        -1,
                        bytes(out).decode("utf-8", "replace"),
                        bytes(err).decode("utf-8", "replace"),
                        reason=f"no exit after {timeout:g} s",
                    )
                if got:
                    delay = 0.001
                else:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            rc = chan.recv_exit_status()
        finally:
            chan.close()
        self.log.info(
            "Exit status %d after %.2f s (%d bytes out, %d bytes err)",
            rc,
            time.monotonic() - started,
            len(out),
            len(err),
        )
        return rc, bytes(out), bytes(err)

    @staticmethod
    def check_argv(argv: Sequence[str]) -> list[str]:
        """``argv`` as a list, if it is a non-empty list of strings (a command line string is refused)."""
        if isinstance(argv, str | bytes) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError(f"argv must be a non-empty list of strings, got {argv!r}")
        return list(argv)

    def run(self, argv: Sequence[str], check: bool = True, timeout: float | None = None) -> CommandResult:
        """Run one command (an argv list, quoted with ``shlex.join``) on the node.

        :param check: raise the classified ``GlusterCommandError`` when the exit status is not 0.
        :param timeout: seconds for this command; None: the hook's ``cmd_timeout``.
        """
        argv = self.check_argv(argv)
        rc, out, err = self.exec_bytes(argv, None, timeout)
        result = CommandResult(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        if check and result.rc != 0:
            raise classify_error(result.rc, result.stdout, result.stderr, argv)
        return result

    # -- the async path (the triggerer): one asyncssh connection for every call -------------------------
    async def _async_connection(self) -> Any:
        if self._async_conn is not None:
            return self._async_conn
        from airflow.providers.common.compat.connection import get_async_connection
        from airflow.providers.ssh.hooks.ssh import SSHHookAsync

        from ovirt_dr.hooks.ssh_pinning import check_host_key_pinning

        conn = await get_async_connection(self.ssh_conn_id)
        check_host_key_pinning(self.ssh_conn_id, conn.extra_dejson, self.log)
        self._async_conn = await SSHHookAsync(ssh_conn_id=self.ssh_conn_id).get_conn()
        return self._async_conn

    async def async_run(self, argv: Sequence[str], timeout: float | None = None) -> CommandResult:
        """``run(check=False)`` from the triggerer: same command line, on one asyncssh connection.

        The connection is opened on the first call (host key pinning checked first) and reused; an SSH
        failure drops it, so the next call reconnects. A command killed by a signal has rc -1 (asyncssh
        reports no exit status for it; the SSH provider's ``run_command`` would turn that into 0).
        """
        argv = self.check_argv(argv)
        timeout = self.cmd_timeout if timeout is None else timeout
        conn = await self._async_connection()
        try:
            res = await conn.run(shlex.join(argv), check=False, timeout=timeout)
        except TimeoutError as e:
            raise CommandTimeout(argv, -1, "", str(e), reason=f"no exit after {timeout:g} s") from e
        except Exception:
            await self.async_close()
            raise
        rc = res.exit_status if res.exit_status is not None else -1

        def text(value: Any) -> str:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")

        return CommandResult(rc, text(res.stdout), text(res.stderr))

    async def async_close(self) -> None:
        """Close the asyncssh connection if one is open (the next ``async_run`` reconnects)."""
        conn, self._async_conn = self._async_conn, None
        if conn is not None:
            conn.close()
            try:
                await conn.wait_closed()
            except Exception:  # closing a dead connection must not mask the caller's outcome
                self.log.debug("asyncssh connection of %s did not close cleanly", self.ssh_conn_id)

    # -- mounts ----------------------------------------------------------------------------------------
    @staticmethod
    def _mountpoint(path: str) -> str:
        return posixpath.normpath(validate_remote_path(path, "mountpoint"))

    def mount_source(self, mountpoint: str) -> str | None:
        """What is mounted exactly at ``mountpoint`` (``host:/volume`` for Gluster), or None."""
        argv = ["findmnt", "-n", "-o", "SOURCE", "--mountpoint", self._mountpoint(mountpoint)]
        res = self.run(argv, check=False)
        if res.rc == 1 and not res.stdout.strip():
            return None
        if res.rc != 0:
            raise classify_error(res.rc, res.stdout, res.stderr, argv)
        return res.stdout.strip().splitlines()[-1].strip()

    def is_mounted(self, mountpoint: str) -> bool:
        """True if a file system is mounted exactly at ``mountpoint`` (``findmnt --mountpoint``)."""
        return self.mount_source(mountpoint) is not None

    def mount(
        self, volume: str, host: str, mountpoint: str, read_only: bool = False, as_georep: bool = False
    ) -> bool:
        """FUSE-mount ``host:/volume`` at ``mountpoint`` (created if missing).

        ``as_georep`` mounts as geo-replication's own client (``--client-pid=-1``): geo-rep's ``create`` sets
        ``features.read-only on`` on the slave volume, which refuses every other client, and the replica
        cleanup must delete this run's overlays there. This changes no volume option, so nothing is left
        writable if the task dies; use it only on a stopped session's slave.

        Returns False if that same volume is already mounted there; a different file system there is an error.
        """
        validate_volume_name(volume)
        host = validate_host(host, "Gluster server")
        if is_ipv6(host):
            raise ValueError(
                f"Gluster server {host!r}: IPv6 literals are not supported for mounts, use a host name"
            )
        mnt = self._mountpoint(mountpoint)
        source = f"{host}:/{volume}"
        current = self.mount_source(mnt)
        if current is not None:
            if current.rstrip("/") in (source, f"{host}:{volume}"):
                self.log.info("%s is already mounted at %s", source, mnt)
                return False
            raise GlusterCommandError(
                ["mount", source, mnt],
                32,
                "",
                f"{mnt} already has {current} mounted",
                reason="mountpoint busy",
            )
        self.run(["mkdir", "-p", "--", mnt])
        if as_georep:
            if read_only:
                raise ValueError("as_georep mounts are for writing; do not combine with read_only")
            self.run(
                ["glusterfs", "--client-pid=-1", f"--volfile-server={host}", f"--volfile-id={volume}", mnt]
            )
        else:
            self.run(["mount", "-t", "glusterfs", *(["-o", "ro"] if read_only else []), source, mnt])
        return True

    def umount(self, mountpoint: str) -> bool:
        """Unmount ``mountpoint``. False if nothing was mounted there (not an error)."""
        mnt = self._mountpoint(mountpoint)
        if not self.is_mounted(mnt):
            return False
        self.run(["umount", mnt])
        return True

    @contextmanager
    def mounted(
        self, volume: str, host: str, mountpoint: str, read_only: bool = False, as_georep: bool = False
    ) -> Iterator[str]:
        """``host:/volume`` mounted at ``mountpoint`` for the block, then unmounted, whatever happens.

        A mount already there (an operator killed half-way) is reused and then unmounted too. A failed
        unmount is logged, not raised: it must not hide the block's own outcome.
        """
        if not self.is_mounted(mountpoint):
            self.mount(volume, host, mountpoint, read_only=read_only, as_georep=as_georep)
        try:
            yield mountpoint
        finally:
            try:
                self.umount(mountpoint)
            except Exception:
                self.log.warning("Could not unmount %s on %s", mountpoint, self.ssh_conn_id, exc_info=True)

    # -- files -----------------------------------------------------------------------------------------
    def touch(self, path: str) -> None:
        """Create ``path`` or update its times: the "change after the checkpoint" a checkpoint needs."""
        self.run(["touch", "--", validate_remote_path(path)])

    def remove_files(self, paths: Iterable[str]) -> int:
        """``rm -f`` each file (never directories, never recursive). Returns how many paths were given."""
        todo = _unique(validate_remote_path(p) for p in paths)
        for p in todo:
            if posixpath.normpath(p) == "/":
                raise ValueError("refusing to remove '/'")
        for i in range(0, len(todo), _BATCH):
            self.run(["rm", "-f", "--", *todo[i : i + _BATCH]])
        return len(todo)

    def write_file(self, path: str, data: bytes, timeout: float | None = None) -> None:
        """Write ``data`` to ``path`` on the node (through stdin, never on the command line), then fsync it.

        The file is rewritten in place, not replaced by a rename: on a geo-replicated volume a file keeps the
        GFID of its master copy, and a new inode would get a new one that later syncs would not match.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        target = validate_remote_path(path)
        argv = ["dd", f"of={target}", "bs=1M", "conv=fsync", "status=none"]
        rc, out, err = self.exec_bytes(argv, bytes(data), timeout)
        if rc != 0:
            raise classify_error(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), argv)

    def sha256sum(self, paths: Iterable[str], timeout: float | None = 3600) -> dict[str, str]:
        """SHA-256 of each file, computed on the node: ``{path: hex digest}``.

        :param timeout: seconds per batch of files (default one hour: disk images are large).
        """
        todo = _unique(validate_remote_path(p) for p in paths)
        out: dict[str, str] = {}
        for i in range(0, len(todo), _BATCH):
            batch = todo[i : i + _BATCH]
            res = self.run(["sha256sum", "--", *batch], timeout=timeout)
            for line in res.stdout.splitlines():
                m = _SHA_LINE.match(line)
                if not m:
                    raise GlusterOutputError("unexpected sha256sum line", line)
                name = m.group(2)
                if line.startswith("\\"):  # coreutils escapes names holding '\' or a newline
                    name = name.replace("\\\\", "\0").replace("\\n", "\n").replace("\0", "\\")
                out[name] = m.group(1)
            missing = [p for p in batch if p not in out]
            if missing:
                raise GlusterOutputError(f"sha256sum printed no digest for {missing[:3]}", res.stdout)
        return {p: out[p] for p in todo}

    # -- node-side readers -----------------------------------------------------------------------------
    def python_json(self, script: str, *args: str, what: str, timeout: float | None = None) -> Any:
        """Run a node-side reader (``python3 -c script args...``) and return the JSON document it printed.

        ``args`` are validated paths and numbers only; what the reader reads from storage comes back as
        data in the document, never as an argument of anything (``ovirt_dr.node_readers``). Output that is
        no JSON document is a ``GlusterOutputError`` naming ``what`` was read.
        """
        text = self.run(["python3", "-c", script, *args], timeout=timeout).stdout
        try:
            return json.loads(text)
        except ValueError:
            raise GlusterOutputError(f"{what}: the node printed no JSON document", text[-200:]) from None


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


__all__ = ["CommandResult", "GlusterNodeHook"]
