"""Failover steps on the Gluster side: read the replica's inventory, make the replica writable.

The primary site may be gone: everything here works from the SLAVE side. Reading is done on a slave node
through a read-only FUSE mount that exists only for the duration of one task. The only change to Gluster
the failover makes is ``stop force`` of the geo-replication session (through the master node, when it is
reachable) and ``features.read-only off`` on the slave volume (through the slave node), both idempotent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ovirt_dr import node_readers as readers
from ovirt_dr.failover import PlanError, parse_entity_ovf
from ovirt_dr.gluster import GeoRepSession, SessionNotFound, build_georep_cmd, build_volume_set_cmd
from ovirt_dr.hooks.gluster import node_access
from ovirt_dr.operators.recovery_base import (
    WRITABLE_TASK,
    FailoverParams,
    RecoveryError,
    RecoveryOperator,
)
from ovirt_dr.replica import DomainFiles, is_uuid, require_uuid, show

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ovirt_dr.hooks.gluster import GlusterGeoRepHook
    from ovirt_dr.hooks.node import GlusterNodeHook

#: The plan fields of a domain that name its geo-replication session (``GeoRepSession.as_dict()``).
GEOREP_FIELDS = ("master_volume", "slave_host", "slave_volume", "slave_user")

READ_ONLY = "features.read-only"


def split_path(path: str) -> tuple[str, str]:
    """``/gvslave`` -> ``("gvslave", "")``; ``/gvslave/sub/dir`` -> ``("gvslave", "/sub/dir")``."""
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts:
        raise PlanError(f"storage path {path!r} names no Gluster volume")
    return parts[0], "".join(f"/{p}" for p in parts[1:])


def read_replica(
    hook: GlusterNodeHook | GlusterGeoRepHook,
    *,
    slave_host: str,
    path: str,
    mount_root: str,
    source_name: str,
    sd_id: str | None,
    log: Any,
) -> dict[str, Any]:
    """The replica's domain on the slave volume: its id and what its newest OVF_STORE describes.

    Returns ``{"sd_id", "ovf_store": {image, volume, last_updated}, "entities": [parse_entity_ovf(...)],
    "vm_status": {...}, "unreadable": {entity id: why}}``. The domain is found by ``sd_id`` (the mapping's
    ``dr_domain_id``) or else by its name in ``dom_md/metadata`` (vdsm's ``DESCRIPTION``). ``hook``: the
    slave node's access (or a geo-rep hook on it).
    """
    node = node_access(hook)
    volume, sub = split_path(path)
    if sd_id is not None:
        require_uuid(sd_id, "dr_domain_id")
    mountpoint = f"{mount_root.rstrip('/')}/{volume}-failover"
    with node.mounted(volume, slave_host, mountpoint, read_only=True) as mnt:
        root = f"{mnt}{sub}"
        found = node.python_json(readers.READ_DOMAINS, root, what="storage domains on the replica")
        domains = {d: md for d, md in (found if isinstance(found, dict) else {}).items() if is_uuid(d)}
        if sd_id:
            if sd_id not in domains:
                raise RecoveryError(
                    f"domain {source_name}: no storage domain {sd_id} on the replica {slave_host}:{path} "
                    f"(found {sorted(domains) or 'none'})"
                )
        else:
            named = [
                d
                for d, md in domains.items()
                if isinstance(md, dict) and md.get("DESCRIPTION") == source_name
            ]
            if len(named) != 1:
                seen = [(d, show((md or {}).get("DESCRIPTION"))) for d, md in domains.items()]
                raise RecoveryError(
                    f"domain {source_name}: {len(named)} storage domains named {source_name!r} on the replica "
                    f"{slave_host}:{path} (found {seen}); set dr_domain_id in the mapping file"
                )
            sd_id = named[0]
        files = DomainFiles(node, f"{root}/{sd_id}")
        image, vol, desc = files.newest_ovf_store()
        store = files.ovf_store(image, vol)
        ovfs = store.ovfs
        if store.unexpected:
            log.warning("OVF_STORE of %s holds unexpected members: %s", source_name, store.unexpected[:20])
        status_doc = node.python_json(
            readers.READ_VM_STATUS, files.path(image, vol), what="OVF_STORE metadata.json"
        )
    if not isinstance(status_doc, dict):
        status_doc = {}
    if status_doc.get("error"):
        log.warning(
            "OVF_STORE metadata.json of %s unreadable: %s", source_name, show(status_doc["error"], 300)
        )
    vm_status = status_doc.get("vm_status")
    entities, unreadable = [], {}
    for entity_id, xml in sorted(ovfs.items()):
        try:
            entities.append(parse_entity_ovf(xml))
        except PlanError as e:
            unreadable[entity_id] = str(e)
    return {
        "sd_id": sd_id,
        "ovf_store": {"image": image, "volume": vol, "last_updated": desc.get("Last Updated")},
        "entities": entities,
        "vm_status": vm_status if isinstance(vm_status, dict) else None,
        "unreadable": unreadable,
    }


def georep_session(domain: dict[str, Any]) -> GeoRepSession:
    """The geo-rep session of a plan domain (its ``master_volume``, ``slave_host``, ... fields)."""
    return GeoRepSession.from_dict({k: domain[k] for k in GEOREP_FIELDS})


class GlusterMakeReplicaWritableOperator(RecoveryOperator):
    """Make each recovered domain's replica writable, from the slave side.

    Per sync pair of the plan: stop the geo-replication session through the master node with ``stop force``
    (force: the slave or a worker may be unreachable or Faulty) when that node is reachable, else say that it
    cannot be stopped and go on (the primary site may be gone; a session whose master is gone does not
    write); then ``gluster volume set <slave_volume> features.read-only off`` through the slave node, only if
    it is on (geo-rep's ``create push-pem`` set it). Read back after the change. Idempotent; a dry run reads
    the session and the option and says what it would run.
    """

    def run(self, context: Context) -> list[dict[str, Any]]:
        params = FailoverParams.from_context(context)
        plan = self.plan(context)
        seen: set[tuple[str, str]] = set()
        results = []
        for domain in plan["domains"]:
            key = (domain["slave_ssh_conn_id"], domain["slave_volume"])
            if key in seen:
                continue
            seen.add(key)
            results.append(self._one(domain, params.dry_run))
        self.log_lines(
            "Replica " + ("plan (dry run):" if params.dry_run else "now:"),
            [f"{r['slave_volume']}: geo-rep {r['georep']}; read-only {r['read_only']}" for r in results],
        )
        return results

    def _one(self, domain: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        session = georep_session(domain)
        stop_cmd = " ".join(build_georep_cmd(session, "stop", "force"))
        master = self.gluster.get(domain["master_ssh_conn_id"])
        try:
            master.get_conn()
            reachable, why = True, ""
        except Exception as e:  # the primary's Gluster nodes may be gone with the site
            reachable, why = False, " ".join(str(e).split())[:300]
        if not reachable:
            georep = f"cannot be stopped: master node via {domain['master_ssh_conn_id']} unreachable ({why})"
            self.log.warning("Geo-replication %s %s; going on from the slave side", session, georep)
        else:
            try:
                status = master.status(session)
                running = status.is_running
                workers = ", ".join(sorted({w.status or "?" for w in status.workers})) or "no workers"
                if dry_run:
                    georep = f"{workers}: would run '{stop_cmd}' via {domain['master_ssh_conn_id']}"
                else:
                    master.stop(session, force=True)
                    georep = f"stopped (was {workers})" if running else f"already stopped ({workers})"
            except SessionNotFound as e:
                georep = f"no session ({e.reason}): nothing to stop"
        slave = self.gluster.get(domain["slave_ssh_conn_id"])
        (info,) = slave.volume_info(domain["slave_volume"])
        before = info.options.get(READ_ONLY, "off")
        set_cmd = build_volume_set_cmd(domain["slave_volume"], READ_ONLY, "off")
        if before == "off":
            read_only = "already off"
        elif dry_run:
            read_only = f"{before}: would run '{' '.join(set_cmd)}' via {domain['slave_ssh_conn_id']}"
        else:
            slave.volume_set(domain["slave_volume"], READ_ONLY, "off")
            (after,) = slave.volume_info(domain["slave_volume"])
            now = after.options.get(READ_ONLY, "off")
            if now != "off":
                raise RecoveryError(
                    f"{domain['slave_volume']}: {READ_ONLY} is still {now!r} after setting it off"
                )
            read_only = f"{before} -> off"
        return {
            "slave_volume": domain["slave_volume"],
            "session": str(session),
            "georep": georep,
            "read_only": read_only,
        }


__all__ = ["WRITABLE_TASK", "GlusterMakeReplicaWritableOperator", "read_replica", "split_path"]
