"""Failover steps on the Gluster side: read the replica's inventory, make the replica writable.

The primary site may be gone: everything here works from the SLAVE side. Reading is done on a slave node
through a read-only FUSE mount that exists only for the duration of one task. The only change to Gluster
the failover makes is ``stop force`` of the geo-replication session (through the master node, when it is
reachable) and ``features.read-only off`` on the slave volume (through the slave node), both idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ovirt_dr.failover import PlanError, parse_entity_ovf
from ovirt_dr.gluster import GeoRepSession, SessionNotFound, build_georep_cmd, build_volume_set_cmd
from ovirt_dr.operators.recovery_base import (
    WRITABLE_TASK,
    FailoverParams,
    RecoveryError,
    RecoveryOperator,
    mounted,
)
from ovirt_dr.replica import UUID_RE, DomainFiles

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ovirt_dr.hooks.gluster import GlusterGeoRepHook

READ_ONLY = "features.read-only"

_LIST_DOMAINS = r"""
cd "$1" || exit 3
for f in */dom_md/metadata; do
  [ -e "$f" ] || continue
  printf '### %s\n' "${f%%/*}"
  grep -E '^(SDUUID|DESCRIPTION|ROLE|CLASS)=' "$f"
done
exit 0
"""

_EXTRACT_METADATA = r"""
tar -xOf "$1" metadata.json 2>/dev/null || exit 0
"""


def split_path(path: str) -> tuple[str, str]:
    """``/gvslave`` -> ``("gvslave", "")``; ``/gvslave/sub/dir`` -> ``("gvslave", "/sub/dir")``."""
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts:
        raise PlanError(f"storage path {path!r} names no Gluster volume")
    return parts[0], "".join(f"/{p}" for p in parts[1:])


def read_replica(
    hook: GlusterGeoRepHook,
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
    ``dr_domain_id``) or else by its name in ``dom_md/metadata`` (vdsm's ``DESCRIPTION``).
    """
    volume, sub = split_path(path)
    mountpoint = f"{mount_root.rstrip('/')}/{volume}-failover"
    with mounted(hook, slave_host, volume, mountpoint, read_only=True, log=log) as mnt:
        root = f"{mnt}{sub}"
        found: dict[str, dict[str, str]] = {}
        current = None
        for line in hook.run(["sh", "-c", _LIST_DOMAINS, "sh", root]).stdout.splitlines():
            if line.startswith("### "):
                current = line[4:].strip()
                found[current] = {}
            elif current and "=" in line:
                key, value = line.split("=", 1)
                found[current][key] = value
        domains = {d: md for d, md in found.items() if UUID_RE.match(d)}
        if sd_id:
            if sd_id not in domains:
                raise RecoveryError(
                    f"domain {source_name}: no storage domain {sd_id} on the replica {slave_host}:{path} "
                    f"(found {sorted(domains) or 'none'})"
                )
        else:
            named = [d for d, md in domains.items() if md.get("DESCRIPTION") == source_name]
            if len(named) != 1:
                raise RecoveryError(
                    f"domain {source_name}: {len(named)} storage domains named {source_name!r} on the replica "
                    f"{slave_host}:{path} (found {[(d, md.get('DESCRIPTION')) for d, md in domains.items()]}); "
                    "set dr_domain_id in the mapping file"
                )
            sd_id = named[0]
        files = DomainFiles(hook, f"{root}/{sd_id}")
        image, vol, desc = files.newest_ovf_store()
        ovfs = files.ovfs(image, vol)
        meta_raw = hook.run(["sh", "-c", _EXTRACT_METADATA, "sh", files.path(image, vol)]).stdout
    try:
        meta = json.loads(meta_raw) if meta_raw.strip() else {}
    except ValueError:
        meta = {}
    vm_status = meta.get("VM Status") if isinstance(meta, dict) else None
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
    return GeoRepSession(
        domain["master_volume"], domain["slave_host"], domain["slave_volume"], domain["slave_user"]
    )


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
            slave.run(set_cmd)
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


def volume_options(hook: GlusterGeoRepHook, volumes: Sequence[str]) -> dict[str, str | None]:
    """``{volume: features.read-only}`` (for reports and tests)."""
    out: dict[str, str | None] = {}
    for v in volumes:
        (info,) = hook.volume_info(v)
        out[v] = info.options.get(READ_ONLY)
    return out


__all__ = ["WRITABLE_TASK", "GlusterMakeReplicaWritableOperator", "read_replica", "split_path"]
