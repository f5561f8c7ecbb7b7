"""The RPO deadline alert: references round-trip through Airflow's serialization, the mail says how old
the recovery point is, names the pair, and renders nothing from config as a template."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from ovirt_dr.config import PairConfig
from ovirt_dr.deadlines import (
    KIND_AGE,
    KIND_NONE,
    NoRecoveryPointDeadline,
    RecoveryPointAgeDeadline,
    rpo_deadline_alerts,
    rpo_mail,
    send_rpo_mail,
)

PAIR = {
    "storage_domain": "data1",
    "target": "dr",
    "site": "primary",
    "master_volume": "gvmaster",
    "gluster_ssh_conn_id": "g",
    "slave_host": "dr.example.com",
    "slave_volume": "gvslave",
    "slave_ssh_conn_id": "s",
    "rpo": "30s",
    "alert_emails": ["ops@example.com"],
    "smtp_conn_id": "smtp_x",
}
VALUES = {
    "dag_id": "dr_sync__data1__dr",
    "storage_domain": "data1",
    "target": "dr",
    "slave_host": "dr.example.com",
    "slave_volume": "gvslave",
}
NOW = datetime(2026, 11, 5, 12, 0, 0, tzinfo=UTC)


def test_alerts_are_the_rpo_from_the_recovery_point_asset():
    pair = PairConfig.model_validate(PAIR)
    age, none = rpo_deadline_alerts(pair)
    assert isinstance(age.reference, RecoveryPointAgeDeadline)
    assert isinstance(none.reference, NoRecoveryPointDeadline)
    for alert, kind in ((age, KIND_AGE), (none, KIND_NONE)):
        assert alert.reference.asset_uri == "ovirt-dr://data1/dr"
        assert alert.interval == timedelta(seconds=30)
        kwargs = alert.callback.kwargs
        assert kwargs["kind"] == kind and kwargs["pair"] == VALUES and kwargs["to"] == ["ops@example.com"]
        assert kwargs["smtp_conn_id"] == "smtp_x" and kwargs["rpo_seconds"] == 30
        # nothing from config reaches Jinja: no template syntax anywhere in what is stored
        assert "{{" not in repr(kwargs) and "{%" not in repr(kwargs)


@pytest.mark.parametrize("cls", [RecoveryPointAgeDeadline, NoRecoveryPointDeadline])
def test_reference_round_trips_through_airflow_serialization(cls):
    from airflow.serialization.encoders import encode_deadline_reference

    ref = cls(asset_uri="ovirt-dr://data1/dr")
    data = encode_deadline_reference(ref)
    assert data["__class_path"] == f"ovirt_dr.deadlines.{cls.__name__}"
    assert data["asset_uri"] == "ovirt-dr://data1/dr"
    assert cls.deserialize_reference(data) == ref
    assert cls.deserialize_reference(data) != cls(asset_uri="ovirt-dr://data1/other")


def test_a_corrupt_serialized_reference_is_refused_by_name():
    with pytest.raises(ValueError, match="RecoveryPointAgeDeadline.*asset_uri"):
        RecoveryPointAgeDeadline.deserialize_reference({"reference_type": "RecoveryPointAgeDeadline"})


def test_age_mail_says_how_old_the_recovery_point_is_and_names_the_pair():
    # deadline = recovery point + RPO: the recovery point is 11:59:00, mailed at 12:00:00 -> 60 s old
    subject, body = rpo_mail(
        kind=KIND_AGE,
        pair=VALUES,
        rpo=timedelta(seconds=30),
        deadline_time=NOW - timedelta(seconds=30),
        run_id="manual__2026-11-05T11:59:40+00:00",
        now=NOW,
    )
    assert subject == (
        "[ovirt-dr] RPO missed: data1 -> dr: recovery point 1m 00s old "
        "(RPO 30s, run manual__2026-11-05T11:59:40+00:00)"
    )
    assert "2026-11-05 11:59:00 UTC" in body and "<b>1m 00s</b> old" in body
    assert "dr.example.com::gvslave" in body and "dr_sync__data1__dr" in body


def test_no_recovery_point_mail_says_so():
    subject, body = rpo_mail(
        kind=KIND_NONE,
        pair=VALUES,
        rpo=timedelta(hours=4),
        deadline_time=NOW,
        run_id="r",
        now=NOW + timedelta(minutes=5),
    )
    assert "no recovery point yet, 4h 05m after the first run (RPO 4h 00m, run r)" in subject
    assert "queued at 2026-11-05 08:00:00 UTC" in body


def test_mail_escapes_values_and_keeps_the_subject_one_line():
    evil = {**VALUES, "storage_domain": "<script>x</script>", "dag_id": "a&b"}
    subject, body = rpo_mail(
        kind=KIND_AGE,
        pair=evil,
        rpo=timedelta(seconds=30),
        deadline_time=NOW,
        run_id="run\r\nBcc: victim@example.com",
        now=NOW,
    )
    assert "\n" not in subject and "\r" not in subject
    assert "<script>" not in body and "&lt;script&gt;" in body and "a&amp;b" in body


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown kind 'soon'"):
        rpo_mail(kind="soon", pair=VALUES, rpo=timedelta(1), deadline_time=NOW, run_id="r", now=NOW)


def test_callback_sends_through_the_smtp_hook(monkeypatch):
    """The callback as the triggerer calls it: kwargs + the scheduler's context, mail via SmtpHook."""
    from airflow.providers.smtp.hooks import smtp as smtp_mod

    sent = {}

    class FakeHook:
        def __init__(self, smtp_conn_id):
            sent["conn"] = smtp_conn_id

        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            return False

        async def asend_email_smtp(self, **kwargs):
            sent.update(kwargs)

    monkeypatch.setattr(smtp_mod, "SmtpHook", FakeHook)
    deadline_time = datetime.now(UTC) - timedelta(seconds=10)
    asyncio.run(
        send_rpo_mail(
            kind=KIND_AGE,
            pair=VALUES,
            rpo_seconds=30,
            to=["ops@example.com"],
            smtp_conn_id="smtp_x",
            context={
                "dag_run": {"dag_run_id": "scheduled__x"},
                "deadline": {"id": "d", "deadline_time": deadline_time.isoformat()},
            },
        )
    )
    assert sent["conn"] == "smtp_x" and sent["to"] == ["ops@example.com"]
    assert sent["subject"].startswith("[ovirt-dr] RPO missed: data1 -> dr: recovery point 4")
    assert "run scheduled__x" in sent["subject"]
