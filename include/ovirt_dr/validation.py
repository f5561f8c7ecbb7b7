"""Validate a DR mapping file against the engines: every problem at once, each naming its entry and site.

The oVirt Ansible ``disaster_recovery`` role's validator stops at the first failing category, asks for
passwords on stdin and skips LUNs, roles, vNIC profile ids and storage domains. This one reads both engines
through their Airflow connections (two batches of requests per engine, both engines at the same time) and
reports, in one run:

- what the file says without an engine (:meth:`DrMapping.static_problems`: empty values, duplicates,
  several masters, unsupported domain types);
- the file's ``dr_sites_*_url`` against the Airflow connections (a mismatch: the file is for other engines);
- every mapped name or id on its site: clusters, affinity groups, affinity labels, aaa domains, roles,
  vNIC profiles by name + network (+ DC) and by ``*_profile_id``, LUNs by logical unit id;
- cluster compatibility versions (the target's must not be older);
- storage domains: the source domain exists with the mapped type, address and path, is a data domain
  (not hosted-engine, not export) attached to the mapped data center; the target data center exists and
  has an up host; the target engine has no other domain of that name (one already imported is a warning:
  a retried failover continues with it); every GlusterFS domain has the sync pair that replicates it;
- the VMs on each mapped domain: none has a snapshot in preview, and every cluster, vNIC profile and direct
  LUN they use is mapped (or exists under the same name on the target), in a cluster of the data center
  the domain goes to.

With the source engine unreachable (a real failover: the primary site is gone) only the target side is
checked and the report says, as a warning, what could not be.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ovirt_dr.inventory import Inventory, build_inventory
from ovirt_dr.mapping import Direction, DrMapping, ImportStorage, Side, sides
from ovirt_dr.recovery_config import Recovery, pair_of

if TYPE_CHECKING:
    from ovirt_dr.hooks.ovirt import OvirtHook

FILE_DOMAIN_TYPES = ("nfs", "glusterfs", "posixfs")
_NAME_KINDS = {
    "dr_cluster_mappings": ("cluster", "clusters"),
    "dr_affinity_group_mappings": ("affinity group", "affinity_groups"),
    "dr_affinity_label_mappings": ("affinity label", "affinity_labels"),
    "dr_domain_mappings": ("aaa domain", "aaa_domains"),
    "dr_role_mappings": ("role", "roles"),
}


@dataclass
class ValidationReport:
    """The outcome: ``errors`` stop a recovery, ``warnings`` do not; ``checked`` counts what was looked at."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "checked": dict(self.checked),
        }

    def count(self, category: str, n: int = 1) -> None:
        self.checked[category] = self.checked.get(category, 0) + n


def _few(names: Iterable[str], limit: int = 8) -> str:
    items = sorted({n for n in names if n})
    if not items:
        return "none"
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _norm_url(url: str | None) -> str:
    parts = urlsplit((url or "").strip())
    port = parts.port or (443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}{parts.path.rstrip('/')}"


def _norm_path(path: str | None) -> str:
    return "/" + (path or "").strip().strip("/")


@lru_cache(maxsize=256)
def _addresses(name: str) -> frozenset[str]:
    try:
        return frozenset(info[4][0] for info in socket.getaddrinfo(name, None))
    except (OSError, UnicodeError):
        return frozenset()


def _local(ips: frozenset[str]) -> bool:
    return any(ip.startswith("127.") or ip == "::1" for ip in ips) or bool(
        ips & _addresses(socket.gethostname())
    )


def same_server(a: str | None, b: str | None) -> bool | None:
    """Whether two server names reach one server: True, False, or None when a name does not resolve.

    Equal names are the same server; otherwise both names are resolved: a shared address, or both being
    this machine (``127.0.0.1`` and the hostname of a single-node Gluster), is the same server.
    """
    if not a or not b:
        return None
    if a.strip().lower() == b.strip().lower():
        return True
    ia, ib = _addresses(a.strip()), _addresses(b.strip())
    if not ia or not ib:
        return None
    return bool(ia & ib) or (_local(ia) and _local(ib))


class _Checks:
    """The checks of one validation; each appends to the report, none stops the others."""

    def __init__(
        self,
        report: ValidationReport,
        rec: Recovery,
        mapping: DrMapping,
        direction: Direction,
        inv: dict[Side, Inventory | None],
        conn_urls: dict[Side, str | None],
        domains: list[str] | None,
    ) -> None:
        self.r = report
        self.rec = rec
        self.m = mapping
        self.direction = direction
        self.source, self.target = sides(direction)
        self.inv = inv
        self.conn_urls = conn_urls
        self.domains = domains

    # -- helpers ----------------------------------------------------------------------------------------
    def err(self, msg: str) -> None:
        self.r.errors.append(msg)

    def warn(self, msg: str) -> None:
        self.r.warnings.append(msg)

    def engine(self, side: Side) -> str:
        inv = self.inv[side]
        return f"the {side} engine ({inv.url})" if inv is not None else f"the {side} engine"

    def sides_read(self) -> list[tuple[Side, Inventory]]:
        """The sides whose engine could be read (primary first)."""
        return [(side, inv) for side, inv in self.inv.items() if inv is not None]

    def run(self) -> None:
        self.sites()
        self.names()
        self.cluster_versions()
        self.vnic_profiles()
        self.luns()
        self.storages()

    # -- dr_sites_* ---------------------------------------------------------------------------------------
    def sites(self) -> None:
        for side in ("primary", "secondary"):
            file_url = getattr(self.m, f"dr_sites_{side}_url")
            conn_url = self.conn_urls.get(side)  # type: ignore[call-overload]
            conn_id = self._conn_id(side)
            self.r.count("sites")
            if conn_url is None:
                self.warn(f"dr_sites_{side}_url: not compared (no Airflow connection for the {side} site)")
            elif not file_url:
                self.warn(
                    f"dr_sites_{side}_url is empty: ovirt-dr reaches the {side} engine through the Airflow "
                    f"connection {conn_id!r} ({conn_url})"
                )
            elif _norm_url(file_url) != _norm_url(conn_url):
                self.err(
                    f"dr_sites_{side}_url: {file_url!r} is not the {side} engine of Airflow connection "
                    f"{conn_id!r} ({conn_url}): this mapping file is for other engines"
                )

    def _conn_id(self, side: str) -> str | None:
        try:
            return self.rec.conn_id(side)
        except ValueError:
            return None

    # -- name lists ---------------------------------------------------------------------------------------
    def names(self) -> None:
        for key, (what, category) in _NAME_KINDS.items():
            for i, entry in enumerate(getattr(self.m, key)):
                self.r.count(category)
                for side, inv in self.sides_read():
                    name = entry.side(side)
                    if not name:
                        continue  # static_problems says so
                    known = self._names(inv, category)
                    if name not in known:
                        self.err(
                            f"{key}[{i}]: {side} {what} {name!r} does not exist on {self.engine(side)} "
                            f"({category.replace('_', ' ')} there: {_few(known)})"
                        )

    @staticmethod
    def _names(inv: Inventory, category: str) -> set[str]:
        if category == "clusters":
            return {c.name for c in inv.clusters.values()}
        if category == "affinity_groups":
            return {g for groups in inv.affinity_groups.values() for g in groups}
        if category == "affinity_labels":
            return set(inv.affinity_labels)
        if category == "aaa_domains":
            return set(inv.aaa_domains)
        return set(inv.roles)

    def cluster_versions(self) -> None:
        src, tgt = self.inv[self.source], self.inv[self.target]
        if src is None or tgt is None:
            return
        for i, entry in enumerate(self.m.dr_cluster_mappings):
            a, b = src.cluster_by_name(entry.side(self.source)), tgt.cluster_by_name(entry.side(self.target))
            if a is None or b is None or a.version is None or b.version is None:
                continue
            self.r.count("cluster_versions")
            if b.version < a.version:
                self.err(
                    f"dr_cluster_mappings[{i}]: {self.target} cluster {b.name!r} is at compatibility version "
                    f"{b.version[0]}.{b.version[1]}, older than {self.source} cluster {a.name!r} "
                    f"({a.version[0]}.{a.version[1]}): its VMs cannot be registered there"
                )
            elif b.version > a.version:
                self.warn(
                    f"dr_cluster_mappings[{i}]: {self.target} cluster {b.name!r} "
                    f"({b.version[0]}.{b.version[1]}) is newer than {a.name!r} ({a.version[0]}.{a.version[1]}): "
                    "a failback to the older cluster will not be possible without an upgrade"
                )

    # -- vNIC profiles --------------------------------------------------------------------------------------
    def vnic_profiles(self) -> None:
        for i, nm in enumerate(self.m.dr_network_mappings):
            self.r.count("vnic_profiles")
            for side, inv in self.sides_read():
                name, net = nm.side(side, "profile_name"), nm.side(side, "network_name")
                dc, pid = nm.side(side, "network_dc"), nm.side(side, "profile_id")
                where = f"dr_network_mappings[{i}]"
                if dc and inv.dc_by_name(dc) is None:
                    self.err(
                        f"{where}: {side}_network_dc {dc!r} is not a data center of {self.engine(side)} "
                        f"(data centers there: {_few(inv.data_centers.values())})"
                    )
                if pid:
                    prof = inv.profiles.get(pid)
                    if prof is None:
                        self.err(
                            f"{where}: {side}_profile_id {pid} is not a vNIC profile of {self.engine(side)}"
                        )
                    elif (name and prof.name != name) or (net and prof.network != net):
                        self.err(
                            f"{where}: {side}_profile_id {pid} is profile {prof.name!r} on network "
                            f"{prof.network!r} on {self.engine(side)}, not {name!r} on {net!r}"
                        )
                if name:
                    found = inv.profiles_named(name, net, dc)
                    if not found:
                        self.err(
                            f"{where}: {side} vNIC profile {name!r} on network {net!r}"
                            + (f" in data center {dc!r}" if dc else "")
                            + f" does not exist on {self.engine(side)} (profiles there: "
                            + _few(f"{p.name}/{p.network}" for p in inv.profiles.values())
                            + ")"
                        )
                    elif len(found) > 1 and not dc and not pid:
                        self.err(
                            f"{where}: {side} vNIC profile {name!r} on network {net!r} exists in "
                            f"{len(found)} data centers of {self.engine(side)} ({_few(p.dc or '?' for p in found)}): "
                            f"set {side}_network_dc or {side}_profile_id"
                        )

    # -- LUNs ----------------------------------------------------------------------------------------------
    def luns(self) -> None:
        for i, lm in enumerate(self.m.dr_lun_mappings):
            self.r.count("luns")
            for side, inv in self.sides_read():
                lun_id = lm.side(side, "logical_unit_id")
                if not lun_id:
                    continue
                if lun_id not in inv.known_luns():
                    self.err(
                        f"dr_lun_mappings[{i}]: {side}_logical_unit_id {lun_id} is not a LUN that a host of "
                        f"{self.engine(side)} sees or a disk uses"
                    )
                    continue
                seen = inv.luns.get(lun_id)
                stype = lm.side(side, "storage_type")
                if seen is not None and stype and seen.storage_type and seen.storage_type != stype:
                    self.err(
                        f"dr_lun_mappings[{i}]: {side}_storage_type {stype!r}, but {self.engine(side)} sees LUN "
                        f"{lun_id} over {seen.storage_type}"
                    )

    # -- storage domains ------------------------------------------------------------------------------------
    def storages(self) -> None:
        wanted = set(self.domains) if self.domains is not None else None
        mapped = {s.side(self.source, "name") for s in self.m.dr_import_storages}
        for name in sorted(wanted - mapped) if wanted is not None else []:
            self.err(
                f"domains: {name!r} is not a {self.source} storage domain of dr_import_storages "
                f"(mapped: {_few(n for n in mapped if n)})"
            )
        for i, s in enumerate(self.m.dr_import_storages):
            if wanted is not None and s.side(self.source, "name") not in wanted:
                continue
            self.r.count("storage_domains")
            where = f"dr_import_storages[{i}] ({s.label()})"
            src_domain = self.source_domain(where, s)
            self.target_domain(where, s, src_domain)
            self.sync_pair(where, s)
            if src_domain is not None:
                self.vms(where, s)

    def source_domain(self, where: str, s: ImportStorage) -> Any:
        side, inv = self.source, self.inv[self.source]
        if inv is None:
            return None
        name = s.side(side, "name")
        if not name:
            return None
        d = inv.domain_by_name(name)
        if d is None and s.dr_domain_id:
            d = inv.domains.get(s.dr_domain_id)
        if d is None:
            self.err(
                f"{where}: dr_{side}_name {name!r}: no such storage domain on {self.engine(side)} "
                f"(domains there: {_few(x.name for x in inv.domains.values())})"
            )
            return None
        if s.dr_domain_id and s.dr_domain_id != d.id:
            self.err(
                f"{where}: dr_domain_id {s.dr_domain_id} is not the id of {name!r} on {self.engine(side)} ({d.id})"
            )
        if d.hosted_engine:
            self.err(
                f"{where}: {name!r} is the hosted engine's storage domain on {self.engine(side)}: never recover it"
            )
        if d.type != "data":
            self.err(
                f"{where}: {name!r} is an {d.type} domain on {self.engine(side)}: only data domains are recovered "
                "(remove the entry)"
            )
        if s.dr_domain_type and d.storage_type and s.dr_domain_type != d.storage_type:
            self.err(
                f"{where}: dr_domain_type is {s.dr_domain_type!r}, but {name!r} is a {d.storage_type} domain on "
                f"{self.engine(side)}"
            )
        if (s.dr_domain_type or d.storage_type) in FILE_DOMAIN_TYPES:
            path = s.side(side, "path")
            if path and d.path is not None and _norm_path(path) != _norm_path(d.path):
                self.err(
                    f"{where}: dr_{side}_path {path!r}, but {name!r} is on {d.address}:{d.path} on {self.engine(side)}"
                )
            address = s.side(side, "address")
            same = same_server(address, d.address)
            if same is False:
                self.err(
                    f"{where}: dr_{side}_address {address!r}, but {name!r} is on server {d.address!r} "
                    f"on {self.engine(side)}"
                )
            elif same is None and address and d.address:
                self.warn(
                    f"{where}: dr_{side}_address {address!r} and the engine's {d.address!r} could not both be "
                    "resolved here: not compared"
                )
        dc_name = s.side(side, "dc_name")
        dc_id = inv.dc_of_domain(d.id)
        if dc_id is None:
            self.err(f"{where}: {name!r} is not attached to a data center on {self.engine(side)}")
        elif dc_name and inv.data_centers.get(dc_id) != dc_name:
            self.err(
                f"{where}: dr_{side}_dc_name {dc_name!r}, but {name!r} is attached to data center "
                f"{inv.data_centers.get(dc_id)!r} on {self.engine(side)}"
            )
        master = s.side(side, "master_domain")
        if master is not None and bool(master) != d.master:
            self.warn(
                f"{where}: dr_{side}_master_domain is {master}, but {name!r} is {'' if d.master else 'not '}the "
                f"master domain on {self.engine(side)}"
            )
        return d

    def target_domain(self, where: str, s: ImportStorage, src_domain: Any) -> None:
        side, inv = self.target, self.inv[self.target]
        if inv is None:
            return
        name = s.side(side, "name")
        known_id = src_domain.id if src_domain is not None else s.dr_domain_id
        same = inv.domains.get(known_id) if known_id else None
        by_name = inv.domain_by_name(name) if name else None
        if same is None and known_id is None and by_name is not None and self._is_the_replica(s, by_name):
            # the source is gone, so its domain id is unknown: a domain of that name on the replica's volume
            # is the one an earlier (interrupted) failover imported
            same = by_name
        if same is not None:
            dc_id = inv.dc_of_domain(same.id)
            status = inv.attached.get(dc_id or "", {}).get(same.id) if dc_id else "unattached"
            self.warn(
                f"{where}: already imported on {self.engine(side)} as {same.name!r} ({status}): a retried "
                "failover continues with it"
            )
        elif by_name is not None:
            self.err(
                f"{where}: {self.engine(side)} already has a different storage domain named {name!r} "
                f"({by_name.id}): the import would clash; rename one of them"
            )
        if by_name is not None and (by_name.type != "data" or by_name.hosted_engine):
            self.err(f"{where}: dr_{side}_name {name!r} is the {self.target} site's {by_name.type} domain")
        dc_name = s.side(side, "dc_name")
        if not dc_name:
            return
        dc_id = inv.dc_by_name(dc_name)
        self.r.count("data_centers")
        if dc_id is None:
            self.err(
                f"{where}: dr_{side}_dc_name {dc_name!r} is not a data center of {self.engine(side)} "
                f"(data centers there: {_few(inv.data_centers.values())})"
            )
        elif not inv.up_hosts_in_dc(dc_id):
            self.err(
                f"{where}: data center {dc_name!r} has no host that is up on {self.engine(side)}: nothing can "
                "import or run the domain"
            )

    def _is_the_replica(self, s: ImportStorage, d: Any) -> bool:
        """The target's domain ``d`` lives where the mapping says the replica is (same server and path)."""
        path, address = s.side(self.target, "path"), s.side(self.target, "address")
        return bool(
            path
            and d.path is not None
            and _norm_path(path) == _norm_path(d.path)
            and same_server(address, d.address)
        )

    def sync_pair(self, where: str, s: ImportStorage) -> None:
        if s.dr_domain_type != "glusterfs":
            return
        pair = pair_of(s, self.rec.pairs)
        if pair is None:
            candidates = [p for p in self.rec.pairs if p.storage_domain == s.dr_primary_name]
            self.err(
                f"{where}: no sync pair replicates GlusterFS domain {s.dr_primary_name!r} to "
                f"dr_secondary_path {s.dr_secondary_path!r} (pairs of that domain: "
                f"{_few(f'{p.target} -> {p.slave_host}::{p.slave_volume}' for p in candidates)}): its replica "
                "is not kept by ovirt-dr"
            )
            return
        if same_server(s.dr_secondary_address, pair.slave_host) is False:
            self.err(
                f"{where}: dr_secondary_address {s.dr_secondary_address!r} is not the slave host "
                f"{pair.slave_host!r} of sync pair {pair.label}"
            )

    # -- the VMs on a mapped domain ---------------------------------------------------------------------
    def vms(self, where: str, s: ImportStorage) -> None:
        src, tgt = self.inv[self.source], self.inv[self.target]
        if src is None:
            return
        name = s.side(self.source, "name") or ""
        clusters = self.m.name_map("dr_cluster_mappings", self.direction)
        groups = self.m.name_map("dr_affinity_group_mappings", self.direction)
        lun_sources = {lm.side(self.source, "logical_unit_id") for lm in self.m.dr_lun_mappings}
        target_dc = tgt.dc_by_name(s.side(self.target, "dc_name")) if tgt is not None else None
        for vm in src.vms.get(name, []):
            self.r.count("vms")
            vm_where = f"{where}: VM {vm.name!r}"
            for desc in vm.previews:
                self.err(
                    f"{vm_where} has snapshot {desc!r} in preview on {self.engine(self.source)}: commit or undo the "
                    "preview first (its disks are not the ones the OVF_STORE describes)"
                )
            cluster = src.clusters.get(vm.cluster_id or "")
            target_cluster_name = clusters.get(cluster.name, cluster.name) if cluster else None
            if tgt is None or cluster is None:
                continue
            target_cluster = tgt.cluster_by_name(target_cluster_name)
            if target_cluster is None:
                if cluster.name not in clusters:
                    self.err(
                        f"{vm_where} is in {self.source} cluster {cluster.name!r}: dr_cluster_mappings does not map "
                        f"it and {self.engine(self.target)} has no cluster of that name"
                    )
            elif target_dc is not None and target_cluster.dc_id != target_dc:
                self.err(
                    f"{vm_where} goes to {self.target} cluster {target_cluster.name!r}, which is not in data center "
                    f"{s.side(self.target, 'dc_name')!r} where its domain is imported"
                )
            for nic, pid in vm.nic_profiles:
                prof = src.profiles.get(pid or "")
                if prof is None:
                    continue
                if not self._profile_mapped(prof) and not tgt.profiles_named(prof.name, prof.network):
                    self.err(
                        f"{vm_where} nic {nic!r} uses vNIC profile {prof.name!r} on network {prof.network!r}: "
                        f"dr_network_mappings does not map it and {self.engine(self.target)} has no such profile"
                    )
            for lun_id in vm.lun_ids:
                if lun_id not in lun_sources and lun_id not in tgt.known_luns():
                    self.err(
                        f"{vm_where} has a direct LUN disk on {lun_id}: dr_lun_mappings does not map it and no host "
                        f"of {self.engine(self.target)} sees it"
                    )
            for group, members in src.affinity_groups.get(cluster.id, {}).items():
                if vm.id not in members:
                    continue
                target_group = groups.get(group, group)
                if target_cluster is not None and target_group not in tgt.affinity_groups.get(
                    target_cluster.id, {}
                ):
                    text = (
                        f"{vm_where} is in affinity group {group!r}; {target_group!r} does not exist in "
                        f"{self.target} cluster {target_cluster.name!r}"
                    )
                    if group in groups:
                        self.err(
                            text
                            + f" (an affinity group exists per cluster; it is in: {_few(tgt.groups_named(target_group))})"
                        )
                    else:
                        self.warn(text + ": the VM is registered without it")

    def _profile_mapped(self, prof: Any) -> bool:
        for nm in self.m.dr_network_mappings:
            if nm.side(self.source, "profile_id") == prof.id:
                return True
            if nm.side(self.source, "profile_name") == prof.name and nm.side(self.source, "network_name") in (
                None,
                prof.network,
            ):
                return True
        return False


def _collect(hook: OvirtHook, vm_domains: list[str]) -> Inventory:
    return build_inventory(hook.api_url(), hook.mapping_inventory(vm_domains))


def _conn_url(
    rec: Recovery, side: str, hook: OvirtHook | None, make_hook: Callable[[str], Any]
) -> str | None:
    """The connection's API URL: from the hook in use, else read from the Airflow connection (no network)."""
    try:
        return (hook or make_hook(rec.conn_id(side))).api_url()
    except Exception:  # a missing/broken connection is reported where the engine is needed
        return None


def validate_mapping(
    rec: Recovery,
    direction: Direction,
    *,
    source: OvirtHook | None,
    target: OvirtHook,
    domains: list[str] | None = None,
) -> ValidationReport:
    """Check ``rec``'s mapping for ``direction`` against the engines; return every problem found.

    ``source`` is the hook of the side the VMs come from (primary for a failover), ``None`` when that engine
    is unreachable: then only the target side is checked and a warning names what was not. ``domains``
    (source-side storage domain names) restricts the storage and VM checks to those domains.
    """
    report = ValidationReport()
    report.errors += rec.problems
    if rec.mapping is None:
        if not rec.problems:
            report.errors.append(f"{rec.config_path}: no mapping file could be read")
        return report
    mapping = rec.mapping
    src_side, tgt_side = sides(direction)
    report.errors += mapping.static_problems(direction)
    vm_domains = [
        n
        for s in mapping.dr_import_storages
        if (n := s.side(src_side, "name")) and (domains is None or n in domains)
    ]
    inventories: dict[Side, Inventory | None] = {"primary": None, "secondary": None}
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="dr-validate") as pool:
        fut_src = pool.submit(_collect, source, vm_domains) if source is not None else None
        fut_tgt = pool.submit(_collect, target, [])
        try:
            inventories[tgt_side] = fut_tgt.result()
        except Exception as e:
            report.errors.append(f"the {tgt_side} (target) engine could not be read: {e}")
        if fut_src is not None:
            try:
                inventories[src_side] = fut_src.result()
            except Exception as e:
                report.warnings.append(f"the {src_side} (source) engine could not be read: {e}")
    if inventories[src_side] is None:
        report.warnings.append(
            f"the {src_side} (source) engine is not reachable: checked the {tgt_side} side only; not checked: "
            f"{src_side} names and ids, cluster versions, snapshots in preview, the {src_side} storage domains, "
            "and which clusters, vNIC profiles and LUNs the VMs use"
        )
    from ovirt_dr.hooks.ovirt import OvirtHook

    hooks = {src_side: source, tgt_side: target}
    conn_urls: dict[Side, str | None] = {
        side: _conn_url(rec, side, hooks[side], lambda cid: OvirtHook(ovirt_conn_id=cid))  # type: ignore[misc]
        for side in ("primary", "secondary")
    }
    return check_inventories(rec, direction, inventories, conn_urls, domains, report)


def check_inventories(
    rec: Recovery,
    direction: Direction,
    inventories: dict[Side, Inventory | None],
    conn_urls: dict[Side, str | None],
    domains: list[str] | None = None,
    report: ValidationReport | None = None,
) -> ValidationReport:
    """The engine checks on inventories already read (pure: what :func:`validate_mapping` runs).

    ``inventories`` maps ``primary``/``secondary`` to an :class:`Inventory` or ``None`` (not read);
    ``conn_urls`` holds each side's Airflow connection URL. Adds to ``report`` (a new one by default).
    """
    report = report if report is not None else ValidationReport()
    if rec.mapping is not None:
        _Checks(report, rec, rec.mapping, direction, inventories, conn_urls, domains).run()
    return report


def format_report(report: ValidationReport, title: str) -> str:
    """The report as text for the task log and the exception: every error and warning on its own line."""
    lines = [
        f"{title}: {len(report.errors)} error(s), {len(report.warnings)} warning(s); checked "
        + ", ".join(f"{k} {v}" for k, v in sorted(report.checked.items()))
    ]
    lines += [f"  ERROR   {e}" for e in report.errors]
    lines += [f"  WARNING {w}" for w in report.warnings]
    return "\n".join(lines)
