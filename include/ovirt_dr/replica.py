"""Reading and fixing a storage domain's files on a Gluster node, over SSH: the replica-side logic.

Pure helpers (meta parsing, OVF disk references, chain walking) plus ``DomainFiles``, which runs a few
batched node-side readers (``ovirt_dr.node_readers``) through a node's ``GlusterNodeHook``, so a domain of
hundreds of volumes costs a handful of SSH round trips, not one per file. Used by the replica cleanup and
audit operators, and by the failover.

Everything read from storage is hostile: a replica holds whatever geo-replication copied, and a master
can be compromised. So nothing read from storage ever reaches a shell or a command line (the readers'
discipline, see ``ovirt_dr.node_readers``); ids are checked to be UUIDs (``\\Z``, not ``$``, which lets a
trailing newline through) before they are used in a path; only regular files count (a symlink on the
replica is reported, never followed); ``qemu-img check`` never opens a backing file named by a volume
header (``json:`` spec with ``"backing": null``) and refuses qcow2 images with an external data file.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ovirt_dr import node_readers as readers
from ovirt_dr import ovf
from ovirt_dr.gluster.names import validate_remote_path
from ovirt_dr.ids import NULL_UUID, is_uuid

if TYPE_CHECKING:
    from ovirt_dr.hooks.node import GlusterNodeHook

#: The files of one volume in an image directory: ``<uuid>``, ``<uuid>.meta``, ``<uuid>.lease``.
VOLUME_FILE_RE = re.compile(
    r"\A([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(\.meta|\.lease)?\Z"
)
#: vdsm's metadata is a few hundred bytes; anything this large is not a ``.meta``.
MAX_META_BYTES = 64 * 1024
#: One OVF is tens of KiB; the whole store is bounded by its volume (oVirt: 128 MiB at most).
MAX_OVF_BYTES = 16 * 1024 * 1024
MAX_STORE_BYTES = 256 * 1024 * 1024
#: Names the engine writes into an OVF_STORE tar besides ``<uuid>.ovf``.
OVF_STORE_EXTRA_MEMBERS = frozenset({"info.json", "metadata.json"})


class ReplicaError(RuntimeError):
    """The replica is not what the OVF_STORE promises: names the VM, disk and volume."""


def require_uuid(value: Any, what: str) -> str:
    """``value`` if it is a UUID, else ``ReplicaError`` naming ``what`` (a shown, never trusted, value)."""
    if not is_uuid(value):
        raise ReplicaError(f"{what} {show(value)} is not a UUID")
    return value


def show(value: Any, limit: int = 80) -> str:
    """A value read from storage, fit for a message or a log line: repr (no raw newlines), truncated."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_meta(text: str) -> dict[str, str]:
    """vdsm volume ``.meta``: ``KEY=VALUE`` lines up to ``EOF``."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() == "EOF":
            break
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v
    return out


def set_meta_key(text: str, key: str, value: str) -> str:
    """Change one key of a ``.meta`` text, keeping every other byte of it (vdsm reads it as it is)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"{key}="):
            lines[i] = f"{key}={value}"
            break
    else:
        raise ReplicaError(f".meta has no {key} line")
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def ovf_disks(ovf_xml: str) -> tuple[str, str, list[tuple[str, str]]]:
    """``(entity id, name, [(image id, volume id)])`` from one OVF: the volumes the secondary will open.

    Raises ``ReplicaError`` for a document that is not XML. Only ``<image uuid>/<volume uuid>`` hrefs
    count (``ovirt_dr.ovf``, the failover reads the same).
    """
    try:
        root = ovf.parse_xml(ovf_xml)
    except ovf.OvfError as e:
        raise ReplicaError(f"OVF is {e}") from None
    entity_id, name = "", ""
    for el in root.iter():
        tag = ovf.local(el.tag)
        if tag == "Name" and not name and el.text:
            name = el.text.strip()
        if tag in ("VirtualSystem", "Content") and not entity_id:
            entity_id = el.get(f"{{{ovf.OVF_NS}}}id") or el.get("id") or ""
    return entity_id, name, ovf.disk_refs(root)


def walk_chain(metas: dict[str, dict[str, str]], leaf: str) -> list[str]:
    """Volume ids base..leaf following PUUID, from the ``.meta`` of one image dir; raises on a gap or loop."""
    chain = [leaf]
    seen = {leaf}
    current = leaf
    while True:
        meta = metas.get(current)
        if meta is None:
            raise ReplicaError(f"volume {current} has no .meta")
        parent = meta.get("PUUID", NULL_UUID)
        if parent in ("", NULL_UUID):
            break
        if not is_uuid(parent):
            raise ReplicaError(f"volume {current} names parent {show(parent)}, which is not a volume id")
        if parent in seen:
            raise ReplicaError(f"volume chain loops at {parent}")
        if parent not in metas:
            raise ReplicaError(f"volume {current} names parent {parent}, which is missing")
        chain.append(parent)
        seen.add(parent)
        current = parent
    return list(reversed(chain))


def _b64(data: Any, what: str) -> bytes:
    if not isinstance(data, str):
        raise ReplicaError(f"{what}: no content")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ReplicaError(f"{what}: content is not base64") from None


@dataclass
class ImageFiles:
    """What one image directory holds: ``.meta`` per volume and the sizes of its regular volume files.

    ``strange`` lists (shown) entries that are not regular files named like a volume's file, and
    ``.meta`` files that could not be read: the audit reports them, the cleanup never touches them.
    """

    metas: dict[str, dict[str, str]]
    raw_metas: dict[str, str]
    sizes: dict[str, int]
    strange: list[str] = field(default_factory=list)
    missing: bool = False


@dataclass
class OvfStore:
    """An OVF_STORE's OVFs (``entity id -> XML``) and what else its tar holds (shown names)."""

    ovfs: dict[str, str]
    unexpected: list[str]


class DomainFiles:
    """A storage domain directory (``<mount>/<sd_id>``) on a Gluster node, read through its node access."""

    def __init__(self, node: GlusterNodeHook, domain_dir: str) -> None:
        self.node = node
        self.domain_dir = validate_remote_path(domain_dir.rstrip("/"), "storage domain directory")
        require_uuid(self.domain_dir.rsplit("/", 1)[-1], "storage domain id")

    def path(self, image_id: str, name: str) -> str:
        """``<domain>/images/<image>/<name>``, for a UUID image and a volume file name only."""
        require_uuid(image_id, "image id")
        if not VOLUME_FILE_RE.match(name):
            raise ReplicaError(f"{show(name)} is not the name of a volume file")
        return f"{self.domain_dir}/images/{image_id}/{name}"

    def images(self, image_ids: Iterable[str]) -> dict[str, ImageFiles]:
        ids = sorted(set(image_ids))
        for i in ids:
            require_uuid(i, "image id")
        out = {i: ImageFiles({}, {}, {}) for i in ids}
        if not ids:
            return out
        listing = self.node.python_json(
            readers.LIST_IMAGES, self.domain_dir, str(MAX_META_BYTES), *ids, what="image listing"
        )
        if not isinstance(listing, dict):
            raise ReplicaError("image listing: not a mapping")
        for image in ids:
            entries = listing.get(image)
            files = out[image]
            if entries is None:
                files.missing = True
                continue
            if not isinstance(entries, dict):
                raise ReplicaError(f"image listing of {image}: not a mapping")
            for name, entry in sorted(entries.items()):
                m = VOLUME_FILE_RE.match(name) if isinstance(name, str) else None
                if not m or not isinstance(entry, dict) or entry.get("type") != "file":
                    kind = entry.get("type") if isinstance(entry, dict) else "?"
                    files.strange.append(f"{show(name)} ({kind})")
                    continue
                size = entry.get("size")
                if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                    files.strange.append(f"{show(name)} (size {show(size)})")
                    continue
                files.sizes[name] = size
                if m.group(2) == ".meta":
                    if "content" not in entry:
                        files.strange.append(f"{name} (unreadable .meta, {size} bytes)")
                        continue
                    try:
                        text = _b64(entry["content"], name).decode("utf-8")
                    except (ReplicaError, UnicodeDecodeError):
                        files.strange.append(f"{name} (.meta not UTF-8 text)")
                        continue
                    files.raw_metas[m.group(1)] = text
                    files.metas[m.group(1)] = parse_meta(text)
        return out

    def newest_ovf_store(self) -> tuple[str, str, dict[str, Any]]:
        """``(image id, volume id, description)`` of the newest ``Updated`` OVF_STORE on this domain."""
        found = self.node.python_json(
            readers.FIND_OVF_STORES, self.domain_dir, str(MAX_META_BYTES), what="OVF_STORE search"
        )
        best: tuple[str, str, dict[str, Any]] | None = None
        for entry in found if isinstance(found, list) else []:
            if (
                not isinstance(entry, dict)
                or not is_uuid(entry.get("image"))
                or not is_uuid(entry.get("volume"))
            ):
                continue
            try:
                text = _b64(entry.get("content"), "OVF_STORE .meta").decode("utf-8")
                desc = json.loads(parse_meta(text).get("DESCRIPTION", ""))
            except (ReplicaError, ValueError):
                continue
            if (
                not isinstance(desc, dict)
                or desc.get("Disk Description") != "OVF_STORE"
                or desc.get("Updated") is not True
            ):
                continue
            cand = (entry["image"], entry["volume"], desc)
            if best is None or str(desc.get("Last Updated", "")) > str(best[2].get("Last Updated", "")):
                best = cand
        if best is None:
            raise ReplicaError(f"no updated OVF_STORE under {self.domain_dir}")
        return best

    def ovf_store(self, image_id: str, volume_id: str) -> OvfStore:
        """Every ``<uuid>.ovf`` of the OVF_STORE's tar (at offset 0 of the volume), and any other member.

        One SSH round trip for the whole store, however many VMs it describes. The tar is read by Python's
        ``tarfile`` on the node: no member name is ever an argument of a program.
        """
        path = self.path(
            require_uuid(image_id, "OVF_STORE image id"), require_uuid(volume_id, "OVF_STORE volume id")
        )
        res = self.node.python_json(
            readers.READ_OVF_STORE, path, str(MAX_OVF_BYTES), str(MAX_STORE_BYTES), what="OVF_STORE"
        )
        if not isinstance(res, dict):
            raise ReplicaError("OVF_STORE: not a mapping")
        if res.get("error"):
            raise ReplicaError(
                f"OVF_STORE {image_id}/{volume_id} is not a readable tar: {show(res['error'], 300)}"
            )
        ovfs: dict[str, str] = {}
        for entity, content in (res.get("ovfs") or {}).items():
            if not is_uuid(entity):
                continue
            try:
                ovfs[entity] = _b64(content, f"{entity}.ovf").decode("utf-8").strip()
            except (ReplicaError, UnicodeDecodeError):
                raise ReplicaError(
                    f"OVF_STORE {image_id}/{volume_id}: {entity}.ovf is not UTF-8 text"
                ) from None
        unexpected = [show(n) for n in res.get("other") or [] if n not in OVF_STORE_EXTRA_MEMBERS]
        return OvfStore(ovfs=ovfs, unexpected=unexpected)

    def qemu_check(self, paths: list[str]) -> dict[str, tuple[int, str]]:
        """``qemu-img check`` of each qcow2 volume: rc 0 clean, 3 leaked clusters only (harmless).

        Backing files named in a header are never opened, a non-regular file is not checked (rc -1).
        """
        if not paths:
            return {}
        for p in paths:
            validate_remote_path(p, "volume path")
        res = self.node.python_json(readers.QEMU_CHECK, *paths, what="qemu-img check")
        out: dict[str, tuple[int, str]] = {}
        for p in paths:
            entry = res.get(p) if isinstance(res, dict) else None
            if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], int):
                out[p] = (-1, "no result")
            else:
                out[p] = (entry[0], str(entry[1]).strip())
        return out

    def sha256(self, paths: list[str]) -> dict[str, str]:
        return self.node.sha256sum(paths) if paths else {}

    def sampled_digest(
        self, paths: list[str], block: int, count: int, seed: str
    ) -> dict[str, dict[str, Any]]:
        if not paths:
            return {}
        for p in paths:
            validate_remote_path(p, "volume path")
        res = self.node.python_json(
            readers.SAMPLED_DIGEST, str(int(block)), str(int(count)), str(seed), *paths, what="sampled digest"
        )
        return res if isinstance(res, dict) else {}

    def remove(self, paths: list[str]) -> None:
        if paths:
            self.node.remove_files(paths)
