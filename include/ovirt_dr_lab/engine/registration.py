"""Registration: a VM or template read from a domain's OVF_STORE becomes the engine's, with the DR mappings.

Mappings as the SDK sends them in ``registration_configuration`` (clusters, affinity groups and labels,
authorization domains, roles, LUNs, vNIC profiles) and the action's own ``vnic_profile_mappings``,
``cluster``, ``allow_partial_import``. A mapped target that does not exist faults 409; an unmapped name
that does not exist here is dropped with a warning, as the engine does.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from ovirt_dr_lab.engine.common import MIB, conflict, not_found, now_iso
from ovirt_dr_lab.engine.jobs import JobsMixin
from ovirt_dr_lab.engine.site import stable_id


def _lun_ids(disk: Any) -> list[str]:
    """Logical unit ids of an SDK ``Disk`` in a LUN mapping (``lun_storage.logical_units[].id``)."""
    storage = getattr(disk, "lun_storage", None) if disk is not None else None
    units = getattr(storage, "logical_units", None) or []
    return [u.id for u in units if getattr(u, "id", None)]


def _mapped_name(mappings: list[Any], name: str) -> tuple[str | None, bool]:
    """The target name a list of SDK mappings (``from_``/``to``) gives ``name``, and whether one did."""
    target: str | None = name
    mapped = False
    for m in mappings:
        if m.from_ is not None and m.from_.name == name:
            target, mapped = (m.to.name if m.to is not None else None), True
    return target, mapped


def _mapped_entities(
    what: str,
    kind: str,
    names: list[str],
    mappings: list[Any],
    find: Callable[[str | None], dict[str, Any] | None],
    where: str,
    warnings: list[str],
) -> list[dict[str, Any]]:
    """The entities here that ``names`` (from the OVF) map to: a mapped target that does not exist faults
    409 (the entity stays unregistered); an unmapped name that does not exist is dropped with a warning."""
    out = []
    for name in names:
        target, mapped = _mapped_name(mappings, name)
        found = find(target)
        if found is None and mapped:
            raise conflict(
                f"Cannot import {what}. {kind.capitalize()} {target} (mapped from {name}) does not exist{where}."
            )
        if found is None:
            warnings.append(f"{kind} {name} does not exist")
        else:
            out.append(found)
    return out


class RegistrationMixin(JobsMixin):
    """The unregistered entities of a domain and their registration."""

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
            # affinity groups (of the VM's cluster) / labels
            groups = _mapped_entities(
                what,
                "affinity group",
                ent.get("affinity_groups", []),
                mapping("affinity_group_mappings"),
                lambda name: next(
                    (
                        g
                        for g in self.s["affinity_groups"].values()
                        if g["name"] == name and g["cluster_id"] == cluster["id"]
                    ),
                    None,
                ),
                f" in cluster {cluster['name']}",
                warnings,
            )
            labels = _mapped_entities(
                what,
                "affinity label",
                ent.get("affinity_labels", []),
                mapping("affinity_label_mappings"),
                lambda name: self.find_by_name("affinity_labels", name or ""),
                "",
                warnings,
            )
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
        note = f" (warnings: {'; '.join(warnings)})" if warnings else ""
        self.finish_job(
            job,
            (
                f"{what} {ent['name']} was registered from Storage Domain {sd['name']}{note}",
                1150 if kind == "vms" else 1152,
            ),
            vm_id=entity_id if kind == "vms" else None,
            sd_id=sd_id,
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
