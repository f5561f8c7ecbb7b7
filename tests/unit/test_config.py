"""Config loading: good pairs load, each bad pair is one error naming the pair and the field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from ovirt_dr.config import (
    MAX_DURATION,
    ConfigFileError,
    load_sync_config,
    parse_duration,
    schedule_gap,
    schedule_problem,
)

GOOD = {
    "storage_domain": "data1",
    "target": "dr",
    "site": "primary",
    "master_volume": "gvmaster",
    "gluster_ssh_conn_id": "gluster_primary",
    "slave_host": "dr-node.example.com",
    "slave_volume": "gvslave",
    "slave_ssh_conn_id": "gluster_secondary",
}


def write(tmp_path: Path, pairs: list, **top) -> Path:
    path = tmp_path / "ovirt_dr.yaml"
    doc = {"sites": {"primary": {"ovirt_conn_id": "ovirt_primary"}}, "pairs": pairs}
    doc.update(top)
    path.write_text(yaml.safe_dump(doc))
    return path


def test_good_pair_with_defaults(tmp_path):
    cfg = load_sync_config(write(tmp_path, [GOOD], defaults={"rpo": "150m", "alert_emails": ["a@b.example"]}))
    assert cfg.errors == [] and cfg.problems == []
    (pair,) = cfg.pairs
    assert pair.dag_id == "dr_sync__data1__dr"
    assert pair.rpo == timedelta(minutes=150)
    assert pair.alert_emails == ["a@b.example"]
    assert pair.retries >= 2
    assert cfg.site_of(pair).ovirt_conn_id == "ovirt_primary"


def test_pairs_sorted_and_several_targets_per_domain(tmp_path):
    pairs = [
        {**GOOD, "target": "b", "slave_volume": "gvb"},
        {**GOOD, "target": "a", "slave_volume": "gva"},
        {**GOOD, "storage_domain": "aaa", "master_volume": "gvaaa"},
    ]
    cfg = load_sync_config(write(tmp_path, pairs))
    assert [p.dag_id for p in cfg.pairs] == ["dr_sync__aaa__dr", "dr_sync__data1__a", "dr_sync__data1__b"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": "every hour"}, "schedule"),
        ({"rpo": "4 hours"}, "rpo"),
        ({"rpo": "0m"}, "rpo"),
        ({"master_volume": "gv;rm -rf /"}, "master_volume"),
        ({"slave_host": "-oProxyCommand=x"}, "slave_host"),
        ({"slave_user": "root user"}, "slave_user"),
        ({"alert_emails": ["nobody"]}, "alert_emails"),
        ({"snapshot_concurrency": 0}, "snapshot_concurrency"),
        ({"retries": 0}, "retries"),
        ({"password": "secret"}, "password"),
        ({"consistency_groups": [["a", "b"], ["b"]]}, "consistency_groups"),
        ({"audit": {"mode": "quick"}}, "audit.mode"),
        ({"mount_root": "relative/path"}, "mount_root"),
    ],
)
def test_bad_pair_names_pair_and_field_and_spares_others(tmp_path, change, field):
    other = {**GOOD, "storage_domain": "other"}
    cfg = load_sync_config(write(tmp_path, [{**GOOD, **change}, other]))
    assert [p.storage_domain for p in cfg.pairs] == ["other"]
    (err,) = cfg.errors
    assert "pairs[0] (data1/dr)" in str(err)
    assert field.split(".")[0] in str(err)


def test_unknown_site_and_duplicates(tmp_path):
    cfg = load_sync_config(write(tmp_path, [{**GOOD, "site": "nowhere"}, GOOD, GOOD]))
    assert len(cfg.pairs) == 1
    msgs = [str(e) for e in cfg.errors]
    assert "'nowhere' is not one of ['primary']" in msgs[0]
    assert "duplicate of pairs[1]" in msgs[1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sites: {}\npairs: [\n", "line 3, column 1: not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("", "top level must be a mapping"),
        ("sites: {}\npairs: []\n  x: 1\n", "line 3, column 3: not valid YAML"),
    ],
)
def test_an_unreadable_file_is_one_clear_error_with_its_line(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigFileError, match=message) as exc:
        load_sync_config(path)
    assert str(path) in str(exc.value)


def test_a_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigFileError, match="cannot read the ovirt-dr config"):
        load_sync_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "message"), [("sites: {}\n", "no 'pairs' list"), ("pairs: {a: 1}\n", "must be a list")]
)
def test_no_pairs_list_is_a_problem_not_a_crash(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    cfg = load_sync_config(path)
    assert cfg.pairs == [] and any(message in str(p) for p in cfg.problems)


def test_the_recovery_section_and_an_unused_secondary_site_are_accepted(tmp_path):
    """The recovery loader validates `recovery:`; a site no pair uses refuses nothing."""
    path = write(
        tmp_path,
        [GOOD],
        recovery={"mapping_file": "x.yml", "anything": [1, 2]},
        sites={
            "primary": {"ovirt_conn_id": "ovirt_primary"},
            "secondary": {"ovirt_conn_id": "ovirt_secondary"},
        },
    )
    cfg = load_sync_config(path)
    assert cfg.errors == [] and cfg.problems == []
    assert sorted(cfg.sites) == ["primary", "secondary"]


def test_durations():
    assert parse_duration("45s") == timedelta(seconds=45)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration(" 7 d ") == timedelta(days=7)
    assert parse_duration(30) == timedelta(seconds=30)
    assert parse_duration(30.0) == timedelta(seconds=30)
    assert parse_duration("366d") == MAX_DURATION
    for bad in ("PT4H", "\u0663h", "1e3s", True, None, [1]):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
    for bad in (float("inf"), float("nan"), 1.5):
        with pytest.raises(ValueError, match="whole number"):
            parse_duration(bad)
    for bad in ("367d", 10**30, "9" * 15 + "d", timedelta(days=400)):
        with pytest.raises(ValueError, match="longer than the maximum"):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        ("@hourly", timedelta(hours=1)),
        ("*/30 * * * *", timedelta(minutes=30)),
        ("0 9-17 * * *", timedelta(hours=16)),
        ("@daily", timedelta(days=1)),
        ("0 9 * * 1-5", timedelta(days=3)),
        ("*/5 9-17 * * 1-5", timedelta(days=2, hours=15, minutes=5)),
        ("0 0 1 * *", timedelta(days=31)),
        ("0 0 29 2 *", timedelta(days=1461)),
        ("@continuous", timedelta(0)),
        (None, None),
        ("@once", None),
    ],
)
def test_longest_gap_between_runs(schedule, gap):
    assert schedule_gap(schedule) == gap


def test_schedule_checks_are_airflows():
    assert schedule_problem("@hourly") is None and schedule_problem("0 0 * * MON-FRI") is None
    assert "not a schedule Airflow accepts" in schedule_problem("0 24 * * *")
    assert "never fires" in schedule_problem("0 0 30 2 *")
    assert "5 fields" in schedule_problem("0 0 1 1 * 2030")


def test_one_geo_rep_session_may_serve_two_targets_but_two_masters_never_share_a_slave(tmp_path):
    same_session = {**GOOD, "target": "hourly"}  # same master, same slave: one writer (one pool slot)
    other_master = {**GOOD, "storage_domain": "data2", "master_volume": "gv2"}
    cfg = load_sync_config(write(tmp_path, [GOOD, same_session, other_master]))
    assert [p.dag_id for p in cfg.pairs] == ["dr_sync__data1__dr", "dr_sync__data1__hourly"]
    (err,) = cfg.errors
    assert "pairs[2] (data2/dr): field 'slave_volume'" in str(err) and "another master volume" in str(err)
