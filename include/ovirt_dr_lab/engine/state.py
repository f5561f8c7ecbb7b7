"""The engine's inventory: its JSON state, built from the site file or upgraded, persisted, looked up.

State is plain JSON-able dicts (persisted to ``<state_dir>/state.json`` by a debounced saver), so a
restarted engine keeps imported domains, registered VMs, snapshots, events and jobs. One re-entrant lock
(``self.lock``) guards the dicts; it is held only for bookkeeping, never across ``qemu-img``.

:class:`EngineState` is the base of every part of the engine (``jobs``, ``vms``, ``snapshots``,
``ovfstore``, ``domains``, ``registration``): it declares what they share and offers the lookups. The
parts are mixins on it, and :class:`ovirt_dr_lab.engine.core.Engine` puts them together.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import threading
import zlib
from pathlib import Path
from typing import Any

from ovirt_dr_lab.engine.common import MIB, EngineFault, not_found, now_iso
from ovirt_dr_lab.engine.scheduler import Scheduler
from ovirt_dr_lab.engine.site import SiteError, require_path, stable_id
from ovirt_dr_lab.engine.storage import DomainStorage, StorageError

log = logging.getLogger(__name__)

#: Version of the state.json layout. 2 added permissions, LUNs, cluster/DC versions, domain types; an older
#: state is upgraded at start from the site file (only what it lacks; nothing it has is overwritten).
STATE_SCHEMA = 2
#: Cluster and data center compatibility version when the site names none (oVirt 4.5 engines: 4.7).
DEFAULT_COMPAT = "4.7"


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


class EngineState:
    """The inventory and what every part of the engine shares (set up by ``Engine.__init__``)."""

    site: dict[str, Any]
    site_name: str
    state_dir: Path
    state_file: Path
    #: the state dicts: collections by id (``vms``, ``disks``, ``storage_domains``...), events, jobs
    s: dict[str, Any]
    lock: threading.RLock
    sched: Scheduler
    latency: dict[str, float]
    ovf_interval: float
    token_ttl: float
    users: dict[str, dict[str, Any]]
    gluster_mounts: dict[str, str]
    counters: dict[str, int]
    freeze_log: list[dict[str, Any]]
    write_log: list[dict[str, Any]]
    writer_errors: list[str]
    _write_seq: itertools.count[int]
    _writer_stop: threading.Event | None
    _writer_thread: threading.Thread | None
    _dirty: threading.Event
    _closing: threading.Event
    _storages: dict[str, DomainStorage]

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

    def _drop_snapshots_of_disk(self, disk_id: str) -> None:
        for snap in list(self.s["snapshots"].values()):
            if disk_id in snap["volumes"]:
                self.s["snapshots"].pop(snap["id"], None)

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

    def _forget_vm(self, vm_id: str) -> list[dict[str, Any]]:
        """Take a VM out of the inventory (its disks, permissions, snapshots, group memberships).

        Returns the disk records it had, so a caller that also deletes the images knows which (the files
        are never touched here). Hold the lock.
        """
        vm = self.s["vms"].pop(vm_id)
        disks = [self.s["disks"].pop(d) for d in vm["disk_ids"] if d in self.s["disks"]]
        self._drop_vm_permissions(vm_id)
        for snap in list(self.s["snapshots"].values()):
            if snap["vm_id"] == vm_id:
                self.s["snapshots"].pop(snap["id"])
        for group in list(self.s["affinity_groups"].values()) + list(self.s["affinity_labels"].values()):
            if vm_id in group["vm_ids"]:
                group["vm_ids"].remove(vm_id)
        return disks
