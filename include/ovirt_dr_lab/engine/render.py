"""XML of the emulated engine, written with the SDK's own writers so element names cannot drift.

State dicts become ``ovirtsdk4.types`` objects and ``ovirtsdk4.writer.Writer`` serializes them: the same
code that the SDK uses to write requests writes our answers, so the reader on the other side finds every
element where it expects it (only ``id``/``href`` are attributes, enums lowercase, dates ISO-8601).
What the writers do not emit (``<link rel>`` and ``<actions>``) is added around the written item.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import ovirtsdk4.types as T
from ovirtsdk4.writer import Writer

API = "/ovirt-engine/api"
XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
BLANK_UUID = "00000000-0000-0000-0000-000000000000"


def version(value: str | None) -> Any:
    """``"4.7"`` -> ``Version(major=4, minor=7)`` (what clusters and data centers answer)."""
    major, _, minor = str(value or "4.7").partition(".")
    return T.Version(major=int(major), minor=int(minor.split(".")[0] or 0))


def href(*parts: str) -> str:
    return API + "".join("/" + p for p in parts)


def ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def ref(cls: type, obj_id: str | None, link: str | None = None, **kw: Any) -> Any:
    """A reference object (``<vm id= href=/>``)."""
    obj = cls(id=obj_id, **kw)
    obj.href = link
    return obj


def write(obj: Any, links: list[str] | None = None, actions: list[str] | None = None, raw: str = "") -> str:
    """One item's XML, with ``<link>`` children for sub-collections and ``<actions>`` when given.

    ``raw`` is appended verbatim: elements the engine sends that the SDK model lacks (the reader skips them).
    """
    text = Writer.write(obj)
    extra = raw
    base = obj.href or ""
    if actions:
        extra += "<actions>" + "".join(f'<link href="{base}/{a}" rel="{a}"/>' for a in actions) + "</actions>"
    if links:
        extra += "".join(f'<link href="{base}/{rel}" rel="{rel}"/>' for rel in links)
    if not extra:
        return text
    if text.endswith("/>"):
        close = text.index(" ") if " " in text else len(text) - 2
        tag = text[1:close]
        return text[:-2] + ">" + extra + f"</{tag}>"
    cut = text.rindex("</")
    return text[:cut] + extra + text[cut:]


def document(body: str) -> bytes:
    return (XML_DECL + body).encode("utf-8")


def collection(root: str, items: list[str]) -> bytes:
    return document(f"<{root}>" + "".join(items) + f"</{root}>")


def fault(reason: str, detail: str) -> bytes:
    return document(Writer.write(T.Fault(reason=reason, detail=detail)))


def action(status: str = "complete", job_id: str | None = None, fault_obj: Any = None) -> bytes:
    act = T.Action(
        status=status, job=ref(T.Job, job_id, href("jobs", job_id)) if job_id else None, fault=fault_obj
    )
    return document(Writer.write(act))


class Renderer:
    """Turns the engine's state dicts into SDK objects / XML strings."""

    def __init__(self, engine: Any) -> None:
        self.e = engine

    @property
    def s(self) -> dict[str, Any]:
        return self.e.s

    # ---- system ------------------------------------------------------------------------------
    def api(self) -> bytes:
        version = str(self.e.site.get("version", "4.5.6"))
        parts = [int(p) for p in (version.split(".") + ["0", "0", "0"])[:4] if p.isdigit()] + [0, 0, 0, 0]
        api = T.Api(
            product_info=T.ProductInfo(
                name=str(self.e.site.get("product", "oVirt Engine")),
                vendor="ovirt.org",
                version=T.Version(
                    major=parts[0],
                    minor=parts[1],
                    build=parts[2],
                    revision=parts[3],
                    full_version=f"{version}-1.el9",
                ),
                instance_id=self.e.s.get("instance_id") or self.e.state_dir.name,
            ),
            time=dt.datetime.now(dt.UTC),
            summary=T.ApiSummary(
                vms=T.ApiSummaryItem(
                    total=len(self.s["vms"]), active=sum(v["status"] == "up" for v in self.s["vms"].values())
                ),
                hosts=T.ApiSummaryItem(total=len(self.s["hosts"]), active=len(self.s["hosts"])),
                storage_domains=T.ApiSummaryItem(
                    total=len(self.s["storage_domains"]),
                    active=sum(sd.get("status") == "active" for sd in self.s["storage_domains"].values()),
                ),
                users=T.ApiSummaryItem(total=len(self.s["users"]), active=1),
            ),
        )
        api.href = API
        links = [
            "clusters",
            "datacenters",
            "disks",
            "domains",
            "events",
            "hosts",
            "jobs",
            "networks",
            "roles",
            "storagedomains",
            "templates",
            "users",
            "vms",
            "vnicprofiles",
            "affinitylabels",
        ]
        return document(write(api, links=links))

    # ---- compute -----------------------------------------------------------------------------
    def dc_status(self, dc: dict[str, Any]) -> str:
        """The engine's view: a data center without an active master domain is ``uninitialized``
        (``maintenance`` if its master is not active), one without an up host ``problematic`` (the engine's NonResponsive pool)."""
        if dc.get("status"):
            return str(dc["status"])
        clusters = {c["id"] for c in self.s["clusters"].values() if c["dc_id"] == dc["id"]}
        if not any(h["status"] == "up" and h["cluster_id"] in clusters for h in self.s["hosts"].values()):
            return "problematic"
        masters = [
            sd
            for sd in self.s["storage_domains"].values()
            if sd.get("dc_id") == dc["id"] and sd.get("master")
        ]
        if not masters:
            return "uninitialized"
        return "up" if any(sd.get("status") == "active" for sd in masters) else "maintenance"

    def datacenter(self, dc: dict[str, Any]) -> str:
        obj = T.DataCenter(
            id=dc["id"],
            name=dc["name"],
            description=dc.get("description", ""),
            local=bool(dc.get("local")),
            status=T.DataCenterStatus(self.dc_status(dc)),
            storage_format=T.StorageFormat.V5,
            version=version(dc.get("version")),
            quota_mode=T.QuotaModeType.DISABLED,
        )
        obj.href = href("datacenters", dc["id"])
        return write(obj, links=["storagedomains", "clusters", "networks", "permissions", "quotas"])

    def cluster(self, c: dict[str, Any]) -> str:
        obj = T.Cluster(
            id=c["id"],
            name=c["name"],
            data_center=ref(T.DataCenter, c["dc_id"], href("datacenters", c["dc_id"])),
            version=version(c.get("version")),
            virt_service=True,
            gluster_service=True,
        )
        obj.href = href("clusters", c["id"])
        return write(obj, links=["affinitygroups", "glustervolumes", "networks", "permissions"])

    def host(self, h: dict[str, Any]) -> str:
        obj = T.Host(
            id=h["id"],
            name=h["name"],
            address=h.get("address"),
            status=T.HostStatus(h.get("status", "up")),
            cluster=ref(T.Cluster, h["cluster_id"], href("clusters", h["cluster_id"])),
            type=T.HostType.RHEL,
            spm=T.Spm(status=T.SpmStatus.SPM, priority=5),
        )
        obj.href = href("hosts", h["id"])
        return write(obj, links=["nics", "storage", "permissions"])

    def logical_unit(self, lun: dict[str, Any]) -> Any:
        return T.LogicalUnit(
            id=lun["id"],
            address=lun.get("address"),
            port=lun.get("port"),
            target=lun.get("target"),
            portal=lun.get("portal"),
            size=lun.get("size"),
            vendor_id=lun.get("vendor_id"),
            product_id=lun.get("product_id"),
            status=T.LunStatus.USED if lun.get("used") else T.LunStatus.FREE,
        )

    def host_storage(self, lun: dict[str, Any], host_id: str) -> str:
        """One LUN as a host sees it (``GET /hosts/{id}/storage``: ``<host_storage id=LUN>``)."""
        obj = T.HostStorage(
            id=lun["id"],
            type=T.StorageType(lun.get("storage_type", "iscsi")),
            logical_units=[self.logical_unit(lun)],
            host=ref(T.Host, host_id, href("hosts", host_id)),
        )
        obj.href = href("hosts", host_id, "storage", lun["id"])
        return write(obj)

    def permission(self, perm: dict[str, Any]) -> str:
        """``<permission>`` with references to its role, user and VM, as the engine lists them."""
        vm_id = perm["vm_id"]
        obj = T.Permission(
            id=perm["id"],
            role=ref(T.Role, perm["role_id"], href("roles", perm["role_id"])),
            user=ref(T.User, perm["user_id"], href("users", perm["user_id"])),
            vm=ref(T.Vm, vm_id, href("vms", vm_id)),
        )
        obj.href = href("vms", vm_id, "permissions", perm["id"])
        return write(obj)

    def network(self, n: dict[str, Any]) -> str:
        obj = T.Network(
            id=n["id"],
            name=n["name"],
            data_center=ref(T.DataCenter, n.get("dc_id"), href("datacenters", n.get("dc_id") or "")),
        )
        obj.href = href("networks", n["id"])
        return write(obj, links=["vnicprofiles"])

    def vnic_profile(self, p: dict[str, Any]) -> str:
        obj = T.VnicProfile(
            id=p["id"],
            name=p["name"],
            network=ref(T.Network, p["network_id"], href("networks", p["network_id"])),
            pass_through=T.VnicPassThrough(mode=T.VnicPassThroughMode.DISABLED),
            port_mirroring=False,
        )
        obj.href = href("vnicprofiles", p["id"])
        return write(obj, links=["permissions"])

    def role(self, r: dict[str, Any]) -> str:
        obj = T.Role(id=r["id"], name=r["name"], administrative=r["administrative"], mutable=True)
        obj.href = href("roles", r["id"])
        return write(obj, links=["permits"])

    def aaa_domain(self, d: dict[str, Any]) -> str:
        obj = T.Domain(id=d["id"], name=d["name"])
        obj.href = href("domains", d["id"])
        return write(obj, links=["users", "groups"])

    def user(self, u: dict[str, Any]) -> str:
        dom = self.e.find_by_name("aaa_domains", u["domain"])
        obj = T.User(
            id=u["id"],
            name=u["name"],
            user_name=u["user_name"],
            namespace="*",
            principal=u["name"],
            domain=ref(T.Domain, dom["id"], href("domains", dom["id"]), name=dom["name"]) if dom else None,
        )
        obj.href = href("users", u["id"])
        return write(obj, links=["permissions", "roles"])

    def affinity_group(self, g: dict[str, Any]) -> str:
        cid = g["cluster_id"]
        obj = T.AffinityGroup(
            id=g["id"],
            name=g["name"],
            cluster=ref(T.Cluster, cid, href("clusters", cid)),
            positive=g["positive"],
            enforcing=g["enforcing"],
            priority=1.0,
            vms_rule=T.AffinityRule(enabled=True, positive=g["positive"], enforcing=g["enforcing"]),
            hosts_rule=T.AffinityRule(enabled=False, positive=False, enforcing=False),
            vms=[ref(T.Vm, v, href("vms", v)) for v in g["vm_ids"]],
        )
        obj.href = href("clusters", cid, "affinitygroups", g["id"])
        return write(obj, links=["vms", "hosts"])

    def affinity_label(self, lab: dict[str, Any]) -> str:
        obj = T.AffinityLabel(
            id=lab["id"],
            name=lab["name"],
            read_only=False,
            has_implicit_affinity_group=False,
            vms=[ref(T.Vm, v, href("vms", v)) for v in lab["vm_ids"]],
            hosts=[ref(T.Host, h, href("hosts", h)) for h in lab.get("host_ids", [])],
        )
        obj.href = href("affinitylabels", lab["id"])
        return write(obj, links=["vms", "hosts"])

    def gluster_volume(self, cluster_id: str, name: str) -> str:
        from ovirt_dr_lab.engine.site import stable_id

        vid = stable_id("gluster-volume", name)
        obj = T.GlusterVolume(
            id=vid,
            name=name,
            cluster=ref(T.Cluster, cluster_id, href("clusters", cluster_id)),
            status=T.GlusterVolumeStatus.UP,
            volume_type=T.GlusterVolumeType.DISTRIBUTE,
            transport_types=[T.TransportType.TCP],
        )
        obj.href = href("clusters", cluster_id, "glustervolumes", vid)
        return write(obj, links=["bricks", "statistics"])

    # ---- VMs ---------------------------------------------------------------------------------
    def vm(self, v: dict[str, Any], follow: set[str] | None = None) -> str:
        follow = follow or set()
        cid = v["cluster_id"]
        obj = T.Vm(
            id=v["id"],
            name=v["name"],
            description=v.get("description", ""),
            status=T.VmStatus(v["status"]),
            cluster=ref(T.Cluster, cid, href("clusters", cid)),
            host=ref(T.Host, v["host_id"], href("hosts", v["host_id"])) if v.get("host_id") else None,
            memory=v["memory"],
            cpu=T.Cpu(
                topology=T.CpuTopology(cores=1, sockets=v["cpus"], threads=1),
                architecture=T.Architecture.X86_64,
            ),
            high_availability=T.HighAvailability(enabled=v.get("ha", False), priority=v.get("priority", 0)),
            template=ref(
                T.Template,
                v.get("template_id") or BLANK_UUID,
                href("templates", v.get("template_id") or BLANK_UUID),
            ),
            original_template=ref(T.Template, BLANK_UUID, href("templates", BLANK_UUID)),
            stateless=False,
            delete_protected=False,
            type=T.VmType.SERVER,
            origin="ovirt",
            creation_time=ts(v.get("created")),
            start_time=ts(v.get("start_time")),
            os=T.OperatingSystem(type="other_linux"),
            has_illegal_images=False,
            next_run_configuration_exists=False,
        )
        obj.href = href("vms", v["id"])
        if "disk_attachments" in follow or "disk_attachments.disk" in follow:
            obj.disk_attachments = [
                self.disk_attachment_obj(self.s["disks"][d], v["id"], "disk_attachments.disk" in follow)
                for d in v["disk_ids"]
                if d in self.s["disks"]
            ]
        if "nics" in follow:
            obj.nics = [self.nic_obj(n, v["id"]) for n in v.get("nics", [])]
        if "snapshots" in follow:
            obj.snapshots = [self.snapshot_obj(sn, v["id"]) for sn in self.e.vm_snapshots(v["id"])]
        links = [
            rel
            for rel in [
                "diskattachments",
                "snapshots",
                "nics",
                "affinitylabels",
                "permissions",
                "tags",
                "statistics",
            ]
            if {"diskattachments": "disk_attachments"}.get(rel, rel) not in follow
        ]
        actions = ["start", "stop", "shutdown", "freezefilesystems", "thawfilesystems"]
        return write(obj, links=links, actions=actions)

    def nic_obj(self, n: dict[str, Any], vm_id: str) -> Any:
        pid = n.get("vnic_profile_id")
        obj = T.Nic(
            id=n["id"],
            name=n["name"],
            mac=T.Mac(address=n.get("mac", "")),
            interface=T.NicInterface.VIRTIO,
            linked=n.get("linked", True),
            plugged=n.get("plugged", pid is not None),
            vnic_profile=ref(T.VnicProfile, pid, href("vnicprofiles", pid)) if pid else None,
            vm=ref(T.Vm, vm_id, href("vms", vm_id)),
        )
        obj.href = href("vms", vm_id, "nics", n["id"])
        return obj

    def nic(self, n: dict[str, Any], vm_id: str) -> str:
        return write(self.nic_obj(n, vm_id))

    def lun_disk_obj(self, d: dict[str, Any], link: str | None = None) -> Any:
        """A direct LUN disk: ``storage_type=lun`` with ``lun_storage``; no image, no storage domain."""
        lun = d.get("lun") or {}
        obj = T.Disk(
            id=d["id"],
            name=d["alias"],
            alias=d["alias"],
            description=d.get("description", ""),
            storage_type=T.DiskStorageType.LUN,
            lun_storage=T.HostStorage(
                type=T.StorageType(lun.get("storage_type", "iscsi")), logical_units=[self.logical_unit(lun)]
            ),
            provisioned_size=d.get("size", 0),
            status=T.DiskStatus(d.get("status", "ok")),
            shareable=bool(d.get("shareable")),
            wipe_after_delete=False,
            propagate_errors=False,
            content_type=T.DiskContentType.DATA,
        )
        obj.href = link or href("disks", d["id"])
        return obj

    def disk_obj(self, d: dict[str, Any], volume: str | None = None, link: str | None = None) -> Any:
        if d.get("storage_type") == "lun":
            return self.lun_disk_obj(d, link)
        cow = d.get("format", "cow") == "cow"
        sd_id = d["sd_id"]
        obj = T.Disk(
            id=d["id"],
            name=d["alias"],
            alias=d["alias"],
            description="",
            image_id=volume or d["leaf"],
            format=T.DiskFormat.COW if cow else T.DiskFormat.RAW,
            content_type=T.DiskContentType.DATA,
            provisioned_size=d["size"],
            actual_size=d.get("actual_size", d["size"] // 4),
            total_size=d.get("actual_size", d["size"] // 4),
            status=T.DiskStatus(d.get("status", "ok")),
            storage_type=T.DiskStorageType.IMAGE,
            storage_domains=[ref(T.StorageDomain, sd_id, href("storagedomains", sd_id))],
            sparse=cow,
            shareable=False,
            wipe_after_delete=False,
            propagate_errors=False,
            qcow_version=T.QcowVersion.QCOW2_V3 if cow else None,
            backup=T.DiskBackup.NONE,
        )
        obj.href = link or href("disks", d["id"])
        return obj

    def disk(self, d: dict[str, Any], volume: str | None = None, link: str | None = None) -> str:
        obj = self.disk_obj(d, volume, link)
        return write(obj, links=["permissions", "statistics", "disksnapshots"] if link is None else None)

    def disk_attachment_obj(self, d: dict[str, Any], vm_id: str, follow_disk: bool) -> Any:
        disk = self.disk_obj(d) if follow_disk else ref(T.Disk, d["id"], href("disks", d["id"]))
        obj = T.DiskAttachment(
            id=d["id"],
            active=True,
            bootable=bool(d.get("bootable")),
            interface=T.DiskInterface(d.get("interface") or "virtio_scsi"),
            pass_discard=False,
            read_only=False,
            uses_scsi_reservation=False,
            logical_name=None,
            disk=disk,
            vm=ref(T.Vm, vm_id, href("vms", vm_id)),
        )
        obj.href = href("vms", vm_id, "diskattachments", d["id"])
        return obj

    def disk_attachment(self, d: dict[str, Any], vm_id: str, follow_disk: bool) -> str:
        return write(self.disk_attachment_obj(d, vm_id, follow_disk))

    def snapshot_obj(self, sn: dict[str, Any], vm_id: str) -> Any:
        obj = T.Snapshot(
            id=sn["id"],
            description=sn["description"],
            snapshot_status=T.SnapshotStatus(sn["status"]),
            snapshot_type=T.SnapshotType(sn["type"]),
            date=ts(sn["date"]),
            persist_memorystate=bool(sn.get("persist_memorystate")),
            vm=ref(T.Vm, vm_id, href("vms", vm_id)),
        )
        obj.href = href("vms", vm_id, "snapshots", sn["id"])
        return obj

    def snapshot(self, sn: dict[str, Any], vm_id: str, creation_status: str | None = None) -> str:
        obj = self.snapshot_obj(sn, vm_id)
        raw = f"<creation_status>{creation_status}</creation_status>" if creation_status else ""
        return write(obj, links=["disks", "nics", "cdroms"], actions=["restore"], raw=raw)

    # ---- templates ---------------------------------------------------------------------------
    def template(self, t: dict[str, Any]) -> str:
        cid = t.get("cluster_id")
        obj = T.Template(
            id=t["id"],
            name=t["name"],
            description=t.get("description", ""),
            status=T.TemplateStatus(t.get("status", "ok")),
            cluster=ref(T.Cluster, cid, href("clusters", cid)) if cid else None,
            memory=t.get("memory"),
            cpu=T.Cpu(topology=T.CpuTopology(cores=1, sockets=t.get("cpus", 1), threads=1)),
            creation_time=ts(t.get("created")),
            version=T.TemplateVersion(version_number=1, version_name="base version"),
            type=T.VmType.SERVER,
        )
        obj.href = href("templates", t["id"])
        return write(obj, links=["diskattachments", "nics", "permissions"])

    # ---- storage -----------------------------------------------------------------------------
    def storage_domain(self, sd: dict[str, Any], dc_view: str | None = None) -> str:
        dc_id = sd.get("dc_id")
        status = None
        if dc_view:
            status = T.StorageDomainStatus(sd["status"])
        elif not dc_id:
            status = T.StorageDomainStatus.UNATTACHED
        gib = 1024**3
        storage_type = sd.get("storage_type", "glusterfs")
        obj = T.StorageDomain(
            id=sd["id"],
            name=sd["name"],
            description=sd.get("description", ""),
            comment="",
            type=T.StorageDomainType(sd.get("type", "data")),
            status=status,
            master=bool(sd.get("master")),
            storage=T.HostStorage(
                address=sd.get("address"),
                path=sd.get("path"),
                type=T.StorageType(storage_type),
                vfs_type="glusterfs" if storage_type == "glusterfs" else None,
            ),
            storage_format=T.StorageFormat.V5,
            available=200 * gib,
            used=20 * gib,
            committed=10 * gib,
            external_status=T.ExternalStatus.OK,
            backup=False,
            block_size=512,
            warning_low_space_indicator=10,
            critical_space_action_blocker=5,
            wipe_after_delete=False,
            discard_after_delete=False,
            supports_discard=False,
            supports_discard_zeroes_data=False,
            data_centers=[ref(T.DataCenter, dc_id, href("datacenters", dc_id))] if dc_id else None,
            data_center=ref(T.DataCenter, dc_id, href("datacenters", dc_id)) if dc_view and dc_id else None,
        )
        if dc_view:
            obj.href = href("datacenters", dc_view, "storagedomains", sd["id"])
            return write(obj, links=["disks"], actions=["activate", "deactivate"])
        obj.href = href("storagedomains", sd["id"])
        return write(
            obj,
            links=[
                "vms",
                "templates",
                "disks",
                "storageconnections",
                "permissions",
                "disksnapshots",
                "diskprofiles",
            ],
            actions=["updateovfstore", "refreshluns", "reduceluns", "isattached"],
        )

    def unregistered_vm(self, ent: dict[str, Any], sd_id: str, kind: str) -> str:
        cls = T.Vm if kind == "vms" else T.Template
        cluster = self.e.find_by_name("clusters", ent.get("cluster") or "")
        kw: dict[str, Any] = {
            "id": ent["id"],
            "name": ent["name"],
            "description": ent.get("description", ""),
            "memory": ent.get("memory"),
            "cpu": T.Cpu(topology=T.CpuTopology(cores=1, sockets=int(ent.get("cpus") or 1), threads=1)),
            "high_availability": T.HighAvailability(
                enabled=bool(ent.get("ha")), priority=int(ent.get("priority") or 0)
            ),
            "cluster": T.Cluster(id=cluster["id"] if cluster else None, name=ent.get("cluster")),
            "storage_domain": ref(T.StorageDomain, sd_id, href("storagedomains", sd_id)),
        }
        if kind == "vms":
            kw["status"] = T.VmStatus.DOWN
        obj = cls(**kw)
        obj.href = href("storagedomains", sd_id, kind, ent["id"])
        return write(obj, links=["diskattachments"], actions=["register"])

    def unregistered_disk(self, d: dict[str, Any], sd_id: str) -> str:
        cow = d.get("format", "cow") == "cow"
        obj = T.Disk(
            id=d.get("disk_id") or d.get("image_id"),
            alias=d.get("alias"),
            name=d.get("alias"),
            image_id=d.get("volume_id"),
            format=T.DiskFormat.COW if cow else T.DiskFormat.RAW,
            provisioned_size=int(d.get("size") or 0),
            content_type=T.DiskContentType.DATA,
            status=T.DiskStatus.OK,
            storage_type=T.DiskStorageType.IMAGE,
            sparse=cow,
            storage_domains=[ref(T.StorageDomain, sd_id, href("storagedomains", sd_id))],
        )
        obj.href = href("storagedomains", sd_id, "disks", obj.id)
        return write(obj, actions=["register"])

    # ---- events and jobs ---------------------------------------------------------------------
    def event(self, ev: dict[str, Any]) -> str:
        vm_id = ev.get("vm_id")
        sd_id = ev.get("sd_id")
        obj = T.Event(
            id=str(ev["id"]),
            index=ev["id"],
            code=ev["code"],
            description=ev["description"],
            severity=T.LogSeverity(ev["severity"]),
            origin=ev.get("origin", "oVirt"),
            custom_id=ev.get("custom_id", -1),
            flood_rate=30,
            log_on_host=False,
            time=ts(ev["time"]),
            correlation_id=ev.get("correlation_id"),
            vm=ref(T.Vm, vm_id, href("vms", vm_id)) if vm_id else None,
            storage_domain=ref(T.StorageDomain, sd_id, href("storagedomains", sd_id)) if sd_id else None,
            user=None,
        )
        obj.href = href("events", str(ev["id"]))
        return write(obj)

    def step_obj(self, st: dict[str, Any], job_id: str) -> Any:
        obj = T.Step(
            id=st["id"],
            description=st["description"],
            type=T.StepEnum(st["type"]),
            status=T.StepStatus(st["status"]),
            start_time=ts(st["start_time"]),
            end_time=ts(st.get("end_time")),
            number=st.get("number", 1),
            external=False,
            job=ref(T.Job, job_id, href("jobs", job_id)),
        )
        obj.href = href("jobs", job_id, "steps", st["id"])
        return obj

    def job(self, j: dict[str, Any]) -> str:
        obj = T.Job(
            id=j["id"],
            description=j["description"],
            status=T.JobStatus(j["status"]),
            start_time=ts(j["start_time"]),
            end_time=ts(j.get("end_time")),
            last_updated=ts(j.get("last_updated")),
            auto_cleared=True,
            external=False,
            owner=None,
        )
        obj.href = href("jobs", j["id"])
        return write(obj, links=["steps"], actions=["end", "clear"])

    def step(self, st: dict[str, Any], job_id: str) -> str:
        return write(self.step_obj(st, job_id))
