"""OVF users (``UserDomainsSection_Type``) and direct LUN disks: the engine's element names, and a round trip."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ovirt_dr_lab.engine.ovf import OVF_NS, XSI_NS, build_ovf, parse_ovf

VM = {
    "id": "11111111-1111-1111-1111-111111111111",
    "name": "db-01",
    "kind": "vm",
    "cluster": "Default",
    "memory": 1024**3,
    "cpus": 1,
    "description": "",
    "ha": False,
    "priority": 0,
    "nics": [],
    "disks": [],
    "luns": [
        {
            "disk_id": "22222222-2222-2222-2222-222222222222",
            "alias": "db-01_quorum",
            "description": "quorum",
            "bootable": False,
            "interface": "virtio_scsi",
            "shareable": True,
            "lun": {
                "id": "36001405a1b2c3d4e5f60718293a4b5c6",
                "storage_type": "iscsi",
                "address": "192.0.2.10",
                "port": 3260,
                "target": "iqn.2024-01.lab:san1",
                "portal": "1",
            },
        }
    ],
    "users": [
        {"user_domain": "dr_user@internal", "roles": ["DrOperator", "UserRole"]},
        {"user_domain": "ops@corp.example", "roles": []},
    ],
    "affinity_groups": [],
    "affinity_labels": [],
    "template_id": None,
}


def test_round_trip_users_and_luns() -> None:
    assert parse_ovf(build_ovf(VM)) == VM


def test_engine_shape() -> None:
    root = ET.fromstring(build_ovf(VM))
    content = root.find("Content")
    sections = content.findall("Section")
    users = next(s for s in sections if s.get(f"{{{XSI_NS}}}type") == "ovf:UserDomainsSection_Type")
    # OvfOvirtWriter.writeGeneralData: ClusterName, then the users, before the OS section
    children = list(content)
    assert children.index(users) == [c.tag for c in children].index("ClusterName") + 1
    first = users.find("User")
    assert first.findtext("UserDomain") == "dr_user@internal"
    assert [r.text for r in first.findall("UserRoles/RoleName")] == ["DrOperator", "UserRole"]
    disk = root.find("Section/Disk")
    assert disk.get(f"{{{OVF_NS}}}diskId") == "22222222-2222-2222-2222-222222222222"
    assert disk.get(f"{{{OVF_NS}}}lun_id") == "36001405a1b2c3d4e5f60718293a4b5c6"
    conn = disk.find("Connection")
    assert conn.get(f"{{{OVF_NS}}}connection") == "192.0.2.10"
    assert conn.get(f"{{{OVF_NS}}}iqn") == "iqn.2024-01.lab:san1"
    assert conn.get(f"{{{XSI_NS}}}storage_type") == "ISCSI"
    assert root.find("References/File") is None  # a LUN has no image file


def test_without_users_and_luns_no_section() -> None:
    bare = {k: v for k, v in VM.items() if k not in ("luns", "users")}
    xml = build_ovf(bare)
    assert "UserDomainsSection_Type" not in xml and "lun_id" not in xml
    assert parse_ovf(xml) == bare
