"""The OVF_STORE: what the engine writes of every VM and template on a domain, and reads back from one.

Writing: on request (``update_ovf_store``, a job), before a domain goes to maintenance, and by the
engine's own periodic updater. Reading: when a domain is attached or activated, the newest OVF_STORE on
its files lists the VMs and templates that are not registered here (what ``registration`` registers).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from ovirt_dr_lab.engine import ovf as ovf_mod
from ovirt_dr_lab.engine.common import MIB, VM_STATUS_NUM, conflict, display, now_iso
from ovirt_dr_lab.engine.jobs import JobsMixin
from ovirt_dr_lab.engine.site import SiteError
from ovirt_dr_lab.engine.storage import StorageError

log = logging.getLogger(__name__)


class OvfStoreMixin(JobsMixin):
    """OVF descriptors of the inventory, OVF_STORE updates, and the unregistered entities of a domain."""

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
                    f"Cannot update OVF store. Storage Domain {sd['name']} status is {display(sd.get('status') or 'unattached')}"
                )
            job = self.new_job(f"Updating OVF_STORE of Storage Domain {sd['name']}", correlation_id)

        def work() -> None:
            error = None
            try:
                self.write_ovf(sd_id)
            except (StorageError, OSError, SiteError) as exc:
                error = str(exc)
            self.finish_job(
                job,
                (f"OVF_STORE for domain {sd['name']} was updated by admin@internal-authz.", 199),
                (f"Failed to update OVF disks of Storage Domain {sd['name']}: {error}", 1016),
                error=error,
                sd_id=sd_id,
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
