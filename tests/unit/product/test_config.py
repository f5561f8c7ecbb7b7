"""Config loading: good pairs load, each bad pair is one error naming the pair and the field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from ovirt_dr.config import load_sync_config, parse_duration

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
    doc = {"sites": {"primary": {"ovirt_conn_id": "ovirt_primary"}}, "pairs": pairs, **top}
    path.write_text(yaml.safe_dump(doc))
    return path


def test_good_pair_with_defaults(tmp_path):
    cfg = load_sync_config(write(tmp_path, [GOOD], defaults={"rpo": "90m", "alert_emails": ["a@b.c"]}))
    assert cfg.errors == []
    (pair,) = cfg.pairs
    assert pair.dag_id == "dr_sync__data1__dr"
    assert pair.rpo == timedelta(minutes=90)
    assert pair.alert_emails == ["a@b.c"]
    assert pair.retries >= 2
    assert cfg.site_of(pair).ovirt_conn_id == "ovirt_primary"


def test_pairs_sorted_and_several_targets_per_domain(tmp_path):
    pairs = [{**GOOD, "target": "b"}, {**GOOD, "target": "a"}, {**GOOD, "storage_domain": "aaa"}]
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
        ("pairs: [", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("sites: {}\n", "'pairs' must be a list"),
    ],
)
def test_broken_file_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as exc:
        load_sync_config(path)
    assert str(path) in str(exc.value)


def test_durations():
    assert parse_duration("45s") == timedelta(seconds=45)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration(30) == timedelta(seconds=30)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("PT4H")
