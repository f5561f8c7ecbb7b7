"""DomainStorage on real files with the real qemu-img / qemu-io: layout, chains, merges, OVF_STORE."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import threading
import uuid
from pathlib import Path

import pytest

from ovirt_dr_lab.engine.storage import (
    BLANK_UUID,
    OVF_STORE_SIZE,
    DomainStorage,
    StorageError,
    engine_date,
    expected_content,
    format_domain_metadata,
    metadata_checksum,
    parse_domain_metadata,
    seed_writes,
)

MIB = 1024 * 1024
SIZE = 4 * MIB

# vdsm tests/storage/filesd_metadata_test.py EXAMPLE_DATA: the metadata a real vdsm writes, with its seal.
_VDSM_TEMPLATE = """\
ALIGNMENT={alignment}
BLOCK_SIZE={block_size}
CLASS=Data
DESCRIPTION=storage domain
IOOPTIMEOUTSEC=10
LEASERETRIES=3
LEASETIMESEC=60
LOCKPOLICY=
LOCKRENEWALINTERVALSEC=5
POOL_UUID=
REMOTE_PATH=server:/path
ROLE=Regular
SDUUID=275766cb-c7d8-43d6-a663-4e52160de620
TYPE=LOCALFS
VERSION=5
_SHA_CKSUM={cksum}
"""
VDSM_VECTORS = [
    (512, 1048576, "9336f77705ff9e3d5faf65c4d0dc818a29de458d"),
    (4096, 1048576, "7910a564cc0a340f93aea5680e0e9c2d6ff4903a"),
    (4096, 2097152, "769baef6c65aeef08cf6d177c2c44046b2aac877"),
]


def _uuid() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def domain(tmp_path: Path) -> DomainStorage:
    dom = DomainStorage(tmp_path / "mnt", _uuid(), "sd-data", "gluster1:/gvmaster")
    dom.create()
    return dom


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _qemu_chain(dom: DomainStorage, image_id: str, volume_id: str) -> list[dict]:
    out = subprocess.run(
        ["qemu-img", "info", "-U", "--backing-chain", "--output=json", volume_id],
        cwd=dom.image_dir(image_id),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


# ---- dom_md/metadata ----------------------------------------------------------------------------


@pytest.mark.parametrize(("block_size", "alignment", "cksum"), VDSM_VECTORS)
def test_metadata_checksum_matches_vdsm_vectors(block_size: int, alignment: int, cksum: str) -> None:
    text = _VDSM_TEMPLATE.format(block_size=block_size, alignment=alignment, cksum=cksum)
    md = parse_domain_metadata(text)
    assert md["BLOCK_SIZE"] == str(block_size)
    assert metadata_checksum(md) == cksum
    assert format_domain_metadata(md) == text


def test_metadata_broken_seal_raises() -> None:
    text = _VDSM_TEMPLATE.format(block_size=512, alignment=1048576, cksum=VDSM_VECTORS[0][2])
    with pytest.raises(StorageError, match="seal is broken"):
        parse_domain_metadata(text.replace("ROLE=Regular", "ROLE=Master"))


def test_metadata_checksum_non_ascii_like_vdsm() -> None:
    # vdsm hashes non-ASCII characters as XML character references
    assert (
        metadata_checksum({"DESCRIPTION": "dom\u00e9"}) == hashlib.sha1(b"DESCRIPTION=dom&#233;").hexdigest()
    )


def test_create_layout(domain: DomainStorage) -> None:
    for name in ("metadata", "ids", "leases", "inbox", "outbox", "xleases"):
        assert (domain.dom_md / name).is_file(), name
    assert domain.images.is_dir()
    assert domain.exists()
    md = domain.read_metadata()
    assert md["SDUUID"] == domain.sd_id
    assert md["DESCRIPTION"] == "sd-data"
    assert md["REMOTE_PATH"] == "gluster1:/gvmaster"
    assert md["TYPE"] == "GLUSTERFS" and md["VERSION"] == "5" and md["ROLE"] == "Regular"
    lines = (domain.dom_md / "metadata").read_text().splitlines()
    assert lines[-1] == f"_SHA_CKSUM={metadata_checksum(md)}"
    assert lines[:-1] == sorted(lines[:-1])
    # two OVF_STORE disks, each one 128 MiB sparse RAW volume, excluded from image_ids
    stores = domain.ovf_store_image_ids()
    assert len(stores) == 2
    assert domain.image_ids() == []
    for image_id in stores:
        (vol,) = domain.chain(image_id)
        meta = domain.read_meta(image_id, vol)
        assert meta["FORMAT"] == "RAW" and meta["VOLTYPE"] == "LEAF" and meta["CAP"] == str(OVF_STORE_SIZE)
        desc = json.loads(meta["DESCRIPTION"])
        assert desc["Disk Description"] == "OVF_STORE"
        assert desc["Updated"] is False
        assert desc["Storage Domains"] == [{"uuid": domain.sd_id}]
        path = domain.volume_path(image_id, vol)
        assert path.stat().st_size == OVF_STORE_SIZE
        assert path.stat().st_blocks * 512 < MIB  # sparse
        assert domain.check_chain(image_id) == []
    domain.create()  # idempotent
    assert domain.ovf_store_image_ids() == stores


def test_tampered_metadata_raises(domain: DomainStorage) -> None:
    path = domain.dom_md / "metadata"
    path.write_text(path.read_text().replace("DESCRIPTION=sd-data", "DESCRIPTION=other"))
    with pytest.raises(StorageError, match="seal"):
        domain.read_metadata()
    assert DomainStorage.find(domain.root) == []


def test_find_and_open(tmp_path: Path) -> None:
    root = tmp_path / "mnt"
    a = DomainStorage(root, _uuid(), "a", "h:/v", role="Master")
    b = DomainStorage(root, _uuid(), "b", "h:/v")
    a.create()
    b.create()
    (root / "not-a-domain").mkdir()
    found = {d.sd_id: d for d in DomainStorage.find(root)}
    assert set(found) == {a.sd_id, b.sd_id}
    assert found[a.sd_id].name == "a" and found[a.sd_id].role == "Master"
    assert found[b.sd_id].remote_path == "h:/v"
    assert DomainStorage.find(tmp_path / "missing") == []


# ---- volumes ------------------------------------------------------------------------------------


def test_create_volume_meta_and_seed_content(domain: DomainStorage) -> None:
    img, vol = _uuid(), _uuid()
    domain.create_volume(img, vol, SIZE, description='{"DiskAlias":"vm1_Disk1"}', fill_seed=42)
    text = (domain.image_dir(img) / f"{vol}.meta").read_text()
    assert len(text.encode()) <= 512
    lines = text.splitlines()
    assert lines[-1] == "EOF" and lines[:-1] == sorted(lines[:-1])
    meta = domain.read_meta(img, vol)
    assert meta["PUUID"] == BLANK_UUID and meta["VOLTYPE"] == "LEAF" and meta["FORMAT"] == "COW"
    assert meta["IMAGE"] == img and meta["DOMAIN"] == domain.sd_id and meta["LEGALITY"] == "LEGAL"
    assert meta["CAP"] == str(SIZE) and meta["DESCRIPTION"] == '{"DiskAlias":"vm1_Disk1"}'
    assert (domain.image_dir(img) / f"{vol}.lease").is_file()
    assert domain.image_ids() == [img]
    expected = expected_content(SIZE, seed_writes(42, SIZE))
    assert any(expected)
    assert domain.read_disk(img) == expected
    assert domain.disk_sha256(img) == _sha(expected)
    assert seed_writes(42, SIZE) == seed_writes(42, SIZE) != seed_writes(43, SIZE)
    with pytest.raises(StorageError, match="already exists"):
        domain.create_volume(img, vol, SIZE)


def test_metadata_rewritten_in_place(domain: DomainStorage) -> None:
    # same inode (on Gluster: same gfid), because xsync geo-replication does not propagate renames
    img, base, top = _uuid(), _uuid(), _uuid()
    domain.create_volume(img, base, SIZE, description="a much longer description than later")
    meta_path = domain.image_dir(img) / f"{base}.meta"
    inode = meta_path.stat().st_ino
    domain.snapshot_volume(img, base, top)
    domain.write_meta(img, base, {**domain.read_meta(img, base), "DESCRIPTION": ""})
    assert meta_path.stat().st_ino == inode
    assert meta_path.read_text().endswith("VOLTYPE=INTERNAL\nEOF\n")
    md_path = domain.dom_md / "metadata"
    inode = md_path.stat().st_ino
    domain.write_metadata({**domain.read_metadata(), "ROLE": "Master"})
    assert md_path.stat().st_ino == inode
    assert domain.read_metadata()["ROLE"] == "Master"


def test_write_meta_refuses_oversize(domain: DomainStorage) -> None:
    img, vol = _uuid(), _uuid()
    domain.create_volume(img, vol, SIZE)
    meta = domain.read_meta(img, vol)
    with pytest.raises(StorageError, match="512"):
        domain.write_meta(img, vol, {**meta, "DESCRIPTION": "x" * 600})


@pytest.mark.parametrize("base_fmt", ["cow", "raw"])
def test_snapshot_chain_meta_and_backing_file(domain: DomainStorage, tmp_path: Path, base_fmt: str) -> None:
    img, base, top = _uuid(), _uuid(), _uuid()
    domain.create_volume(img, base, SIZE, fmt=base_fmt, fill_seed=1)
    domain.snapshot_volume(img, base, top)
    assert domain.chain(img) == [base, top]
    assert domain.leaf(img) == top
    base_meta, top_meta = domain.read_meta(img, base), domain.read_meta(img, top)
    assert base_meta["VOLTYPE"] == "INTERNAL"
    assert top_meta["VOLTYPE"] == "LEAF" and top_meta["PUUID"] == base and top_meta["FORMAT"] == "COW"
    assert top_meta["CAP"] == str(SIZE)
    chain = _qemu_chain(domain, img, top)
    assert [c["filename"] for c in chain] == [top, base]
    assert chain[0]["format"] == "qcow2"
    assert chain[0]["backing-filename"] == base  # bare uuid, relative to the image directory
    assert chain[0]["backing-filename-format"] == ("qcow2" if base_fmt == "cow" else "raw")
    assert chain[1]["format"] == ("qcow2" if base_fmt == "cow" else "raw")
    assert domain.qemu_info(img)[0]["backing-filename"] == base
    assert domain.check_chain(img) == []
    # the relative backing file keeps the chain valid when the domain is seen at another mount (replica)
    moved = tmp_path / "replica"
    shutil.copytree(domain.dom_md, moved / domain.sd_id / "dom_md")
    shutil.copytree(domain.image_dir(img), moved / domain.sd_id / "images" / img)  # OVF_STOREs not needed
    replica = DomainStorage.open(moved, domain.sd_id)
    assert replica.check_chain(img) == []
    assert replica.disk_sha256(img) == domain.disk_sha256(img)
    with pytest.raises(StorageError, match="not the leaf"):
        domain.snapshot_volume(img, base, _uuid())


def test_guest_writes_land_in_the_right_volume(domain: DomainStorage) -> None:
    img, base, top = _uuid(), _uuid(), _uuid()
    domain.create_volume(img, base, SIZE)
    domain.guest_write(img, base, 0, 65536, 0x11)
    domain.snapshot_volume(img, base, top)
    domain.guest_write(img, top, 32768, 65536, 0x22)
    before = expected_content(SIZE, [(0, 65536, 0x11)])
    after = expected_content(SIZE, [(0, 65536, 0x11), (32768, 65536, 0x22)])
    assert domain.read_range(img, 32000, 2000) == after[32000:34000]
    assert domain.read_range(img, 32000, 2000, volume_id=base) == before[32000:34000]
    assert domain.read_range(img, 0, 100) == after[:100]
    assert domain.read_range(img, SIZE - 1000, 1000) == after[-1000:]
    assert domain.read_disk(img, base) == before  # the snapshot's point in time is frozen
    assert domain.read_disk(img) == after
    assert domain.read_disk(img, top) == after
    # the overlay holds only what was written after the snapshot
    mapping = json.loads(
        subprocess.run(
            ["qemu-img", "map", "-U", "--output=json", top],
            cwd=domain.image_dir(img),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    in_top = [m for m in mapping if m["depth"] == 0 and m["data"]]
    assert in_top and all(32768 <= m["start"] + m["length"] and m["start"] < 131072 for m in in_top)
    with pytest.raises(StorageError, match="beyond"):
        domain.guest_write(img, top, SIZE - 512, 1024, 1)


@pytest.mark.parametrize("base_fmt", ["cow", "raw"])
def test_merge_leaf_parent(domain: DomainStorage, base_fmt: str) -> None:
    img, base, top = _uuid(), _uuid(), _uuid()
    domain.create_volume(img, base, SIZE, fmt=base_fmt, fill_seed=5)
    domain.snapshot_volume(img, base, top)
    domain.guest_write(img, top, 65536 * 3 + 100, 70000, 0x5A)
    seen = domain.disk_sha256(img)
    domain.merge(img, base)  # remove the snapshot whose disk shows `base`
    assert domain.chain(img) == [base]
    assert domain.read_meta(img, base)["VOLTYPE"] == "LEAF"
    assert domain.disk_sha256(img) == seen
    assert domain.check_chain(img) == []
    for suffix in ("", ".meta", ".lease"):
        assert not (domain.image_dir(img) / f"{top}{suffix}").exists()
    with pytest.raises(StorageError, match="leaf"):
        domain.merge(img, base)


def test_merge_internal_keeps_later_snapshot_and_guest_view(domain: DomainStorage) -> None:
    img = _uuid()
    v1, v2, v3, v4 = (_uuid() for _ in range(4))
    domain.create_volume(img, v1, SIZE, fill_seed=9)
    domain.snapshot_volume(img, v1, v2)  # snapshot A: disk shows v1
    domain.guest_write(img, v2, 0, 4096, 0xA2)
    domain.snapshot_volume(img, v2, v3)  # snapshot B: disk shows v2
    domain.guest_write(img, v3, 8192, 65536, 0xA3)
    domain.snapshot_volume(img, v3, v4)  # snapshot C: disk shows v3
    domain.guest_write(img, v4, 200000, 5000, 0xA4)
    guest = domain.disk_sha256(img)
    point_b = domain.disk_sha256(img, v2)
    point_c = domain.disk_sha256(img, v3)

    domain.merge(img, v1)  # remove snapshot A: v2 (internal) is committed into v1 and goes away
    assert domain.chain(img) == [v1, v3, v4]
    assert domain.read_meta(img, v3)["PUUID"] == v1
    assert _qemu_chain(domain, img, v4)[1]["backing-filename"] == v1
    assert domain.read_meta(img, v1)["VOLTYPE"] == "INTERNAL"
    assert domain.disk_sha256(img) == guest
    assert domain.disk_sha256(img, v1) == point_b  # snapshot B's point in time survives, now in v1
    assert domain.disk_sha256(img, v3) == point_c
    assert domain.check_chain(img) == []
    assert not any((domain.image_dir(img) / f"{v2}{s}").exists() for s in ("", ".meta", ".lease"))

    domain.merge(img, v3)  # remove snapshot C: the leaf's parent case
    assert domain.chain(img) == [v1, v3]
    assert domain.disk_sha256(img) == guest
    assert domain.disk_sha256(img, v1) == point_b
    assert domain.check_chain(img) == []


def test_check_chain_catches_damage(domain: DomainStorage) -> None:
    def fresh() -> tuple[str, str, str]:
        img, base, top = _uuid(), _uuid(), _uuid()
        domain.create_volume(img, base, SIZE, fill_seed=3)
        domain.snapshot_volume(img, base, top)
        assert domain.check_chain(img) == []
        return img, base, top

    img, base, _ = fresh()
    domain.volume_path(img, base).unlink()
    assert any("data file is missing" in p for p in domain.check_chain(img))

    img, base, _ = fresh()
    (domain.image_dir(img) / f"{base}.lease").unlink()
    assert any(".lease is missing" in p for p in domain.check_chain(img))

    img, base, top = fresh()
    (domain.image_dir(img) / f"{base}.meta").unlink()
    assert domain.check_chain(img)

    img, base, _ = fresh()
    with open(domain.volume_path(img, base), "r+b") as fh:  # qcow2 magic gone
        fh.write(b"\0" * 512)
    assert any("unreadable as qcow2" in p for p in domain.check_chain(img))

    img, base, _ = fresh()
    with open(domain.volume_path(img, base), "r+b") as fh:  # garbage over the L1/refcount tables
        fh.seek(65536)
        fh.write(b"\xff" * 65536 * 3)
    assert any("qemu-img check" in p or "unreadable" in p for p in domain.check_chain(img))

    img, base, top = fresh()  # a partly copied overlay (replication stopped mid-file)
    for i in range(4):
        domain.guest_write(img, top, i * MIB, 65536, 9)
    path = domain.volume_path(img, top)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    assert any("qemu-img check" in p for p in domain.check_chain(img))

    img, base, top = fresh()
    meta = domain.read_meta(img, top)
    domain.write_meta(img, top, {**meta, "PUUID": _uuid()})
    assert domain.check_chain(img)

    img, base, top = fresh()
    meta = domain.read_meta(img, top)
    domain.write_meta(img, top, {**meta, "LEGALITY": "ILLEGAL"})
    assert any("LEGALITY=ILLEGAL" in p for p in domain.check_chain(img))

    img, base, top = fresh()
    subprocess.run(
        ["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "", top], cwd=domain.image_dir(img), check=True
    )
    assert any("does not match PUUID" in p for p in domain.check_chain(img))

    missing = _uuid()
    assert domain.check_chain(missing) == [f"image directory {missing} is missing"]


def test_concurrent_writes_and_snapshots_serialize(domain: DomainStorage) -> None:
    img, base = _uuid(), _uuid()
    domain.create_volume(img, base, SIZE)
    writes = [(i * 65536, 65536, i + 1) for i in range(24)]
    errors: list[Exception] = []

    def writer(chunk: list[tuple[int, int, int]]) -> None:
        try:
            for offset, length, pattern in chunk:
                with domain.image_lock(img):  # leaf lookup + write as one step, as the API layer does
                    domain.guest_write(img, domain.leaf(img), offset, length, pattern)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def snapshotter() -> None:
        try:
            for _ in range(4):
                domain.snapshot_volume(img, domain.leaf(img), _uuid())
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(writes[i::3],)) for i in range(3)]
    threads.append(threading.Thread(target=snapshotter))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(domain.chain(img)) == 5
    assert domain.check_chain(img) == []
    assert domain.read_disk(img) == expected_content(SIZE, writes)


# ---- OVF_STORE ----------------------------------------------------------------------------------


def _store_tar(domain: DomainStorage, image_id: str) -> tarfile.TarFile:
    (vol,) = domain.chain(image_id)
    size = json.loads(domain.read_meta(image_id, vol)["DESCRIPTION"])["Size"]
    with open(domain.volume_path(image_id, vol), "rb") as fh:
        return tarfile.open(fileobj=io.BytesIO(fh.read(size)), mode="r:")


def test_ovf_store_write_read(domain: DomainStorage) -> None:
    with pytest.raises(StorageError, match="no updated OVF_STORE"):
        domain.read_ovf_store()
    vm_id, tpl_id = _uuid(), _uuid()
    domain.write_ovf_store({vm_id: "<vm/>", tpl_id: "<tpl/>"}, {vm_id: 1})
    assert domain.read_ovf_store() == {vm_id: "<vm/>", tpl_id: "<tpl/>"}
    full = domain.read_ovf_store_full()
    assert full["vm_status"] == {vm_id: 1}
    for image_id in domain.ovf_store_image_ids():
        (vol,) = domain.chain(image_id)
        desc = json.loads(domain.read_meta(image_id, vol)["DESCRIPTION"])
        assert desc["Updated"] is True
        assert desc["Disk Description"] == "OVF_STORE"
        assert desc["Storage Domains"] == [{"uuid": domain.sd_id}]
        assert desc["Last Updated"].endswith(" UTC " + desc["Last Updated"][-4:])
        tar = _store_tar(domain, image_id)
        assert set(tar.getnames()) == {"info.json", "metadata.json", f"{vm_id}.ovf", f"{tpl_id}.ovf"}
        assert json.loads(tar.extractfile("metadata.json").read()) == {"VM Status": {vm_id: 1}}
        assert domain.volume_path(image_id, vol).stat().st_size == OVF_STORE_SIZE
        assert domain.check_chain(image_id) == []


def test_ovf_store_read_picks_newest(domain: DomainStorage) -> None:
    vm_id = _uuid()
    store1, store2 = domain.ovf_store_image_ids()
    (vol1,) = domain.chain(store1)
    (vol2,) = domain.chain(store2)
    domain.write_ovf_store({vm_id: "<old/>"}, {})
    old_blob = domain.volume_path(store2, vol2).read_bytes()[: 1024 * 1024]
    old_desc = json.loads(domain.read_meta(store2, vol2)["DESCRIPTION"])
    domain.write_ovf_store({vm_id: "<new/>"}, {})
    new_desc = json.loads(domain.read_meta(store1, vol1)["DESCRIPTION"])

    def set_store2(blob: bytes, desc: dict) -> None:
        with open(domain.volume_path(store2, vol2), "r+b") as fh:
            fh.write(blob)
        meta = domain.read_meta(store2, vol2)
        domain.write_meta(store2, vol2, {**meta, "DESCRIPTION": json.dumps(desc, separators=(",", ":"))})

    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    set_store2(old_blob, {**old_desc, "Last Updated": engine_date(now - timedelta(hours=1))})
    domain.write_meta(
        store1,
        vol1,
        {
            **domain.read_meta(store1, vol1),
            "DESCRIPTION": json.dumps({**new_desc, "Last Updated": engine_date(now)}, separators=(",", ":")),
        },
    )
    assert domain.read_ovf_store() == {vm_id: "<new/>"}
    set_store2(old_blob, {**old_desc, "Last Updated": engine_date(now + timedelta(hours=1))})
    assert domain.read_ovf_store() == {vm_id: "<old/>"}
    # a store caught mid-update (Updated false) is never used, however new
    set_store2(
        old_blob, {**old_desc, "Updated": False, "Last Updated": engine_date(now + timedelta(hours=2))}
    )
    assert domain.read_ovf_store() == {vm_id: "<new/>"}
