"""The drill's copy of a replica (``ovirt_dr.drill_node``), imported by the engine emulator like any domain.

No Gluster here: the primary emulator keeps its domain in a tmp dir, the test "replicates" it with ``cp -a``
(as geo-replication leaves it: the OVF_STORE updated, every chain whole), the node programs run locally
with ``python3`` on that slave dir, and the secondary emulator, through the real ovirtsdk4, imports the COPY
by its new id, attaches it, registers the VMs with the mappings, (un)plugs their vNICs and starts them.
The replica's files hash the same afterwards, after the VMs wrote into their disks and the engine rewrote
the copy's OVF_STORE; a volume missing from the replica makes its VM fail to start, naming its disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ovirtsdk4
import ovirtsdk4.types as t
import pytest

from ovirt_dr.drill import copy_sd_id, overlay_volume_id
from ovirt_dr.drill_node import MAKE_COPY, REMOVE_COPY, VERIFY
from ovirt_dr.failover import parse_entity_ovf
from ovirt_dr_lab.engine.server import EngineServer
from ovirt_dr_lab.engine.storage import DomainStorage, parse_domain_metadata
from ovirt_dr_lab.engine.testing import connect, site_dict, wait_for

pytestmark = pytest.mark.lab

SD_ID = "9c3f0d51-6a7e-4c2b-b8d4-2f1e6a0b7c11"
RUN_ID = "manual__2026-12-02T10:00:00+00:00"


@pytest.fixture
def lab_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    dirs = {"master": tmp_path / "gvmaster", "slave": tmp_path / "gvslave", "state": tmp_path / "state"}
    for d in dirs.values():
        d.mkdir()
    monkeypatch.setenv("LAB_MASTER_MOUNT", str(dirs["master"]))
    monkeypatch.setenv("LAB_SLAVE_MOUNT", str(dirs["slave"]))
    monkeypatch.setenv("LAB_GLUSTER_HOST", "gluster.lab")
    return dirs


@pytest.fixture
def engines(lab_dirs: dict[str, Path]) -> Iterator[tuple[EngineServer, EngineServer]]:
    primary = EngineServer(site_dict("primary"), lab_dirs["state"] / "p").start()
    secondary = EngineServer(site_dict("secondary"), lab_dirs["state"] / "s").start()
    yield primary, secondary
    primary.stop()
    secondary.stop()


def node(program: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run a node program as the operators do over SSH (``python3 -c program spec``), here locally."""
    proc = subprocess.run(
        [sys.executable, "-c", program, json.dumps(spec)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def tree(root: Path) -> dict[str, str]:
    """Every file of a domain directory: content hash, or the link target (nothing followed)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def replicate(primary: EngineServer, lab_dirs: dict[str, Path]) -> dict[str, Any]:
    """OVF_STORE updated on the primary, the domain copied to the slave dir; the disks the replica's OVFs
    name (read as the drill's preflight reads them, ``parse_entity_ovf``), by VM and by template."""
    with connect(primary) as conn:
        system = conn.system_service()
        events = system.events_service()
        last = int(events.list(max=1)[0].id)
        system.storage_domains_service().storage_domain_service(SD_ID).update_ovf_store()
        wait_for(lambda: any(e.code == 199 for e in events.list(from_=last)), what="OVF_STORE written")
    subprocess.run(
        ["cp", "-a", "--sparse=always", str(lab_dirs["master"] / SD_ID), str(lab_dirs["slave"])], check=True
    )
    out: dict[str, list[dict[str, Any]]] = {"disks": [], "templates": []}
    for xml in DomainStorage.open(lab_dirs["slave"], SD_ID).read_ovf_store().values():
        ent = parse_entity_ovf(xml)
        key = "disks" if ent["kind"] == "vm" else "templates"
        out[key] += [{"vm": ent["name"], "vm_id": ent["id"], **d} for d in ent["disks"]]
    assert len(out["disks"]) == 7 and len(out["templates"]) == 1
    return out


def spec_of(inv: dict[str, Any], lab_dirs: dict[str, Path], dry_run: bool) -> dict[str, Any]:
    copy_id = copy_sd_id(SD_ID, RUN_ID)
    disks = [{**d, "overlay": overlay_volume_id(copy_id, d["image"], d["volume"])} for d in inv["disks"]]
    disks += [{**d, "overlay": None} for d in inv["templates"]]
    return {
        "root": str(lab_dirs["slave"]),
        "sd_id": SD_ID,
        "copy_id": copy_id,
        "copy_name": "data_gluster_dr_drill",
        "run_id": RUN_ID,
        "dry_run": dry_run,
        "disks": disks,
    }


def import_copy(sconn: ovirtsdk4.Connection, copy_id: str) -> None:
    system = sconn.system_service()
    sds = system.storage_domains_service()
    sd = sds.add(
        t.StorageDomain(
            id=copy_id,
            name="data_gluster_dr_drill",
            type=t.StorageDomainType.DATA,
            import_=True,
            host=t.Host(name="host2"),
            storage=t.HostStorage(
                type=t.StorageType.GLUSTERFS, address="gluster.lab", path="/gvslave", vfs_type="glusterfs"
            ),
        )
    )
    assert sd.id == copy_id and sd.name == "data_gluster_dr_drill"
    dc = system.data_centers_service().list()[0]
    attached = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
    attached.add(t.StorageDomain(id=copy_id))
    wait_for(
        lambda: attached.storage_domain_service(copy_id).get().status == t.StorageDomainStatus.ACTIVE,
        what="copy active",
    )


def register_all(sconn: ovirtsdk4.Connection, copy_id: str) -> dict[str, t.Vm]:
    system = sconn.system_service()
    sd = system.storage_domains_service().storage_domain_service(copy_id)
    cluster = t.RegistrationConfiguration(
        cluster_mappings=[
            t.RegistrationClusterMapping(from_=t.Cluster(name="Default"), to=t.Cluster(name="Recovery"))
        ]
    )
    for tpl in sd.templates_service().list(unregistered=True):
        sd.templates_service().template_service(tpl.id).register(registration_configuration=cluster)
    for vm in sd.vms_service().list(unregistered=True):
        sd.vms_service().vm_service(vm.id).register(
            allow_partial_import=True, reassign_bad_macs=True, registration_configuration=cluster
        )
    return {v.name: v for v in system.vms_service().list()}


def teardown(sconn: ovirtsdk4.Connection, copy_id: str) -> None:
    system = sconn.system_service()
    vms = system.vms_service()
    for vm in vms.list():
        if vm.status != t.VmStatus.DOWN:
            vms.vm_service(vm.id).stop()
    wait_for(lambda: all(v.status == t.VmStatus.DOWN for v in vms.list()), what="VMs down")
    for vm in vms.list():
        vms.vm_service(vm.id).remove(detach_only=True)
    dc = system.data_centers_service().list()[0]
    one = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
    one = one.storage_domain_service(copy_id)
    one.deactivate()
    wait_for(lambda: one.get().status == t.StorageDomainStatus.MAINTENANCE, what="maintenance")
    one.remove()
    system.storage_domains_service().storage_domain_service(copy_id).remove(host="host2")
    # what the engine still lists for the gone copy (the template's disk): dropped, as the drill does
    for disk in system.disks_service().list():
        if copy_id in {s.id for s in disk.storage_domains or []}:
            system.disks_service().disk_service(disk.id).remove()


def test_the_copy_is_imported_started_and_removed_without_touching_the_replica(
    engines: tuple[EngineServer, EngineServer], lab_dirs: dict[str, Path]
) -> None:
    primary, secondary = engines
    inv = replicate(primary, lab_dirs)
    replica = lab_dirs["slave"] / SD_ID
    before = tree(replica)

    plan = node(MAKE_COPY, spec_of(inv, lab_dirs, dry_run=True))
    assert plan["dry_run"] and plan["problems"] == [] and plan["created"] == 0
    assert all(d["problems"] == [] for d in plan["disks"].values()), plan["disks"]
    assert sorted(os.listdir(lab_dirs["slave"])) == [SD_ID], "a dry run wrote something"

    spec = spec_of(inv, lab_dirs, dry_run=False)
    copy_id = spec["copy_id"]
    made = node(MAKE_COPY, spec)
    copy = lab_dirs["slave"] / copy_id
    assert made["created"] > 0 and copy.is_dir() and made["ovf_store"]["members"] >= 8
    md = parse_domain_metadata((copy / "dom_md" / "metadata").read_text())  # the seal verifies
    assert md["SDUUID"] == copy_id and md["DESCRIPTION"] == "data_gluster_dr_drill" and md["POOL_UUID"] == ""
    first = tree(copy)
    assert {k for k, v in first.items() if v.startswith("-> ")} == {
        f"images/{d['image']}/{d['volume']}" for d in inv["disks"] + inv["templates"]
    }, "every disk's volume is the replica's, by symlink"
    again = node(MAKE_COPY, spec)  # a retry builds it again from the replica
    assert again["existed"] and set(tree(copy)) == set(first)

    with connect(secondary) as sconn:
        import_copy(sconn, copy_id)
        vms = register_all(sconn, copy_id)
        assert sorted(vms) == sorted({d["vm"] for d in inv["disks"]})
        system = sconn.system_service()
        for d in inv["disks"]:  # every disk's active volume is its overlay, on the copy
            disk = system.disks_service().disk_service(d["image"]).get()
            assert disk.image_id == overlay_volume_id(copy_id, d["image"], d["volume"])
            assert disk.storage_domains[0].id == copy_id
        for vm in vms.values():
            nics = system.vms_service().vm_service(vm.id).nics_service()
            for nic in nics.list():
                nics.nic_service(nic.id).update(t.Nic(plugged=False))
            assert [n.plugged for n in nics.list()] == [False] * len(nics.list())
        checks = node(
            VERIFY,
            {
                "root": str(lab_dirs["slave"]),
                "sd_id": SD_ID,
                "copy_id": copy_id,
                "disks": [
                    {
                        "image": d["image"],
                        "copy_volume": overlay_volume_id(copy_id, d["image"], d["volume"]),
                        "replica_volume": d["volume"],
                    }
                    for d in inv["disks"]
                ],
            },
        )
        for img, res in checks.items():
            assert res["errors"] == [] and res["copy_sha256"] == res["replica_sha256"], (img, res)
        for vm in vms.values():
            system.vms_service().vm_service(vm.id).start()
        wait_for(lambda: {v.status for v in system.vms_service().list()} == {t.VmStatus.UP}, what="VMs up")
        # a guest writes: into its overlay, never the replica
        vm01 = vms["vm01"]
        disk = system.vms_service().vm_service(vm01.id).disk_attachments_service().list()[0]
        overlay = (
            copy / "images" / disk.disk.id / system.disks_service().disk_service(disk.disk.id).get().image_id
        )
        size_before = overlay.stat().st_size
        secondary.engine.guest_write(vm01.id, disk.disk.id, 0, 65536, 0x5A)
        assert overlay.stat().st_size > size_before, "the guest's write did not land in the overlay"
        teardown(sconn, copy_id)
        assert sconn.system_service().disks_service().list() == [], "a disk of the copy was left behind"
        assert sconn.system_service().templates_service().list() == []
    assert tree(replica) == before, "the replica changed"
    gone = node(
        REMOVE_COPY, {"root": str(lab_dirs["slave"]), "sd_id": SD_ID, "copy_id": copy_id, "dry_run": False}
    )
    assert gone["removed"] > 0 and sorted(os.listdir(lab_dirs["slave"])) == [SD_ID]
    assert node(
        REMOVE_COPY, {"root": str(lab_dirs["slave"]), "sd_id": SD_ID, "copy_id": copy_id, "dry_run": False}
    ) == {
        "absent": True,
        "removed": 0,
    }
    assert tree(replica) == before


def test_a_volume_missing_on_the_replica_fails_its_vm(
    engines: tuple[EngineServer, EngineServer], lab_dirs: dict[str, Path]
) -> None:
    primary, secondary = engines
    inv = replicate(primary, lab_dirs)
    victim = next(d for d in inv["disks"] if d["vm"] == "vm03")
    (lab_dirs["slave"] / SD_ID / "images" / victim["image"] / victim["volume"]).unlink()
    spec = spec_of(inv, lab_dirs, dry_run=False)
    made = node(MAKE_COPY, spec)
    problems = made["disks"][victim["image"]]["problems"]
    assert any("is missing on the replica" in p for p in problems), problems
    with connect(secondary) as sconn:
        import_copy(sconn, spec["copy_id"])
        vms = register_all(sconn, spec["copy_id"])
        vm03 = sconn.system_service().vms_service().vm_service(vms["vm03"].id)
        with pytest.raises(ovirtsdk4.Error) as err:
            vm03.start()
        assert err.value.code == 409 and "vm03" in err.value.fault.detail
        vm01 = sconn.system_service().vms_service().vm_service(vms["vm01"].id)
        vm01.start()
        wait_for(lambda: vm01.get().status == t.VmStatus.UP, what="vm01 up")
        teardown(sconn, spec["copy_id"])
    checks = node(
        VERIFY,
        {
            "root": str(lab_dirs["slave"]),
            "sd_id": SD_ID,
            "copy_id": spec["copy_id"],
            "disks": [
                {
                    "image": victim["image"],
                    "copy_volume": overlay_volume_id(spec["copy_id"], victim["image"], victim["volume"]),
                    "replica_volume": victim["volume"],
                }
            ],
        },
    )
    assert checks[victim["image"]]["errors"], checks
