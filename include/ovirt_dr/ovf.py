"""Reading OVF descriptors from an OVF_STORE: the XML, its sections, and the disk volumes it names.

Pure and shared: the replica audit (``ovirt_dr.replica.ovf_disks``: which volumes the secondary will open)
and the failover plan (``ovirt_dr.failover.parse_entity_ovf``: the VM or template to register) read the
same documents with the same rules. An OVF comes from storage, so it is untrusted: bounded in size,
parsed by ElementTree (no external entity is resolved; expat >= 2.4.1 caps entity expansion), and only
``<image uuid>/<volume uuid>`` hrefs count as disks.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ovirt_dr.ids import is_uuid

OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1/"
RASD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"


class OvfError(ValueError):
    """A document that is not an OVF the product can read (too large, not XML)."""


def local(tag: str) -> str:
    """An element's tag without its namespace."""
    return tag.rsplit("}", 1)[-1]


def parse_xml(ovf_xml: str, max_bytes: int | None = None) -> ET.Element:
    """The OVF's root element; ``OvfError`` for a document larger than ``max_bytes`` or not XML."""
    if max_bytes is not None and len(ovf_xml) > max_bytes:
        raise OvfError(f"OVF of {len(ovf_xml)} bytes is larger than {max_bytes}")
    try:
        return ET.fromstring(ovf_xml)
    except ET.ParseError as e:
        raise OvfError(f"not XML: {e}") from None


def child_text(parent: ET.Element, name: str) -> str | None:
    """The stripped text of ``parent``'s first child named ``name`` (any namespace), or None."""
    for el in parent:
        if local(el.tag) == name:
            return (el.text or "").strip()
    return None


def disk_refs(root: ET.Element) -> list[tuple[str, str]]:
    """``(image id, volume id)`` of every ``File`` whose ``href`` is ``<image uuid>/<volume uuid>``."""
    refs: list[tuple[str, str]] = []
    for el in root.iter():
        if local(el.tag) == "File":
            href = el.get(f"{{{OVF_NS}}}href") or el.get("href") or ""
            parts = href.split("/")
            if len(parts) == 2 and is_uuid(parts[0]) and is_uuid(parts[1]):
                refs.append((parts[0], parts[1]))
    return refs


__all__ = ["OVF_NS", "RASD_NS", "XSI_NS", "OvfError", "child_text", "disk_refs", "local", "parse_xml"]
