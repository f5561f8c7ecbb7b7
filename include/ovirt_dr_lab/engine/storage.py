"""Real file storage of the engine emulator: one oVirt file storage domain in vdsm's on-disk layout.

The DR product never talks to this module; it sees only what this module leaves on the Gluster volume.
So everything here is written the way vdsm writes it (``dom_md/metadata`` sealed with vdsm's SHA-1
checksum, ``images/<image>/<volume>{,.meta,.lease}``, qcow2 overlays whose backing file is the bare
parent uuid, OVF_STORE volumes holding a tar of ``<entity id>.ovf``), and every data operation runs the
real ``qemu-img`` / ``qemu-io``. A replica that geo-replication copied can then be read back by a second
emulator (import) exactly as a real engine would read it, and a broken copy shows up as a broken chain.

Layout::

    <root>/<sd_id>/dom_md/{metadata,ids,leases,inbox,outbox,xleases}
    <root>/<sd_id>/images/<image_id>/<volume_id>{,.meta,.lease}

Terms as in oVirt: an *image* (the REST API's disk id) is a directory holding a chain of *volumes*
(the REST API's ``image_id`` is a volume id); the chain runs from the base (``PUUID`` = blank uuid) to
the *leaf*, the active layer the guest writes into.

Thread safety: the HTTP server calls these methods from many threads. Operations that change or read
a chain (guest writes, snapshot, merge, checksums) hold a per-image lock that is shared by every
``DomainStorage`` object of the same directory (class-level registry keyed by path), so a guest write
lands wholly before or wholly after a snapshot and never races a merge. OVF_STORE writes hold a
per-domain lock. The locks are in-process only: two processes working on one image must coordinate
themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import random
import re
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

BLANK_UUID = "00000000-0000-0000-0000-000000000000"
SHA_CKSUM_TAG = "_SHA_CKSUM"
#: vdsm's METADATA_SIZE: one volume's metadata must fit one 512-byte slot.
META_SIZE = 512
#: vdsm truncates volume descriptions to this length (sc.DESCRIPTION_SIZE).
DESCRIPTION_SIZE = 210
OVF_STORE_SIZE = 128 * 1024 * 1024
OVF_STORE_DESCRIPTION = "OVF_STORE"
QEMU_TIMEOUT_S = 600

# Sizes of the dom_md files. vdsm makes ids 1 MiB, leases 2 GiB and xleases 1 GiB; nothing in the lab
# runs sanlock on them, so they are kept small (sparse zeros) to keep geo-replication of a fresh
# domain cheap. Their presence, not their size, is what importing a domain checks.
_DOM_MD_FILES = {
    "ids": 1024 * 1024,
    "leases": 2 * 1024 * 1024,
    "inbox": 1024 * 1024,
    "outbox": 1024 * 1024,
    "xleases": 1024 * 1024,
}
_VOLUME_LEASE_SIZE = 1024 * 1024
_VOLUME_META_KEYS = (
    "CAP",
    "CTIME",
    "DESCRIPTION",
    "DISKTYPE",
    "DOMAIN",
    "FORMAT",
    "GEN",
    "IMAGE",
    "LEGALITY",
    "PUUID",
    "TYPE",
    "VOLTYPE",
)
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_QEMU_FMT = {"COW": "qcow2", "RAW": "raw"}


class StorageError(Exception):
    """A storage operation failed or the files on disk are not what vdsm would have written."""


# --------------------------------------------------------------------------------------------------
# pure helpers (no I/O)
# --------------------------------------------------------------------------------------------------


def metadata_checksum(md: dict[str, str]) -> str:
    """vdsm's seal of ``dom_md/metadata``: SHA-1 over the sorted ``KEY=VALUE`` strings, no separators.

    Values are stripped and non-ASCII characters become XML character references before hashing, as
    ``persistent.PersistentDict`` does (``_preprocessLine``), so a domain named with accents still
    verifies under vdsm.
    """
    digest = hashlib.sha1()
    for key in sorted(md):
        if key == SHA_CKSUM_TAG:
            continue
        line = f"{key}={str(md[key]).strip()}"
        digest.update(line.encode("ascii", "xmlcharrefreplace"))
    return digest.hexdigest()


def format_domain_metadata(md: dict[str, str]) -> str:
    """The text of ``dom_md/metadata``: sorted lines, then the ``_SHA_CKSUM`` line."""
    lines = [f"{key}={str(md[key]).strip()}" for key in sorted(md) if key != SHA_CKSUM_TAG]
    lines.append(f"{SHA_CKSUM_TAG}={metadata_checksum(md)}")
    return "".join(line + "\n" for line in lines)


def parse_domain_metadata(text: str) -> dict[str, str]:
    """Parse and verify ``dom_md/metadata``; raises StorageError when the seal is broken.

    Like vdsm, metadata without a checksum line is trusted as it is (vdsm logs a warning).
    """
    md: dict[str, str] = {}
    declared = None
    for line in text.splitlines():
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        if key == SHA_CKSUM_TAG:
            declared = value.strip()
            continue
        md[key] = value.strip()
    if declared is not None and md:
        computed = metadata_checksum(md)
        if declared != computed:
            raise StorageError(f"metadata seal is broken: declares {declared}, computed {computed}")
    return md


def format_volume_meta(meta: dict[str, str]) -> str:
    """vdsm's volume metadata text: sorted ``KEY=VALUE`` lines then ``EOF``, at most 512 bytes."""
    text = "".join(f"{key}={meta[key]}\n" for key in sorted(meta)) + "EOF\n"
    if len(text.encode()) > META_SIZE:
        raise StorageError(f"volume metadata is {len(text.encode())} bytes, more than {META_SIZE}")
    return text


def parse_volume_meta(text: str) -> dict[str, str]:
    """Parse a ``.meta`` file; lines after ``EOF`` are ignored, as vdsm does."""
    meta: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("EOF"):
            break
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        meta[key.strip()] = value.strip()
    return meta


def seed_writes(seed: int, size_bytes: int, count: int = 4) -> list[tuple[int, int, int]]:
    """Deterministic initial guest data: ``(offset, length, pattern)`` writes derived from ``seed``.

    ``create_volume(fill_seed=seed)`` applies exactly these writes in order, so a test can compute
    what a freshly created disk holds with :func:`expected_content` without reading the disk. The first
    write covers offset 0 (a "boot sector"); the others are 64 KiB-aligned regions spread over the disk.
    """
    rng = random.Random(seed)
    block = 64 * 1024
    writes = [(0, min(block, size_bytes), rng.randrange(1, 256))]
    slots = max(1, size_bytes // block)
    for _ in range(count - 1):
        length = min(block * rng.randrange(1, 5), size_bytes)
        slot = rng.randrange(0, max(1, slots - length // block))
        writes.append((slot * block, length, rng.randrange(1, 256)))
    return writes


def expected_content(size_bytes: int, writes: list[tuple[int, int, int]]) -> bytes:
    """The disk content after ``writes`` (``(offset, length, pattern)``) on a zeroed disk; for tests."""
    data = bytearray(size_bytes)
    for offset, length, pattern in writes:
        data[offset : offset + length] = bytes([pattern]) * length
    return bytes(data)


def engine_date(when: datetime | None = None) -> str:
    """The engine's ``Last Updated`` text (Java ``Date.toString()``: ``Sat Nov 21 16:14:53 UTC 2026``)."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return when.strftime("%a %b %d %H:%M:%S UTC %Y")


def parse_engine_date(text: str | None) -> datetime | None:
    if not text:
        return None
    for fmt in ("%a %b %d %H:%M:%S UTC %Y", "%a %b %d %H:%M:%S.%f UTC %Y"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _check_uuid(value: str, what: str) -> str:
    if not isinstance(value, str) or not _UUID_RE.match(value):
        raise StorageError(f"{what} is not a lowercase uuid: {value!r}")
    return value


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a qemu tool; StorageError with its stderr when it fails."""
    try:
        proc = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=QEMU_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StorageError(f"{argv[0]} failed: {exc}") from exc
    if proc.returncode != 0:
        raise StorageError(
            f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


# --------------------------------------------------------------------------------------------------
# the domain
# --------------------------------------------------------------------------------------------------


class DomainStorage:
    """One file storage domain at ``root/sd_id``, in vdsm's layout, on real files.

    :param root: the directory where the storage volume is mounted (e.g. the Gluster FUSE mount);
        the domain lives in ``root/sd_id``.
    :param sd_id: the storage domain uuid.
    :param name: the domain name (``DESCRIPTION`` in ``dom_md/metadata``).
    :param remote_path: ``server:/path`` of the volume (``REMOTE_PATH``).
    :param role: ``Regular`` or ``Master``.
    """

    _locks: dict[str, threading.RLock] = {}
    _locks_guard = threading.Lock()
    _ovf_store_cache: dict[str, list[tuple[str, str]]] = {}

    def __init__(self, root: Path, sd_id: str, name: str, remote_path: str, role: str = "Regular") -> None:
        self.root = Path(root)
        self.sd_id = _check_uuid(sd_id, "storage domain id")
        self.name = name
        self.remote_path = remote_path
        self.role = role
        self.path = self.root / sd_id
        self.dom_md = self.path / "dom_md"
        self.images = self.path / "images"

    def __repr__(self) -> str:
        return f"DomainStorage({str(self.path)!r}, name={self.name!r})"

    # ---- locks ----------------------------------------------------------------------------------

    @classmethod
    def _lock_for(cls, key: Path) -> threading.RLock:
        with cls._locks_guard:
            return cls._locks.setdefault(str(key), threading.RLock())

    @contextlib.contextmanager
    def image_lock(self, image_id: str) -> Iterator[None]:
        """Hold the image's lock (re-entrant); the API layer may use it to group several calls."""
        with self._lock_for(self.image_dir(image_id)):
            yield

    @contextlib.contextmanager
    def _domain_lock(self) -> Iterator[None]:
        with self._lock_for(self.path):
            yield

    # ---- paths ----------------------------------------------------------------------------------

    def image_dir(self, image_id: str) -> Path:
        return self.images / _check_uuid(image_id, "image id")

    def volume_path(self, image_id: str, volume_id: str) -> Path:
        return self.image_dir(image_id) / _check_uuid(volume_id, "volume id")

    def _meta_path(self, image_id: str, volume_id: str) -> Path:
        return self.volume_path(image_id, volume_id).with_name(volume_id + ".meta")

    def _lease_path(self, image_id: str, volume_id: str) -> Path:
        return self.volume_path(image_id, volume_id).with_name(volume_id + ".lease")

    # ---- domain ---------------------------------------------------------------------------------

    def domain_metadata(self) -> dict[str, str]:
        """The metadata a new domain gets (keys as vdsm 4.4 writes for a V5 file domain)."""
        return {
            "ALIGNMENT": "1048576",
            "BLOCK_SIZE": "512",
            "CLASS": "Data",
            "DESCRIPTION": self.name,
            "IOOPTIMEOUTSEC": "10",
            "LEASERETRIES": "3",
            "LEASETIMESEC": "60",
            "LOCKPOLICY": "",
            "LOCKRENEWALINTERVALSEC": "5",
            "POOL_UUID": "",
            "REMOTE_PATH": self.remote_path,
            "ROLE": self.role,
            "SDUUID": self.sd_id,
            "TYPE": "GLUSTERFS",
            "VERSION": "5",
        }

    def create(self) -> None:
        """Create the domain: ``dom_md`` files, ``images/``, and two empty OVF_STORE volumes.

        Idempotent: existing files are kept, so calling it on a started domain does no harm. The
        OVF_STORE image and volume ids derive from the domain id (uuid5) so a re-create finds them.
        """
        with self._domain_lock():
            self.dom_md.mkdir(parents=True, exist_ok=True)
            self.images.mkdir(exist_ok=True)
            for fname, size in _DOM_MD_FILES.items():
                path = self.dom_md / fname
                if not path.exists():
                    with open(path, "wb") as fh:
                        fh.truncate(size)
            md_path = self.dom_md / "metadata"
            if not md_path.exists():
                self._write_in_place(md_path, format_domain_metadata(self.domain_metadata()))
            for n in (1, 2):
                image_id = str(uuid.uuid5(uuid.UUID(self.sd_id), f"ovf-store-{n}-image"))
                volume_id = str(uuid.uuid5(uuid.UUID(self.sd_id), f"ovf-store-{n}-volume"))
                if self._meta_path(image_id, volume_id).exists():
                    continue
                description = json.dumps(
                    {
                        "Updated": False,
                        "Last Updated": None,
                        "Storage Domains": [{"uuid": self.sd_id}],
                        "Disk Description": OVF_STORE_DESCRIPTION,
                    },
                    separators=(",", ":"),
                )
                self.create_volume(
                    image_id, volume_id, OVF_STORE_SIZE, fmt="raw", description=description, disktype="OVFS"
                )

    def exists(self) -> bool:
        return (self.dom_md / "metadata").is_file()

    def read_metadata(self) -> dict[str, str]:
        """``dom_md/metadata`` as a dict, checksum verified (StorageError when broken or missing)."""
        try:
            text = (self.dom_md / "metadata").read_text(encoding="utf-8")
        except OSError as exc:
            raise StorageError(f"cannot read domain metadata of {self.path}: {exc}") from exc
        return parse_domain_metadata(text)

    def write_metadata(self, md: dict[str, str]) -> None:
        """Rewrite ``dom_md/metadata`` (e.g. ``ROLE`` or ``POOL_UUID`` at attach), resealed."""
        with self._domain_lock():
            self._write_in_place(self.dom_md / "metadata", format_domain_metadata(md))

    @classmethod
    def open(cls, root: Path, sd_id: str) -> DomainStorage:
        """An existing domain, its name/path/role read from its (verified) metadata."""
        probe = cls(root, sd_id, "", "")
        md = probe.read_metadata()
        if md.get("SDUUID") != sd_id:
            raise StorageError(f"{probe.path}: metadata SDUUID {md.get('SDUUID')!r} != directory name")
        return cls(
            root, sd_id, md.get("DESCRIPTION", ""), md.get("REMOTE_PATH", ""), md.get("ROLE", "Regular")
        )

    @classmethod
    def find(cls, root: Path) -> list[DomainStorage]:
        """Domains present under a mount: directories named by a uuid with a valid ``dom_md/metadata``.

        A directory whose metadata is unreadable or whose seal is broken is skipped with a warning,
        as the engine does not offer such a domain for import.
        """
        found = []
        root = Path(root)
        if not root.is_dir():
            return []
        for child in sorted(root.iterdir()):
            if not _UUID_RE.match(child.name) or not (child / "dom_md" / "metadata").is_file():
                continue
            try:
                found.append(cls.open(root, child.name))
            except StorageError as exc:
                log.warning("skipping storage domain at %s: %s", child, exc)
        return found

    # ---- volume metadata ------------------------------------------------------------------------

    def read_meta(self, image_id: str, volume_id: str) -> dict[str, str]:
        try:
            text = self._meta_path(image_id, volume_id).read_text(encoding="utf-8")
        except OSError as exc:
            raise StorageError(f"cannot read metadata of volume {image_id}/{volume_id}: {exc}") from exc
        return parse_volume_meta(text)

    def write_meta(self, image_id: str, volume_id: str, meta: dict[str, str]) -> None:
        """Write a ``.meta`` file in vdsm's format (sorted lines, ``EOF``, at most 512 bytes)."""
        meta = {key: str(value) for key, value in meta.items()}
        self._write_in_place(self._meta_path(image_id, volume_id), format_volume_meta(meta))

    def _update_meta(self, image_id: str, volume_id: str, **changes: str) -> None:
        meta = self.read_meta(image_id, volume_id)
        meta.update(changes)
        self.write_meta(image_id, volume_id, meta)

    @staticmethod
    def _write_in_place(path: Path, text: str) -> None:
        """Overwrite a metadata file in place, as vdsm does, never by rename.

        In place keeps the file's Gluster gfid: geo-replication in xsync mode (the lab's, see
        reference/gluster-lab.md) does not propagate renames, and a file recreated under the same
        name with a new gfid meets a gfid conflict on the secondary. The new text is written first and
        the file truncated after, so a concurrent reader sees either the old text or the new text
        followed by stale bytes after ``EOF`` (which the ``.meta`` parser ignores).
        """
        data = text.encode("utf-8")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o660)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        finally:
            os.close(fd)

    # ---- volumes --------------------------------------------------------------------------------

    def create_volume(
        self,
        image_id: str,
        volume_id: str,
        size_bytes: int,
        fmt: str = "cow",
        description: str = "",
        fill_seed: int | None = None,
        disktype: str = "DATA",
    ) -> None:
        """Create a base volume (``PUUID`` blank, ``LEAF``) of a new or empty image.

        :param fmt: ``cow`` (qcow2) or ``raw`` (sparse raw).
        :param description: the ``.meta`` DESCRIPTION (the engine puts a JSON with the disk alias here).
        :param fill_seed: when given, the writes of :func:`seed_writes` ``(fill_seed, size_bytes)`` are
            applied, so the disk has known, non-zero content.
        """
        vol_format = fmt.upper()
        if vol_format not in _QEMU_FMT:
            raise StorageError(f"unknown volume format {fmt!r} (cow or raw)")
        if size_bytes <= 0 or size_bytes % 512:
            raise StorageError(f"volume size must be a positive multiple of 512, not {size_bytes}")
        image_dir = self.image_dir(image_id)
        with self.image_lock(image_id):
            path = self.volume_path(image_id, volume_id)
            if path.exists() or self._meta_path(image_id, volume_id).exists():
                raise StorageError(f"volume {image_id}/{volume_id} already exists")
            image_dir.mkdir(parents=True, exist_ok=True)
            argv = ["qemu-img", "create", "-f", _QEMU_FMT[vol_format]]
            if vol_format == "COW":
                argv += ["-o", "compat=1.1"]
            _run([*argv, str(path), str(size_bytes)])
            self._make_lease(image_id, volume_id)
            self.write_meta(
                image_id,
                volume_id,
                self._new_meta(image_id, size_bytes, vol_format, BLANK_UUID, description, disktype),
            )
            if fill_seed is not None:
                self._qemu_io_writes(path, _QEMU_FMT[vol_format], seed_writes(fill_seed, size_bytes))

    def _new_meta(
        self, image_id: str, size: int, vol_format: str, puuid: str, description: str, disktype: str
    ) -> dict[str, str]:
        return {
            "CAP": str(size),
            "CTIME": str(int(time.time())),
            "DESCRIPTION": description[:DESCRIPTION_SIZE],
            "DISKTYPE": disktype,
            "DOMAIN": self.sd_id,
            "FORMAT": vol_format,
            "GEN": "0",
            "IMAGE": image_id,
            "LEGALITY": "LEGAL",
            "PUUID": puuid,
            # listed in the project reference for V5 volumes; not required when checking a chain
            "SEQ": "0",
            "TYPE": "SPARSE",
            "VOLTYPE": "LEAF",
        }

    def _make_lease(self, image_id: str, volume_id: str) -> None:
        with open(self._lease_path(image_id, volume_id), "wb") as fh:
            fh.truncate(_VOLUME_LEASE_SIZE)

    def snapshot_volume(self, image_id: str, parent_volume_id: str, new_volume_id: str) -> None:
        """Add a qcow2 overlay on top of the leaf ``parent_volume_id``, as vdsm's createVolume does.

        ``qemu-img create -f qcow2 -b <parent uuid> -F <parent fmt> -u``: the backing file is the bare
        uuid, relative to the image directory, so the chain stays valid wherever the domain is mounted
        (the replica on the secondary site). New ``.meta``: ``LEAF``, ``PUUID=parent``, ``FORMAT=COW``;
        then the parent's ``.meta`` becomes ``INTERNAL``.
        """
        with self.image_lock(image_id):
            parent = self.read_meta(image_id, parent_volume_id)
            if parent.get("VOLTYPE") != "LEAF":
                raise StorageError(f"volume {parent_volume_id} is {parent.get('VOLTYPE')}, not the leaf")
            new_path = self.volume_path(image_id, new_volume_id)
            if new_path.exists() or self._meta_path(image_id, new_volume_id).exists():
                raise StorageError(f"volume {image_id}/{new_volume_id} already exists")
            parent_fmt = _QEMU_FMT.get(parent.get("FORMAT", ""))
            if parent_fmt is None:
                raise StorageError(f"volume {parent_volume_id} has bad FORMAT {parent.get('FORMAT')!r}")
            size = parent["CAP"]
            _run(
                [
                    "qemu-img", "create", "-f", "qcow2", "-o", "compat=1.1",
                    "-b", parent_volume_id, "-F", parent_fmt, "-u", new_volume_id, size,
                ],
                cwd=self.image_dir(image_id),
            )  # fmt: skip
            self._make_lease(image_id, new_volume_id)
            self.write_meta(
                image_id,
                new_volume_id,
                self._new_meta(
                    image_id, int(size), "COW", parent_volume_id, "", parent.get("DISKTYPE", "DATA")
                ),
            )
            self._update_meta(image_id, parent_volume_id, VOLTYPE="INTERNAL")

    def merge(self, image_id: str, volume_id: str) -> None:
        """Remove one snapshot from the chain (live merge), keeping what the guest sees unchanged.

        ``volume_id`` is the snapshot's volume as the engine's snapshot disks show it: the volume that
        was the leaf when the snapshot was taken (its content, through the chain, is the snapshot's
        point in time). Removing the snapshot discards that point in time: the volume's child C (the
        data written after the snapshot) is committed into ``volume_id`` and C disappears; the volume
        ``volume_id`` stays, now holding C's content. So the chain gets one volume shorter, and the file
        deleted is C (with its ``.meta`` and ``.lease``), never ``volume_id``:

        - C is the leaf: ``qemu-img commit`` C into ``volume_id``, mark C ``ILLEGAL``, ``volume_id``
          becomes ``LEAF`` (the pivot), C is deleted.
        - C is internal (a later snapshot exists): commit C into ``volume_id`` (so the later snapshot's
          point in time, which was C's chain, is now ``volume_id``'s chain), rebase C's child onto
          ``volume_id`` (``-u``: the data below it is unchanged), fix its ``PUUID``, delete C. The later
          snapshot's disk must now name ``volume_id`` (the API layer's bookkeeping).

        Raises StorageError when ``volume_id`` is the leaf (nothing above it to merge).
        """
        with self.image_lock(image_id):
            chain = self.chain(image_id)
            if volume_id not in chain:
                raise StorageError(f"volume {volume_id} is not in the chain of image {image_id}")
            pos = chain.index(volume_id)
            if pos == len(chain) - 1:
                raise StorageError(f"volume {volume_id} is the leaf of image {image_id}: nothing to merge")
            child = chain[pos + 1]
            grandchild = chain[pos + 2] if pos + 2 < len(chain) else None
            base_meta = self.read_meta(image_id, volume_id)
            base_fmt = _QEMU_FMT[base_meta["FORMAT"]]
            image_dir = self.image_dir(image_id)
            # -d: leave the child's clusters alone, it is deleted right after anyway (faster).
            _run(["qemu-img", "commit", "-q", "-d", "-f", "qcow2", child], cwd=image_dir)
            if grandchild is not None:
                _run(
                    [
                        "qemu-img",
                        "rebase",
                        "-q",
                        "-f",
                        "qcow2",
                        "-u",
                        "-b",
                        volume_id,
                        "-F",
                        base_fmt,
                        grandchild,
                    ],
                    cwd=image_dir,
                )
                self._update_meta(image_id, grandchild, PUUID=volume_id)
                self._update_meta(image_id, child, LEGALITY="ILLEGAL")
            else:
                self._update_meta(image_id, child, LEGALITY="ILLEGAL")
                self._update_meta(image_id, volume_id, VOLTYPE="LEAF")
            self.delete_volume_files(image_id, child)

    def delete_volume_files(self, image_id: str, volume_id: str) -> None:
        """Delete a volume's data, ``.meta`` and ``.lease`` (missing ones are fine)."""
        for path in (
            self.volume_path(image_id, volume_id),
            self._lease_path(image_id, volume_id),
            self._meta_path(image_id, volume_id),
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def delete_image(self, image_id: str) -> None:
        """Delete a whole image directory (a removed disk)."""
        with self.image_lock(image_id):
            image_dir = self.image_dir(image_id)
            if not image_dir.exists():
                return
            for child in image_dir.iterdir():
                child.unlink()
            image_dir.rmdir()

    # ---- chains ---------------------------------------------------------------------------------

    def volume_ids(self, image_id: str) -> list[str]:
        """Volumes that have a ``.meta`` file in the image directory (sorted)."""
        image_dir = self.image_dir(image_id)
        if not image_dir.is_dir():
            return []
        return sorted(p.name[: -len(".meta")] for p in image_dir.glob("*.meta") if _UUID_RE.match(p.stem))

    def chain(self, image_id: str) -> list[str]:
        """Volume ids base..leaf, from the ``PUUID`` links of the ``.meta`` files.

        StorageError when the links do not form exactly one chain (no volume, several leaves, a
        ``PUUID`` naming a volume without metadata, a loop).
        """
        parents = {vol: self.read_meta(image_id, vol).get("PUUID", "") for vol in self.volume_ids(image_id)}
        if not parents:
            raise StorageError(f"image {image_id} has no volumes")
        referenced = set(parents.values())
        leaves = [vol for vol in parents if vol not in referenced]
        if len(leaves) != 1:
            raise StorageError(f"image {image_id} has {len(leaves)} leaves by PUUID: {leaves}")
        chain = [leaves[0]]
        while True:
            parent = parents[chain[-1]]
            if parent == BLANK_UUID:
                break
            if parent not in parents:
                raise StorageError(f"volume {chain[-1]} names parent {parent!r}, which has no metadata")
            if parent in chain:
                raise StorageError(f"image {image_id}: PUUID loop at {parent}")
            chain.append(parent)
        if len(chain) != len(parents):
            extra = sorted(set(parents) - set(chain))
            raise StorageError(f"image {image_id}: volumes outside the chain: {extra}")
        return chain[::-1]

    def leaf(self, image_id: str) -> str:
        return self.chain(image_id)[-1]

    def qemu_info(self, image_id: str, volume_id: str | None = None) -> list[dict]:
        """``qemu-img info --backing-chain --output=json`` of a volume (default: the leaf), top first."""
        with self.image_lock(image_id):
            volume_id = volume_id or self.leaf(image_id)
            proc = _run(
                ["qemu-img", "info", "-U", "--backing-chain", "--output=json", volume_id],
                cwd=self.image_dir(image_id),
            )
        data = json.loads(proc.stdout)
        return data if isinstance(data, list) else [data]

    def check_chain(self, image_id: str) -> list[str]:
        """Everything wrong with an image's chain, as human-readable problems; ``[]`` = healthy.

        Checks what starting a VM on it (or the DR audit) depends on: the chain by ``PUUID`` is whole;
        every volume has its data file, ``.meta`` and ``.lease``; the metadata is complete, ``LEGAL``,
        names this image and domain, ``LEAF`` only at the top; the qcow2 header's backing file is the
        ``PUUID`` and the format and size match the metadata; ``qemu-img check`` finds no corruption
        (leaked clusters are harmless and not reported).
        """
        problems: list[str] = []
        with self.image_lock(image_id):
            image_dir = self.image_dir(image_id)
            if not image_dir.is_dir():
                return [f"image directory {image_id} is missing"]
            try:
                chain = self.chain(image_id)
            except StorageError as exc:
                problems.append(str(exc))
                chain = self.volume_ids(image_id)
            for idx, vol in enumerate(chain):
                problems += self._check_volume(image_id, vol, is_leaf=idx == len(chain) - 1)
            # data files without metadata are leftovers the engine would not know about
            for path in image_dir.iterdir():
                if _UUID_RE.match(path.name) and not self._meta_path(image_id, path.name).exists():
                    problems.append(f"volume file {path.name} has no .meta")
        return problems

    def _check_volume(self, image_id: str, vol: str, is_leaf: bool) -> list[str]:
        problems = []
        path = self.volume_path(image_id, vol)
        try:
            meta = self.read_meta(image_id, vol)
        except StorageError as exc:
            return [str(exc)]
        missing = [key for key in _VOLUME_META_KEYS if key not in meta]
        if missing:
            problems.append(f"volume {vol}: .meta lacks {', '.join(missing)}")
        if meta.get("IMAGE") != image_id:
            problems.append(f"volume {vol}: .meta IMAGE={meta.get('IMAGE')} is not {image_id}")
        if meta.get("DOMAIN") != self.sd_id:
            problems.append(f"volume {vol}: .meta DOMAIN={meta.get('DOMAIN')} is not {self.sd_id}")
        if meta.get("LEGALITY") != "LEGAL":
            problems.append(f"volume {vol}: LEGALITY={meta.get('LEGALITY')}")
        want_type = "LEAF" if is_leaf else "INTERNAL"
        if meta.get("VOLTYPE") != want_type:
            problems.append(f"volume {vol}: VOLTYPE={meta.get('VOLTYPE')}, expected {want_type}")
        if not self._lease_path(image_id, vol).exists():
            problems.append(f"volume {vol}: .lease is missing")
        if not path.exists():
            problems.append(f"volume {vol}: data file is missing")
            return problems
        qfmt = _QEMU_FMT.get(meta.get("FORMAT", ""))
        if qfmt is None:
            problems.append(f"volume {vol}: bad FORMAT={meta.get('FORMAT')}")
            return problems
        try:
            proc = _run(["qemu-img", "info", "-U", "-f", qfmt, "--output=json", vol], cwd=path.parent)
            info = json.loads(proc.stdout)
        except (StorageError, json.JSONDecodeError) as exc:
            problems.append(f"volume {vol}: unreadable as {qfmt}: {exc}")
            return problems
        backing = info.get("backing-filename") or info.get("full-backing-filename")
        puuid = meta.get("PUUID")
        if qfmt == "qcow2":
            if puuid == BLANK_UUID and backing:
                problems.append(f"volume {vol}: base volume has backing file {backing!r}")
            elif puuid != BLANK_UUID and backing != puuid:
                problems.append(f"volume {vol}: backing file {backing!r} does not match PUUID {puuid}")
            elif backing and not (path.parent / backing).exists():
                problems.append(f"volume {vol}: backing file {backing} is missing")
        elif puuid != BLANK_UUID:
            problems.append(f"volume {vol}: RAW volume cannot have a parent (PUUID={puuid})")
        if meta.get("CAP", "").isdigit() and info.get("virtual-size") != int(meta["CAP"]):
            problems.append(f"volume {vol}: virtual size {info.get('virtual-size')} != CAP {meta['CAP']}")
        if qfmt == "qcow2":
            proc = subprocess.run(
                ["qemu-img", "check", "-U", "-f", "qcow2", "--output=json", vol],
                cwd=path.parent,
                capture_output=True,
                text=True,
                timeout=QEMU_TIMEOUT_S,
                check=False,
            )
            # rc 0 clean, 3 leaks only (harmless); 1 could not check, 2 corrupt
            if proc.returncode not in (0, 3):
                detail = proc.stderr.strip() or proc.stdout.strip()
                problems.append(f"volume {vol}: qemu-img check rc={proc.returncode}: {detail[:300]}")
        return problems

    # ---- guest data -----------------------------------------------------------------------------

    def _qemu_io_writes(self, path: Path, qfmt: str, writes: list[tuple[int, int, int]]) -> None:
        argv = ["qemu-io", "-f", qfmt]
        for offset, length, pattern in writes:
            if not 0 <= pattern <= 255 or offset < 0 or length <= 0:
                raise StorageError(f"bad write offset={offset} length={length} pattern={pattern}")
            argv += ["-c", f"write -q -P {pattern} {offset} {length}"]
        proc = _run([*argv, path.name], cwd=path.parent)
        # qemu-io reports failed commands on stdout/stderr but may still exit 0
        output = (proc.stdout + proc.stderr).lower()
        if "error" in output or "failed" in output:
            raise StorageError(f"qemu-io on {path}: {(proc.stdout + proc.stderr).strip()}")

    def guest_write(self, image_id: str, volume_id: str, offset: int, length: int, pattern: int) -> None:
        """Write ``length`` bytes of ``pattern`` at ``offset`` into a volume, as a guest would.

        The volume is opened with its backing chain (``qemu-io write -P``), so partial-cluster writes
        copy the rest of the cluster from below exactly as a running VM's writes do. Normally the leaf.
        """
        with self.image_lock(image_id):
            meta = self.read_meta(image_id, volume_id)
            cap = int(meta["CAP"])
            if offset + length > cap:
                raise StorageError(f"write {offset}+{length} beyond the disk size {cap}")
            self._qemu_io_writes(
                self.volume_path(image_id, volume_id), _QEMU_FMT[meta["FORMAT"]], [(offset, length, pattern)]
            )

    @contextlib.contextmanager
    def _raw_export(self, image_id: str, volume_id: str | None) -> Iterator[Path]:
        """A temporary raw file with the guest-visible content up to ``volume_id`` (default leaf)."""
        with self.image_lock(image_id), tempfile.TemporaryDirectory(prefix="ovirt-dr-disk-") as tmp:
            volume_id = volume_id or self.leaf(image_id)
            meta = self.read_meta(image_id, volume_id)
            out = Path(tmp) / "disk.raw"
            _run(
                [
                    "qemu-img", "convert", "-U", "-f", _QEMU_FMT[meta["FORMAT"]], "-O", "raw",
                    volume_id, str(out),
                ],
                cwd=self.image_dir(image_id),
            )  # fmt: skip
            yield out

    def read_disk(self, image_id: str, volume_id: str | None = None) -> bytes:
        """The disk content as the guest sees it through the chain up to ``volume_id`` (default leaf).

        Whole disk in memory: meant for small test disks; use :meth:`disk_sha256` for big ones.
        """
        with self._raw_export(image_id, volume_id) as out:
            return out.read_bytes()

    def read_range(self, image_id: str, offset: int, length: int, volume_id: str | None = None) -> bytes:
        """``length`` guest-visible bytes at ``offset`` through the chain up to ``volume_id`` (default leaf).

        For checking a few regions of a big disk without exporting all of it (``qemu-img dd``; note
        that its ``count`` includes the skipped blocks, unlike coreutils dd).
        """
        with self.image_lock(image_id), tempfile.TemporaryDirectory(prefix="ovirt-dr-range-") as tmp:
            volume_id = volume_id or self.leaf(image_id)
            meta = self.read_meta(image_id, volume_id)
            if offset < 0 or length <= 0 or offset + length > int(meta["CAP"]):
                raise StorageError(f"range {offset}+{length} outside the disk size {meta['CAP']}")
            block = 512
            first, last = offset // block, -(-(offset + length) // block)
            out = Path(tmp) / "range.raw"
            _run(
                [
                    "qemu-img", "dd", "-U", "-f", _QEMU_FMT[meta["FORMAT"]], "-O", "raw", f"bs={block}",
                    f"skip={first}", f"count={last}", f"if={volume_id}", f"of={out}",
                ],
                cwd=self.image_dir(image_id),
            )  # fmt: skip
            data = out.read_bytes()
        start = offset - first * block
        return data[start : start + length]

    def disk_sha256(self, image_id: str, volume_id: str | None = None) -> str:
        """sha256 hex of the guest-visible content through the chain up to ``volume_id`` (default leaf)."""
        digest = hashlib.sha256()
        with self._raw_export(image_id, volume_id) as out, open(out, "rb") as fh:
            for block in iter(lambda: fh.read(4 * 1024 * 1024), b""):
                digest.update(block)
        return digest.hexdigest()

    # ---- OVF_STORE ------------------------------------------------------------------------------

    def _scan_ovf_stores(self) -> list[tuple[str, str]]:
        """Find OVF_STORE volumes by their DESCRIPTION (``"Disk Description": "OVF_STORE"``)."""
        stores = []
        if not self.images.is_dir():
            return stores
        for image_dir in sorted(self.images.iterdir()):
            if not _UUID_RE.match(image_dir.name):
                continue
            for vol in self.volume_ids(image_dir.name):
                try:
                    desc = json.loads(self.read_meta(image_dir.name, vol).get("DESCRIPTION") or "{}")
                except (StorageError, json.JSONDecodeError):
                    continue
                if isinstance(desc, dict) and desc.get("Disk Description") == OVF_STORE_DESCRIPTION:
                    stores.append((image_dir.name, vol))
        return stores

    def _ovf_store_volumes(self) -> list[tuple[str, str]]:
        """``(image_id, volume_id)`` of the OVF_STORE volumes; cached per domain path.

        Scanning means reading every image's ``.meta``, slow on a FUSE mount with hundreds of disks,
        and ``image_ids`` needs it on every call; the stores of a domain do not change once made.
        """
        key = str(self.path)
        cached = self._ovf_store_cache.get(key)
        if cached and all(self._meta_path(i, v).exists() for i, v in cached):
            return list(cached)
        stores = self._scan_ovf_stores()
        if stores:
            self._ovf_store_cache[key] = list(stores)
        return stores

    def _ovf_stores(self) -> list[tuple[str, str, dict]]:
        """``(image_id, volume_id, DESCRIPTION json)`` of every OVF_STORE volume in the domain."""
        stores = []
        for image_id, vol in self._ovf_store_volumes():
            try:
                desc = json.loads(self.read_meta(image_id, vol).get("DESCRIPTION") or "{}")
            except (StorageError, json.JSONDecodeError):
                continue
            if isinstance(desc, dict):
                stores.append((image_id, vol, desc))
        return stores

    def ovf_store_image_ids(self) -> list[str]:
        return sorted({image_id for image_id, _, _ in self._ovf_stores()})

    def image_ids(self) -> list[str]:
        """Images (disks) of the domain, OVF_STORE images excluded, sorted."""
        if not self.images.is_dir():
            return []
        stores = set(self.ovf_store_image_ids())
        return sorted(
            p.name
            for p in self.images.iterdir()
            if p.is_dir() and _UUID_RE.match(p.name) and p.name not in stores
        )

    def write_ovf_store(self, ovfs: dict[str, str], vm_status: dict[str, int]) -> None:
        """Write the entities' OVFs into every OVF_STORE volume of the domain, as the engine's updater does.

        Per store: mark it ``Updated: false``, write the tar at offset 0 of the raw volume (``info.json``,
        ``metadata.json`` with ``{"VM Status": {id: int}}``, ``<id>.ovf`` each), then set the
        DESCRIPTION to ``Updated: true`` with the tar size and the time. A reader that meets a store
        mid-write sees it as not updated and takes the other.
        """
        now = engine_date()
        info = {"Last Updated": now, "Storage Domains": [{"uuid": self.sd_id}]}
        files = {
            "info.json": json.dumps(info, indent=2).encode(),
            "metadata.json": json.dumps({"VM Status": vm_status}, indent=2).encode(),
        }
        for entity_id, xml in sorted(ovfs.items()):
            files[f"{_check_uuid(entity_id, 'entity id')}.ovf"] = xml.encode("utf-8")
        buf = io.BytesIO()
        mtime = int(time.time())
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in files.items():
                member = tarfile.TarInfo(name)
                member.size = len(data)
                member.mtime = mtime
                member.mode = 0o644
                tar.addfile(member, io.BytesIO(data))
        blob = buf.getvalue()
        if len(blob) > OVF_STORE_SIZE:
            raise StorageError(f"OVF_STORE tar of {len(blob)} bytes does not fit the store")
        with self._domain_lock():
            stores = self._ovf_stores()
            if not stores:
                raise StorageError(f"domain {self.sd_id} has no OVF_STORE volumes")
            for image_id, volume_id, desc in stores:
                with self.image_lock(image_id):
                    desc = {**desc, "Updated": False}
                    self._set_description(image_id, volume_id, desc)
                    with open(self.volume_path(image_id, volume_id), "r+b") as fh:
                        fh.write(blob)
                        fh.flush()
                        os.fsync(fh.fileno())
                    desc = {
                        "Updated": True,
                        "Size": len(blob),
                        "Last Updated": now,
                        "Storage Domains": [{"uuid": self.sd_id}],
                        "Disk Description": OVF_STORE_DESCRIPTION,
                    }
                    self._set_description(image_id, volume_id, desc)

    def _set_description(self, image_id: str, volume_id: str, desc: dict) -> None:
        self._update_meta(image_id, volume_id, DESCRIPTION=json.dumps(desc, separators=(",", ":")))

    def read_ovf_store_full(self) -> dict:
        """The newest ``Updated`` OVF_STORE: ``{"image_id", "volume_id", "last_updated", "ovfs", "vm_status"}``.

        Newest by ``Last Updated`` (ties broken by store order). StorageError when no store is updated.
        """
        candidates = []
        for image_id, volume_id, desc in self._ovf_stores():
            if desc.get("Updated") is not True:
                continue
            when = parse_engine_date(desc.get("Last Updated")) or datetime.min.replace(tzinfo=UTC)
            candidates.append((when, image_id, volume_id, desc))
        if not candidates:
            raise StorageError(f"domain {self.sd_id} has no updated OVF_STORE")
        when, image_id, volume_id, desc = max(candidates, key=lambda c: c[0])
        ovfs: dict[str, str] = {}
        vm_status: dict[str, int] = {}
        with self.image_lock(image_id), open(self.volume_path(image_id, volume_id), "rb") as fh:
            size = desc.get("Size")
            data = fh.read(size) if isinstance(size, int) and size > 0 else fh.read()
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    content = tar.extractfile(member).read()
                    if member.name.endswith(".ovf"):
                        ovfs[member.name[: -len(".ovf")]] = content.decode("utf-8")
                    elif member.name == "metadata.json":
                        vm_status = {k: int(v) for k, v in json.loads(content).get("VM Status", {}).items()}
        except (tarfile.TarError, ValueError) as exc:
            raise StorageError(f"OVF_STORE {image_id}/{volume_id} is not a readable tar: {exc}") from exc
        return {
            "image_id": image_id,
            "volume_id": volume_id,
            "last_updated": desc.get("Last Updated"),
            "ovfs": ovfs,
            "vm_status": vm_status,
        }

    def read_ovf_store(self) -> dict[str, str]:
        """Entity id -> OVF xml from the newest ``Updated`` OVF_STORE."""
        return self.read_ovf_store_full()["ovfs"]


__all__ = [
    "BLANK_UUID",
    "DomainStorage",
    "StorageError",
    "expected_content",
    "metadata_checksum",
    "parse_domain_metadata",
    "seed_writes",
]
