"""OVF build/parse: the engine's OVF shape, and a lossless round trip of the entity dict."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ovirt_dr_lab.engine.ovf import OVF_NS, RASD_NS, XSI_NS, OvfError, build_ovf, parse_ovf

GIB = 1024**3
SD = "44444444-4444-4444-4444-444444444444"


def _vm(**over: object) -> dict:
    vm = {
        "id": "11111111-1111-1111-1111-111111111111",
        "name": "web-01",
        "kind": "vm",
        "cluster": "Default",
        "memory": 2 * GIB,
        "cpus": 2,
        "description": 'front end <&> "quoted"',
        "ha": True,
        "priority": 50,
        "nics": [
            {"name": "nic1", "network": "ovirtmgmt", "vnic_profile": "ovirtmgmt", "mac": "56:6f:00:00:00:01"},
            {
                "name": "nic2",
                "network": "storage",
                "vnic_profile": "storage-jumbo",
                "mac": "56:6f:00:00:00:02",
            },
        ],
        "disks": [
            {
                "disk_id": "22222222-2222-2222-2222-222222222222",
                "image_id": "22222222-2222-2222-2222-222222222222",
                "volume_id": "33333333-3333-3333-3333-333333333333",
                "size": 10 * GIB,
                "format": "cow",
                "storage_domain_id": SD,
                "alias": "web-01_Disk1",
                "bootable": True,
                "interface": "virtio_scsi",
            },
            {
                "disk_id": "55555555-5555-5555-5555-555555555555",
                "image_id": "55555555-5555-5555-5555-555555555555",
                "volume_id": "66666666-6666-6666-6666-666666666666",
                "size": 512 * 1024 * 1024 + 4096,
                "format": "raw",
                "storage_domain_id": SD,
                "alias": "web-01_Disk2",
                "bootable": False,
                "interface": "virtio",
            },
        ],
        "affinity_groups": ["web-spread"],
        "affinity_labels": ["dmz", "tier1"],
        "template_id": "77777777-7777-7777-7777-777777777777",
    }
    vm.update(over)
    return vm


def test_round_trip_vm() -> None:
    vm = _vm()
    assert parse_ovf(build_ovf(vm)) == vm


def test_round_trip_template_and_minimal_vm() -> None:
    template = _vm(
        id="88888888-8888-8888-8888-888888888888",
        kind="template",
        name="rhel9-tpl",
        ha=False,
        priority=0,
        template_id=None,
        affinity_groups=[],
        affinity_labels=[],
    )
    xml = build_ovf(template)
    assert parse_ovf(xml) == template
    # the engine's test for a template: Content/TemplateId equals the OS section's ovf:id
    root = ET.fromstring(xml)
    os_section = next(
        s for s in root.find("Content").findall("Section") if "OperatingSystem" in s.get(f"{{{XSI_NS}}}type")
    )
    assert root.find("Content").findtext("TemplateId") == os_section.get(f"{{{OVF_NS}}}id") == template["id"]
    bare = _vm(nics=[], disks=[], affinity_groups=[], affinity_labels=[], template_id=None, description="")
    assert parse_ovf(build_ovf(bare)) == bare


def test_disk_id_distinct_from_image_id_and_description_survive() -> None:
    vm = _vm()
    vm["disks"][0]["disk_id"] = "99999999-9999-9999-9999-999999999999"
    vm["disks"][1]["description"] = "scratch space"
    assert parse_ovf(build_ovf(vm)) == vm


def test_engine_shape() -> None:
    vm = _vm()
    root = ET.fromstring(build_ovf(vm))
    o = f"{{{OVF_NS}}}"
    assert root.tag == f"{o}Envelope"
    disk = vm["disks"][0]
    href = f"{disk['image_id']}/{disk['volume_id']}"
    files = root.findall("References/File")
    assert files[0].get(f"{o}href") == href
    assert files[0].get(f"{o}id") == disk["volume_id"]
    assert files[0].get(f"{o}size") == str(10 * GIB)
    disk_section = next(
        s for s in root.findall("Section") if s.get(f"{{{XSI_NS}}}type") == "ovf:DiskSection_Type"
    )
    d0 = disk_section.findall("Disk")[0]
    assert d0.get(f"{o}diskId") == disk["volume_id"]
    assert d0.get(f"{o}fileRef") == href
    assert d0.get(f"{o}volume-format") == "COW"
    assert d0.get(f"{o}disk-interface") == "VirtIO_SCSI"
    assert d0.get(f"{o}boot") == "true"
    assert d0.get(f"{o}size") == "10"  # GiB, as the engine writes it
    assert d0.get(f"{o}format") == "http://www.gnome.org/~markmc/qcow-image-format.html"
    content = root.find("Content")
    assert content.get(f"{{{XSI_NS}}}type") == "ovf:VirtualSystem_Type"
    assert content.findtext("Name") == "web-01"
    assert content.findtext("ClusterName") == "Default"
    assert content.findtext("AutoStartup") == "true"
    assert content.findtext("Priority") == "50"
    items = [
        s
        for s in content.findall("Section")
        if s.get(f"{{{XSI_NS}}}type") == "ovf:VirtualHardwareSection_Type"
    ]
    types = [i.findtext(f"{{{RASD_NS}}}ResourceType") for i in items[0].findall("Item")]
    assert types == ["3", "4", "17", "17", "10", "10", "23"]
    nic2 = items[0].findall("Item")[5]
    assert nic2.findtext(f"{{{RASD_NS}}}OtherResourceType") == "storage-jumbo"  # vNIC profile
    assert nic2.findtext(f"{{{RASD_NS}}}Connection") == "storage"  # network
    mem = items[0].findall("Item")[1]
    assert mem.findtext(f"{{{RASD_NS}}}VirtualQuantity") == "2048"
    assert build_ovf(vm).startswith("<?xml version='1.0' encoding='UTF-8'?>")


def test_parse_errors() -> None:
    with pytest.raises(OvfError):
        parse_ovf("not xml")
    with pytest.raises(OvfError):
        parse_ovf("<Envelope/>")
    with pytest.raises(OvfError):
        build_ovf(_vm(kind="pool"))
