"""One engine's inventory as the DR mapping sees it: names, ids and the few attributes the checks need.

Built from what :meth:`ovirt_dr.hooks.ovirt.OvirtHook.mapping_inventory` reads (SDK objects, two batches of
requests), so the mapping checks (:mod:`ovirt_dr.validation`) and the generator
(:mod:`ovirt_dr.mapping_generator`) are pure functions of plain data, tested without an engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: how oVirt names the hosted engine's own storage domain (the role's generator and validator use it too)
HOSTED_ENGINE_DOMAIN = "hosted_storage"


def _v(value: Any) -> Any:
    """An SDK enum's value (``StorageType.GLUSTERFS`` -> ``"glusterfs"``), anything else as it is."""
    return getattr(value, "value", value)


def _id(ref: Any) -> str | None:
    return getattr(ref, "id", None) if ref is not None else None


@dataclass(frozen=True)
class Cluster:
    id: str
    name: str
    dc_id: str | None
    version: tuple[int, int] | None


@dataclass(frozen=True)
class Profile:
    """A vNIC profile with its network and the network's data center (what a mapping names it by)."""

    id: str
    name: str
    network: str | None
    dc: str | None


@dataclass(frozen=True)
class Domain:
    """A storage domain: ``type`` data/export/iso, ``storage_type`` glusterfs/nfs/iscsi/..."""

    id: str
    name: str
    type: str | None
    storage_type: str | None
    address: str | None
    path: str | None
    vfs_type: str | None
    master: bool
    wipe_after_delete: bool | None
    backup: bool | None
    discard_after_delete: bool | None
    critical_space_action_blocker: int | None
    warning_low_space: int | None
    logical_units: tuple[Any, ...] = ()  # block domains: the volume group's LUNs (address/port/target)

    @property
    def hosted_engine(self) -> bool:
        return self.name == HOSTED_ENGINE_DOMAIN


@dataclass(frozen=True)
class Lun:
    """A logical unit: what a host sees, or what a direct LUN disk points at."""

    id: str
    storage_type: str | None
    address: str | None = None
    port: int | None = None
    target: str | None = None
    portal: str | None = None
    username: str | None = None


@dataclass(frozen=True)
class LunDisk:
    id: str
    alias: str | None
    description: str | None
    lun: Lun
    shareable: bool | None
    wipe_after_delete: bool | None


@dataclass(frozen=True)
class VmInfo:
    """A VM with a disk on a mapped domain: what its registration at the other site will need."""

    id: str
    name: str
    cluster_id: str | None
    nic_profiles: tuple[tuple[str, str | None], ...]  # (nic name, vNIC profile id)
    previews: tuple[str, ...]  # descriptions of snapshots in preview
    lun_ids: tuple[str, ...]


@dataclass
class Inventory:
    """One engine, by id. ``url`` is the API URL of the connection that read it."""

    url: str
    data_centers: dict[str, str] = field(default_factory=dict)  # id -> name
    clusters: dict[str, Cluster] = field(default_factory=dict)
    hosts: dict[str, tuple[str, str | None, str | None]] = field(
        default_factory=dict
    )  # (name, cluster, status)
    profiles: dict[str, Profile] = field(default_factory=dict)
    affinity_groups: dict[str, dict[str, tuple[str, ...]]] = field(
        default_factory=dict
    )  # cluster -> name -> vms
    affinity_labels: set[str] = field(default_factory=set)
    aaa_domains: set[str] = field(default_factory=set)
    roles: set[str] = field(default_factory=set)
    role_ids: dict[str, str] = field(default_factory=dict)  # id -> name
    users: set[str] = field(default_factory=set)  # user_name (name@domain)
    domains: dict[str, Domain] = field(default_factory=dict)
    attached: dict[str, dict[str, str | None]] = field(default_factory=dict)  # dc id -> sd id -> status
    luns: dict[str, Lun] = field(default_factory=dict)  # seen by an up host
    lun_disks: dict[str, LunDisk] = field(default_factory=dict)
    vms: dict[str, list[VmInfo]] = field(default_factory=dict)  # domain name -> VMs with a disk on it

    # -- lookups -----------------------------------------------------------------------------------
    def dc_by_name(self, name: str | None) -> str | None:
        return next((i for i, n in self.data_centers.items() if n == name), None)

    def cluster_by_name(self, name: str | None) -> Cluster | None:
        return next((c for c in self.clusters.values() if c.name == name), None)

    def domain_by_name(self, name: str | None) -> Domain | None:
        return next((d for d in self.domains.values() if d.name == name), None)

    def dc_of_domain(self, sd_id: str) -> str | None:
        return next((dc for dc, sds in self.attached.items() if sd_id in sds), None)

    def up_hosts_in_dc(self, dc_id: str) -> list[str]:
        clusters = {c.id for c in self.clusters.values() if c.dc_id == dc_id}
        return sorted(n for n, cl, st in self.hosts.values() if cl in clusters and st == "up")

    def groups_named(self, name: str) -> list[str]:
        """Names of the clusters that have an affinity group called ``name``."""
        return sorted(
            self.clusters[c].name if c in self.clusters else c
            for c, groups in self.affinity_groups.items()
            if name in groups
        )

    def profiles_named(self, name: str | None, network: str | None, dc: str | None = None) -> list[Profile]:
        return [
            p
            for p in self.profiles.values()
            if p.name == name and (network is None or p.network == network) and (dc is None or p.dc == dc)
        ]

    def known_luns(self) -> set[str]:
        """LUN ids this engine knows: seen by an up host, or used by one of its direct LUN disks."""
        return set(self.luns) | {d.lun.id for d in self.lun_disks.values()}


def _lun(unit: Any, storage_type: str | None) -> Lun:
    port = getattr(unit, "port", None)
    return Lun(
        id=unit.id,
        storage_type=storage_type,
        address=getattr(unit, "address", None),
        port=int(port) if port not in (None, "") else None,
        target=getattr(unit, "target", None),
        portal=getattr(unit, "portal", None),
        username=getattr(unit, "username", None),
    )


def _version(v: Any) -> tuple[int, int] | None:
    if v is None or getattr(v, "major", None) is None:
        return None
    return int(v.major), int(v.minor or 0)


def build_inventory(url: str, raw: dict[str, Any]) -> Inventory:
    """An :class:`Inventory` from :meth:`OvirtHook.mapping_inventory`'s answer."""
    inv = Inventory(url=url)
    inv.data_centers = {dc.id: dc.name for dc in raw.get("data_centers", [])}
    for c in raw.get("clusters", []):
        inv.clusters[c.id] = Cluster(c.id, c.name, _id(c.data_center), _version(c.version))
    for h in raw.get("hosts", []):
        inv.hosts[h.id] = (h.name, _id(h.cluster), _v(h.status))
    networks = {
        n.id: (n.name, inv.data_centers.get(_id(n.data_center) or "")) for n in raw.get("networks", [])
    }
    for p in raw.get("vnic_profiles", []):
        net_name, dc_name = networks.get(_id(p.network) or "", (None, None))
        inv.profiles[p.id] = Profile(p.id, p.name, net_name, dc_name)
    for cluster_id, groups in (raw.get("affinity_groups") or {}).items():
        inv.affinity_groups[cluster_id] = {
            g.name: tuple(v.id for v in (g.vms or []) if getattr(v, "id", None)) for g in groups or []
        }
    inv.affinity_labels = {lab.name for lab in raw.get("affinity_labels", [])}
    inv.aaa_domains = {d.name for d in raw.get("domains", [])}
    inv.role_ids = {r.id: r.name for r in raw.get("roles", [])}
    inv.roles = set(inv.role_ids.values())
    inv.users = {u.user_name for u in raw.get("users", []) if getattr(u, "user_name", None)}
    for sd in raw.get("storage_domains", []):
        st = sd.storage
        vg = getattr(st, "volume_group", None) if st is not None else None
        units = tuple(getattr(vg, "logical_units", None) or []) if vg is not None else ()
        inv.domains[sd.id] = Domain(
            id=sd.id,
            name=sd.name,
            type=_v(sd.type),
            storage_type=_v(st.type) if st is not None else None,
            address=getattr(st, "address", None),
            path=getattr(st, "path", None),
            vfs_type=getattr(st, "vfs_type", None),
            master=bool(sd.master),
            wipe_after_delete=sd.wipe_after_delete,
            backup=sd.backup,
            discard_after_delete=sd.discard_after_delete,
            critical_space_action_blocker=sd.critical_space_action_blocker,
            warning_low_space=sd.warning_low_space_indicator,
            logical_units=units,
        )
    for dc_id, sds in (raw.get("attached_domains") or {}).items():
        inv.attached[dc_id] = {sd.id: _v(sd.status) for sd in sds or []}
    for storages in (raw.get("host_storage") or {}).values():
        for hs in storages or []:
            for unit in hs.logical_units or []:
                inv.luns.setdefault(unit.id, _lun(unit, _v(hs.type)))
    for d in raw.get("disks", []):
        if _v(d.storage_type) != "lun" or d.lun_storage is None:
            continue
        units = d.lun_storage.logical_units or []
        if not units:
            continue
        inv.lun_disks[d.id] = LunDisk(
            id=d.id,
            alias=d.alias,
            description=d.description,
            lun=_lun(units[0], _v(d.lun_storage.type)),
            shareable=d.shareable,
            wipe_after_delete=d.wipe_after_delete,
        )
    for sd_name, vms in (raw.get("vms") or {}).items():
        inv.vms[sd_name] = [vm_info(vm) for vm in vms or []]
    return inv


def vm_info(vm: Any) -> VmInfo:
    nics = tuple((n.name, _id(n.vnic_profile)) for n in (vm.nics or []))
    previews = tuple(
        s.description or s.id for s in (vm.snapshots or []) if _v(s.snapshot_status) == "in_preview"
    )
    luns: list[str] = []
    for att in vm.disk_attachments or []:
        disk = att.disk
        if disk is not None and _v(disk.storage_type) == "lun" and disk.lun_storage is not None:
            luns += [u.id for u in disk.lun_storage.logical_units or []]
    return VmInfo(vm.id, vm.name, _id(vm.cluster), nics, previews, tuple(luns))
