"""Reading and fixing a storage domain's files on a Gluster node, over SSH: the replica-side logic.

Pure helpers (meta parsing, OVF disk references, chain walking) plus ``DomainFiles``, which runs a few
batched commands through a ``GlusterGeoRepHook`` so a domain of hundreds of volumes costs a handful of SSH
round trips, not one per file. Used by the replica cleanup and audit operators.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ovirt_dr.hooks.gluster import GlusterGeoRepHook

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NULL_UUID = "00000000-0000-0000-0000-000000000000"
OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1/"


class ReplicaError(RuntimeError):
    """The replica is not what the OVF_STORE promises: names the VM, disk and volume."""


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
    """``(entity id, name, [(image id, volume id)])`` from one OVF: the volumes the secondary will open."""
    root = ET.fromstring(ovf_xml)
    refs: list[tuple[str, str]] = []
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "File":
            href = el.get(f"{{{OVF_NS}}}href") or el.get("href") or ""
            parts = href.split("/")
            if len(parts) == 2 and UUID_RE.match(parts[0]) and UUID_RE.match(parts[1]):
                refs.append((parts[0], parts[1]))
    entity_id, name = "", ""
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "Name" and not name and el.text:
            name = el.text.strip()
        if tag in ("VirtualSystem", "Content") and not entity_id:
            entity_id = el.get(f"{{{OVF_NS}}}id") or el.get("id") or ""
    return entity_id, name, refs


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
        if parent in seen:
            raise ReplicaError(f"volume chain loops at {parent}")
        if parent not in metas:
            raise ReplicaError(f"volume {current} names parent {parent}, which is missing")
        chain.append(parent)
        seen.add(parent)
        current = parent
    return list(reversed(chain))


_LIST_METAS = r"""
cd "$1" || exit 3
shift
for img in "$@"; do
  for f in "images/$img"/*.meta; do
    [ -e "$f" ] || continue
    printf '### %s\n' "$f"; cat "$f"; printf '\n'
  done
  for f in "images/$img"/*; do
    [ -e "$f" ] || continue
    printf '+++ %s %s\n' "$f" "$(stat -c %s "$f")"
  done
done
"""

_FIND_OVF_STORES = r"""
cd "$1" || exit 3
grep -l 'OVF_STORE' images/*/*.meta 2>/dev/null | while read -r f; do
  printf '### %s\n' "$f"; cat "$f"; printf '\n'
done
exit 0
"""

_EXTRACT_OVFS = r"""
tar -tf "$1" | while read -r name; do
  case "$name" in *.ovf) printf '### %s\n' "$name"; tar -xOf "$1" "$name"; printf '\n';; esac
done
"""

_QEMU_CHECK = r"""
for v in "$@"; do
  out=$(qemu-img check --output=json -f qcow2 "$v" 2>&1); rc=$?
  printf '### %s %s\n%s\n' "$rc" "$v" "$out"
done
exit 0
"""

_SAMPLED_DIGEST = r"""
import hashlib, json, os, random, sys
block, count, seed = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
out = {}
for path in sys.argv[4:]:
    size = os.path.getsize(path)
    blocks = max(1, (size + block - 1) // block)
    rng = random.Random(seed + os.path.basename(path))
    picks = sorted(set([0, blocks - 1] + [rng.randrange(blocks) for _ in range(count)]))
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in picks:
            f.seek(b * block)
            h.update(f.read(block))
    out[path] = {"digest": h.hexdigest(), "bytes": min(size, len(picks) * block)}
print(json.dumps(out))
"""


@dataclass
class ImageFiles:
    """What one image directory holds: ``.meta`` per volume and file sizes by name."""

    metas: dict[str, dict[str, str]]
    raw_metas: dict[str, str]
    sizes: dict[str, int]


class DomainFiles:
    """A storage domain directory (``<mount>/<sd_id>``) on a Gluster node, read through the SSH hook."""

    def __init__(self, hook: GlusterGeoRepHook, domain_dir: str) -> None:
        self.hook = hook
        self.domain_dir = domain_dir.rstrip("/")

    def _sh(self, script: str, *args: str, timeout: float | None = None) -> str:
        return self.hook.run(["sh", "-c", script, "sh", *args], timeout=timeout).stdout

    def path(self, image_id: str, name: str) -> str:
        return f"{self.domain_dir}/images/{image_id}/{name}"

    def images(self, image_ids: Iterable[str]) -> dict[str, ImageFiles]:
        ids = sorted(set(image_ids))
        for i in ids:
            if not UUID_RE.match(i):
                raise ReplicaError(f"{i!r} is not an image id")
        out = {i: ImageFiles({}, {}, {}) for i in ids}
        if not ids:
            return out
        current: tuple[str, str] | None = None
        buf: list[str] = []

        def flush() -> None:
            if current:
                image, vol = current
                text = "\n".join(buf).rstrip("\n") + "\n"
                out[image].raw_metas[vol] = text
                out[image].metas[vol] = parse_meta(text)

        for line in self._sh(_LIST_METAS, self.domain_dir, *ids).splitlines():
            if line.startswith("### "):
                flush()
                _, image, name = line[4:].split("/")
                current, buf = (image, name.removesuffix(".meta")), []
            elif line.startswith("+++ "):
                flush()
                current = None
                path, size = line[4:].rsplit(" ", 1)
                _, image, name = path.split("/")
                out[image].sizes[name] = int(size)
            elif current is not None:
                buf.append(line)
        flush()
        return out

    def newest_ovf_store(self) -> tuple[str, str, dict[str, Any]]:
        """``(image id, volume id, description)`` of the newest ``Updated`` OVF_STORE on this domain."""
        best: tuple[str, str, dict[str, Any]] | None = None
        path = None
        for line in self._sh(_FIND_OVF_STORES, self.domain_dir).splitlines():
            if line.startswith("### "):
                path = line[4:]
            elif line.startswith("DESCRIPTION=") and path:
                try:
                    desc = json.loads(line.split("=", 1)[1])
                except ValueError:
                    continue
                if desc.get("Disk Description") != "OVF_STORE" or not desc.get("Updated"):
                    continue
                _, image, name = path.split("/")
                cand = (image, name.removesuffix(".meta"), desc)
                if best is None or str(desc.get("Last Updated", "")) > str(best[2].get("Last Updated", "")):
                    best = cand
        if best is None:
            raise ReplicaError(f"no updated OVF_STORE under {self.domain_dir}")
        return best

    def ovfs(self, image_id: str, volume_id: str) -> dict[str, str]:
        """Every ``<id>.ovf`` in the OVF_STORE's tar (the tar sits at offset 0 of the volume).

        One SSH round trip for the whole store, however many VMs it describes.
        """
        out: dict[str, str] = {}
        current: str | None = None
        for line in self._sh(_EXTRACT_OVFS, self.path(image_id, volume_id)).splitlines(keepends=True):
            if line.startswith("### ") and line.rstrip("\n").endswith(".ovf"):
                current = line[4:].rstrip("\n").removesuffix(".ovf")
                out[current] = ""
            elif current is not None:
                out[current] += line
        return {k: v.strip() for k, v in out.items()}

    def qemu_check(self, paths: list[str]) -> dict[str, tuple[int, str]]:
        """``qemu-img check`` of each qcow2 volume: rc 0 clean, 3 leaked clusters only (harmless)."""
        out: dict[str, tuple[int, str]] = {}
        if not paths:
            return out
        current = None
        for line in self._sh(_QEMU_CHECK, *paths).splitlines():
            if line.startswith("### "):
                rc, path = line[4:].split(" ", 1)
                current = path
                out[path] = (int(rc), "")
            elif current:
                out[current] = (out[current][0], (out[current][1] + "\n" + line).strip())
        return out

    def sha256(self, paths: list[str]) -> dict[str, str]:
        return self.hook.sha256sum(paths) if paths else {}

    def sampled_digest(
        self, paths: list[str], block: int, count: int, seed: str
    ) -> dict[str, dict[str, Any]]:
        if not paths:
            return {}
        res = self.hook.run(["python3", "-c", _SAMPLED_DIGEST, str(block), str(count), seed, *paths])
        return json.loads(res.stdout)

    def remove(self, paths: list[str]) -> None:
        if paths:
            self.hook.remove_files(paths)
