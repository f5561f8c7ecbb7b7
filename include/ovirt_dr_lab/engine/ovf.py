"""OVF descriptors of VMs and templates, in the shape the oVirt engine writes into OVF_STORE.

The secondary engine registers VMs from what it reads in the replica's OVF_STORE, so the emulator must
write (and read back) the same structure as the engine's ``OvfVmWriter`` / ``OvfTemplateWriter``:
an ``ovf:Envelope`` (namespace ``http://schemas.dmtf.org/ovf/envelope/1/``) with

- ``References/File ovf:href="<image>/<volume>" ovf:id=<volume> ovf:size=<bytes>``,
- ``Section xsi:type="ovf:DiskSection_Type"`` with ``Disk ovf:diskId=<volume> ovf:fileRef="<image>/<volume>"``
  and the disk's ``volume-format``, ``disk-interface``, ``boot``, ``disk-alias``,
- ``Content xsi:type="ovf:VirtualSystem_Type"`` with ``Name``, ``ClusterName``, ``AutoStartup`` (HA),
  ``Priority``, ``TemplateId``, an ``OperatingSystemSection_Type`` whose ``ovf:id`` is the entity id (the
  engine takes an OVF for a template when ``TemplateId`` equals that id), a
  ``VirtualHardwareSection_Type`` with rasd Items (CPU ResourceType 3, memory 4 in MB, NIC 10 with
  ``Connection`` = network and ``OtherResourceType`` = vNIC profile name, disk 17 with ``StorageId``),
  and the affinity group / label sections. Element and attribute names follow ``OvfWriter`` /
  ``OvfOvirtWriter`` of ovirt-engine; device details the DR flow does not use are left out.
- users with permissions on the VM (``OvfOvirtWriter.writeUserData``), right after ``ClusterName``:
  ``Section xsi:type="ovf:UserDomainsSection_Type"`` with one ``User`` per user:
  ``<UserDomain>name@domain</UserDomain><UserRoles><RoleName>..</RoleName></UserRoles>``; at
  registration the engine gives each user that exists (in the mapped aaa domain) its (mapped) roles.
- direct LUN disks (``OvfOvirtWriter.writeLunDisk``): a ``Disk`` in the DiskSection with
  ``ovf:diskId`` = the disk id, ``ovf:lun_id`` and one ``Connection`` child per storage connection
  (``ovf:connection`` address, ``ovf:iqn``, ``ovf:port``, ``xsi:storage_type`` ISCSI|FCP,
  ``xsi:portal``); no ``File`` reference (there is no image).

Entity dict (the API layer's view; :func:`parse_ovf` returns the same shape):
``{"id", "name", "kind": "vm"|"template", "cluster", "memory" (bytes, whole MiB), "cpus", "description",
"ha": bool, "priority": int, "nics": [{"name", "network", "vnic_profile", "mac"}], "disks": [{"disk_id",
"image_id", "volume_id", "size" (bytes), "format": "cow"|"raw", "storage_domain_id", "alias", "bootable",
"interface"}], optional "luns": [{"disk_id", "alias", "description", "bootable", "interface", "shareable",
"lun": {"id", "storage_type": "iscsi"|"fcp", "address", "port", "target", "portal"}}],
optional "users": [{"user_domain": "name@domain", "roles": [names]}], "affinity_groups": [names],
"affinity_labels": [names], "template_id": str | None}``.

In oVirt a disk's id is its image (group) id, so ``disk_id`` normally equals ``image_id``; if a caller
keeps them different, the disk id is written in an extra ``ovf:lab-disk-id`` attribute so it survives
the round trip (the engine ignores unknown attributes).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1/"
RASD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
OVF_VERSION = "4.4.0.0"
BLANK_UUID = "00000000-0000-0000-0000-000000000000"
MIB = 1024 * 1024
GIB = 1024 * MIB

_NS = {"ovf": OVF_NS, "rasd": RASD_NS, "vssd": VSSD_NS, "xsi": XSI_NS}
for _prefix, _uri in _NS.items():
    ET.register_namespace(_prefix, _uri)

# REST API disk interface enum <-> the engine's DiskInterface names in the OVF
_INTERFACES = {
    "virtio_scsi": "VirtIO_SCSI",
    "virtio": "VirtIO",
    "ide": "IDE",
    "sata": "SATA",
    "spapr_vscsi": "SPAPR_VSCSI",
}
_INTERFACES_BACK = {v: k for k, v in _INTERFACES.items()}
# OvfWriter.getVolumeImageFormat
_FORMAT_URI = {
    "RAW": "http://www.vmware.com/specifications/vmdk.html#sparse",
    "COW": "http://www.gnome.org/~markmc/qcow-image-format.html",
}


class OvfError(ValueError):
    """The XML is not an engine OVF this module can read."""


def _o(name: str) -> str:
    return f"{{{OVF_NS}}}{name}"


def _r(name: str) -> str:
    return f"{{{RASD_NS}}}{name}"


def _xsi_type(elem: ET.Element) -> str:
    return elem.get(f"{{{XSI_NS}}}type", "")


def _bool(value: object) -> str:
    return "true" if value else "false"


def _sub(parent: ET.Element, tag: str, text: object = None, **attrs: str) -> ET.Element:
    elem = ET.SubElement(parent, tag, attrs)
    if text is not None:
        elem.text = str(text)
    return elem


def _date(when: datetime | None = None) -> str:
    # the engine's OVF date format (OvfParser.formatDateTime): "yyyy/MM/dd HH:mm:ss"
    return (when or datetime.now(UTC)).strftime("%Y/%m/%d %H:%M:%S")


def build_ovf(entity: dict) -> str:
    """The OVF XML of a VM or template, as the engine writes it into OVF_STORE."""
    kind = entity.get("kind", "vm")
    if kind not in ("vm", "template"):
        raise OvfError(f"kind must be vm or template, not {kind!r}")
    entity_id = entity["id"]
    disks = entity.get("disks") or []
    nics = entity.get("nics") or []
    memory_mb = int(entity.get("memory") or 0) // MIB
    cpus = int(entity.get("cpus") or 1)
    now = _date()

    env = ET.Element(_o("Envelope"), {_o("version"): OVF_VERSION})
    refs = _sub(env, "References")
    for disk in disks:
        href = f"{disk['image_id']}/{disk['volume_id']}"
        _sub(
            refs,
            "File",
            **{
                _o("href"): href,
                _o("id"): disk["volume_id"],
                # the engine writes the allocated size here; the lab writes the virtual size in bytes
                # so that a disk size that is not whole GiB survives the round trip
                _o("size"): str(int(disk.get("size") or 0)),
                _o("description"): disk.get("description") or "",
                _o("disk_storage_type"): "IMAGE",
                _o("cinder_volume_type"): "",
            },
        )
    netsec = _sub(env, "NetworkSection")
    _sub(netsec, "Info", "List of networks")
    for network in sorted({nic.get("network") or "" for nic in nics} - {""}):
        _sub(netsec, "Network", **{_o("name"): network})

    disksec = _sub(env, "Section", **{f"{{{XSI_NS}}}type": "ovf:DiskSection_Type"})
    _sub(disksec, "Info", "List of Virtual Disks")
    snapshot_id = entity.get("active_snapshot_id") or BLANK_UUID
    for disk in disks:
        size = int(disk.get("size") or 0)
        fmt = (disk.get("format") or "cow").upper()
        attrs = {
            _o("diskId"): disk["volume_id"],
            _o("size"): str(size // GIB),  # whole GiB, rounded down, as OvfOvirtWriter.bytesToGigabyte
            _o("actual_size"): str(size // GIB),
            _o("vm_snapshot_id"): snapshot_id,
            _o("parentRef"): "",
            _o("fileRef"): f"{disk['image_id']}/{disk['volume_id']}",
            _o("format"): _FORMAT_URI.get(fmt, ""),
            _o("volume-format"): fmt,
            _o("volume-type"): "Sparse",
            _o("disk-interface"): _INTERFACES.get(
                disk.get("interface") or "virtio_scsi", disk.get("interface")
            ),
            _o("read-only"): "false",
            _o("shareable"): "false",
            _o("boot"): _bool(disk.get("bootable")),
            _o("pass-discard"): "false",
            _o("disk-alias"): disk.get("alias") or "",
            _o("disk-description"): disk.get("description") or "",
            _o("wipe-after-delete"): "false",
        }
        disk_id = disk.get("disk_id") or disk["image_id"]
        if disk_id != disk["image_id"]:
            attrs[_o("lab-disk-id")] = disk_id
        _sub(disksec, "Disk", **attrs)
    for lun_disk in entity.get("luns") or []:
        lun = lun_disk["lun"]
        elem = _sub(
            disksec,
            "Disk",
            **{
                _o("diskId"): lun_disk["disk_id"],
                _o("disk-alias"): lun_disk.get("alias") or "",
                _o("disk-description"): lun_disk.get("description") or "",
                _o("pass-discard"): "false",
                _o("fileRef"): lun["id"],
                _o("shareable"): _bool(lun_disk.get("shareable")),
                _o("boot"): _bool(lun_disk.get("bootable")),
                _o("disk-interface"): _INTERFACES.get(
                    lun_disk.get("interface") or "virtio_scsi", lun_disk.get("interface")
                ),
                _o("read-only"): "false",
                _o("scsi_reservation"): "false",
                _o("plugged"): "true",
                _o("lun_id"): lun["id"],
            },
        )
        _sub(
            elem,
            "Connection",
            **{
                _o("connection"): lun.get("address") or "",
                _o("iqn"): lun.get("target") or "",
                _o("port"): str(lun.get("port") or ""),
                f"{{{XSI_NS}}}storage_type": (lun.get("storage_type") or "iscsi").upper(),
                f"{{{XSI_NS}}}portal": str(lun.get("portal") or ""),
            },
        )

    content = _sub(env, "Content", **{_o("id"): "out", f"{{{XSI_NS}}}type": "ovf:VirtualSystem_Type"})
    _sub(content, "Name", entity.get("name") or "")
    _sub(content, "Description", entity.get("description") or "")
    _sub(content, "Comment", "")
    _sub(content, "CreationDate", now)
    _sub(content, "ExportDate", now)
    if kind == "template":
        _sub(content, "TemplateId", entity_id)
        _sub(content, "TemplateName", entity.get("name") or "")
        _sub(content, "TemplateType", "TEMPLATE")
    else:
        template_id = entity.get("template_id") or BLANK_UUID
        _sub(content, "TemplateId", template_id)
        _sub(
            content,
            "TemplateName",
            entity.get("template_name") or ("Blank" if template_id == BLANK_UUID else ""),
        )
    _sub(content, "DeleteProtected", "false")
    _sub(content, "TimeZone", "")
    _sub(content, "default_boot_sequence", 0)
    _sub(content, "Generation", 1)
    _sub(content, "ClusterCompatibilityVersion", entity.get("compatibility_version") or "4.7")
    _sub(content, "VmType", "1")
    _sub(content, "MinAllocatedMem", memory_mb)
    _sub(content, "IsStateless", "false")
    _sub(content, "IsRunAndPause", "false")
    _sub(content, "AutoStartup", _bool(entity.get("ha")))
    _sub(content, "Priority", int(entity.get("priority") or 0))
    _sub(content, "MaxMemorySizeMb", memory_mb * 4)
    _sub(content, "ClusterName", entity.get("cluster") or "")
    users = entity.get("users") or []
    if users:
        usec = _sub(content, "Section", **{f"{{{XSI_NS}}}type": "ovf:UserDomainsSection_Type"})
        for user in users:
            elem = _sub(usec, "User")
            _sub(elem, "UserDomain", user["user_domain"])
            roles = _sub(elem, "UserRoles")
            for role in user.get("roles") or []:
                _sub(roles, "RoleName", role)

    ossec = _sub(
        content,
        "Section",
        **{
            _o("id"): entity_id,
            _o("required"): "false",
            f"{{{XSI_NS}}}type": "ovf:OperatingSystemSection_Type",
        },
    )
    _sub(ossec, "Info", "Guest Operating System")
    _sub(ossec, "Description", entity.get("os") or "other")

    hw = _sub(content, "Section", **{f"{{{XSI_NS}}}type": "ovf:VirtualHardwareSection_Type"})
    _sub(hw, "Info", f"{cpus} CPU, {memory_mb} Memory")
    system = _sub(hw, "System")
    _sub(system, f"{{{VSSD_NS}}}VirtualSystemType", f"ENGINE {OVF_VERSION}")
    cpu = _sub(hw, "Item")
    _sub(cpu, _r("Caption"), f"{cpus} virtual cpu")
    _sub(cpu, _r("Description"), "Number of virtual CPU")
    _sub(cpu, _r("InstanceId"), 1)
    _sub(cpu, _r("ResourceType"), 3)
    _sub(cpu, _r("num_of_sockets"), cpus)
    _sub(cpu, _r("cpu_per_socket"), 1)
    _sub(cpu, _r("threads_per_cpu"), 1)
    _sub(cpu, _r("max_num_of_vcpus"), max(16, cpus))
    _sub(cpu, _r("VirtualQuantity"), cpus)
    mem = _sub(hw, "Item")
    _sub(mem, _r("Caption"), f"{memory_mb} MB of memory")
    _sub(mem, _r("Description"), "Memory Size")
    _sub(mem, _r("InstanceId"), 2)
    _sub(mem, _r("ResourceType"), 4)
    _sub(mem, _r("AllocationUnits"), "MegaBytes")
    _sub(mem, _r("VirtualQuantity"), memory_mb)
    for index, disk in enumerate(disks, start=1):
        item = _sub(hw, "Item")
        _sub(item, _r("Caption"), disk.get("alias") or f"Drive {index}")
        _sub(item, _r("InstanceId"), disk["volume_id"])
        _sub(item, _r("ResourceType"), 17)
        _sub(item, _r("HostResource"), f"{disk['image_id']}/{disk['volume_id']}")
        _sub(item, _r("Parent"), BLANK_UUID)
        _sub(item, _r("Template"), BLANK_UUID)
        _sub(item, _r("ApplicationList"), "")
        _sub(item, _r("StorageId"), disk.get("storage_domain_id") or "")
        _sub(item, _r("StoragePoolId"), entity.get("data_center_id") or BLANK_UUID)
        _sub(item, _r("CreationDate"), now)
        _sub(item, _r("LastModified"), now)
        _sub(item, _r("last_modified_date"), now)
        _sub(item, "Type", "disk")
        _sub(item, "Device", "disk")
        _sub(item, _r("Address"), "")
        _sub(item, "BootOrder", 1 if disk.get("bootable") else 0)
        _sub(item, "IsPlugged", "true")
        _sub(item, "IsReadOnly", "false")
        _sub(item, "Alias", "")
    for nic in nics:
        item = _sub(hw, "Item")
        network = nic.get("network") or ""
        _sub(item, _r("Caption"), f"Ethernet adapter on {network}")
        _sub(
            item,
            _r("InstanceId"),
            nic.get("id") or str(uuid.uuid5(uuid.UUID(entity_id), nic.get("name") or "")),
        )
        _sub(item, _r("ResourceType"), 10)
        _sub(item, _r("OtherResourceType"), nic.get("vnic_profile") or "")  # the vNIC profile name
        _sub(item, _r("ResourceSubType"), 3)  # VmInterfaceType pv (virtio)
        _sub(item, _r("Connection"), network)
        _sub(item, _r("Linked"), "true")
        _sub(item, _r("Name"), nic.get("name") or "")
        _sub(item, _r("ElementName"), nic.get("name") or "")
        _sub(item, _r("MACAddress"), nic.get("mac") or "")
        _sub(item, _r("speed"), 1000)
        _sub(item, "Type", "interface")
        _sub(item, "Device", "bridge")
        _sub(item, _r("Address"), "")
        _sub(item, "BootOrder", 0)
        _sub(item, "IsPlugged", "true")
        _sub(item, "IsReadOnly", "false")
        _sub(item, "Alias", "")
    usb = _sub(hw, "Item")
    _sub(usb, _r("Caption"), "USB Controller")
    _sub(usb, _r("InstanceId"), 3)
    _sub(usb, _r("ResourceType"), 23)
    _sub(usb, _r("UsbPolicy"), "DISABLED")

    groups = entity.get("affinity_groups") or []
    if groups:
        sec = _sub(content, "Section", **{f"{{{XSI_NS}}}type": "ovf:AffinityGroupsSection_Type"})
        for name in groups:
            _sub(sec, "AffinityGroup", **{_o("name"): name})
    labels = entity.get("affinity_labels") or []
    if labels:
        sec = _sub(content, "Section", **{f"{{{XSI_NS}}}type": "ovf:AffinityLabelsSection_Type"})
        for name in labels:
            _sub(sec, "AffinityLabel", **{_o("name"): name})

    ET.indent(env)
    body = ET.tostring(env, encoding="unicode", xml_declaration=False)
    return "<?xml version='1.0' encoding='UTF-8'?>\n" + body + "\n"


def _text(parent: ET.Element, tag: str, default: str = "") -> str:
    elem = parent.find(tag)
    return elem.text or default if elem is not None else default


def parse_ovf(xml: str) -> dict:
    """An engine OVF back into the entity dict :func:`build_ovf` takes (see the module docstring)."""
    try:
        env = ET.fromstring(xml.encode("utf-8") if isinstance(xml, str) else xml)
    except ET.ParseError as exc:
        raise OvfError(f"not XML: {exc}") from exc
    if env.tag != _o("Envelope"):
        raise OvfError(f"root is {env.tag}, not ovf:Envelope")
    content = env.find("Content")
    if content is None:
        raise OvfError("OVF has no Content section")

    sizes = {}
    for file_elem in env.iterfind("References/File"):
        sizes[file_elem.get(_o("href"))] = int(file_elem.get(_o("size")) or 0)

    sections = {_xsi_type(s): s for s in content.iterfind("Section")}
    ossec = sections.get("ovf:OperatingSystemSection_Type")
    hw = sections.get("ovf:VirtualHardwareSection_Type")
    template_id = _text(content, "TemplateId") or None
    entity_id = ossec.get(_o("id")) if ossec is not None else None
    # the engine's rule (OvfParser.isTemplate): a template's TemplateId is its own id, the OS section's
    is_template = template_id is not None and template_id == entity_id
    kind = "template" if is_template or content.find("TemplateType") is not None else "vm"
    if kind == "template":
        entity_id = entity_id or template_id
        template_id = None
    elif template_id == BLANK_UUID:
        template_id = None
    if not entity_id:
        raise OvfError("OVF names no entity id (OperatingSystemSection ovf:id)")

    cpus, memory_mb = 1, 0
    disk_items: dict[str, ET.Element] = {}
    nics = []
    for item in hw.iterfind("Item") if hw is not None else []:
        rtype = _text(item, _r("ResourceType"))
        if rtype == "3":
            cpus = int(_text(item, _r("VirtualQuantity"), "1"))
        elif rtype == "4":
            memory_mb = int(_text(item, _r("VirtualQuantity"), "0"))
        elif rtype == "17":
            disk_items[_text(item, _r("HostResource"))] = item
        elif rtype == "10":
            nics.append(
                {
                    "name": _text(item, _r("Name")),
                    "network": _text(item, _r("Connection")),
                    "vnic_profile": _text(item, _r("OtherResourceType")),
                    "mac": _text(item, _r("MACAddress")),
                }
            )

    disks = []
    luns = []
    disksec = next((s for s in env.iterfind("Section") if _xsi_type(s) == "ovf:DiskSection_Type"), None)
    for disk in disksec.iterfind("Disk") if disksec is not None else []:
        iface = disk.get(_o("disk-interface")) or ""
        if disk.get(_o("lun_id")):
            conn = disk.find("Connection")
            port = conn.get(_o("port")) if conn is not None else None
            luns.append(
                {
                    "disk_id": disk.get(_o("diskId")),
                    "alias": disk.get(_o("disk-alias")) or "",
                    "description": disk.get(_o("disk-description")) or "",
                    "bootable": disk.get(_o("boot")) == "true",
                    "interface": _INTERFACES_BACK.get(iface, iface),
                    "shareable": disk.get(_o("shareable")) == "true",
                    "lun": {
                        "id": disk.get(_o("lun_id")),
                        "storage_type": (
                            conn.get(f"{{{XSI_NS}}}storage_type") if conn is not None else "ISCSI"
                        ).lower(),
                        "address": (conn.get(_o("connection")) if conn is not None else None) or None,
                        "port": int(port) if port else None,
                        "target": (conn.get(_o("iqn")) if conn is not None else None) or None,
                        "portal": (conn.get(f"{{{XSI_NS}}}portal") if conn is not None else None) or None,
                    },
                }
            )
            continue
        file_ref = disk.get(_o("fileRef")) or ""
        image_id, _, volume_id = file_ref.partition("/")
        item = disk_items.get(file_ref)
        disks.append(
            {
                "disk_id": disk.get(_o("lab-disk-id")) or image_id,
                "image_id": image_id,
                "volume_id": volume_id or disk.get(_o("diskId")),
                "size": sizes.get(file_ref, 0),
                "format": (disk.get(_o("volume-format")) or "COW").lower(),
                "storage_domain_id": _text(item, _r("StorageId")) if item is not None else "",
                "alias": disk.get(_o("disk-alias")) or "",
                "bootable": disk.get(_o("boot")) == "true",
                "interface": _INTERFACES_BACK.get(iface, iface),
            }
        )
        if disk.get(_o("disk-description")):
            disks[-1]["description"] = disk.get(_o("disk-description"))

    def names(section_type: str, tag: str) -> list[str]:
        sec = sections.get(section_type)
        return [e.get(_o("name")) for e in sec.iterfind(tag)] if sec is not None else []

    users = []
    usec = sections.get("ovf:UserDomainsSection_Type")
    for user in usec.iterfind("User") if usec is not None else []:
        user_domain = _text(user, "UserDomain")
        if user_domain:
            users.append(
                {
                    "user_domain": user_domain,
                    "roles": [r.text or "" for r in user.iterfind("UserRoles/RoleName") if r.text],
                }
            )

    return {
        "id": entity_id,
        "name": _text(content, "Name"),
        "kind": kind,
        "cluster": _text(content, "ClusterName"),
        "memory": memory_mb * MIB,
        "cpus": cpus,
        "description": _text(content, "Description"),
        "ha": _text(content, "AutoStartup") == "true",
        "priority": int(_text(content, "Priority", "0")),
        "nics": nics,
        "disks": disks,
        "affinity_groups": names("ovf:AffinityGroupsSection_Type", "AffinityGroup"),
        "affinity_labels": names("ovf:AffinityLabelsSection_Type", "AffinityLabel"),
        "template_id": template_id,
        # optional keys, present only when the OVF has them (an entity without them round-trips as is)
        **({"luns": luns} if luns else {}),
        **({"users": users} if users else {}),
    }
