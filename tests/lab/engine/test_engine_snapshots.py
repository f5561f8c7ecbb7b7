"""Snapshots and live merge on real qcow2, driven by the real ovirtsdk4, checked with qemu-img.

At every step the chain that ``qemu-img info --backing-chain`` reports on the files must be the chain the
API shows: snapshot disks name the old volume as ``image_id``, the "Active VM" names the new overlay,
and after removal the merged volume files are gone.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import ovirtsdk4
import ovirtsdk4.types as t
import pytest
import yaml

from ovirt_dr_lab.engine.server import EngineServer
from ovirt_dr_lab.engine.site import generate_site
from ovirt_dr_lab.engine.storage import DomainStorage, expected_content, seed_writes
from ovirt_dr_lab.engine.testing import FAST_LATENCY, connect, wait_for

pytestmark = pytest.mark.lab

SD_ID = "9c3f0d51-6a7e-4c2b-b8d4-2f1e6a0b7c11"


def qemu_chain(image_dir: Path, leaf: str) -> list[str]:
    """Volume ids base..leaf as qemu-img follows the backing files (not the .meta files)."""
    out = subprocess.run(
        ["qemu-img", "info", "-U", "--backing-chain", "--output=json", leaf],
        cwd=image_dir,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    infos = json.loads(out)
    for upper, lower in zip(infos, infos[1:], strict=False):
        assert upper["backing-filename"] == Path(lower["filename"]).name  # relative, bare uuid
        assert upper["format"] == "qcow2"
    return [Path(i["filename"]).name for i in reversed(infos)]


def meta(image_dir: Path, vol: str) -> dict[str, str]:
    lines = (image_dir / f"{vol}.meta").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_snapshot_add_ok_disks_remove_404_with_real_chain(
    conn: ovirtsdk4.Connection, primary: EngineServer, lab_dirs: dict[str, Path]
) -> None:
    vms = conn.system_service().vms_service()
    vm = vms.list(search="name=vm03")[0]
    vm_service = vms.vm_service(vm.id)
    disks = {a.disk.id: a.disk for a in vm_service.disk_attachments_service().list(follow="disk")}
    base = {d: disk.image_id for d, disk in disks.items()}
    images = {d: lab_dirs["master"] / SD_ID / "images" / d for d in disks}
    for d in disks:
        assert qemu_chain(images[d], base[d]) == [base[d]] == primary.lab.disk_chain(d)

    snaps = vm_service.snapshots_service()
    one_disk = sorted(disks)[0]
    added = snaps.add(
        t.Snapshot(
            description="ovirt-dr:test:run1",
            persist_memorystate=False,
            disk_attachments=[t.DiskAttachment(disk=t.Disk(id=one_disk))],
        )
    )
    assert added.snapshot_status == t.SnapshotStatus.LOCKED
    with pytest.raises(ovirtsdk4.Error) as err:  # one snapshot at a time per VM
        snaps.add(t.Snapshot(description="second", persist_memorystate=False))
    assert err.value.code == 409
    wait_for(
        lambda: snaps.snapshot_service(added.id).get().snapshot_status == t.SnapshotStatus.OK,
        what="snapshot ok",
    )
    listed = snaps.list()
    assert [(s.description, s.snapshot_type) for s in listed] == [
        ("ovirt-dr:test:run1", t.SnapshotType.REGULAR),
        ("Active VM", t.SnapshotType.ACTIVE),
    ]
    assert listed[0].persist_memorystate is False
    snap_disks = snaps.snapshot_service(added.id).disks_service().list()
    assert [(d.id, d.image_id) for d in snap_disks] == [(one_disk, base[one_disk])]  # the OLD volume
    active = next(s for s in listed if s.snapshot_type == t.SnapshotType.ACTIVE)
    active_disks = {d.id: d.image_id for d in snaps.snapshot_service(active.id).disks_service().list()}
    overlay = active_disks[one_disk]
    assert overlay != base[one_disk]
    other = next(d for d in disks if d != one_disk)
    assert active_disks[other] == base[other]  # the disk left out was not snapshotted
    assert conn.system_service().disks_service().disk_service(one_disk).get().image_id == overlay
    chain = qemu_chain(images[one_disk], overlay)
    assert chain == [base[one_disk], overlay] == primary.lab.disk_chain(one_disk)
    assert meta(images[one_disk], base[one_disk])["VOLTYPE"] == "INTERNAL"
    assert meta(images[one_disk], overlay)["VOLTYPE"] == "LEAF"
    assert meta(images[one_disk], overlay)["PUUID"] == base[one_disk]
    assert qemu_chain(images[other], base[other]) == [base[other]]

    # guest data written after the snapshot lands in the overlay only
    w = primary.lab.write(vm.id, one_disk, 0, 65536, 0x5A)
    assert w["volume_id"] == overlay

    snaps.snapshot_service(added.id).remove()
    assert snaps.snapshot_service(added.id).get().snapshot_status == t.SnapshotStatus.LOCKED
    wait_for(lambda: _gone(snaps, added.id), what="snapshot removed")
    assert [s.snapshot_type for s in snaps.list()] == [t.SnapshotType.ACTIVE]
    assert (
        primary.lab.disk_chain(one_disk) == [base[one_disk]] == qemu_chain(images[one_disk], base[one_disk])
    )
    assert not (images[one_disk] / overlay).exists() and not (images[one_disk] / f"{overlay}.meta").exists()
    assert meta(images[one_disk], base[one_disk])["VOLTYPE"] == "LEAF"
    assert conn.system_service().disks_service().disk_service(one_disk).get().image_id == base[one_disk]
    ds = DomainStorage(lab_dirs["master"], SD_ID, "data_gluster", "gluster.lab:/gvmaster")
    assert ds.check_chain(one_disk) == []
    # the committed guest write is in the base now, on top of the initial content
    init = primary.lab.initial_content(one_disk)
    want = bytearray(expected_content(init["size"], seed_writes(init["seed"], init["size"])))
    want[0:65536] = bytes([0x5A]) * 65536
    assert ds.read_disk(one_disk) == bytes(want)
    jobs = conn.system_service().jobs_service().list()
    assert {j.status for j in jobs} == {t.JobStatus.FINISHED}
    codes = [e.code for e in conn.system_service().events_service().list(search="vm.name=vm03")]
    assert 68 in codes and 356 in codes


def _gone(snaps: object, snap_id: str) -> bool:
    try:
        snaps.snapshot_service(snap_id).get()  # type: ignore[attr-defined]
    except ovirtsdk4.NotFoundError:
        return True
    return False


def test_all_disks_by_default_and_two_snapshots_merge_in_any_order(
    conn: ovirtsdk4.Connection, primary: EngineServer, lab_dirs: dict[str, Path]
) -> None:
    vms = conn.system_service().vms_service()
    vm = vms.list(search="name=vm01")[0]
    snaps = vms.vm_service(vm.id).snapshots_service()
    disk_id = vms.vm_service(vm.id).disk_attachments_service().list()[0].disk.id
    image = lab_dirs["master"] / SD_ID / "images" / disk_id
    base = primary.lab.disk_chain(disk_id)[0]
    s1 = snaps.add(t.Snapshot(description="s1"))  # no disk_attachments: every disk; memory default true
    wait_for(lambda: snaps.snapshot_service(s1.id).get().snapshot_status == t.SnapshotStatus.OK, what="s1")
    assert snaps.snapshot_service(s1.id).get().persist_memorystate is True
    s2 = snaps.add(t.Snapshot(description="s2", persist_memorystate=False))
    wait_for(lambda: snaps.snapshot_service(s2.id).get().snapshot_status == t.SnapshotStatus.OK, what="s2")
    chain = primary.lab.disk_chain(disk_id)
    assert len(chain) == 3 and chain[0] == base and qemu_chain(image, chain[-1]) == chain
    # removing the older snapshot first: its child is internal
    snaps.snapshot_service(s1.id).remove()
    wait_for(lambda: _gone(snaps, s1.id), what="s1 removed")
    chain2 = primary.lab.disk_chain(disk_id)
    assert len(chain2) == 2 and qemu_chain(image, chain2[-1]) == chain2
    s2_disks = snaps.snapshot_service(s2.id).disks_service().list()
    assert s2_disks[0].image_id == chain2[0]
    snaps.snapshot_service(s2.id).remove()
    wait_for(lambda: _gone(snaps, s2.id), what="s2 removed")
    assert primary.lab.disk_chain(disk_id) == [base] == qemu_chain(image, base)
    with pytest.raises(ovirtsdk4.NotFoundError):
        snaps.snapshot_service(s2.id).remove()


def test_guest_writer_serialized_with_snapshot(conn: ovirtsdk4.Connection, primary: EngineServer) -> None:
    vms = conn.system_service().vms_service()
    vm = vms.list(search="name=vm02")[0]
    disk_id = vms.vm_service(vm.id).disk_attachments_service().list()[0].disk.id
    base = primary.lab.disk_chain(disk_id)[0]
    primary.lab.start_writer([vm.id], interval_s=0.02, block_size=65536)
    time.sleep(0.3)
    snaps = vms.vm_service(vm.id).snapshots_service()
    snap = snaps.add(t.Snapshot(description="during writes", persist_memorystate=False))
    wait_for(lambda: snaps.snapshot_service(snap.id).get().snapshot_status == t.SnapshotStatus.OK, what="ok")
    time.sleep(0.3)
    stopped = primary.lab.stop_writer()
    assert stopped["errors"] == []
    writes = primary.lab.writes()
    overlay = primary.lab.disk_chain(disk_id)[-1]
    vols = [w["volume_id"] for w in writes]
    assert set(vols) == {base, overlay}
    # every write went wholly to one layer: all base writes come before all overlay writes
    first_overlay = vols.index(overlay)
    assert all(v == base for v in vols[:first_overlay]) and all(v == overlay for v in vols[first_overlay:])
    assert [w["seq"] for w in writes] == sorted(w["seq"] for w in writes)
    vm4 = vms.list(search="name=vm04")[0]
    primary.lab.set_vm_status(vm4.id, "down")
    with pytest.raises(Exception, match="409"):
        primary.lab.write(
            vm4.id, vms.vm_service(vm4.id).disk_attachments_service().list()[0].disk.id, 0, 512, 1
        )


def test_parallel_snapshots_of_all_vms(conn: ovirtsdk4.Connection, primary: EngineServer) -> None:
    vms = conn.system_service().vms_service()
    all_vms = vms.list()
    futures = [
        vms.vm_service(v.id)
        .snapshots_service()
        .add(t.Snapshot(description="par", persist_memorystate=False), wait=False)
        for v in all_vms
    ]
    snaps = {v.id: f.wait() for v, f in zip(all_vms, futures, strict=True)}
    assert {s.snapshot_status for s in snaps.values()} == {t.SnapshotStatus.LOCKED}
    for vm_id, snap in snaps.items():
        service = vms.vm_service(vm_id).snapshots_service().snapshot_service(snap.id)
        wait_for(lambda s=service: s.get().snapshot_status == t.SnapshotStatus.OK, what="ok")
    # SDK 4.6.3's remove(wait=False) returns None (it never hands back the future), so removes go one by
    # one; each answers at once and the merges run concurrently in the engine.
    for vm_id, s in snaps.items():
        vms.vm_service(vm_id).snapshots_service().snapshot_service(s.id).remove()
    for vm_id, snap in snaps.items():
        wait_for(lambda v=vm_id, s=snap: _gone(vms.vm_service(v).snapshots_service(), s.id), what="removed")


def test_hundred_vms_snapshot_concurrently(start_engine, lab_dirs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    latency = 0.5
    site = generate_site(100, disks_per_vm=1, disk_size_mib=4)
    site["latency"] = dict(FAST_LATENCY, snapshot=latency, merge=latency)
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(site))
    server = start_engine(tmp_path / "big.yaml", "engine-big")
    c = connect(server)
    vms = c.system_service().vms_service()
    all_vms = vms.list()
    assert len(all_vms) == 100
    started = time.monotonic()
    futures = [
        vms.vm_service(v.id)
        .snapshots_service()
        .add(t.Snapshot(description="bench", persist_memorystate=False), wait=False)
        for v in all_vms
    ]
    snaps = [(v.id, f.wait()) for v, f in zip(all_vms, futures, strict=True)]

    def all_ok() -> bool:
        checks = [
            vms.vm_service(vm_id).snapshots_service().snapshot_service(s.id).get(wait=False)
            for vm_id, s in snaps
        ]
        return all(f.wait().snapshot_status == t.SnapshotStatus.OK for f in checks)

    wait_for(all_ok, timeout=60, interval=0.2, what="100 snapshots ok")
    elapsed = time.monotonic() - started
    print(f"100 concurrent snapshots at {latency}s latency: {elapsed:.2f}s")
    assert elapsed < 100 * latency / 4, f"100 snapshots took {elapsed:.1f}s: not concurrent"
    disk_ids = [d.id for d in c.system_service().disks_service().list()]
    assert all(len(server.lab.disk_chain(d)) == 2 for d in disk_ids[:10])
    counters = server.lab.counters()
    assert counters["POST /vms/{id}/snapshots"] == 100

    # 100 power cycles at once: every VM walks its transitions in order and none is left halfway
    def statuses() -> set[t.VmStatus]:
        return {v.status for v in vms.list()}

    for f in [vms.vm_service(v.id).stop(wait=False) for v in all_vms]:
        f.wait()
    wait_for(lambda: statuses() == {t.VmStatus.DOWN}, timeout=30, what="100 VMs down")
    for f in [vms.vm_service(v.id).start(wait=False) for v in all_vms]:
        f.wait()
    wait_for(lambda: statuses() == {t.VmStatus.UP}, timeout=30, what="100 VMs up")
    c.close()


def test_latency_is_configurable_per_operation(conn: ovirtsdk4.Connection, primary: EngineServer) -> None:
    assert primary.lab.set_latency({"snapshot": 1.0, "merge": 0.8})["snapshot"] == 1.0
    vms = conn.system_service().vms_service()
    vm = vms.list(search="name=vm06")[0]
    snaps = vms.vm_service(vm.id).snapshots_service()
    started = time.monotonic()
    snap = snaps.add(t.Snapshot(description="slow", persist_memorystate=False))
    wait_for(lambda: snaps.snapshot_service(snap.id).get().snapshot_status == t.SnapshotStatus.OK, what="ok")
    assert 0.9 <= time.monotonic() - started < 5
    started = time.monotonic()
    snaps.snapshot_service(snap.id).remove()
    assert time.monotonic() - started < 0.5  # the DELETE answers at once; the merge takes the latency
    wait_for(lambda: _gone(snaps, snap.id), what="merged")
    assert 0.7 <= time.monotonic() - started < 5


def test_async_remove_answers_202_which_the_sdk_refuses(conn: ovirtsdk4.Connection) -> None:
    vms = conn.system_service().vms_service()
    vm = vms.list(search="name=vm04")[0]
    snaps = vms.vm_service(vm.id).snapshots_service()
    snap = snaps.add(t.Snapshot(description="async", persist_memorystate=False))
    wait_for(lambda: snaps.snapshot_service(snap.id).get().snapshot_status == t.SnapshotStatus.OK, what="ok")
    with pytest.raises(ovirtsdk4.Error):
        snaps.snapshot_service(snap.id).remove(async_=True)
    wait_for(lambda: _gone(snaps, snap.id), what="merged anyway")
