"""classify_error on the real messages of the Gluster 10.3 CLI (fixtures) and the older wording."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovirt_dr.gluster import (
    AlreadyStarted,
    CommandTimeout,
    GeoRepSession,
    GlusterBusy,
    GlusterCommandError,
    NotStarted,
    SessionNotFound,
    build_georep_cmd,
    classify_error,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gluster"


def fixture_text(name: str) -> str:
    """A real captured output (tests/fixtures/gluster/, copied from the shared capture)."""
    return (FIXTURES / name).read_text()


SESSION = GeoRepSession("gvmaster", "127.0.0.1", "gvslave")
START = build_georep_cmd(SESSION, "start")
STATUS_XML = build_georep_cmd(SESSION, "status", "detail", xml=True)


@pytest.mark.parametrize(
    ("rc", "stdout", "stderr", "cmd", "cls"),
    [
        # start when started: plain rc 1 (message on stderr, "command failed" on stdout)
        (
            1,
            "geo-replication command failed\n",
            fixture_text("start-already-started-stderr.txt"),
            START,
            AlreadyStarted,
        ),
        (1, fixture_text("start-already-started.txt"), "", START, AlreadyStarted),
        # start --xml when started: rc 0, opRet -1, opErrno 30800
        (0, fixture_text("start-already-started.xml"), "", [*START, "--xml"], AlreadyStarted),
        # status of a session that does not exist: plain rc 1 names the pair; --xml rc 2 and nothing else
        (1, "", fixture_text("status-no-session.txt"), build_georep_cmd(SESSION, "status"), SessionNotFound),
        (2, fixture_text("status-xml-no-session.txt"), "", STATUS_XML, SessionNotFound),
        # glusterd's older and other wordings
        (
            1,
            "",
            "Geo-replication session between gvmaster and 127.0.0.1::gvx does not exist.",
            START,
            SessionNotFound,
        ),
        (
            1,
            "",
            "geo-replication session between gvmaster & 127.0.0.1::gvslave not active",
            START,
            NotStarted,
        ),
        (
            1,
            "",
            "Geo-replication session between gvmaster and 127.0.0.1::gvslave is not running on this node.",
            START,
            NotStarted,
        ),
        (1, "", "Session between gvmaster and 127.0.0.1::gvslave has not been started", START, NotStarted),
        # glusterd's lock held by another command (seen in the lab with two clients on one session)
        (
            1,
            "",
            "Another transaction is in progress for gvmaster. Please try again after some time.",
            START,
            GlusterBusy,
        ),
        (1, "", "Locking failed on vm. Please check log file for details.", START, GlusterBusy),
        # everything else stays generic
        (1, fixture_text("config-checkpoint-now-with-xml-fails.txt"), "", START, GlusterCommandError),
        (
            1,
            "",
            fixture_text("volume-create-loopback-brick-rejected.txt"),
            ["gluster", "volume", "create"],
            GlusterCommandError,
        ),
        (
            1,
            "",
            "Connection failed. Please check if gluster daemon is operational.",
            START,
            GlusterCommandError,
        ),
        (
            2,
            "geo-replication command failed\n",
            "",
            START,
            GlusterCommandError,
        ),  # rc 2 is only inferred for status --xml
        (1, "", "", None, GlusterCommandError),
    ],
)
def test_classify(rc, stdout, stderr, cmd, cls):
    error = classify_error(rc, stdout, stderr, cmd)
    assert type(error) is cls
    assert isinstance(error, GlusterCommandError)
    assert (error.rc, error.stdout, error.stderr) == (rc, stdout, stderr or error.stderr)
    if cmd is not None:
        assert error.cmd == cmd


def test_error_message_names_command_and_stderr():
    error = classify_error(
        1, "geo-replication command failed\n", fixture_text("start-already-started-stderr.txt"), START
    )
    text = str(error)
    assert "gluster --mode=script volume geo-replication gvmaster 127.0.0.1::gvslave start" in text
    assert "exit status 1" in text and "already started" in text


def test_inferred_reason_is_said():
    error = classify_error(2, "geo-replication command failed\n", "", STATUS_XML)
    assert error.reason.startswith("inferred")


def test_xml_error_carries_opErrstr():
    error = classify_error(0, fixture_text("start-already-started.xml"), "", [*START, "--xml"])
    assert "opErrno 30800" in str(error) and "already started" in error.stderr


def test_timeout_is_a_timeout_error():
    error = CommandTimeout(["sleep", "99"], -1, "", "", reason="no exit after 1 s")
    assert isinstance(error, TimeoutError) and isinstance(error, GlusterCommandError)
    assert "sleep 99" in str(error)
