"""GlusterGeoRepHook: Gluster's own commands on a node (geo-replication, volumes), parsed; sync and async.

Geo-replication is not in the oVirt API: the product runs the ``gluster`` CLI on a node, as an
administrator does. This hook builds those commands (``ovirt_dr.gluster``: validated names, argv lists),
runs them through the node's access (:class:`ovirt_dr.hooks.node.GlusterNodeHook`: SSH, host key pinned)
and returns parsed results or typed errors:

- a command refused because glusterd's cluster lock is held ("Another transaction is in progress") is
  retried after ``busy_delays`` (nothing was done);
- ``status`` and ``async_status`` are one implementation (``_status_steps``): the same commands, the same
  classification of failures (a missing session asks plain ``status`` for Gluster's real reason), driven
  over paramiko in a worker or over one asyncssh connection in the triggerer.

The node's access is made from ``ssh_conn_id`` (and closed by ``close()``), or given (``node=``) to share
one SSH client with the caller's own node access (an operator that mounts and runs gluster commands on
the same node); a given node is left for its owner to close.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from datetime import datetime
from typing import Any

from airflow.sdk import BaseHook

from ovirt_dr.gluster import (
    TIME_FORMAT,
    AlreadyStarted,
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
    build_volume_set_cmd,
    classify_error,
    parse_georep_status,
    parse_volume_info,
    xml_op_error,
)
from ovirt_dr.gluster.checkpoint import Checkpoint
from ovirt_dr.hooks.node import CommandResult, GlusterNodeHook

#: Node access that used to be methods of this hook (now ``GlusterNodeHook``'s); forwarded, with a
#: warning, while callers move over.
_MOVED_TO_NODE = frozenset(
    {"mount", "umount", "is_mounted", "mount_source", "touch", "remove_files", "write_file", "sha256sum"}
)

_Steps = Generator[list[str], CommandResult, Any]


def _status_steps(session: GeoRepSession) -> _Steps:
    """``status detail --xml`` of a session, parsed; a missing session raises ``SessionNotFound``.

    A generator of commands (each sent back its result), so the sync and the async path share every rule.
    """
    argv = build_georep_cmd(session, "status", "detail", xml=True)
    res = yield argv
    if res.rc != 0:
        error = classify_error(res.rc, res.stdout, res.stderr, argv)
        if isinstance(error, SessionNotFound) and error.reason.startswith("inferred"):
            # --xml says only "geo-replication command failed": ask without it for the real reason.
            plain_argv = build_georep_cmd(session, "status")
            plain = yield plain_argv
            if plain.rc != 0:
                raise classify_error(plain.rc, plain.stdout, plain.stderr, plain_argv) from error
            raise GlusterCommandError(
                argv, res.rc, res.stdout, res.stderr, reason="plain status works"
            ) from error
        raise error
    return parse_georep_status(res.stdout)


def _drive(steps: _Steps, run: Callable[[list[str]], CommandResult]) -> Any:
    try:
        argv = next(steps)
        while True:
            argv = steps.send(run(argv))
    except StopIteration as done:
        return done.value


async def _async_drive(steps: _Steps, run: Callable[[list[str]], Awaitable[CommandResult]]) -> Any:
    try:
        argv = next(steps)
        while True:
            argv = steps.send(await run(argv))
    except StopIteration as done:
        return done.value


def node_access(hook: GlusterGeoRepHook | GlusterNodeHook) -> GlusterNodeHook:
    """The node access of either hook: a ``GlusterGeoRepHook``'s own (same SSH client), or the node hook."""
    return hook.node if isinstance(hook, GlusterGeoRepHook) else hook


class GlusterGeoRepHook(BaseHook):
    """Gluster geo-replication and volume commands on one Gluster node.

    :param ssh_conn_id: Airflow SSH connection to the node (see ``GlusterNodeHook``; the host key must be
        pinned).
    :param cmd_timeout: seconds a command may take (None: no limit). Status polls take ~1-1.5 s; ``start``
        and ``stop`` a few seconds.
    :param node: the node's access to run on, instead of one made from ``ssh_conn_id``.
    """

    #: Waits between retries of a gluster command refused with "Another transaction is in progress"
    #: (glusterd's cluster lock, held by any other gluster command on the cluster for a second or so).
    busy_delays: tuple[float, ...] = (1, 2, 4, 8)

    conn_name_attr = "ssh_conn_id"
    default_conn_name = "ssh_default"
    conn_type = "ssh"
    hook_name = "Gluster geo-replication (SSH)"

    def __init__(
        self,
        ssh_conn_id: str = default_conn_name,
        cmd_timeout: float | None = 120,
        *,
        node: GlusterNodeHook | None = None,
    ) -> None:
        super().__init__()
        self._owns_node = node is None
        self.node = node if node is not None else GlusterNodeHook(ssh_conn_id, cmd_timeout)
        self.ssh_conn_id = self.node.ssh_conn_id

    def get_conn(self) -> Any:
        """The node's SSH client (connects now: what a reachability probe asks for)."""
        return self.node.get_conn()

    def close(self) -> None:
        """Close the node's SSH client, if this hook made the node access."""
        if self._owns_node:
            self.node.close()

    async def async_close(self) -> None:
        """Close the node's asyncssh connection, if this hook made the node access."""
        if self._owns_node:
            await self.node.async_close()

    def __enter__(self) -> GlusterGeoRepHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        if name in _MOVED_TO_NODE:
            import warnings

            warnings.warn(
                f"GlusterGeoRepHook.{name} moved to GlusterNodeHook (hook.node.{name})",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(self.node, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- running gluster commands --------------------------------------------------------------------
    def _retry_busy(self, argv: list[str], result: CommandResult, attempt: int) -> float | None:
        """The delay before retrying a command glusterd refused as busy, or None (not busy, or no more)."""
        if attempt >= len(self.busy_delays) or argv[0] != "gluster" or not self._busy(result, argv):
            return None
        delay = self.busy_delays[attempt]
        self.log.warning(
            "glusterd is busy with another command (attempt %d): retrying in %g s", attempt + 1, delay
        )
        return delay

    def run(self, argv: Sequence[str], check: bool = True, timeout: float | None = None) -> CommandResult:
        """Run one command on the node (``GlusterNodeHook.run``), retrying a gluster command refused as busy.

        :param check: raise the classified ``GlusterCommandError`` when the exit status is not 0.
        :param timeout: seconds for this command; None: the node's ``cmd_timeout``.
        """
        argv = GlusterNodeHook.check_argv(argv)
        attempt = 0
        while True:
            result = self.node.run(argv, check=False, timeout=timeout)
            delay = self._retry_busy(argv, result, attempt)
            if delay is None:
                break
            time.sleep(delay)
            attempt += 1
        if check and result.rc != 0:
            raise classify_error(result.rc, result.stdout, result.stderr, argv)
        return result

    async def async_run(self, argv: Sequence[str], timeout: float | None = None) -> CommandResult:
        """``run(check=False)`` from the triggerer, on the node's one asyncssh connection."""
        argv = GlusterNodeHook.check_argv(argv)
        attempt = 0
        while True:
            result = await self.node.async_run(argv, timeout=timeout)
            delay = self._retry_busy(argv, result, attempt)
            if delay is None:
                return result
            await asyncio.sleep(delay)
            attempt += 1

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
        return _drive(_status_steps(session), lambda argv: self.run(argv, check=False))

    async def async_status(self, session: GeoRepSession) -> GeoRepStatus:
        """``status`` from the triggerer: the same commands and errors, on one asyncssh connection."""
        return await _async_drive(_status_steps(session), self.async_run)

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

    # -- volumes -------------------------------------------------------------------------------------
    def volume_info(self, volume: str | None = None) -> list[VolumeInfo]:
        """``volume info [VOLUME] --xml``, parsed (status, bricks, options such as ``features.read-only``)."""
        return parse_volume_info(self.run(build_volume_cmd("info", volume)).stdout)

    def volume_set(self, volume: str, option: str, value: str) -> None:
        """``volume set VOLUME OPTION VALUE`` (only the options ``build_volume_set_cmd`` allows)."""
        self.run(build_volume_set_cmd(volume, option, value))


__all__ = ["Checkpoint", "CommandResult", "GlusterGeoRepHook", "node_access"]
