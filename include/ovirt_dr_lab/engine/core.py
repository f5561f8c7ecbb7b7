"""The emulated engine's inventory and its operations, independent of HTTP.

State is plain JSON-able dicts (persisted to ``<state_dir>/state.json`` by a debounced saver), so a restarted
engine keeps imported domains, registered VMs, snapshots, events and jobs. Everything that touches disks
goes through :class:`ovirt_dr_lab.engine.storage.DomainStorage` (real qcow2 via ``qemu-img``).

Asynchronous behaviour (snapshot ``locked`` -> ``ok``, live merge, OVF_STORE writes, storage domain and VM
status transitions) runs on a small scheduler thread plus a bounded worker pool: a latency is a timer, not
a sleeping thread, so 100 concurrent snapshots at 0.5 s each finish in about 0.5 s plus the real
``qemu-img`` work.

Serialization: one re-entrant lock guards the state dicts (held only for bookkeeping, never across
``qemu-img``); per-image locks (shared with DomainStorage) serialize guest writes, snapshot creation and
merges of one disk, so every guest write lands wholly before or wholly after a snapshot.
"""

from __future__ import annotations

import copy
import datetime as dt
import heapq
import itertools
import json
import logging
import os
import random
import shutil
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ovirt_dr_lab.engine import ovf as ovf_mod
from ovirt_dr_lab.engine.site import SiteError, load_site, require_path, stable_id
from ovirt_dr_lab.engine.storage import DomainStorage, StorageError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
BLANK_UUID = "00000000-0000-0000-0000-000000000000"
DEFAULT_LATENCY = {
    "snapshot": 0.3,
    "merge": 0.5,
    "ovf_update": 0.3,
    "register": 0.3,
    "start": 0.6,
    "stop": 0.3,
    "attach": 0.6,
    "activate": 0.3,
    "deactivate": 0.3,
}
#: oVirt VMStatus numbers, as written into the OVF_STORE's metadata.json.
VM_STATUS_NUM = {
    "down": 0,
    "up": 1,
    "powering_up": 2,
    "paused": 4,
    "unknown": 7,
    "not_responding": 8,
    "wait_for_launch": 9,
    "reboot_in_progress": 10,
    "suspended": 13,
    "image_illegal": 14,
    "image_locked": 15,
    "powering_down": 16,
}
MAX_EVENTS = 5000
#: Version of the state.json layout. 2 added permissions, LUNs, cluster/DC versions, domain types; an older
#: state is upgraded at start from the site file (only what it lacks; nothing it has is overwritten).
STATE_SCHEMA = 2
#: Cluster and data center compatibility version when the site names none (oVirt 4.5 engines: 4.7).
DEFAULT_COMPAT = "4.7"
MAX_JOBS = 2000
MAX_WRITES = 200000


class EngineFault(Exception):
    """An answer other than success: HTTP status plus the engine's ``<fault>`` (or an empty body).

    The real engine answers validation failures (wrong state) 409, missing parameters 400, unknown ids
    404 with an empty body; the SDK maps them to ``Error``/``NotFoundError`` with ``.fault``.
    """

    def __init__(self, status: int, detail: str = "", reason: str = "Operation Failed", empty: bool = False):
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail
        self.empty = empty


def not_found() -> EngineFault:
    return EngineFault(404, empty=True)


def conflict(detail: str) -> EngineFault:
    return EngineFault(409, f"[{detail}]")


def incomplete(entity: str, fields: list[str], action: str = "add") -> EngineFault:
    return EngineFault(
        400, f"{entity} [{', '.join(fields)}] required for {action}", reason="Incomplete parameters"
    )


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _lun_from_site(lun: dict[str, Any]) -> dict[str, Any]:
    """A LUN the site's hosts see (``hosts/{id}/storage``): iSCSI target details or an FC WWID."""
    storage_type = str(lun.get("storage_type", "iscsi")).lower()
    if storage_type not in ("iscsi", "fcp"):
        raise SiteError(f"LUN {lun.get('id')}: storage_type must be iscsi or fcp, not {storage_type!r}")
    return {
        "id": str(lun["id"]),
        "storage_type": storage_type,
        "address": lun.get("address"),
        "port": int(lun["port"])
        if lun.get("port") is not None
        else (3260 if storage_type == "iscsi" else None),
        "target": lun.get("target"),
        "portal": str(lun["portal"]) if lun.get("portal") is not None else None,
        "size": int(lun.get("size_gib", 10)) * 1024**3,
        "vendor_id": lun.get("vendor_id", "LIO-ORG"),
        "product_id": lun.get("product_id", "lab-lun"),
    }


def _lun_ids(disk: Any) -> list[str]:
    """Logical unit ids of an SDK ``Disk`` in a LUN mapping (``lun_storage.logical_units[].id``)."""
    storage = getattr(disk, "lun_storage", None) if disk is not None else None
    units = getattr(storage, "logical_units", None) or []
    return [u.id for u in units if getattr(u, "id", None)]


def _display(status: str) -> str:
    """``wait_for_launch`` -> ``WaitForLaunch``: how the engine names a status in its messages."""
    return "".join(part.capitalize() for part in status.split("_"))


def _addresses(name: str) -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(name, None)}
    except OSError:
        return set()


def _is_local(ips: set[str]) -> bool:
    if any(ip.startswith("127.") or ip == "::1" for ip in ips):
        return True
    return bool(ips & _addresses(socket.gethostname()))


def _same_host(a: str, b: str) -> bool:
    """Two server names reach the same machine (same address, or both this machine)."""
    ia, ib = _addresses(a), _addresses(b)
    if not ia or not ib:
        return False
    return bool(ia & ib) or (_is_local(ia) and _is_local(ib))


class Scheduler:
    """Run callables at a time, on a bounded pool: latencies cost no thread while they elapse."""

    def __init__(self, workers: int = 8) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine-task")
        self._thread = threading.Thread(target=self._loop, name="engine-scheduler", daemon=True)
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), fn))
            self._cond.notify()

    def sequence(self, steps: list[tuple[float, Callable[[], None]]]) -> None:
        """Run steps one after the other, each ``delay`` seconds after the previous one finished.

        Status transitions must never overtake each other (``up`` before ``powering_up`` would leave a
        VM stuck), which independent timers on a busy pool cannot promise.
        """
        if not steps:
            return
        (delay, fn), rest = steps[0], steps[1:]

        def run() -> None:
            try:
                fn()
            finally:
                self.sequence(rest)

        self.call_later(delay, run)

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # a background task must never kill the pool; the task records its own failure
            log.exception("engine background task failed")

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = None if not self._heap else self._heap[0][0] - time.monotonic()
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._heap)
            self._pool.submit(self._run, fn)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)


class Engine:
    """One emulated oVirt engine: inventory, storage operations, jobs, events, lab controls."""

    def __init__(self, site: dict[str, Any] | Path | str, state_dir: Path) -> None:
        self.site = load_site(site)
        self.site_name = str(self.site.get("name", "site"))
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_file = self.state_dir / "state.json"
        self.lock = threading.RLock()
        self._dirty = threading.Event()
        self._closing = threading.Event()
        self.latency: dict[str, float] = dict(DEFAULT_LATENCY)
        self.latency.update({k: float(v) for k, v in (self.site.get("latency") or {}).items()})
        self.ovf_interval = float(self.site.get("ovf_update_interval_s", 3600))
        self.token_ttl = float(self.site.get("token_ttl_s", 3600))
        self.users = {u["username"]: u for u in self.site.get("users", [])}
        self.gluster_mounts: dict[str, str] = dict(self.site.get("gluster_mounts") or {})
        self.counters: dict[str, int] = {}
        self.freeze_log: list[dict[str, Any]] = []
        self.write_log: list[dict[str, Any]] = []
        self._write_seq = itertools.count(1)
        self._writer_stop: threading.Event | None = None
        self._writer_thread: threading.Thread | None = None
        self.writer_errors: list[str] = []
        self.sched = Scheduler(workers=int(self.site.get("workers", 8)))
        self._storages: dict[str, DomainStorage] = {}
        if self.state_file.exists():
            self.s = json.loads(self.state_file.read_text())
            self._upgrade_state()
        else:
            self.s = self._state_from_site()
        self._reconcile_storage()
        self.save(now=True)
        self._saver = threading.Thread(target=self._save_loop, name="engine-saver", daemon=True)
        self._saver.start()
        self._ovf_timer = threading.Thread(target=self._ovf_loop, name="engine-ovf-updater", daemon=True)
        self._ovf_timer.start()

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, now: bool = False) -> None:
        if not now:
            self._dirty.set()
            return
        with self.lock:
            text = json.dumps(self.s, default=str)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.state_file)

    def _save_loop(self) -> None:
        while not self._closing.is_set():
            if self._dirty.wait(0.5):
                self._dirty.clear()
                try:
                    self.save(now=True)
                except Exception:  # keep the saver alive; the next change retries
                    log.exception("saving engine state failed")

    def close(self) -> None:
        self.stop_writer()
        self._closing.set()
        self.sched.stop()
        self._saver.join(timeout=5)
        self.save(now=True)

    # ---- building from the site ----------------------------------------------------------------
    def _id(self, kind: str, name: str, given: str | None = None) -> str:
        return str(given) if given else stable_id(self.site_name, kind, name)

    def _state_from_site(self) -> dict[str, Any]:
        site = self.site
        created = now_iso()
        s: dict[str, Any] = {
            "datacenters": {},
            "clusters": {},
            "hosts": {},
            "networks": {},
            "vnic_profiles": {},
            "storage_domains": {},
            "vms": {},
            "disks": {},
            "snapshots": {},
            "templates": {},
            "affinity_groups": {},
            "affinity_labels": {},
            "roles": {},
            "aaa_domains": {},
            "users": {},
            "unregistered": {},
            "permissions": {},
            "luns": {},
            "events": [],
            "jobs": {},
            "next_event_id": 1000,
            "created": created,
            "schema": STATE_SCHEMA,
        }
        by_name: dict[str, dict[str, str]] = {}

        def ref(kind: str, name: str | None, what: str) -> str:
            if name is None:
                raise SiteError(f"{what}: missing {kind} reference")
            if name not in by_name.get(kind, {}):
                raise SiteError(f"{what}: unknown {kind} {name!r}")
            return by_name[kind][name]

        def put(kind: str, coll: str, obj: dict[str, Any]) -> dict[str, Any]:
            s[coll][obj["id"]] = obj
            by_name.setdefault(kind, {})[obj["name"]] = obj["id"]
            return obj

        for dc in site.get("data_centers", []):
            put(
                "dc",
                "datacenters",
                {
                    "id": self._id("dc", dc["name"], dc.get("id")),
                    "name": dc["name"],
                    "description": dc.get("description", ""),
                    "local": False,
                    "version": str(dc.get("version", DEFAULT_COMPAT)),
                    # None: derived like the engine (uninitialized without storage, problematic
                    # without an up host, else up); a site may pin it
                    "status": dc.get("status"),
                },
            )
        for cl in site.get("clusters", []):
            put(
                "cluster",
                "clusters",
                {
                    "id": self._id("cluster", cl["name"], cl.get("id")),
                    "name": cl["name"],
                    "dc_id": ref("dc", cl.get("data_center"), f"cluster {cl['name']}"),
                    "version": str(cl.get("version", DEFAULT_COMPAT)),
                },
            )
        for h in site.get("hosts", []):
            put(
                "host",
                "hosts",
                {
                    "id": self._id("host", h["name"], h.get("id")),
                    "name": h["name"],
                    "address": h.get("address", "127.0.0.1"),
                    "cluster_id": ref("cluster", h.get("cluster"), f"host {h['name']}"),
                    "status": h.get("status", "up"),
                },
            )
        for n in site.get("networks", []):
            put(
                "network",
                "networks",
                {
                    "id": self._id("network", n["name"], n.get("id")),
                    "name": n["name"],
                    "dc_id": ref("dc", n.get("data_center"), f"network {n['name']}"),
                },
            )
        for p in site.get("vnic_profiles", []):
            net = p.get("network", p["name"])
            if net not in by_name.get("network", {}):
                dc_id = next(iter(s["datacenters"]), None)
                put("network", "networks", {"id": self._id("network", net), "name": net, "dc_id": dc_id})
            put(
                "vnic",
                "vnic_profiles",
                {
                    "id": self._id("vnic", f"{net}/{p['name']}", p.get("id")),
                    "name": p["name"],
                    "network_id": by_name["network"][net],
                },
            )
        for r in site.get("roles", []):
            put(
                "role",
                "roles",
                {
                    "id": self._id("role", r["name"], r.get("id")),
                    "name": r["name"],
                    "administrative": bool(r.get("administrative", False)),
                },
            )
        for d in site.get("aaa_domains", []):
            name = d if isinstance(d, str) else d["name"]
            put("aaa", "aaa_domains", {"id": self._id("aaa", name), "name": name})
        for u in site.get("users", []):
            user_name = u["username"]
            put(
                "user",
                "users",
                {
                    "id": self._id("user", user_name, u.get("id")),
                    "name": user_name.split("@")[0],
                    "user_name": user_name,
                    "domain": user_name.split("@")[1] if "@" in user_name else "internal",
                },
            )
        for sd in site.get("storage_domains", []):
            dc_id = (
                ref("dc", sd["data_center"], f"storage domain {sd['name']}")
                if sd.get("data_center")
                else None
            )
            sd_type = str(sd.get("type", "data")).lower()
            storage_type = str(sd.get("storage_type", "glusterfs")).lower()
            put(
                "sd",
                "storage_domains",
                {
                    "id": sd["id"],
                    "name": sd["name"],
                    "address": sd.get("address", ""),
                    "path": sd.get("path", ""),
                    "local_dir": sd.get("local_dir", ""),
                    "dc_id": dc_id,
                    "status": "active" if dc_id else "unattached",
                    "master": bool(sd.get("master", dc_id is not None and sd_type == "data")),
                    "description": sd.get("description", ""),
                    "created_by_site": True,
                    "type": sd_type,
                    "storage_type": storage_type,
                },
            )
        for lun in site.get("luns", []) or []:
            s["luns"][str(lun["id"])] = _lun_from_site(lun)

        def make_disks(owner: str, disks: list[dict[str, Any]], vm_id: str | None) -> list[str]:
            ids = []
            for k, d in enumerate(disks):
                alias = d.get("alias", f"{owner}_disk{k + 1}")
                disk_id = self._id("disk", alias, d.get("id"))
                if d.get("lun_id"):
                    s["disks"][disk_id] = lun_disk(disk_id, alias, d, vm_id, k)
                    ids.append(disk_id)
                    continue
                s["disks"][disk_id] = {
                    "id": disk_id,
                    "alias": alias,
                    "size": int(d.get("size_mib", 64)) * MIB,
                    "format": d.get("format", "cow"),
                    "sd_id": ref("sd", d.get("storage_domain"), f"disk {alias}"),
                    "vm_id": vm_id,
                    "bootable": bool(d.get("bootable", k == 0)),
                    "interface": d.get("interface", "virtio_scsi"),
                    "leaf": self._id("volume", alias + "/base", d.get("volume_id")),
                    "base": self._id("volume", alias + "/base", d.get("volume_id")),
                    "seed": zlib.crc32(disk_id.encode()),
                    "status": "ok",
                }
                ids.append(disk_id)
            return ids

        def lun_disk(
            disk_id: str, alias: str, d: dict[str, Any], vm_id: str | None, k: int
        ) -> dict[str, Any]:
            """A direct LUN disk: no image, no storage domain; the LUN is what the hosts see."""
            lun_id = str(d["lun_id"])
            lun = s["luns"].get(lun_id)
            if lun is None:
                raise SiteError(f"disk {alias}: LUN {lun_id} is not in the site's luns")
            return {
                "id": disk_id,
                "alias": alias,
                "description": d.get("description", ""),
                "storage_type": "lun",
                "lun_id": lun_id,
                "lun": copy.deepcopy(lun),
                "size": int(lun.get("size", 0)),
                "format": "raw",
                "sd_id": None,
                "vm_id": vm_id,
                "bootable": bool(d.get("bootable", False)),
                "interface": d.get("interface", "virtio_scsi"),
                "shareable": bool(d.get("shareable", False)),
                "status": "ok",
            }

        for t in site.get("templates", []) or []:
            tid = self._id("template", t["name"], t.get("id"))
            put(
                "template",
                "templates",
                {
                    "id": tid,
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "cluster_id": ref("cluster", t.get("cluster"), f"template {t['name']}")
                    if t.get("cluster")
                    else None,
                    "memory": int(t.get("memory_mib", 1024)) * MIB,
                    "cpus": int(t.get("cpus", 1)),
                    "status": "ok",
                    "disk_ids": make_disks(t["name"], t.get("disks", []), None),
                    "nics": [],
                    "created": created,
                },
            )
        for v in site.get("vms", []):
            vm_id = self._id("vm", v["name"], v.get("id"))
            cluster_id = ref("cluster", v.get("cluster", site["clusters"][0]["name"]), f"vm {v['name']}")
            nics = []
            for n in v.get("nics", []):
                nics.append(
                    {
                        "id": self._id("nic", f"{v['name']}/{n['name']}", n.get("id")),
                        "name": n["name"],
                        "mac": n.get("mac", ""),
                        "vnic_profile_id": ref("vnic", n["vnic_profile"], f"vm {v['name']} nic")
                        if n.get("vnic_profile")
                        else None,
                    }
                )
            disk_ids = make_disks(v["name"], v.get("disks", []), vm_id)
            status = v.get("status", "down")
            hosts = [h for h in s["hosts"].values() if h["cluster_id"] == cluster_id]
            put(
                "vm",
                "vms",
                {
                    "id": vm_id,
                    "name": v["name"],
                    "description": v.get("description", ""),
                    "cluster_id": cluster_id,
                    "status": status,
                    "host_id": hosts[0]["id"] if hosts and status == "up" else None,
                    "memory": int(v.get("memory_mib", 1024)) * MIB,
                    "cpus": int(v.get("cpus", 1)),
                    "ha": bool(v.get("ha", False)),
                    "priority": int(v.get("priority", 0)),
                    "template_id": ref("template", v["template"], f"vm {v['name']}")
                    if v.get("template")
                    else None,
                    "nics": nics,
                    "disk_ids": disk_ids,
                    "active_snapshot_id": self._id("snapshot", v["name"] + "/active"),
                    "created": created,
                    "start_time": created if status == "up" else None,
                },
            )
        make_disks("floating", site.get("disks", []) or [], None)
        for v in site.get("vms", []):
            for perm in v.get("permissions", []) or []:
                self._put_permission(s, ref("vm", v["name"], "vm"), perm, f"vm {v['name']} permission")
        for g in site.get("affinity_groups", []):
            cluster_id = ref(
                "cluster", g.get("cluster", site["clusters"][0]["name"]), f"affinity group {g['name']}"
            )
            put(
                "ag",
                "affinity_groups",
                {
                    "id": self._id("ag", g["name"], g.get("id")),
                    "name": g["name"],
                    "cluster_id": cluster_id,
                    "vm_ids": [ref("vm", n, f"affinity group {g['name']}") for n in g.get("vms", [])],
                    "positive": bool(g.get("positive", True)),
                    "enforcing": bool(g.get("enforcing", False)),
                },
            )
        for lab in site.get("affinity_labels", []):
            put(
                "al",
                "affinity_labels",
                {
                    "id": self._id("al", lab["name"], lab.get("id")),
                    "name": lab["name"],
                    "vm_ids": [ref("vm", n, f"affinity label {lab['name']}") for n in lab.get("vms", [])],
                    "host_ids": [
                        ref("host", n, f"affinity label {lab['name']}") for n in lab.get("hosts", [])
                    ],
                },
            )
        return s

    def _put_permission(
        self, s: dict[str, Any], vm_id: str, perm: dict[str, Any], what: str
    ) -> dict[str, Any]:
        """A permission of a site user (``user: name@domain``) with a site role on a VM."""
        user_name, role_name = perm.get("user"), perm.get("role")
        user = next((u for u in s["users"].values() if u["user_name"] == user_name), None)
        role = next((r for r in s["roles"].values() if r["name"] == role_name), None)
        if user is None:
            raise SiteError(f"{what}: unknown user {user_name!r} (add it to the site's users)")
        if role is None:
            raise SiteError(f"{what}: unknown role {role_name!r}")
        pid = stable_id(self.site_name, "permission", vm_id, user["id"], role["id"])
        s["permissions"][pid] = {"id": pid, "user_id": user["id"], "role_id": role["id"], "vm_id": vm_id}
        return s["permissions"][pid]

    def _upgrade_state(self) -> None:
        """Bring a state.json of an older layout up to ``STATE_SCHEMA`` from the site file.

        Only what the old layout could not hold is added (permissions of VMs still here, users, roles,
        LUNs, LUN disks, cluster/DC versions, the type of each domain, site domains it lacks such as a
        hosted-engine or export domain); nothing the state already has is changed, and nothing that was
        removed on purpose (a VM, a domain the engine imported) comes back.
        """
        s = self.s
        if int(s.get("schema", 1)) >= STATE_SCHEMA:
            return
        fresh = self._state_from_site()
        for coll in ("permissions", "luns"):
            s.setdefault(coll, {})
        for coll in ("users", "roles", "aaa_domains", "luns"):
            for oid, obj in fresh[coll].items():
                if oid not in s[coll] and not self.find_by_name(coll, obj.get("name", "")):
                    s[coll][oid] = obj
        for coll, keys in (("clusters", ("version",)), ("datacenters", ("version", "status"))):
            for oid, obj in s[coll].items():
                for key in keys:
                    obj.setdefault(
                        key, fresh[coll].get(oid, {}).get(key, DEFAULT_COMPAT if key == "version" else None)
                    )
        for sd in s["storage_domains"].values():
            sd.setdefault("type", "data")
            sd.setdefault("storage_type", "glusterfs")
        for sd_id, sd in fresh["storage_domains"].items():
            if sd_id not in s["storage_domains"] and (
                sd["storage_type"] != "glusterfs" or sd["type"] != "data"
            ):
                s["storage_domains"][sd_id] = sd
        for disk_id, disk in fresh["disks"].items():
            if disk.get("storage_type") != "lun" or disk_id in s["disks"]:
                continue
            vm = s["vms"].get(disk["vm_id"] or "")
            if disk["vm_id"] and vm is None:
                continue
            s["disks"][disk_id] = disk
            if vm is not None and disk_id not in vm["disk_ids"]:
                vm["disk_ids"].append(disk_id)
        for pid, perm in fresh["permissions"].items():
            if pid not in s["permissions"] and perm["vm_id"] in s["vms"] and perm["user_id"] in s["users"]:
                s["permissions"][pid] = perm
        s["schema"] = STATE_SCHEMA
        log.info("engine state upgraded to schema %d from the site file", STATE_SCHEMA)

    # ---- storage -------------------------------------------------------------------------------
    def remote_path(self, sd: dict[str, Any]) -> str:
        return f"{sd.get('address', '')}:{sd.get('path', '')}"

    @staticmethod
    def has_files(sd: dict[str, Any]) -> bool:
        """The domain is one whose files the emulator keeps (a GlusterFS data domain with a directory).

        Other domains of a site (a hosted-engine domain on NFS, an export domain) are inventory only:
        listed, attached, never written.
        """
        return (
            sd.get("storage_type", "glusterfs") == "glusterfs"
            and sd.get("type", "data") == "data"
            and bool(sd.get("local_dir"))
        )

    def storage(self, sd_id: str) -> DomainStorage:
        """The DomainStorage of a known domain (its directory: ``<local_dir>/<sd_id>``)."""
        with self.lock:
            ds = self._storages.get(sd_id)
            if ds is not None:
                return ds
            sd = self.s["storage_domains"][sd_id]
            root = require_path(sd.get("local_dir"), f"storage domain {sd['name']} local_dir")
            ds = DomainStorage(
                root, sd_id, sd["name"], self.remote_path(sd), "Master" if sd.get("master") else "Regular"
            )
            self._storages[sd_id] = ds
            return ds

    def _reconcile_storage(self) -> None:
        """Create missing site domains and VM disks; re-read chains of existing ones (files win)."""
        for sd in list(self.s["storage_domains"].values()):
            if not sd.get("created_by_site") or not self.has_files(sd):
                continue
            ds = self.storage(sd["id"])
            if not ds.exists():
                ds.root.mkdir(parents=True, exist_ok=True)
                ds.create()
            present = set(ds.image_ids())
            for disk in self.s["disks"].values():
                if disk["sd_id"] != sd["id"]:
                    continue
                if disk["id"] not in present:
                    ds.create_volume(
                        disk["id"],
                        disk["base"],
                        disk["size"],
                        disk["format"],
                        description=json.dumps({"DiskAlias": disk["alias"], "DiskDescription": ""}),
                        fill_seed=disk["seed"],
                    )
                    disk["leaf"] = disk["base"]
                    self._drop_snapshots_of_disk(disk["id"])
                else:
                    try:
                        chain = ds.chain(disk["id"])
                    except StorageError as exc:
                        log.warning("disk %s: %s", disk["alias"], exc)
                        continue
                    disk["leaf"] = chain[-1]
                    for snap in list(self.s["snapshots"].values()):
                        vol = snap["volumes"].get(disk["id"])
                        if vol is not None and vol not in chain:
                            self.s["snapshots"].pop(snap["id"], None)
        # Snapshots interrupted by a restart are settled: locked creations are dropped, merges retried.
        for snap in list(self.s["snapshots"].values()):
            if snap["status"] == "locked":
                if snap.get("removing"):
                    self.sched.call_later(0.1, lambda sid=snap["id"]: self._do_merge(sid, None))
                elif not snap.get("created"):
                    self.s["snapshots"].pop(snap["id"], None)
                else:
                    snap["status"] = "ok"

    def _drop_snapshots_of_disk(self, disk_id: str) -> None:
        for snap in list(self.s["snapshots"].values()):
            if disk_id in snap["volumes"]:
                self.s["snapshots"].pop(snap["id"], None)

    def resolve_mount(self, address: str, path: str) -> Path:
        """Where ``address:path`` is mounted here (site ``gluster_mounts`` or a site domain's local_dir).

        The address matches when it is the same name, or when both names resolve to the same machine (in
        the lab the Gluster host is this machine under its hostname, ``127.0.0.1`` or ``localhost``, as
        a real host reaches one Gluster server under any of its names).
        """
        path = "/" + path.strip("/")
        candidates: list[tuple[str, str, str]] = [
            (remote.partition(":")[0], "/" + remote.partition(":")[2].strip("/"), local)
            for remote, local in self.gluster_mounts.items()
        ]
        candidates += [
            (sd.get("address", ""), "/" + sd.get("path", "").strip("/"), sd.get("local_dir", ""))
            for sd in self.site.get("storage_domains", [])
        ]
        same_path = [(addr, local) for addr, p, local in candidates if p == path]
        for addr, local in same_path:
            if addr == address:
                return require_path(local, f"mount of {addr}:{path}")
        for addr, local in same_path:
            if _same_host(addr, address):
                return require_path(local, f"mount of {addr}:{path}")
        raise conflict(
            f"Cannot connect to storage server {address}:{path}: the path is not mounted on any host"
        )

    # ---- events and jobs -----------------------------------------------------------------------
    def add_event(
        self,
        description: str,
        code: int = 0,
        severity: str = "normal",
        origin: str = "oVirt",
        custom_id: int = -1,
        vm_id: str | None = None,
        sd_id: str | None = None,
        correlation_id: str | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            eid = self.s["next_event_id"]
            self.s["next_event_id"] = eid + 1
            ev = {
                "id": eid,
                "code": code,
                "description": description,
                "severity": severity,
                "origin": origin,
                "custom_id": custom_id,
                "time": now_iso(),
                "vm_id": vm_id,
                "sd_id": sd_id,
                "correlation_id": correlation_id,
            }
            self.s["events"].append(ev)
            if len(self.s["events"]) > MAX_EVENTS:
                del self.s["events"][: len(self.s["events"]) - MAX_EVENTS]
            self.save()
            return ev

    def new_job(self, description: str, correlation_id: str | None = None) -> dict[str, Any]:
        with self.lock:
            now = now_iso()
            job = {
                "id": str(uuid.uuid4()),
                "description": description,
                "status": "started",
                "start_time": now,
                "end_time": None,
                "last_updated": now,
                "correlation_id": correlation_id or str(uuid.uuid4())[:8],
                "steps": [
                    {
                        "id": str(uuid.uuid4()),
                        "description": "Executing",
                        "type": "executing",
                        "status": "started",
                        "start_time": now,
                        "end_time": None,
                        "number": 1,
                    }
                ],
            }
            self.s["jobs"][job["id"]] = job
            if len(self.s["jobs"]) > MAX_JOBS:
                for old in sorted(self.s["jobs"].values(), key=lambda j: j["start_time"])[
                    : len(self.s["jobs"]) - MAX_JOBS
                ]:
                    self.s["jobs"].pop(old["id"], None)
            self.save()
            return job

    def end_job(self, job: dict[str, Any], ok: bool) -> None:
        with self.lock:
            now = now_iso()
            job["status"] = "finished" if ok else "failed"
            job["end_time"] = now
            job["last_updated"] = now
            for step in job["steps"]:
                step["status"] = job["status"]
                step["end_time"] = now
            self.save()

    # ---- lookups -------------------------------------------------------------------------------
    def get(self, coll: str, obj_id: str) -> dict[str, Any]:
        obj = self.s[coll].get(obj_id)
        if obj is None:
            raise not_found()
        return obj

    def find_by_name(self, coll: str, name: str) -> dict[str, Any] | None:
        for obj in self.s[coll].values():
            if obj.get("name") == name:
                return obj
        return None

    def lookup(self, coll: str, ref_id: str | None, ref_name: str | None, what: str) -> dict[str, Any]:
        """An entity referenced by id or name in a request; unknown -> 404 fault like the REST layer."""
        if ref_id and ref_id in self.s[coll]:
            return self.s[coll][ref_id]
        if ref_name:
            found = self.find_by_name(coll, ref_name)
            if found:
                return found
        key = f"id={ref_id}" if ref_id else f"name={ref_name}"
        raise EngineFault(404, f"Entity not found: {what}: {key}")

    def vm_sd_ids(self, vm: dict[str, Any]) -> list[str]:
        return [
            self.s["disks"][d]["sd_id"]
            for d in vm["disk_ids"]
            if d in self.s["disks"] and self.s["disks"][d].get("sd_id")
        ]

    def image_disk_ids(self, obj: dict[str, Any]) -> list[str]:
        """The VM's (template's) image disks: what snapshots, merges, chain checks and writes act on.

        Direct LUN disks are left out: they have no image on any domain (the engine never snapshots them).
        """
        return [
            d
            for d in obj.get("disk_ids", [])
            if d in self.s["disks"] and self.s["disks"][d].get("storage_type", "image") != "lun"
        ]

    def vm_permissions(self, vm_id: str) -> list[dict[str, Any]]:
        return sorted(
            (p for p in self.s.get("permissions", {}).values() if p["vm_id"] == vm_id), key=lambda p: p["id"]
        )

    def _drop_vm_permissions(self, vm_id: str) -> None:
        for perm in self.vm_permissions(vm_id):
            self.s["permissions"].pop(perm["id"], None)

    # ---- VM power ------------------------------------------------------------------------------
    def _set_vm_status(self, vm_id: str, status: str, expect: set[str] | None = None) -> None:
        with self.lock:
            vm = self.s["vms"].get(vm_id)
            if vm is None or (expect is not None and vm["status"] not in expect):
                return
            vm["status"] = status
            if status == "down":
                vm["host_id"] = None
                vm["start_time"] = None
            self.save()

    def start_vm(self, vm_id: str) -> None:
        with self.lock:
            vm = self.get("vms", vm_id)
            if vm["status"] != "down":
                raise conflict(f"Cannot run VM. VM {vm['name']} is {_display(vm['status'])}")
            cluster = self.s["clusters"].get(vm["cluster_id"])
            hosts = [
                h
                for h in self.s["hosts"].values()
                if h["cluster_id"] == vm["cluster_id"] and h["status"] == "up"
            ]
            if cluster is None or not hosts:
                raise conflict(
                    "Cannot run VM. There is no host that satisfies current scheduling constraints"
                )
            disks = [self.s["disks"][d] for d in self.image_disk_ids(vm)]
            for disk in disks:
                sd = self.s["storage_domains"].get(disk["sd_id"])
                if sd is None or sd.get("dc_id") != cluster["dc_id"] or sd.get("status") != "active":
                    name = sd["name"] if sd else disk["sd_id"]
                    raise conflict(
                        f"Cannot run VM. Storage Domain {name} of disk {disk['alias']} is not active"
                    )
            vm["status"] = "wait_for_launch"  # claims the VM so a concurrent start gets 409
        problems: list[str] = []
        for disk in disks:
            ds = self.storage(disk["sd_id"])
            try:
                chain = ds.chain(disk["id"])
                if disk["leaf"] not in chain:
                    problems.append(
                        f"disk {disk['alias']}: volume {disk['leaf']} is not in its chain {chain}"
                    )
                problems += [f"disk {disk['alias']}: {p}" for p in ds.check_chain(disk["id"])]
            except StorageError as exc:
                problems.append(f"disk {disk['alias']}: {exc}")
        if problems:
            self._set_vm_status(vm_id, "down")
            self.add_event(
                f"Failed to run VM {vm['name']}: {'; '.join(problems)}",
                code=128,
                severity="error",
                vm_id=vm_id,
            )
            raise conflict(f"Cannot run VM. The VM has illegal or broken disk images: {'; '.join(problems)}")
        with self.lock:
            vm["host_id"] = hosts[0]["id"]
            self.save()
        lat = self.latency.get("start", 0.6)
        self.add_event(
            f"VM {vm['name']} was started by admin@internal-authz (Host: {hosts[0]['name']}).",
            code=153,
            vm_id=vm_id,
        )

        def up() -> None:
            with self.lock:
                if vm["status"] == "powering_up":
                    vm["status"] = "up"
                    vm["start_time"] = now_iso()
                    self.save()
            self.add_event(f"VM {vm['name']} started on Host {hosts[0]['name']}", code=32, vm_id=vm_id)

        self.sched.sequence(
            [(lat / 2, lambda: self._set_vm_status(vm_id, "powering_up", {"wait_for_launch"})), (lat / 2, up)]
        )

    def stop_vm(self, vm_id: str, verb: str) -> None:
        with self.lock:
            vm = self.get("vms", vm_id)
            if vm["status"] in {"down", "powering_down"}:
                raise conflict(f"Cannot {verb} VM. VM {vm['name']} is not running")
            vm["status"] = "powering_down"
            self.save()
        self.sched.call_later(self.latency.get("stop", 0.3), lambda: self._set_vm_status(vm_id, "down"))
        self.add_event(f"VM {vm['name']} is down.", code=61, vm_id=vm_id)

    def freeze(self, vm_id: str, action: str) -> None:
        with self.lock:
            vm = self.get("vms", vm_id)
            if vm["status"] != "up":
                raise conflict(f"Cannot {action} VM because the VM is in {_display(vm['status'])} status.")
            self.freeze_log.append(
                {"time": now_iso(), "vm_id": vm_id, "vm_name": vm["name"], "action": action}
            )

    def remove_vm(self, vm_id: str, detach_only: bool) -> None:
        with self.lock:
            vm = self.get("vms", vm_id)
            if vm["status"] != "down":
                raise conflict(f"Cannot remove VM. VM {vm['name']} is running.")
            images = set(self.image_disk_ids(vm))
            disks = [self.s["disks"].pop(d) for d in vm["disk_ids"] if d in self.s["disks"]]
            disks = [d for d in disks if d["id"] in images]
            self._drop_vm_permissions(vm_id)
            for snap in list(self.s["snapshots"].values()):
                if snap["vm_id"] == vm_id:
                    self.s["snapshots"].pop(snap["id"])
            for group in list(self.s["affinity_groups"].values()) + list(self.s["affinity_labels"].values()):
                if vm_id in group["vm_ids"]:
                    group["vm_ids"].remove(vm_id)
            self.s["vms"].pop(vm_id)
            self.save()
        if not detach_only:
            for disk in disks:
                try:
                    self.storage(disk["sd_id"]).delete_image(disk["id"])
                except (StorageError, KeyError, SiteError) as exc:
                    log.warning("removing disk %s: %s", disk["alias"], exc)
        self.add_event(f"VM {vm['name']} was successfully removed.", code=113)

    # ---- snapshots -----------------------------------------------------------------------------
    def vm_snapshots(self, vm_id: str) -> list[dict[str, Any]]:
        """The VM's snapshots, oldest first, ending with the "Active VM" entry (as the engine lists them)."""
        vm = self.get("vms", vm_id)
        snaps = sorted(
            (s for s in self.s["snapshots"].values() if s["vm_id"] == vm_id), key=lambda s: s["date"]
        )
        active = {
            "id": vm["active_snapshot_id"],
            "vm_id": vm_id,
            "description": "Active VM",
            "type": "active",
            "status": "ok",
            "date": vm["created"],
            "persist_memorystate": False,
            "volumes": {d: self.s["disks"][d]["leaf"] for d in self.image_disk_ids(vm)},
        }
        return [*snaps, active]

    def get_snapshot(self, vm_id: str, snap_id: str) -> dict[str, Any]:
        for snap in self.vm_snapshots(vm_id):
            if snap["id"] == snap_id:
                return snap
        raise not_found()

    def add_snapshot(
        self,
        vm_id: str,
        description: str | None,
        persist_memory: bool,
        disk_ids: list[str] | None,
        correlation_id: str | None,
    ) -> dict[str, Any]:
        with self.lock:
            vm = self.get("vms", vm_id)
            if not description:
                raise incomplete("Snapshot", ["description"])
            for snap in self.s["snapshots"].values():
                if snap["vm_id"] == vm_id and snap["status"] == "locked":
                    raise conflict(
                        f"Cannot create Snapshot. Snapshot is currently being created for VM {vm['name']}."
                    )
                if snap["vm_id"] == vm_id and snap["status"] == "in_preview":
                    raise conflict(f"Cannot create Snapshot. VM {vm['name']} is previewing a Snapshot.")
            images = self.image_disk_ids(vm)
            if disk_ids is None:
                disk_ids = images
            for d in disk_ids:
                if d not in vm["disk_ids"]:
                    raise conflict(f"Cannot create Snapshot. Disk {d} is not attached to VM {vm['name']}.")
                if d not in images:
                    raise conflict(
                        f"Cannot create Snapshot. Disk {self.s['disks'][d]['alias']} is a direct LUN disk "
                        "(only image disks can be snapshotted)."
                    )
            snap = {
                "id": str(uuid.uuid4()),
                "vm_id": vm_id,
                "description": description,
                "type": "regular",
                "status": "locked",
                "date": now_iso(),
                "persist_memorystate": bool(persist_memory and vm["status"] == "up"),
                "volumes": {d: self.s["disks"][d]["leaf"] for d in disk_ids},
                "created": False,
            }
            self.s["snapshots"][snap["id"]] = snap
            job = self.new_job(f"Creating VM Snapshot {description} for VM {vm['name']}", correlation_id)
            snap["job_id"] = job["id"]
            self.save()
        self.add_event(
            f"Snapshot '{description}' creation for VM '{vm['name']}' was initiated by admin@internal-authz.",
            code=45,
            vm_id=vm_id,
            correlation_id=job["correlation_id"],
        )
        self.sched.call_later(self.latency.get("snapshot", 0.3), lambda: self._do_snapshot(snap["id"]))
        return snap

    @contextmanager
    def _disk_locks(self, disk_ids: list[str]) -> Iterator[None]:
        """Hold the image locks of several disks in a fixed order (no deadlock with other multi-disk ops)."""
        locks = []
        try:
            for d in sorted(disk_ids):
                disk = self.s["disks"].get(d)
                if disk is None:
                    continue
                cm = self.storage(disk["sd_id"]).image_lock(d)
                cm.__enter__()
                locks.append(cm)
            yield
        finally:
            for cm in reversed(locks):
                cm.__exit__(None, None, None)

    def _do_snapshot(self, snap_id: str) -> None:
        snap = self.s["snapshots"].get(snap_id)
        if snap is None:
            return
        vm = self.s["vms"].get(snap["vm_id"])
        job = self.s["jobs"].get(snap.get("job_id", ""))
        done: list[tuple[str, str, str]] = []
        error = None
        with self._disk_locks(list(snap["volumes"])):
            try:
                for disk_id in sorted(snap["volumes"]):
                    disk = self.s["disks"][disk_id]
                    parent = disk["leaf"]
                    new = str(uuid.uuid4())
                    self.storage(disk["sd_id"]).snapshot_volume(disk_id, parent, new)
                    done.append((disk_id, parent, new))
                    with self.lock:
                        snap["volumes"][disk_id] = parent
                        disk["leaf"] = new
            except (StorageError, KeyError, OSError) as exc:
                error = str(exc)
                for disk_id, parent, _new in reversed(done):  # roll back: the snapshot fails as a whole
                    try:
                        self.storage(self.s["disks"][disk_id]["sd_id"]).merge(disk_id, parent)
                        self.s["disks"][disk_id]["leaf"] = parent
                    except (StorageError, KeyError) as exc2:
                        log.error("rollback of snapshot %s on disk %s failed: %s", snap_id, disk_id, exc2)
        name = vm["name"] if vm else snap["vm_id"]
        with self.lock:
            if error is None:
                snap["status"] = "ok"
                snap["created"] = True
            else:
                self.s["snapshots"].pop(snap_id, None)
            self.save()
        if job:
            self.end_job(job, error is None)
        if error is None:
            self.add_event(
                f"Snapshot '{snap['description']}' creation for VM '{name}' has been completed.",
                code=68,
                vm_id=snap["vm_id"],
                correlation_id=job["correlation_id"] if job else None,
            )
        else:
            self.add_event(
                f"Failed to complete snapshot '{snap['description']}' creation for VM '{name}': {error}",
                code=69,
                severity="error",
                vm_id=snap["vm_id"],
            )

    def remove_snapshot(self, vm_id: str, snap_id: str, correlation_id: str | None) -> dict[str, Any]:
        with self.lock:
            vm = self.get("vms", vm_id)
            snap = self.s["snapshots"].get(snap_id)
            if snap is None or snap["vm_id"] != vm_id:
                if snap_id == vm["active_snapshot_id"]:
                    raise conflict("Cannot remove Snapshot. The active snapshot cannot be removed.")
                raise not_found()
            if snap["status"] == "locked":
                raise conflict(
                    f"Cannot remove Snapshot. Snapshot is currently being created or removed for VM {vm['name']}."
                )
            if snap["status"] == "in_preview":
                raise conflict(f"Cannot remove Snapshot. VM {vm['name']} is previewing a Snapshot.")
            snap["status"] = "locked"
            snap["removing"] = True
            job = self.new_job(f"Removing Snapshot {snap['description']} of VM {vm['name']}", correlation_id)
            self.save()
        self.add_event(
            f"Snapshot '{snap['description']}' deletion for VM '{vm['name']}' was initiated by admin@internal-authz.",
            code=342,
            vm_id=vm_id,
            correlation_id=job["correlation_id"],
        )
        self.sched.call_later(self.latency.get("merge", 0.5), lambda: self._do_merge(snap_id, job))
        return job

    def _do_merge(self, snap_id: str, job: dict[str, Any] | None) -> None:
        snap = self.s["snapshots"].get(snap_id)
        if snap is None:
            return
        error = None
        with self._disk_locks(list(snap["volumes"])):
            for disk_id, vol in sorted(snap["volumes"].items()):
                disk = self.s["disks"].get(disk_id)
                if disk is None:
                    continue
                ds = self.storage(disk["sd_id"])
                try:
                    chain = ds.chain(disk_id)
                    if vol not in chain or vol == chain[-1]:
                        continue  # already merged (a retried merge after a restart)
                    child = chain[chain.index(vol) + 1]
                    ds.merge(disk_id, vol)
                except (StorageError, OSError) as exc:
                    error = f"disk {disk['alias']}: {exc}"
                    break
                with self.lock:
                    if disk["leaf"] == child:
                        disk["leaf"] = vol
                    for other in self.s["snapshots"].values():
                        if other["id"] != snap_id and other["volumes"].get(disk_id) == child:
                            other["volumes"][disk_id] = vol
                    del snap["volumes"][disk_id]
                    self.save()
        vm = self.s["vms"].get(snap["vm_id"])
        name = vm["name"] if vm else snap["vm_id"]
        with self.lock:
            if error is None:
                self.s["snapshots"].pop(snap_id, None)
            else:
                snap["status"] = "ok"
                snap.pop("removing", None)
            self.save()
        if job:
            self.end_job(job, error is None)
        if error is None:
            self.add_event(
                f"Snapshot '{snap['description']}' deletion for VM '{name}' has been completed.",
                code=356,
                vm_id=snap["vm_id"],
                correlation_id=job["correlation_id"] if job else None,
            )
        else:
            self.add_event(
                f"Failed to delete snapshot '{snap['description']}' for VM '{name}': {error}",
                code=357,
                severity="error",
                vm_id=snap["vm_id"],
            )

    # ---- guest writer --------------------------------------------------------------------------
    def guest_write(self, vm_id: str, disk_id: str, offset: int, length: int, pattern: int) -> dict[str, Any]:
        with self.lock:
            vm = self.get("vms", vm_id)
            if disk_id not in vm["disk_ids"]:
                raise EngineFault(404, f"disk {disk_id} is not attached to VM {vm['name']}")
            if disk_id not in self.image_disk_ids(vm):
                raise EngineFault(
                    400, f"disk {disk_id} of VM {vm['name']} is a direct LUN disk: not emulated"
                )
            if vm["status"] != "up":
                raise conflict(f"Cannot write into VM {vm['name']}: it is {_display(vm['status'])}")
            disk = self.s["disks"][disk_id]
        ds = self.storage(disk["sd_id"])
        with ds.image_lock(disk_id):
            volume = disk["leaf"]
            try:
                ds.guest_write(disk_id, volume, offset, length, pattern)
            except StorageError as exc:
                raise EngineFault(400, str(exc)) from exc
            entry = {
                "seq": next(self._write_seq),
                "time": now_iso(),
                "vm_id": vm_id,
                "disk_id": disk_id,
                "volume_id": volume,
                "offset": offset,
                "length": length,
                "pattern": pattern,
            }
            with self.lock:
                self.write_log.append(entry)
                if len(self.write_log) > MAX_WRITES:
                    del self.write_log[: len(self.write_log) - MAX_WRITES]
        return entry

    def start_writer(self, vm_ids: list[str], interval_s: float, block_size: int) -> None:
        """One background thread writing a block per disk of each VM every ``interval_s`` seconds."""
        self.stop_writer()
        for vm_id in vm_ids:
            self.get("vms", vm_id)
        if block_size <= 0 or block_size % 512:
            raise EngineFault(400, "block_size must be a positive multiple of 512")
        stop = threading.Event()
        rng = random.Random(0xD15C)

        def loop() -> None:
            pattern = 0
            while not stop.is_set():
                for vm_id in vm_ids:
                    vm = self.s["vms"].get(vm_id)
                    if vm is None or vm["status"] != "up":
                        continue
                    for disk_id in self.image_disk_ids(vm):
                        disk = self.s["disks"].get(disk_id)
                        if disk is None or stop.is_set():
                            continue
                        pattern = pattern % 255 + 1
                        offset = rng.randrange(0, max(1, disk["size"] // block_size)) * block_size
                        try:
                            self.guest_write(
                                vm_id, disk_id, offset, min(block_size, disk["size"] - offset), pattern
                            )
                        except EngineFault as exc:
                            self.writer_errors.append(f"{vm_id}/{disk_id}: {exc}")
                        except Exception as exc:  # keep writing the other disks; the error is reported
                            self.writer_errors.append(f"{vm_id}/{disk_id}: {exc}")
                stop.wait(interval_s)

        self._writer_stop = stop
        self._writer_thread = threading.Thread(target=loop, name="engine-guest-writer", daemon=True)
        self._writer_thread.start()

    def stop_writer(self) -> None:
        if self._writer_stop is not None:
            self._writer_stop.set()
        if self._writer_thread is not None:
            self._writer_thread.join(timeout=30)
        self._writer_stop = None
        self._writer_thread = None

    # ---- OVF -----------------------------------------------------------------------------------
    def entity_dict(self, obj: dict[str, Any], kind: str) -> dict[str, Any]:
        """A VM/template in the shape ``ovf.build_ovf`` takes (names, not ids, for cross-site mapping)."""
        cluster = self.s["clusters"].get(obj.get("cluster_id") or "")
        nics = []
        for n in obj.get("nics", []):
            prof = self.s["vnic_profiles"].get(n.get("vnic_profile_id") or "")
            net = self.s["networks"].get(prof["network_id"]) if prof else None
            nics.append(
                {
                    "name": n["name"],
                    "network": net["name"] if net else "",
                    "vnic_profile": prof["name"] if prof else "",
                    "mac": n.get("mac", ""),
                }
            )
        disks = []
        luns = []
        for d in obj.get("disk_ids", []):
            disk = self.s["disks"].get(d)
            if disk is None:
                continue
            if disk.get("storage_type") == "lun":
                luns.append(
                    {
                        "disk_id": d,
                        "alias": disk["alias"],
                        "description": disk.get("description", ""),
                        "bootable": disk["bootable"],
                        "interface": disk["interface"],
                        "shareable": disk.get("shareable", False),
                        "lun": copy.deepcopy(disk["lun"]),
                    }
                )
                continue
            disks.append(
                {
                    "disk_id": d,
                    "image_id": d,
                    "volume_id": disk["leaf"],
                    "size": disk["size"],
                    "format": disk["format"],
                    "storage_domain_id": disk["sd_id"],
                    "alias": disk["alias"],
                    "bootable": disk["bootable"],
                    "interface": disk["interface"],
                }
            )
        return {
            "id": obj["id"],
            "name": obj["name"],
            "kind": kind,
            "cluster": cluster["name"] if cluster else "",
            "memory": obj.get("memory", 1024 * MIB),
            "cpus": obj.get("cpus", 1),
            "description": obj.get("description", ""),
            "ha": bool(obj.get("ha", False)),
            "priority": int(obj.get("priority", 0)),
            "nics": nics,
            "disks": disks,
            "luns": luns,
            "users": self._ovf_users(obj["id"]),
            "affinity_groups": sorted(
                g["name"] for g in self.s["affinity_groups"].values() if obj["id"] in g["vm_ids"]
            ),
            "affinity_labels": sorted(
                g["name"] for g in self.s["affinity_labels"].values() if obj["id"] in g["vm_ids"]
            ),
            "template_id": obj.get("template_id"),
        }

    def _ovf_users(self, entity_id: str) -> list[dict[str, Any]]:
        """Users with permissions on the entity and their role names, as ``OvfWriter.writeUserData``."""
        by_user: dict[str, set[str]] = {}
        for perm in self.vm_permissions(entity_id):
            user = self.s["users"].get(perm["user_id"])
            role = self.s["roles"].get(perm["role_id"])
            if user is None or role is None:
                continue
            by_user.setdefault(f"{user['name']}@{user['domain']}", set()).add(role["name"])
        return [{"user_domain": u, "roles": sorted(r)} for u, r in sorted(by_user.items())]

    def write_ovf(self, sd_id: str) -> int:
        """Write every VM/template with a disk on the domain into its OVF_STORE; returns the count."""
        with self.lock:
            sd = self.get("storage_domains", sd_id)
            ovfs: dict[str, str] = {}
            status: dict[str, int] = {}
            for vm in self.s["vms"].values():
                if sd_id in self.vm_sd_ids(vm):
                    ovfs[vm["id"]] = ovf_mod.build_ovf(self.entity_dict(vm, "vm"))
                    status[vm["id"]] = VM_STATUS_NUM.get(vm["status"], 0)
            for tpl in self.s["templates"].values():
                if sd_id in [
                    self.s["disks"][d]["sd_id"] for d in tpl.get("disk_ids", []) if d in self.s["disks"]
                ]:
                    ovfs[tpl["id"]] = ovf_mod.build_ovf(self.entity_dict(tpl, "template"))
        self.storage(sd_id).write_ovf_store(ovfs, status)
        with self.lock:
            sd["ovf_updated"] = now_iso()
            self.save()
        return len(ovfs)

    def update_ovf_store(self, sd_id: str, correlation_id: str | None = None) -> dict[str, Any]:
        with self.lock:
            sd = self.get("storage_domains", sd_id)
            if sd.get("status") != "active":
                raise conflict(
                    f"Cannot update OVF store. Storage Domain {sd['name']} status is {_display(sd.get('status') or 'unattached')}"
                )
            job = self.new_job(f"Updating OVF_STORE of Storage Domain {sd['name']}", correlation_id)

        def work() -> None:
            try:
                self.write_ovf(sd_id)
            except (StorageError, OSError, SiteError) as exc:
                self.end_job(job, False)
                self.add_event(
                    f"Failed to update OVF disks of Storage Domain {sd['name']}: {exc}",
                    code=1016,
                    severity="error",
                    sd_id=sd_id,
                )
                return
            self.end_job(job, True)
            self.add_event(
                f"OVF_STORE for domain {sd['name']} was updated by admin@internal-authz.",
                code=199,
                sd_id=sd_id,
                correlation_id=job["correlation_id"],
            )

        self.sched.call_later(self.latency.get("ovf_update", 0.3), work)
        return job

    def _ovf_loop(self) -> None:
        """The engine's own periodic OVF updater (``OvfUpdateIntervalInMinutes``, default 60)."""
        while not self._closing.wait(self.ovf_interval):
            for sd in list(self.s["storage_domains"].values()):
                if sd.get("status") == "active" and self.has_files(sd):
                    try:
                        self.write_ovf(sd["id"])
                        self.add_event(
                            f"OVF_STORE for domain {sd['name']} was updated.", code=198, sd_id=sd["id"]
                        )
                    except Exception as exc:  # the periodic updater logs and keeps running, like the engine's
                        log.warning("periodic OVF update of %s failed: %s", sd["name"], exc)

    # ---- storage domains: import / attach / activate / detach / remove ---------------------------
    def import_domain(
        self, name: str | None, address: str, path: str, host_name: str | None, sd_id: str | None
    ) -> dict[str, Any]:
        with self.lock:
            if host_name and not self.find_by_name("hosts", host_name) and host_name not in self.s["hosts"]:
                raise EngineFault(404, f"Entity not found: Host: name={host_name}")
        local = self.resolve_mount(address, path)
        found = DomainStorage.find(local)
        if sd_id:
            found = [d for d in found if d.sd_id == sd_id]
        if not found:
            raise conflict(f"Cannot import Storage Domain. There is no storage domain under {address}:{path}")
        ds = found[0]
        md = ds.read_metadata()
        with self.lock:
            if ds.sd_id in self.s["storage_domains"]:
                raise conflict("Cannot add Storage. The Storage Domain already exists.")
            sd = {
                "id": ds.sd_id,
                "name": name or md.get("DESCRIPTION", ds.sd_id),
                "address": address,
                "path": path,
                "local_dir": str(local),
                "dc_id": None,
                "status": "unattached",
                "master": False,
                "description": "",
                "created_by_site": False,
                "imported": True,
            }
            self.s["storage_domains"][sd["id"]] = sd
            self._storages.pop(sd["id"], None)
            self.save()
        self.add_event(
            f"Storage Domain {sd['name']} was added by admin@internal-authz", code=956, sd_id=sd["id"]
        )
        return sd

    def create_domain(self, name: str, address: str, path: str) -> dict[str, Any]:
        """A new, empty data domain on the volume at ``address:path`` (not needed by DR, kept simple)."""
        local = self.resolve_mount(address, path)
        sd_id = str(uuid.uuid4())
        with self.lock:
            if self.find_by_name("storage_domains", name):
                raise conflict("Cannot add Storage. The Storage Domain name is already in use.")
            sd = {
                "id": sd_id,
                "name": name,
                "address": address,
                "path": path,
                "local_dir": str(local),
                "dc_id": None,
                "status": "unattached",
                "master": False,
                "description": "",
                "created_by_site": False,
            }
            self.s["storage_domains"][sd_id] = sd
        local.mkdir(parents=True, exist_ok=True)
        self.storage(sd_id).create()
        self.save()
        return sd

    def attach_domain(self, dc_id: str, sd_id: str) -> dict[str, Any]:
        with self.lock:
            dc = self.get("datacenters", dc_id)
            sd = self.s["storage_domains"].get(sd_id)
            if sd is None:
                raise EngineFault(404, f"Entity not found: StorageDomain: id={sd_id}")
            if sd.get("dc_id"):
                raise conflict(
                    "Cannot attach Storage Domain. Storage Domain is already attached to a Data Center."
                )
            sd["dc_id"] = dc_id
            sd["status"] = "locked"
            sd["master"] = not any(
                o.get("master") and o.get("dc_id") == dc_id
                for o in self.s["storage_domains"].values()
                if o is not sd
            )
            self.save()
        self.add_event(
            f"Storage Domain {sd['name']} was attached to Data Center {dc['name']} by admin@internal-authz",
            code=966,
            sd_id=sd_id,
        )
        lat = self.latency.get("attach", 0.6)

        def to_maintenance() -> None:
            self._load_unregistered(sd_id)
            self._set_sd_status(sd_id, "maintenance", {"locked"})

        self.sched.sequence(
            [
                (lat / 3, to_maintenance),
                (lat / 3, lambda: self._set_sd_status(sd_id, "activating", {"maintenance"})),
                (lat / 3, lambda: self._set_sd_status(sd_id, "active", {"activating"})),
            ]
        )
        return sd

    def _set_sd_status(self, sd_id: str, status: str, expect: set[str] | None = None) -> None:
        with self.lock:
            sd = self.s["storage_domains"].get(sd_id)
            if sd is None or (expect is not None and sd.get("status") not in expect):
                return
            sd["status"] = status
            self.save()
        if status == "active":
            self.add_event(f"Storage Domain {sd['name']} was activated.", code=960, sd_id=sd_id)

    def _load_unregistered(self, sd_id: str) -> None:
        """Read the newest OVF_STORE on the domain's files and list what is not registered here."""
        try:
            ovfs = self.storage(sd_id).read_ovf_store()
        except (StorageError, OSError, SiteError) as exc:
            log.warning("no OVF_STORE read from %s: %s", sd_id, exc)
            self.add_event(
                f"Failed to read the OVF_STORE of Storage Domain {sd_id}: {exc}",
                code=1017,
                severity="warning",
                sd_id=sd_id,
            )
            ovfs = {}
        vms: dict[str, Any] = {}
        templates: dict[str, Any] = {}
        for entity_id, text in ovfs.items():
            try:
                ent = ovf_mod.parse_ovf(text)
            except Exception as exc:  # one unreadable OVF must not hide the others
                log.warning("unreadable OVF %s on %s: %s", entity_id, sd_id, exc)
                continue
            if ent.get("kind") == "template":
                if ent["id"] not in self.s["templates"]:
                    templates[ent["id"]] = ent
            elif ent["id"] not in self.s["vms"]:
                vms[ent["id"]] = ent
        with self.lock:
            self.s["unregistered"][sd_id] = {"vms": vms, "templates": templates}
            self.save()

    def activate_domain(self, dc_id: str, sd_id: str) -> None:
        with self.lock:
            sd = self._attached(dc_id, sd_id)
            if sd["status"] == "active":
                return
            if sd["status"] != "maintenance":
                raise conflict(
                    f"Cannot activate Storage. The Storage Domain status is {_display(sd['status'])}."
                )
            sd["status"] = "activating"
            self.save()

        def activated() -> None:
            self._load_unregistered(sd_id)  # the engine re-reads the OVF_STORE when a domain comes back
            self._set_sd_status(sd_id, "active", {"activating"})

        self.sched.call_later(self.latency.get("activate", 0.3), activated)

    def deactivate_domain(self, dc_id: str, sd_id: str) -> None:
        with self.lock:
            sd = self._attached(dc_id, sd_id)
            if sd["status"] == "maintenance":
                return
            if sd["status"] != "active":
                raise conflict(
                    f"Cannot deactivate Storage. The Storage Domain status is {_display(sd['status'])}."
                )
            running = sorted(
                v["name"]
                for v in self.s["vms"].values()
                if sd_id in self.vm_sd_ids(v) and v["status"] != "down"
            )
            if running:
                raise conflict(
                    f"Cannot deactivate Storage. The following VMs are running: {', '.join(running)}"
                )
            sd["status"] = "preparing_for_maintenance"
            self.save()
        try:
            self.write_ovf(sd_id)  # the engine updates the OVF_STORE before a domain goes to maintenance
        except (StorageError, OSError, SiteError) as exc:
            log.warning("OVF update before deactivation of %s failed: %s", sd["name"], exc)
        self.sched.call_later(
            self.latency.get("deactivate", 0.3),
            lambda: self._set_sd_status(sd_id, "maintenance", {"preparing_for_maintenance"}),
        )

    def _attached(self, dc_id: str, sd_id: str) -> dict[str, Any]:
        self.get("datacenters", dc_id)
        sd = self.s["storage_domains"].get(sd_id)
        if sd is None or sd.get("dc_id") != dc_id:
            raise not_found()
        return sd

    def _forget_domain_entities(self, sd_id: str) -> None:
        """Detach/remove: VMs and templates living on the domain leave the engine's database."""
        for vm in list(self.s["vms"].values()):
            if sd_id in self.vm_sd_ids(vm):
                for d in vm["disk_ids"]:
                    self.s["disks"].pop(d, None)
                self._drop_vm_permissions(vm["id"])
                for snap in list(self.s["snapshots"].values()):
                    if snap["vm_id"] == vm["id"]:
                        self.s["snapshots"].pop(snap["id"])
                for group in list(self.s["affinity_groups"].values()) + list(
                    self.s["affinity_labels"].values()
                ):
                    if vm["id"] in group["vm_ids"]:
                        group["vm_ids"].remove(vm["id"])
                self.s["vms"].pop(vm["id"])
        for tpl in list(self.s["templates"].values()):
            if any(self.s["disks"].get(d, {}).get("sd_id") == sd_id for d in tpl.get("disk_ids", [])):
                self.s["templates"].pop(tpl["id"])
        self.s["unregistered"].pop(sd_id, None)

    def detach_domain(self, dc_id: str, sd_id: str) -> None:
        with self.lock:
            sd = self._attached(dc_id, sd_id)
            if sd["status"] != "maintenance":
                raise conflict("Cannot detach Storage Domain. Storage Domain's status must be Maintenance.")
            sd["dc_id"] = None
            sd["status"] = "unattached"
            sd["master"] = False
            self._forget_domain_entities(sd_id)
            self.save()
        self.add_event(f"Storage Domain {sd['name']} was detached from Data Center.", code=968, sd_id=sd_id)

    def remove_domain(self, sd_id: str, host: str | None, fmt: bool, destroy: bool) -> None:
        with self.lock:
            sd = self.get("storage_domains", sd_id)
            if not destroy:
                if not host:
                    raise EngineFault(400, "host parameter is missing", reason="Incomplete parameters")
                if not self.find_by_name("hosts", host) and host not in self.s["hosts"]:
                    raise EngineFault(404, f"Entity not found: Host: name={host}")
                if sd.get("dc_id"):
                    raise conflict(
                        "Cannot remove Storage. Storage Domain must be detached (unattached) first."
                    )
            self._forget_domain_entities(sd_id)
            self.s["storage_domains"].pop(sd_id)
            ds = self._storages.pop(sd_id, None)
            self.save()
        if fmt and not destroy:
            try:
                ds = ds or DomainStorage(Path(sd["local_dir"]), sd_id, sd["name"], self.remote_path(sd))
                shutil.rmtree(ds.path, ignore_errors=True)
            except (OSError, StorageError) as exc:
                log.warning("formatting %s failed: %s", sd["name"], exc)
        self.add_event(f"Storage Domain {sd['name']} was removed.", code=962)

    # ---- registration ----------------------------------------------------------------------------
    def unregistered(self, sd_id: str, kind: str) -> dict[str, dict[str, Any]]:
        self.get("storage_domains", sd_id)
        return self.s["unregistered"].get(sd_id, {}).get(kind, {})

    def register(
        self, sd_id: str, kind: str, entity_id: str, action: Any, correlation_id: str | None
    ) -> dict[str, Any]:
        """Register a VM/template read from the domain's OVF_STORE, applying the DR mappings.

        ``action`` is the SDK's parsed ``types.Action``. Mapped targets that do not exist fault 409
        (the VM stays unregistered); unmapped names that do not exist here are dropped with a warning,
        as the engine does.
        """
        coll = "vms" if kind == "vms" else "templates"
        with self.lock:
            sd = self.get("storage_domains", sd_id)
            ent = self.s["unregistered"].get(sd_id, {}).get(kind, {}).get(entity_id)
            if ent is None:
                raise not_found()
            if sd.get("status") != "active":
                raise conflict(f"Cannot import {kind[:-1]}. Storage Domain {sd['name']} is not active.")
            what = "VM" if kind == "vms" else "Template"
            if entity_id in self.s[coll]:
                raise conflict(f"Cannot import {what}. {what} with the same identifier already exists.")
            if self.find_by_name(coll, ent["name"]):
                raise conflict(f"Cannot import {what}. {what} with the same name already exists.")
            warnings: list[str] = []
            rc = getattr(action, "registration_configuration", None) if action is not None else None

            def mapping(attr: str) -> list[Any]:
                return list(getattr(rc, attr, None) or []) if rc is not None else []

            # cluster: explicit > mapping > same name
            cluster = None
            explicit = getattr(action, "cluster", None) if action is not None else None
            if explicit is not None and (explicit.id or explicit.name):
                cluster = self.lookup("clusters", explicit.id, explicit.name, "Cluster")
            else:
                target_name = ent.get("cluster")
                for m in mapping("cluster_mappings"):
                    if m.from_ is not None and m.from_.name == ent.get("cluster"):
                        target_name = m.to.name if m.to is not None else None
                        target = self.s["clusters"].get(m.to.id) if m.to is not None and m.to.id else None
                        if target is None:
                            target = self.find_by_name("clusters", target_name or "")
                        if target is None:
                            raise conflict(
                                f"Cannot import {what}. Cluster {target_name or (m.to.id if m.to else None)} (mapped from {ent.get('cluster')}) does not exist."
                            )
                        cluster = target
                        break
                if cluster is None:
                    cluster = self.find_by_name("clusters", target_name or "")
                if cluster is None:
                    raise conflict(
                        f"Cannot import {what}. Cluster {ent.get('cluster')} does not exist; give a cluster or a cluster mapping."
                    )
            # affinity groups / labels
            groups = []
            for gname in ent.get("affinity_groups", []):
                target = gname
                mapped = False
                for m in mapping("affinity_group_mappings"):
                    if m.from_ is not None and m.from_.name == gname:
                        target, mapped = (m.to.name if m.to is not None else None), True
                found = next(
                    (
                        g
                        for g in self.s["affinity_groups"].values()
                        if g["name"] == target and g["cluster_id"] == cluster["id"]
                    ),
                    None,
                )
                if found is None and mapped:
                    raise conflict(
                        f"Cannot import {what}. Affinity group {target} (mapped from {gname}) does not exist in cluster {cluster['name']}."
                    )
                if found is None:
                    warnings.append(f"affinity group {gname} does not exist")
                else:
                    groups.append(found)
            labels = []
            for lname in ent.get("affinity_labels", []):
                target = lname
                mapped = False
                for m in mapping("affinity_label_mappings"):
                    if m.from_ is not None and m.from_.name == lname:
                        target, mapped = (m.to.name if m.to is not None else None), True
                found = self.find_by_name("affinity_labels", target or "")
                if found is None and mapped:
                    raise conflict(
                        f"Cannot import {what}. Affinity label {target} (mapped from {lname}) does not exist."
                    )
                if found is None:
                    warnings.append(f"affinity label {lname} does not exist")
                else:
                    labels.append(found)
            domain_map: dict[str, str] = {}
            for m in mapping("domain_mappings"):
                to = m.to.name if m.to is not None else None
                if not to or not self.find_by_name("aaa_domains", to):
                    raise conflict(f"Cannot import {what}. Authorization domain {to} does not exist.")
                if m.from_ is not None and m.from_.name:
                    domain_map[m.from_.name] = to
            role_map: dict[str, dict[str, Any]] = {}
            for m in mapping("role_mappings"):
                to = m.to
                target_role = None
                if to is not None:
                    target_role = (self.s["roles"].get(to.id) if to.id else None) or self.find_by_name(
                        "roles", to.name or ""
                    )
                if target_role is None:
                    raise conflict(
                        f"Cannot import {what}. Role {getattr(to, 'name', None) or getattr(to, 'id', None)} does not exist."
                    )
                if m.from_ is not None and m.from_.name:
                    role_map[m.from_.name] = target_role
            lun_map: dict[str, Any] = {}
            for m in mapping("lun_mappings"):
                to = m.to
                if to is None or (to.lun_storage is None and not to.id):
                    raise conflict(
                        f"Cannot import {what}. LUN mapping target of {getattr(m.from_, 'id', None)} is incomplete."
                    )
                src = _lun_ids(m.from_)
                if src:
                    lun_map[src[0]] = to
            luns = []
            for lun_disk in ent.get("luns", []):
                lun = self._map_lun(lun_disk, lun_map, what)
                if lun is None:
                    if not getattr(action, "allow_partial_import", False):
                        raise conflict(
                            f"Cannot import {what}. The following LUN disks are not visible to any host of "
                            f"this engine: {lun_disk['alias']} ({lun_disk['lun']['id']}); map them "
                            "(lun_mappings) or allow a partial import."
                        )
                    warnings.append(
                        f"LUN disk {lun_disk['alias']} ({lun_disk['lun']['id']}) dropped: not visible"
                    )
                    continue
                luns.append((lun_disk, lun))
            permissions = []
            for user_entry in ent.get("users", []):
                name, _, domain = user_entry["user_domain"].rpartition("@")
                target_domain = domain_map.get(domain, domain)
                user = next(
                    (
                        u
                        for u in self.s["users"].values()
                        if u["name"] == name and u["domain"] == target_domain
                    ),
                    None,
                )
                if user is None:
                    warnings.append(
                        f"user {name}@{target_domain} does not exist: its permissions are dropped"
                    )
                    continue
                for role_name in user_entry.get("roles", []):
                    role = role_map.get(role_name) or self.find_by_name("roles", role_name)
                    if role is None:
                        warnings.append(f"role {role_name} of user {name}@{target_domain} does not exist")
                        continue
                    permissions.append((user, role))
            # vNIC profiles
            nics = []
            for n in ent.get("nics", []):
                profile = None
                mapped = False
                for m in mapping("vnic_profile_mappings"):
                    src = m.from_
                    src_net = src.network.name if src is not None and src.network is not None else None
                    if (
                        src is not None
                        and src.name == n.get("vnic_profile")
                        and (src_net is None or src_net == n.get("network"))
                    ):
                        mapped = True
                        profile = self._resolve_profile(m.to, what)
                for m in (
                    list(getattr(action, "vnic_profile_mappings", None) or []) if action is not None else []
                ):
                    if m.source_network_profile_name == n.get("vnic_profile") and (
                        m.source_network_name in (None, n.get("network"))
                    ):
                        mapped = True
                        profile = self._resolve_profile(m.target_vnic_profile, what)
                if not mapped:
                    profile = next(
                        (
                            p
                            for p in self.s["vnic_profiles"].values()
                            if p["name"] == n.get("vnic_profile")
                            and self.s["networks"].get(p["network_id"], {}).get("name") == n.get("network")
                        ),
                        None,
                    )
                    if profile is None and n.get("vnic_profile"):
                        warnings.append(
                            f"nic {n['name']}: vNIC profile {n.get('vnic_profile')}/{n.get('network')} does not exist"
                        )
                nics.append(
                    {
                        "id": stable_id(entity_id, "nic", n["name"]),
                        "name": n["name"],
                        "mac": n.get("mac", ""),
                        "vnic_profile_id": profile["id"] if profile else None,
                    }
                )
            job = self.new_job(
                f"Registering {what} {ent['name']} from Storage Domain {sd['name']}", correlation_id
            )
        time.sleep(self.latency.get("register", 0.3))
        with self.lock:
            if entity_id in self.s[coll]:
                self.end_job(job, False)
                raise conflict(f"Cannot import {what}. {what} with the same identifier already exists.")
            disk_ids = []
            for d in ent.get("disks", []):
                disk_id = d.get("disk_id") or d["image_id"]
                self.s["disks"][disk_id] = {
                    "id": disk_id,
                    "alias": d.get("alias") or disk_id,
                    "size": int(d.get("size") or 0),
                    "format": d.get("format", "cow"),
                    "sd_id": d.get("storage_domain_id")
                    if d.get("storage_domain_id") in self.s["storage_domains"]
                    else sd_id,
                    "vm_id": entity_id if kind == "vms" else None,
                    "bootable": bool(d.get("bootable")),
                    "interface": d.get("interface") or "virtio_scsi",
                    "leaf": d["volume_id"],
                    "base": d["volume_id"],
                    "seed": None,
                    "status": "ok",
                }
                disk_ids.append(disk_id)
            for lun_disk, lun in luns:
                self.s["disks"][lun_disk["disk_id"]] = {
                    "id": lun_disk["disk_id"],
                    "alias": lun_disk.get("alias") or lun_disk["disk_id"],
                    "description": lun_disk.get("description", ""),
                    "storage_type": "lun",
                    "lun_id": lun["id"],
                    "lun": lun,
                    "size": int(lun.get("size") or 0),
                    "format": "raw",
                    "sd_id": None,
                    "vm_id": entity_id if kind == "vms" else None,
                    "bootable": bool(lun_disk.get("bootable")),
                    "interface": lun_disk.get("interface") or "virtio_scsi",
                    "shareable": bool(lun_disk.get("shareable")),
                    "status": "ok",
                }
                disk_ids.append(lun_disk["disk_id"])
            for user, role in permissions:
                pid = stable_id(entity_id, "permission", user["id"], role["id"])
                self.s["permissions"][pid] = {
                    "id": pid,
                    "user_id": user["id"],
                    "role_id": role["id"],
                    "vm_id": entity_id,
                }
            obj = {
                "id": entity_id,
                "name": ent["name"],
                "description": ent.get("description", ""),
                "cluster_id": cluster["id"],
                "memory": int(ent.get("memory") or 1024 * MIB),
                "cpus": int(ent.get("cpus") or 1),
                "ha": bool(ent.get("ha")),
                "priority": int(ent.get("priority") or 0),
                "template_id": ent.get("template_id"),
                "nics": nics,
                "disk_ids": disk_ids,
                "created": now_iso(),
            }
            if kind == "vms":
                obj.update(
                    {
                        "status": "down",
                        "host_id": None,
                        "start_time": None,
                        "active_snapshot_id": stable_id(entity_id, "active-snapshot"),
                    }
                )
            else:
                obj["status"] = "ok"
            self.s[coll][entity_id] = obj
            for g in groups + labels:
                if entity_id not in g["vm_ids"]:
                    g["vm_ids"].append(entity_id)
            self.s["unregistered"].get(sd_id, {}).get(kind, {}).pop(entity_id, None)
            self.save()
        self.end_job(job, True)
        note = f" (warnings: {'; '.join(warnings)})" if warnings else ""
        self.add_event(
            f"{what} {ent['name']} was registered from Storage Domain {sd['name']}{note}",
            code=1150 if kind == "vms" else 1152,
            vm_id=entity_id if kind == "vms" else None,
            sd_id=sd_id,
            correlation_id=job["correlation_id"],
        )
        return job

    def _map_lun(self, lun_disk: dict[str, Any], lun_map: dict[str, Any], what: str) -> dict[str, Any] | None:
        """The LUN a registered LUN disk gets here: the mapped one, else the same id; None if no host sees it.

        A mapping's target carries the connection details (address, port, target, portal) the engine
        logs in with; the emulator keeps them on the disk, and the LUN must be one the site's hosts see.
        """
        src_id = lun_disk["lun"]["id"]
        to = lun_map.get(src_id)
        target_id = src_id
        details: dict[str, Any] = {}
        if to is not None:
            ids = _lun_ids(to)
            target_id = ids[0] if ids else (to.id or src_id)
            units = to.lun_storage.logical_units if to.lun_storage is not None else None
            if units:
                unit = units[0]
                details = {
                    k: getattr(unit, k)
                    for k in ("address", "port", "target", "portal")
                    if getattr(unit, k, None) is not None
                }
            if to.lun_storage is not None and to.lun_storage.type is not None:
                details["storage_type"] = to.lun_storage.type.value
        known = self.s.get("luns", {}).get(target_id)
        if known is None:
            return None
        return {**copy.deepcopy(known), **details}

    def _resolve_profile(self, to: Any, what: str) -> dict[str, Any] | None:
        if to is None:
            return None  # mapping to "no profile" is allowed: the NIC stays unplugged
        if to.id:
            prof = self.s["vnic_profiles"].get(to.id)
            if prof is None:
                raise conflict(f"Cannot import {what}. vNIC profile {to.id} does not exist.")
            return prof
        net_name = to.network.name if to.network is not None else None
        for p in self.s["vnic_profiles"].values():
            if p["name"] == to.name and (
                net_name is None or self.s["networks"].get(p["network_id"], {}).get("name") == net_name
            ):
                return p
        if not to.name:
            return None
        raise conflict(f"Cannot import {what}. vNIC profile {to.name}/{net_name} does not exist.")

    # ---- lab helpers -----------------------------------------------------------------------------
    def disk_chain(self, disk_id: str) -> list[str]:
        disk = self.get("disks", disk_id)
        if disk.get("storage_type") == "lun":
            raise EngineFault(409, f"disk {disk['alias']} is a direct LUN disk: it has no volume chain")
        try:
            return self.storage(disk["sd_id"]).chain(disk_id)
        except StorageError as exc:
            raise EngineFault(409, str(exc)) from exc

    def initial_content(self, disk_id: str) -> dict[str, Any]:
        disk = self.get("disks", disk_id)
        return {
            "disk_id": disk_id,
            "seed": disk.get("seed"),
            "base_volume_id": disk.get("base"),
            "size": disk["size"],
        }

    def set_latency(self, values: dict[str, float]) -> dict[str, float]:
        for key, val in values.items():
            self.latency[str(key)] = float(val)
        return dict(self.latency)

    def state_copy(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.s)
