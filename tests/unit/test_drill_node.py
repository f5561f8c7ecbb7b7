"""The drill's node programs (``ovirt_dr.drill_node``) run locally with ``python3`` on domains in tmp dirs.

The domains are written by the lab's vdsm-layout writer (``DomainStorage``); the programs get the spec the
operators send. What a replica holds is hostile: crafted headers, symlinks and broken seals are refused or
reported, and nothing outside the copy is ever written or deleted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from ovirt_dr.drill import copy_sd_id, overlay_volume_id
from ovirt_dr.drill_node import MAKE_COPY, REMOVE_COPY, VERIFY
from ovirt_dr_lab.engine.storage import DomainStorage, parse_domain_metadata, parse_volume_meta

SD = "9c3f0d51-6a7e-4c2b-b8d4-2f1e6a0b7c11"
VM = "11111111-1111-4111-8111-111111111111"
IMG = "22222222-2222-4222-8222-222222222222"
VOL = "33333333-3333-4333-8333-333333333333"
RUN = "manual__1"
CID = copy_sd_id(SD, RUN)
OV = overlay_volume_id(CID, IMG, VOL)


def run(program: str, spec: dict[str, Any] | str) -> subprocess.CompletedProcess[str]:
    arg = spec if isinstance(spec, str) else json.dumps(spec)
    return subprocess.run([sys.executable, "-c", program, arg], capture_output=True, text=True, timeout=120)


def ok(program: str, spec: dict[str, Any] | str) -> dict[str, Any]:
    proc = run(program, spec)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def tree(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def replica(tmp_path: Path) -> Path:
    """A replica domain: one VM disk (1 MiB qcow2 with data), an OVF naming it, sealed metadata."""
    ds = DomainStorage(tmp_path, SD, "data_gluster", "gluster.lab:/gvslave")
    ds.create()
    ds.create_volume(IMG, VOL, 1 << 20, fill_seed=7, description='{"DiskAlias":"vm01_disk1"}')
    ovf = (
        f'<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1/"><References>'
        f'<File ovf:href="{IMG}/{VOL}" ovf:id="{VOL}"/></References><StorageId>{SD}</StorageId>'
        f"</ovf:Envelope>"
    )
    ds.write_ovf_store({VM: ovf}, {VM: 1})
    return tmp_path


def spec(root: Path, **kw: Any) -> dict[str, Any]:
    base = {
        "root": str(root),
        "sd_id": SD,
        "copy_id": CID,
        "copy_name": "data_gluster_drill",
        "run_id": RUN,
        "dry_run": False,
        "disks": [{"vm": "vm01", "image": IMG, "volume": VOL, "overlay": OV}],
    }
    return {**base, **kw}


def test_the_copy_is_a_new_domain_on_the_replicas_volumes(replica: Path):
    before = tree(replica / SD)
    out = ok(MAKE_COPY, spec(replica))
    assert (
        out["problems"] == [] and out["disks"][IMG]["problems"] == [] and out["disks"][IMG]["chain"] == [VOL]
    )
    copy = replica / CID
    md = parse_domain_metadata((copy / "dom_md" / "metadata").read_text())  # resealed: verifies
    assert (md["SDUUID"], md["DESCRIPTION"], md["POOL_UUID"], md["ROLE"]) == (
        CID,
        "data_gluster_drill",
        "",
        "Regular",
    )
    images = copy / "images" / IMG
    assert os.readlink(images / VOL) == f"../../../{SD}/images/{IMG}/{VOL}"
    assert (images / VOL).resolve() == (replica / SD / "images" / IMG / VOL).resolve()
    top = parse_volume_meta((images / f"{VOL}.meta").read_text())
    assert top["DOMAIN"] == CID and top["VOLTYPE"] == "INTERNAL"
    ov = parse_volume_meta((images / f"{OV}.meta").read_text())
    assert (ov["PUUID"], ov["VOLTYPE"], ov["FORMAT"], ov["DOMAIN"]) == (VOL, "LEAF", "COW", CID)
    info = json.loads(subprocess.check_output(["qemu-img", "info", "--output=json", str(images / OV)]))
    assert info["backing-filename"] == VOL and info["virtual-size"] == 1 << 20
    # the copy's OVF_STORE names the copy and the overlay, nowhere the replica's domain or volume
    store = DomainStorage.open(replica, CID).read_ovf_store_full()
    assert set(store["ovfs"]) == {VM} and store["vm_status"] == {VM: 1}
    assert CID in store["ovfs"][VM] and OV in store["ovfs"][VM]
    assert SD not in store["ovfs"][VM] and VOL not in store["ovfs"][VM]
    assert DomainStorage.open(replica, CID).check_chain(IMG) == []  # the chain vdsm would walk is whole
    assert tree(replica / SD) == before, "the replica changed"
    assert json.loads((copy / "ovirt-dr-drill.json").read_text())["copy_of"] == SD

    checks = ok(
        VERIFY,
        {
            "root": str(replica),
            "sd_id": SD,
            "copy_id": CID,
            "disks": [{"image": IMG, "copy_volume": OV, "replica_volume": VOL}],
        },
    )
    assert checks[IMG]["errors"] == [] and checks[IMG]["links"] == [VOL]
    want = hashlib.sha256(DomainStorage.open(replica, SD).read_disk(IMG)).hexdigest()
    assert checks[IMG]["copy_sha256"] == checks[IMG]["replica_sha256"] == want

    assert ok(MAKE_COPY, spec(replica))["existed"]  # a retry builds it again
    gone = ok(REMOVE_COPY, {"root": str(replica), "sd_id": SD, "copy_id": CID, "dry_run": False})
    assert gone["removed"] > 10 and not copy.exists()
    assert tree(replica / SD) == before, "removing the copy (its links) touched the replica"


def test_a_dry_run_writes_nothing(replica: Path):
    out = ok(MAKE_COPY, spec(replica, dry_run=True))
    assert out["dry_run"] and out["created"] == 0 and sorted(os.listdir(replica)) == [SD]


def test_a_crafted_header_and_a_symlink_on_the_replica_are_named_not_followed(replica: Path):
    images = replica / SD / "images" / IMG
    (images / VOL).unlink()
    subprocess.run(  # a base volume whose header names a file outside the domain
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "/etc/passwd",
            "-F",
            "raw",
            "-u",
            str(images / VOL),
            "1M",
        ],
        check=True,
    )
    evil = "44444444-4444-4444-8444-444444444444"
    os.symlink("/etc/passwd", images / evil)
    out = ok(MAKE_COPY, spec(replica))
    problems = " | ".join(out["disks"][IMG]["problems"])
    assert f"volume {VOL}: header backing file '/etc/passwd', .meta parent none" in problems
    assert f"'{evil}' on the replica is not a volume file (link): not mirrored" in problems
    assert not (replica / CID / "images" / IMG / evil).exists()


def test_a_missing_volume_is_named_and_the_copy_still_mirrors_the_replica(replica: Path):
    (replica / SD / "images" / IMG / VOL).unlink()
    out = ok(MAKE_COPY, spec(replica))
    assert f"volume {VOL} is missing on the replica" in out["disks"][IMG]["problems"]
    assert not os.path.lexists(replica / CID / "images" / IMG / VOL)
    checks = ok(
        VERIFY,
        {
            "root": str(replica),
            "sd_id": SD,
            "copy_id": CID,
            "disks": [{"image": IMG, "copy_volume": OV, "replica_volume": VOL}],
        },
    )
    assert checks[IMG]["copy_sha256"] is None and checks[IMG]["replica_sha256"] is None
    assert len(checks[IMG]["errors"]) == 2


def test_a_broken_seal_stops_the_copy(replica: Path):
    md = replica / SD / "dom_md" / "metadata"
    md.write_text(md.read_text().replace("DESCRIPTION=data_gluster", "DESCRIPTION=tampered"))
    proc = run(MAKE_COPY, spec(replica))
    assert proc.returncode != 0 and "seal is broken" in proc.stderr
    assert sorted(os.listdir(replica)) == [SD]


def test_a_directory_that_is_not_the_drills_own_is_never_touched(replica: Path):
    foreign = replica / CID
    foreign.mkdir()
    (foreign / "keep").write_text("not a drill's")
    proc = run(MAKE_COPY, spec(replica))
    assert proc.returncode != 0 and "not this drill's copy" in proc.stderr
    proc = run(REMOVE_COPY, {"root": str(replica), "sd_id": SD, "copy_id": CID, "dry_run": False})
    assert proc.returncode != 0 and "no drill marker" in proc.stderr
    assert (foreign / "keep").read_text() == "not a drill's"
    proc = run(REMOVE_COPY, {"root": str(replica), "sd_id": SD, "copy_id": SD, "dry_run": False})
    assert proc.returncode != 0 and (replica / SD).is_dir()


def test_a_try_that_died_half_way_is_built_again_and_a_big_spec_comes_as_a_file(
    replica: Path, tmp_path: Path
):
    half = replica / f".ovirt-dr-drill-{CID}"
    (half / "images").mkdir(parents=True)
    (half / "ovirt-dr-drill.json").write_text(json.dumps({"copy_of": SD, "copy_id": CID}))
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec(replica)))
    out = ok(MAKE_COPY, f"@{path}")
    assert out["created"] > 0 and not half.exists() and (replica / CID / "dom_md" / "metadata").is_file()


def test_an_ovf_store_member_that_is_not_an_ovf_is_left_out(replica: Path):
    ds = DomainStorage.open(replica, SD)
    store = ds.read_ovf_store_full()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in [(f"{VM}.ovf", store["ovfs"][VM].encode()), ("--checkpoint-action=exec=sh", b"x")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    blob = buf.getvalue()
    for image, vol, desc in ds._ovf_stores():
        with open(ds.volume_path(image, vol), "r+b") as f:
            f.write(blob)
        ds._set_description(image, vol, {**desc, "Size": len(blob)})
    out = ok(MAKE_COPY, spec(replica))
    assert any("--checkpoint-action" in p and "left out" in p for p in out["problems"])
    assert set(DomainStorage.open(replica, CID).read_ovf_store()) == {VM}
