"""Storage domains: import from files found on a mounted volume, create, attach, activate, deactivate,
detach, remove, with the engine's status transitions (``locked`` -> ``maintenance`` -> ``activating`` ->
``active``) on the scheduler.

A domain's address and path are resolved to where the volume is mounted here (``resolve_mount``), as a
real host reaches one Gluster server under any of its names.
"""

from __future__ import annotations

import logging
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

from ovirt_dr_lab.engine.common import EngineFault, conflict, display, not_found
from ovirt_dr_lab.engine.ovfstore import OvfStoreMixin
from ovirt_dr_lab.engine.site import SiteError, require_path
from ovirt_dr_lab.engine.storage import DomainStorage, StorageError

log = logging.getLogger(__name__)


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


class DomainsMixin(OvfStoreMixin):
    """Storage domain lifecycle; builds on the OVF store (read at attach/activate, written at deactivate)."""

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
            sd = self._add_domain(ds.sd_id, name or md.get("DESCRIPTION", ds.sd_id), address, path, local)
            sd["imported"] = True
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
            sd = self._add_domain(sd_id, name, address, path, local)
        local.mkdir(parents=True, exist_ok=True)
        self.storage(sd_id).create()
        self.save()
        return sd

    def _add_domain(self, sd_id: str, name: str, address: str, path: str, local: Path) -> dict[str, Any]:
        """A new unattached domain record (imported or created here, not from the site). Hold the lock."""
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

    def activate_domain(self, dc_id: str, sd_id: str) -> None:
        with self.lock:
            sd = self._attached(dc_id, sd_id)
            if sd["status"] == "active":
                return
            if sd["status"] != "maintenance":
                raise conflict(
                    f"Cannot activate Storage. The Storage Domain status is {display(sd['status'])}."
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
                    f"Cannot deactivate Storage. The Storage Domain status is {display(sd['status'])}."
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
                self._forget_vm(vm["id"])
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
