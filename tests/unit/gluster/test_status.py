"""Parsers of ``status detail --xml`` and ``volume info --xml`` on the real captured output."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from ovirt_dr.gluster import (
    AlreadyStarted,
    GeoRepStatus,
    GeoRepWorker,
    GlusterCommandError,
    GlusterOutputError,
    parse_georep_status,
    parse_volume_info,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gluster"


def fixture_text(name: str) -> str:
    """A real captured output (tests/fixtures/gluster/, copied from the shared capture)."""
    return (FIXTURES / name).read_text()


STATUS_FIXTURES = sorted(p.name for p in FIXTURES.glob("status-detail-*.xml"))


def to_old_tags(xml: str) -> str:
    """Gluster < 10 wording of a status document: primary/secondary -> master/slave.

    The old-style documents in these tests are DERIVED from the real Gluster 10.3 captures by this renaming
    (no older Gluster was available to capture from); the tag names are those of Gluster 3.x-9.x
    (``master_node``, ``master_brick``, ``slave_user``, ``slave``, ``slave_node``, ``session_slave``).
    """
    out = xml
    for new, old in (
        ("session_secondary", "session_slave"),
        ("primary_node_uuid", "master_node_uuid"),
        ("primary_node", "master_node"),
        ("primary_brick", "master_brick"),
        ("secondary_user", "slave_user"),
        ("secondary_node", "slave_node"),
        ("<secondary>", "<slave>"),
        ("</secondary>", "</slave>"),
    ):
        out = out.replace(new, old)
    return out


#: Expected (status, crawl, checkpoint_time, completed) of each captured status document.
EXPECTED = {
    "status-detail-checkpoint-completed-2nd.xml": ("Active", "Changelog Crawl", "2026-11-21 14:56:08", True),
    "status-detail-checkpoint-completed.xml": ("Active", "Changelog Crawl", "2026-11-21 14:55:49", True),
    "status-detail-checkpoint-set-not-started.xml": ("Created", None, None, False),
    "status-detail-created-not-started.xml": ("Created", None, None, False),
    "status-detail-faulty.xml": ("Faulty", None, None, False),
    "status-detail-stopped.xml": ("Stopped", None, None, False),
    "status-detail-syncing-changelog.xml": ("Active", "Changelog Crawl", "2026-11-21 14:56:08", False),
    "status-detail-syncing-hybrid-crawl.xml": ("Active", "Hybrid Crawl", "2026-11-21 14:55:49", False),
}


def test_every_status_fixture_is_expected():
    assert sorted(EXPECTED) == STATUS_FIXTURES


def _ts(text: str | None) -> datetime | None:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S") if text else None


@pytest.mark.parametrize("old_style", [False, True], ids=["gluster10", "old-tags"])
def test_every_status_fixture_parses(status_fixture, old_style):
    name, xml = status_fixture
    status = parse_georep_status(to_old_tags(xml) if old_style else xml)
    assert isinstance(status, GeoRepStatus)
    assert status.primary_volume == "gvmaster"
    assert status.session and status.session.endswith(
        "127.0.0.1::gvslave:3ef47c63-bec1-4096-b143-a6fd0791e3bf"
    )
    (w,) = status.workers
    assert isinstance(w, GeoRepWorker)
    assert w.primary_node == "vm"
    assert w.primary_brick == "/gluster/bricks/gvmaster/b"
    assert w.secondary == "127.0.0.1::gvslave"
    assert w.secondary_user == "root"
    assert w.secondary_node is None  # "N/A" or empty (blank while Active, pitfall 7)
    assert w.primary_node_uuid == "b500b921-f07a-437e-976a-25b3396d7e19"
    st, crawl, cp_time, completed = EXPECTED[name]
    assert (w.status, w.crawl_status, w.checkpoint_time, w.checkpoint_completed) == (
        st,
        crawl,
        _ts(cp_time),
        completed,
    )
    for t in (w.last_synced, w.checkpoint_time, w.checkpoint_completion_time):
        assert t is None or (isinstance(t, datetime) and t.tzinfo is None)
    summary = status.progress_summary()
    assert "\n" not in summary and "vm:/gluster/bricks/gvmaster/b" in summary and st in summary


def test_old_style_parses_identically(status_fixture):
    _, xml = status_fixture
    assert "master_node" in to_old_tags(xml) and "primary_node" not in to_old_tags(xml)
    assert parse_georep_status(to_old_tags(xml)) == parse_georep_status(xml)


def test_na_becomes_none():
    (w,) = parse_georep_status(fixture_text("status-detail-created-not-started.xml")).workers
    assert (w.entry, w.data, w.meta, w.failures) == (None, None, None, None)
    assert (w.last_synced, w.checkpoint_time, w.checkpoint_completion_time) == (None, None, None)
    assert w.crawl_status is None and w.checkpoint_completed is False


def test_syncing_counts_and_times():
    (w,) = parse_georep_status(fixture_text("status-detail-syncing-hybrid-crawl.xml")).workers
    assert (w.entry, w.data, w.meta, w.failures) == (0, 24, 0, 0)
    assert w.last_synced is None
    (w,) = parse_georep_status(fixture_text("status-detail-checkpoint-completed.xml")).workers
    assert w.last_synced == datetime(2026, 11, 21, 14, 55, 50)
    assert w.checkpoint_completion_time == datetime(2026, 11, 21, 14, 56, 3)


def test_checkpoint_completed_for_matches_this_checkpoint_only():
    first = parse_georep_status(fixture_text("status-detail-checkpoint-completed.xml"))
    second = parse_georep_status(fixture_text("status-detail-checkpoint-completed-2nd.xml"))
    pending = parse_georep_status(fixture_text("status-detail-syncing-changelog.xml"))
    assert first.checkpoint_completed_for("2026-11-21 14:55:49")
    assert first.checkpoint_completed_for(datetime(2026, 11, 21, 14, 55, 49))
    assert not first.checkpoint_completed_for("2026-11-21 14:56:08")  # our checkpoint is newer: not done
    assert second.checkpoint_completed_for("2026-11-21 14:56:08")
    assert not second.checkpoint_completed_for("2026-11-21 14:55:49")  # a completed *later* one is not ours
    assert not pending.checkpoint_completed_for("2026-11-21 14:56:08")  # ours, not completed yet
    for name in (
        "status-detail-created-not-started.xml",
        "status-detail-stopped.xml",
        "status-detail-faulty.xml",
    ):
        assert not parse_georep_status(fixture_text(name)).checkpoint_completed_for("2026-11-21 14:55:49")


@pytest.mark.parametrize(
    "label", ["", "now", "2026-11-21T14:55:49", "2026-11-21 14:55", "21/11/2026 14:55:49"]
)
def test_checkpoint_label_must_be_gluster_time(label):
    status = parse_georep_status(fixture_text("status-detail-checkpoint-completed.xml"))
    with pytest.raises(ValueError, match="checkpoint label"):
        status.checkpoint_completed_for(label)


def test_faulty_detected():
    status = parse_georep_status(fixture_text("status-detail-faulty.xml"))
    assert [w.primary_brick for w in status.faulty_workers] == ["/gluster/bricks/gvmaster/b"]
    assert status.active_workers == ()
    assert status.is_running
    assert "Faulty" in status.progress_summary()


def test_running_states():
    assert not parse_georep_status(fixture_text("status-detail-stopped.xml")).is_running
    assert not parse_georep_status(fixture_text("status-detail-created-not-started.xml")).is_running
    assert parse_georep_status(fixture_text("status-detail-syncing-changelog.xml")).is_running


def _multi(pairs: list[tuple[str, str, str, str]]) -> str:
    """A multi-brick document built from the real one: (brick, status, checkpoint_time, completed) per pair."""
    xml = fixture_text("status-detail-checkpoint-completed.xml")
    head, rest = xml.split("<pair>", 1)
    pair, tail = rest.split("</pair>", 1)
    out = []
    for brick, st, cp, done in pairs:
        p = pair.replace("/gluster/bricks/gvmaster/b", brick).replace(
            "<status>Active</status>", f"<status>{st}</status>"
        )
        p = p.replace("<checkpoint_time>2026-11-21 14:55:49", f"<checkpoint_time>{cp}")
        p = p.replace("<checkpoint_completed>Yes", f"<checkpoint_completed>{done}")
        out.append(f"<pair>{p}</pair>")
    return head + "".join(out) + tail


LABEL = "2026-11-21 14:55:49"


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("/b1", "Active", LABEL, "Yes"), ("/b2", "Passive", "N/A", "N/A")], True),
        ([("/b1", "Active", LABEL, "Yes"), ("/b2", "Active", LABEL, "Yes")], True),
        ([("/b1", "Active", LABEL, "Yes"), ("/b2", "Active", LABEL, "No")], False),
        ([("/b1", "Active", LABEL, "Yes"), ("/b2", "Active", "2026-11-21 14:00:00", "Yes")], False),
        ([("/b1", "Active", LABEL, "Yes"), ("/b2", "Faulty", "N/A", "N/A")], False),
        ([("/b1", "Active", LABEL, "Yes"), ("/b2", "Initializing...", "N/A", "N/A")], False),
        ([("/b1", "Passive", "N/A", "N/A"), ("/b2", "Passive", "N/A", "N/A")], False),
    ],
)
def test_checkpoint_completed_for_several_workers(pairs, expected):
    status = parse_georep_status(_multi(pairs))
    assert len(status.workers) == len(pairs)
    assert status.checkpoint_completed_for(LABEL) is expected
    assert status.progress_summary().count("; ") == len(pairs) - 1


@pytest.mark.parametrize(
    ("output", "match"),
    [
        ("", "empty output"),
        ("geo-replication command failed\n", "not XML"),
        (fixture_text("status-no-session.txt"), "not XML"),
        ("<html><body>hi</body></html>", "not <cliOutput>"),
        ("<cliOutput><opRet>0</opRet></cliOutput>", "no <geoRep>"),
        ("<?xml version='1.0'?><cliOutput><opRet>0</opRet", "not XML"),
    ],
)
def test_bad_status_output_is_refused_clearly(output, match):
    with pytest.raises(GlusterOutputError, match=match) as info:
        parse_georep_status(output)
    assert isinstance(info.value, ValueError)
    assert repr(output.strip()[:200])[:60] in str(info.value)


def test_long_bad_output_is_cut_to_200_chars():
    with pytest.raises(GlusterOutputError) as info:
        parse_georep_status("x" * 5000)
    assert "x" * 200 in str(info.value) and "x" * 201 not in str(info.value)


def test_failed_operation_in_xml_is_classified():
    with pytest.raises(AlreadyStarted) as info:
        parse_georep_status(fixture_text("start-already-started.xml"))
    assert "already started" in str(info.value)
    bad = (
        fixture_text("start-already-started.xml")
        .replace("30800", "2")
        .replace("already started", "went wrong")
    )
    with pytest.raises(GlusterCommandError, match="went wrong") as info:
        parse_georep_status(bad)
    assert type(info.value) is GlusterCommandError


def test_bad_numbers_and_times_are_refused():
    xml = fixture_text("status-detail-checkpoint-completed.xml")
    with pytest.raises(GlusterOutputError, match="data is 'lots'"):
        parse_georep_status(xml.replace("<data>0</data>", "<data>lots</data>"))
    with pytest.raises(GlusterOutputError, match="unexpected time"):
        parse_georep_status(xml.replace("<last_synced>2026-11-21 14:55:50", "<last_synced>yesterday"))


def test_bytes_input():
    assert parse_georep_status(fixture_text("status-detail-faulty.xml").encode()).faulty_workers


def test_volume_info_master():
    (vol,) = parse_volume_info(fixture_text("volume-info-master.xml"))
    assert vol.name == "gvmaster" and vol.id == "e9f70bc3-5b68-48e3-a99b-eb6b5f2f9d74"
    assert vol.started and vol.status == "Started" and vol.type == "Distribute"
    assert (vol.brick_count, vol.replica_count, vol.distribute_count) == (1, 1, 1)
    assert vol.bricks == ("vm:/gluster/bricks/gvmaster/b",)
    assert vol.options["features.shard"] == "on" and vol.options["changelog.changelog"] == "on"


def test_volume_info_all():
    vols = parse_volume_info(fixture_text("volume-info-all.xml"))
    assert [v.name for v in vols] == ["gvmaster", "gvslave"]
    assert vols[1].options["features.read-only"] == "on"
    assert vols[1].bricks == ("vm:/gluster/bricks/slave/b",)


@pytest.mark.parametrize(
    "output", ["", "Volume gvx does not exist\n", "<cliOutput><opRet>0</opRet></cliOutput>"]
)
def test_volume_info_bad_output(output):
    with pytest.raises(ValueError):
        parse_volume_info(output)


def test_volume_info_failed_operation():
    xml = "<cliOutput><opRet>-1</opRet><opErrno>2</opErrno><opErrstr>Volume gvx does not exist</opErrstr></cliOutput>"
    with pytest.raises(GlusterCommandError, match="Volume gvx does not exist"):
        parse_volume_info(xml)
