"""The shared OVF reading: bounded, XML only, and only ``<image uuid>/<volume uuid>`` hrefs are disks."""

from __future__ import annotations

import pytest

from ovirt_dr import ovf
from ovirt_dr.failover import parse_entity_ovf
from ovirt_dr.replica import ovf_disks

IMG = "1a1a1a1a-0000-4000-8000-000000000001"
VOL = "b0b0b0b0-0000-4000-8000-000000000001"
DOC = f"""<ovf:Envelope xmlns:ovf="{ovf.OVF_NS}"><References>
<File ovf:href="{IMG}/{VOL}"/><File href="{IMG}/{VOL}"/>
<File ovf:href="{IMG}/{VOL}/../../etc"/><File ovf:href="../{VOL}"/><File ovf:href="{IMG.upper()}/{VOL}"/>
</References></ovf:Envelope>"""


def test_disk_refs_are_uuid_pairs_only():
    assert ovf.disk_refs(ovf.parse_xml(DOC)) == [(IMG, VOL), (IMG, VOL)]


def test_parse_xml_bounds_and_refuses_non_xml():
    with pytest.raises(ovf.OvfError, match="larger than 10"):
        ovf.parse_xml(DOC, max_bytes=10)
    with pytest.raises(ovf.OvfError, match="not XML"):
        ovf.parse_xml("<a>")


def test_the_audit_and_the_failover_read_the_same_disks():
    from ovirt_dr_lab.engine.ovf import build_ovf

    entity = {
        "id": "0ec0ec0e-0000-4000-8000-000000000001",
        "name": "vm01",
        "kind": "vm",
        "cluster": "c1",
        "disks": [
            {
                "disk_id": IMG,
                "image_id": IMG,
                "volume_id": VOL,
                "size": 1,
                "format": "cow",
                "storage_domain_id": "5d5d5d5d-0000-4000-8000-000000000001",
                "alias": "d",
                "bootable": True,
                "interface": "virtio_scsi",
            }
        ],
        "nics": [],
    }
    xml = build_ovf(entity)
    _, name, disks = ovf_disks(xml)
    parsed = parse_entity_ovf(xml)
    assert name == parsed["name"] == "vm01"
    assert disks == [(d["image"], d["volume"]) for d in parsed["disks"]] == [(IMG, VOL)]
