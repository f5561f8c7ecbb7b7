"""Typed errors of Gluster commands, classified from what the real CLI prints (tests/fixtures/gluster/).

Callers act on the *kind* of failure (``start`` on a started session is fine, a missing session is a
configuration error, anything else is an outage), so the messages are turned into exception classes once,
here, rather than matched by every caller.
"""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Sequence

#: ``opErrno`` of ``start --xml`` on a started session (rc 0, opRet -1): GD_MSG_GEOREP_ALREADY_STARTED-ish.
OPERRNO_ALREADY_STARTED = 30800

_ALREADY_STARTED = re.compile(r"already started", re.I)
_NOT_FOUND = re.compile(
    r"No active geo-replication sessions|session between .+ does not exist|Session does not exist", re.I
)
_NOT_STARTED = re.compile(
    r"not (?:been )?started|is not running|session is not active|session between .+ not active", re.I
)
# glusterd's cluster-wide lock is held by another command: nothing was done, the same command can be retried.
_BUSY = re.compile(
    r"Another transaction is in progress|Locking failed on|another transaction could be in progress", re.I
)
# ``status --xml`` of a missing session: rc 2, nothing but this line on stdout (fixture status-xml-no-session.txt).
_BARE_FAILURE = "geo-replication command failed"


def _snip(text: str | bytes | None, limit: int = 300) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


class GlusterOutputError(ValueError):
    """Output that is not what the command prints when it works (not XML, unexpected structure)."""

    def __init__(self, message: str, output: str | bytes | None) -> None:
        self.output = output
        super().__init__(f"{message}; output starts: {_snip(output, 200)!r}")


class GlusterCommandError(RuntimeError):
    """A command on a Gluster node failed: the command, its exit status and both streams.

    :param cmd: the argv (or the command line) that was run.
    :param rc: its exit status (-1 when it never finished).
    :param stdout, stderr: what it printed (the message is in stderr for most failures, in stdout for some).
    """

    def __init__(
        self, cmd: Sequence[str] | str | None, rc: int, stdout: str = "", stderr: str = "", reason: str = ""
    ) -> None:
        self.cmd = list(cmd) if cmd is not None and not isinstance(cmd, str) else cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.reason = reason
        super().__init__(self._message())

    @property
    def cmdline(self) -> str:
        if self.cmd is None:
            return "<gluster output>"
        return self.cmd if isinstance(self.cmd, str) else shlex.join(self.cmd)

    def _message(self) -> str:
        detail = _snip(self.stderr) or _snip(self.stdout) or "no output"
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.cmdline!r} failed with exit status {self.rc}{why}: {detail}"


class SessionNotFound(GlusterCommandError):
    """The geo-replication session does not exist (wrong volume/host names, or never created)."""


class AlreadyStarted(GlusterCommandError):
    """``start`` on a session that is already started."""


class NotStarted(GlusterCommandError):
    """An operation that needs a running session, on a session that is not running."""


class GlusterBusy(GlusterCommandError):
    """glusterd refused the command because another one holds its lock ("Another transaction is in progress
    for VOL. Please try again after some time."): nothing was done, and the same command may be retried.
    Seen in the lab when two clients drive one session at once."""


class CommandTimeout(GlusterCommandError, TimeoutError):
    """The command did not finish within its time limit (it was abandoned; it may still run on the node)."""


def xml_op_error(stdout: str) -> tuple[int, int, str] | None:
    """``(opRet, opErrno, opErrstr)`` when ``stdout`` is a ``cliOutput`` XML document, else None."""
    text = stdout.strip() if stdout else ""
    if not text.startswith("<"):
        return None
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    if root.tag != "cliOutput":
        return None
    try:
        op_ret = int((root.findtext("opRet") or "0").strip())
        op_errno = int((root.findtext("opErrno") or "0").strip())
    except ValueError:
        return None
    return op_ret, op_errno, (root.findtext("opErrstr") or "").strip()


def classify_error(
    rc: int, stdout: str, stderr: str, cmd: Sequence[str] | str | None = None
) -> GlusterCommandError:
    """Turn a failed command's status and output into the most specific ``GlusterCommandError``.

    Knows the real messages of GlusterFS 10 (and the older wording): ``already started`` (plain rc 1, or
    ``--xml`` rc 0 with opRet -1 / opErrno 30800), a missing session (``No active geo-replication sessions
    between ...``, ``... does not exist``, and ``status --xml``'s bare rc 2), and a session that is not
    running; glusterd's lock held by another command (``GlusterBusy``, retryable). Returns (does not raise) so the caller decides; anything unknown is a plain GlusterCommandError.
    """
    stdout = stdout or ""
    stderr = stderr or ""
    op = xml_op_error(stdout)
    if op is not None and op[0] != 0:
        op_ret, op_errno, op_errstr = op
        text = op_errstr
        if _BUSY.search(text):
            return GlusterBusy(cmd, rc, stdout, stderr or op_errstr, reason=f"opRet {op_ret}")
        if op_errno == OPERRNO_ALREADY_STARTED or _ALREADY_STARTED.search(text):
            return AlreadyStarted(
                cmd, rc, stdout, stderr or op_errstr, reason=f"opRet {op_ret} opErrno {op_errno}"
            )
        if _NOT_FOUND.search(text):
            return SessionNotFound(cmd, rc, stdout, stderr or op_errstr, reason=f"opRet {op_ret}")
        if _NOT_STARTED.search(text):
            return NotStarted(cmd, rc, stdout, stderr or op_errstr, reason=f"opRet {op_ret}")
        return GlusterCommandError(
            cmd, rc, stdout, stderr or op_errstr, reason=f"opRet {op_ret} opErrno {op_errno}"
        )
    text = f"{stderr}\n{stdout}"
    if _BUSY.search(text):
        return GlusterBusy(cmd, rc, stdout, stderr)
    if _ALREADY_STARTED.search(text):
        return AlreadyStarted(cmd, rc, stdout, stderr)
    if _NOT_FOUND.search(text):
        return SessionNotFound(cmd, rc, stdout, stderr)
    if _NOT_STARTED.search(text):
        return NotStarted(cmd, rc, stdout, stderr)
    args = cmd.split() if isinstance(cmd, str) else list(cmd or [])
    if rc == 2 and "status" in args and "--xml" in args and text.strip() == _BARE_FAILURE:
        # Gluster says nothing more with --xml; rc 2 + this bare line is what a missing session gives.
        return SessionNotFound(
            cmd,
            rc,
            stdout,
            stderr,
            reason="inferred: status --xml gives rc 2 and no XML for a missing session",
        )
    return GlusterCommandError(cmd, rc, stdout, stderr)
