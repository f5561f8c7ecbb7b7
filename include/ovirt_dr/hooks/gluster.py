"""GlusterGeoRepHook: run ``gluster`` and file commands on a Gluster node over SSH, return parsed results.

The product reaches Gluster the way an administrator does: commands on a node, over SSH (geo-replication is
not in the oVirt API). The SSH side is the SSH provider's ``SSHHook`` (the connection's key file, pinned host
key, timeouts); this hook owns what runs on it:

- every command is an argv list sent as ``shlex.join(argv)``, built from validated names only;
- failures raise typed errors (``ovirt_dr.gluster.errors``) carrying the command's stderr;
- file contents never travel on a command line or into a log (``write_file`` feeds stdin).

It executes on the paramiko client itself rather than through ``SSHHook.exec_ssh_client_command`` because
that method closes stdin (no way to stream a file's content) and logs every output line at info level (a
file read through it would end up in the task log).

One SSH client per hook instance, opened on first use and reused; ``close()`` (or ``with``) closes it.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from ovirt_dr.gluster import (
    TIME_FORMAT,
    AlreadyStarted,
    CommandTimeout,
    GeoRepSession,
    GeoRepStatus,
    GlusterBusy,
    GlusterCommandError,
    GlusterOutputError,
    NotStarted,
    SessionNotFound,
    VolumeInfo,
    build_georep_cmd,
    build_volume_cmd,
    classify_error,
    parse_georep_status,
    parse_volume_info,
    validate_host,
    validate_remote_path,
    validate_volume_name,
    xml_op_error,
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


@dataclass(frozen=True)
class Checkpoint:
    """A geo-replication checkpoint: ``epoch`` as Gluster stores it, ``label`` as ``status detail`` shows it.

    The label is the node's local time ``%Y-%m-%d %H:%M:%S``; comparing it with ``checkpoint_time`` is what
    tells *this* checkpoint from an earlier completed one.
    """

    epoch: int
    label: str

    def as_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "label": self.label}


class GlusterGeoRepHook(BaseHook):
    """Gluster geo-replication and file operations on one Gluster node, over SSH.

    :param ssh_conn_id: Airflow SSH connection to the node (``host``, ``port``, ``login``; extras
        ``key_file``, ``host_key`` to pin the node's key (required, see ``ssh_pinning``),
        ``look_for_keys``...).
    :param cmd_timeout: seconds a command may take (None: no limit). Status polls take ~1-1.5 s; ``start``
        and ``stop`` a few seconds.
    """

    #: Waits between retries of a gluster command refused with "Another transaction is in progress"
    #: (glusterd's cluster lock, held by any other gluster command on the cluster for a second or so).
    busy_delays: tuple[float, ...] = (1, 2, 4, 8)

    conn_name_attr = "ssh_conn_id"
    default_conn_name = "ssh_default"
    conn_type = "ssh"
    hook_name = "Gluster geo-replication (SSH)"

    def __init__(self, ssh_conn_id: str = default_conn_name, cmd_timeout: float | None = 120) -> None:
        super().__init__()
        if not ssh_conn_id:
            raise ValueError("ssh_conn_id is required")
        if cmd_timeout is not None and cmd_timeout <= 0:
            raise ValueError(f"cmd_timeout must be positive or None, got {cmd_timeout!r}")
        self.ssh_conn_id = ssh_conn_id
        self.cmd_timeout = cmd_timeout

    # -- SSH plumbing --------------------------------------------------------------------------------
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

    def __enter__(self) -> GlusterGeoRepHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exec(
        self, argv: Sequence[str], stdin: bytes | None, timeout: float | None
    ) -> tuple[int, bytes, bytes]:
        """Run ``shlex.join(argv)`` on the node; feed ``stdin``; return (rc, stdout, stderr) as bytes."""
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

    def run(self, argv: Sequence[str], check: bool = True, timeout: float | None = None) -> CommandResult:
        """Run one command (an argv list, quoted with ``shlex.join``) on the node.

        :param check: raise the classified ``GlusterCommandError`` when the exit status is not 0.
        :param timeout: seconds for this command; None: the hook's ``cmd_timeout``.
        """
        if isinstance(argv, str | bytes) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError(f"argv must be a non-empty list of strings, got {argv!r}")
        argv = list(argv)
        for attempt, delay in enumerate((*self.busy_delays, None)):
            rc, out, err = self._exec(argv, None, self.cmd_timeout if timeout is None else timeout)
            result = CommandResult(rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
            if delay is None or argv[0] != "gluster" or not self._busy(result, argv):
                break
            self.log.warning(
                "glusterd is busy with another command (attempt %d): retrying in %g s", attempt + 1, delay
            )
            time.sleep(delay)
        if check and result.rc != 0:
            raise classify_error(result.rc, result.stdout, result.stderr, argv)
        return result

    @staticmethod
    def _busy(result: CommandResult, argv: list[str]) -> bool:
        """True if glusterd refused the command because another holds its lock (then nothing was done)."""
        if result.rc == 0:
            op = xml_op_error(result.stdout)
            if op is None or op[0] == 0:
                return False
        return isinstance(classify_error(result.rc, result.stdout, result.stderr, argv), GlusterBusy)

    # -- geo-replication -----------------------------------------------------------------------------
    def status(self, session: GeoRepSession) -> GeoRepStatus:
        """``status detail --xml``, parsed. A missing session raises ``SessionNotFound`` with Gluster's words."""
        argv = build_georep_cmd(session, "status", "detail", xml=True)
        res = self.run(argv, check=False)
        if res.rc != 0:
            error = classify_error(res.rc, res.stdout, res.stderr, argv)
            if isinstance(error, SessionNotFound) and error.reason.startswith("inferred"):
                # --xml says only "geo-replication command failed": ask without it for the real reason.
                plain_argv = build_georep_cmd(session, "status")
                plain = self.run(plain_argv, check=False)
                if plain.rc != 0:
                    raise classify_error(plain.rc, plain.stdout, plain.stderr, plain_argv) from error
                raise GlusterCommandError(
                    argv, res.rc, res.stdout, res.stderr, reason="plain status works"
                ) from error
            raise error
        return parse_georep_status(res.stdout)

    def set_checkpoint(self, session: GeoRepSession) -> Checkpoint:
        """``config checkpoint now``; return its epoch (``config checkpoint``) and node-local label.

        The label comes from ``date -d @EPOCH`` on the node, so it is formatted with the node's time zone,
        exactly as ``status detail`` will print ``checkpoint_time``.
        """
        set_argv = build_georep_cmd(session, "config", "checkpoint", "now", xml=True)
        res = self.run(set_argv)
        op = xml_op_error(res.stdout)
        if op is None:
            raise GlusterOutputError("config checkpoint now --xml did not print Gluster's XML", res.stdout)
        if op[0] != 0:
            raise classify_error(res.rc, res.stdout, res.stderr, set_argv)
        get_argv = build_georep_cmd(session, "config", "checkpoint")
        got = self.run(get_argv)
        numbers = [line.strip() for line in got.stdout.splitlines() if line.strip().isdigit()]
        if not numbers:
            raise GlusterOutputError("config checkpoint did not print an epoch", got.stdout)
        epoch = int(numbers[-1])
        if epoch <= 0:
            raise GlusterOutputError("config checkpoint printed no checkpoint time (0)", got.stdout)
        label = self.run(["date", "-d", f"@{epoch}", f"+{TIME_FORMAT}"]).stdout.strip()
        try:
            datetime.strptime(label, TIME_FORMAT)
        except ValueError:
            raise GlusterOutputError(f"date on the node printed {label!r} for @{epoch}", label) from None
        self.log.info("Checkpoint of %s set: epoch %d, label %s", session, epoch, label)
        return Checkpoint(epoch, label)

    def start(self, session: GeoRepSession) -> bool:
        """Start the session. True if it was started now, False if it already was (not an error)."""
        argv = build_georep_cmd(session, "start")
        res = self.run(argv, check=False)
        if res.rc == 0:
            return True
        error = classify_error(res.rc, res.stdout, res.stderr, argv)
        if isinstance(error, AlreadyStarted):
            self.log.info("Geo-replication %s was already started", session)
            return False
        raise error

    def stop(self, session: GeoRepSession, force: bool = False) -> bool:
        """Stop the session. True if it was running, False if it already was stopped (not an error).

        ``stop`` on a stopped session exits 0 with the same message as a real stop, so whether it was running
        is read from ``status`` first; the stop is sent either way, so the session is stopped afterwards.
        """
        was_running = self.status(session).is_running
        argv = build_georep_cmd(session, "stop", *(["force"] if force else []))
        res = self.run(argv, check=False)
        if res.rc != 0:
            error = classify_error(res.rc, res.stdout, res.stderr, argv)
            if isinstance(error, NotStarted):
                self.log.info("Geo-replication %s was not running", session)
                return False
            raise error
        return was_running

    def volume_info(self, volume: str | None = None) -> list[VolumeInfo]:
        """``volume info [VOLUME] --xml``, parsed (status, bricks, options such as ``features.read-only``)."""
        return parse_volume_info(self.run(build_volume_cmd("info", volume)).stdout)

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

    # -- files -----------------------------------------------------------------------------------------
    def touch(self, path: str) -> None:
        """Create ``path`` or update its times: the "change after the checkpoint" a checkpoint needs."""
        self.run(["touch", "--", validate_remote_path(path)])

    def list_files(self, path: str) -> dict[str, int]:
        """Regular files under directory ``path`` (recursively): ``{relative path: size in bytes}``."""
        root = validate_remote_path(path)
        res = self.run(["find", root, "-type", "f", "-printf", r"%P\0%s\0"])
        parts = res.stdout.split("\0")
        if parts and parts[-1] == "":
            parts.pop()
        if len(parts) % 2:
            raise GlusterOutputError(f"find under {root} printed an odd number of fields", res.stdout)
        out: dict[str, int] = {}
        for rel, size in zip(parts[0::2], parts[1::2], strict=True):
            try:
                out[rel] = int(size)
            except ValueError:
                raise GlusterOutputError(f"find printed size {size!r} for {rel!r}", res.stdout) from None
        return out

    def remove_files(self, paths: Iterable[str]) -> int:
        """``rm -f`` each file (never directories, never recursive). Returns how many paths were given."""
        todo = _unique(validate_remote_path(p) for p in paths)
        for p in todo:
            if posixpath.normpath(p) == "/":
                raise ValueError("refusing to remove '/'")
        for i in range(0, len(todo), _BATCH):
            self.run(["rm", "-f", "--", *todo[i : i + _BATCH]])
        return len(todo)

    def read_file(self, path: str, timeout: float | None = None) -> bytes:
        """The content of a file on the node, as bytes (not logged)."""
        argv = ["cat", "--", validate_remote_path(path)]
        rc, out, err = self._exec(argv, None, self.cmd_timeout if timeout is None else timeout)
        if rc != 0:
            raise classify_error(rc, "", err.decode("utf-8", "replace"), argv)
        return out

    def write_file(self, path: str, data: bytes, timeout: float | None = None) -> None:
        """Write ``data`` to ``path`` on the node (through stdin, never on the command line), then fsync it.

        The file is rewritten in place, not replaced by a rename: on a geo-replicated volume a file keeps the
        GFID of its master copy, and a new inode would get a new one that later syncs would not match.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        target = validate_remote_path(path)
        argv = ["dd", f"of={target}", "bs=1M", "conv=fsync", "status=none"]
        rc, out, err = self._exec(argv, bytes(data), self.cmd_timeout if timeout is None else timeout)
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


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


__all__ = ["Checkpoint", "CommandResult", "GlusterGeoRepHook"]
