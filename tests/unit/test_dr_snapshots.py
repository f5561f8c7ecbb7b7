"""The DR snapshot policy: descriptions, which snapshots are DR ones, the snapshot set through XCom."""

from __future__ import annotations

import json

import pytest

from ovirt_dr.dr_snapshots import (
    SnapshotDisk,
    SnapshotSet,
    SnapshotVm,
    dr_snapshot_description,
    is_dr_snapshot,
)
from ovirt_dr.replica import ReplicaError

DISK = "1a1a1a1a-0000-4000-8000-000000000001"
BASE = "b0b0b0b0-0000-4000-8000-000000000001"
OVER = "0e0e0e0e-0000-4000-8000-000000000001"


def test_description_marks_the_run_and_finds_every_run_of_the_dag_only():
    d = dr_snapshot_description("dr_sync__d__t", "manual__1")
    assert d == "ovirt-dr:dr_sync__d__t:manual__1"
    assert is_dr_snapshot(d, "dr_sync__d__t")
    assert is_dr_snapshot("ovirt-dr:dr_sync__d__t:other_run", "dr_sync__d__t")
    assert not is_dr_snapshot(d, "dr_sync__d")  # a DAG id that is a prefix of another's
    assert not is_dr_snapshot("nightly backup", "dr_sync__d__t")
    assert not is_dr_snapshot(None, "dr_sync__d__t")


def test_snapshot_set_round_trips_through_json_xcom():
    s = SnapshotSet(
        "ovirt-dr:x:r", (SnapshotVm("vm-1", "db", "snap-1", 0, (SnapshotDisk(DISK, BASE, OVER),)),)
    )
    back = SnapshotSet.from_xcom(json.loads(json.dumps(s.to_xcom())))
    assert back == s
    assert back.frozen == {DISK: BASE}
    assert s.to_xcom()["vms"][0]["disks"] == [{"disk_id": DISK, "base_volume": BASE, "overlay_volume": OVER}]


def test_an_empty_or_missing_set_has_no_disks():
    assert SnapshotSet.from_xcom(None).frozen == {}
    assert SnapshotSet.from_xcom({"description": "d", "vms": []}).vms == ()


@pytest.mark.parametrize(
    ("disk", "match"),
    [
        ({"disk_id": "../../etc", "base_volume": BASE}, "disk id '../../etc' is not a UUID"),
        ({"disk_id": DISK, "base_volume": BASE + "\n"}, "base volume id .* is not a UUID"),
        ({"disk_id": DISK}, "base volume id None is not a UUID"),
    ],
)
def test_ids_from_xcom_are_checked_before_they_reach_a_path(disk, match):
    with pytest.raises(ReplicaError, match=match):
        SnapshotSet.from_xcom({"vms": [{"vm_id": "v", "disks": [disk]}]})


def test_a_malformed_set_is_refused_naming_what():
    with pytest.raises(ReplicaError, match="not a mapping"):
        SnapshotSet.from_xcom(["vms"])
    with pytest.raises(ReplicaError, match="VM entry 0 .* no list of disks"):
        SnapshotSet.from_xcom({"vms": [{"vm_id": "v"}]})
