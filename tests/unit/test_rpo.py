"""Recovery point parsing, age and state: the pure parts shared by the dashboard and the deadline alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ovirt_dr.rpo import (
    PairState,
    format_age,
    newest_recovery_point,
    pair_state,
    parse_recovery_point,
)

T = datetime(2026, 11, 5, 12, 0, 0, tzinfo=UTC)


def test_recovery_point_is_read_from_the_audit_extra():
    assert parse_recovery_point({"recovery_point": "2026-11-05T11:00:00+00:00"}, T) == T - timedelta(hours=1)
    # a naive time is UTC (what the audit writes is aware; an old event may not be)
    assert parse_recovery_point({"recovery_point": "2026-11-05T11:00:00"}, T) == T - timedelta(hours=1)


@pytest.mark.parametrize(
    "extra",
    [
        None,
        "2026-11-05T11:00:00+00:00",
        {},
        {"recovery_point": None},
        {"recovery_point": 1730800000},
        {"recovery_point": "yesterday"},
        {"recovery_point": "2026-11-05T11:00:00+00:00" + " " * 100},
    ],
)
def test_malformed_extra_is_no_recovery_point(extra):
    assert parse_recovery_point(extra, T) is None


def test_recovery_point_later_than_its_event_is_clamped():
    assert parse_recovery_point({"recovery_point": "2026-11-05T13:00:00+00:00"}, T) == T


def test_newest_usable_event_wins_whatever_the_order():
    events = [
        ({"recovery_point": "2026-11-05T10:00:00+00:00"}, T - timedelta(minutes=100), "r1"),
        ({"recovery_point": "garbage"}, T, "r3"),  # the newest event is malformed: skipped, not trusted
        ({"recovery_point": "2026-11-05T11:00:00+00:00"}, T - timedelta(minutes=50), "r2"),
    ]
    rp = newest_recovery_point(events)
    assert rp is not None
    assert (rp.time, rp.run_id) == (T - timedelta(hours=1), "r2")
    assert newest_recovery_point([]) is None


@pytest.mark.parametrize(
    ("age", "last", "expected"),
    [
        (timedelta(minutes=30), "success", PairState.OK),
        (timedelta(minutes=30), None, PairState.OK),
        (timedelta(minutes=30), "failed", PairState.FAILING),
        (timedelta(hours=1), "failed", PairState.FAILING),  # exactly the RPO is still within it
        (timedelta(hours=1, seconds=1), "success", PairState.LATE),
        (timedelta(hours=5), "failed", PairState.LATE),  # late beats failing
        (None, "success", PairState.LATE),  # never had a recovery point
    ],
)
def test_pair_state(age, last, expected):
    rp = None if age is None else T - age
    assert pair_state(now=T, recovery_point=rp, rpo=timedelta(hours=1), last_finished_state=last) == expected


def test_unknown_rpo_is_unknown_not_ok():
    assert pair_state(now=T, recovery_point=T, rpo=None, last_finished_state="success") == PairState.UNKNOWN


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m 00s"),
        (247, "4m 07s"),
        (3600, "1h 00m"),
        (7500, "2h 05m"),
        (86400 * 3 + 3600 * 4 + 59, "3d 04h"),
    ],
)
def test_format_age(seconds, text):
    assert format_age(timedelta(seconds=seconds)) == text
    assert format_age(None) == "never"
