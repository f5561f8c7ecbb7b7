"""DR drill steps on the Gluster side: make the replica's copy; check disks through it; remove it.

Everything runs on a SLAVE node over SSH (``GlusterGeoRepHook``), through a mount of the slave volume that
lives for one task (``<mount_root>/<volume>-drill``), with the node programs of ``ovirt_dr.drill_node``.
The replica's files are never written: the copy is a sibling directory (a new storage domain) whose
volumes are symlinks to the replica's and whose writes go to new overlays. What the drill changes on Gluster
is the slave volume's ``features.read-only`` (off while the engine uses the copy: attaching a domain
writes its metadata and OVF_STORE, VMs write their overlays; put back as it was by the cleanup) and the
copy's own directory. It refuses to start while geo-replication runs: the replica must be still.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ovirt_dr.drill import COPY_TASK, DrillParams
from ovirt_dr.drill_node import MAKE_COPY, REMOVE_COPY, VERIFY
from ovirt_dr.gluster import GeoRepSession, build_volume_set_cmd
from ovirt_dr.hooks.gluster import node_access
from ovirt_dr.operators.recovery_base import RecoveryError, RecoveryOperator, mounted
from ovirt_dr.operators.recovery_gluster import READ_ONLY, split_path
from ovirt_dr.replica import show

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ovirt_dr.hooks.gluster import GlusterGeoRepHook


def drill_mountpoint(domain: dict[str, Any]) -> str:
    volume, _ = split_path(domain["path"])
    return f"{domain['mount_root'].rstrip('/')}/{volume}-drill"


def domain_root(mnt: str, domain: dict[str, Any]) -> str:
    """Where the volume's domains are on the node: the mount plus the mapping path's subdirectory."""
    _, sub = split_path(domain["path"])
    return f"{mnt}{sub}"


def read_only_of(hook: GlusterGeoRepHook, volume: str) -> str:
    (info,) = hook.volume_info(volume)
    return info.options.get(READ_ONLY, "off")


def set_read_only(hook: GlusterGeoRepHook, volume: str, value: str) -> str:
    """``features.read-only`` to ``value`` unless it is already; read back. Returns what happened."""
    before = read_only_of(hook, volume)
    if before == value:
        return f"{value} already"
    hook.run(build_volume_set_cmd(volume, READ_ONLY, value))
    now = read_only_of(hook, volume)
    if now != value:
        raise RecoveryError(f"{volume}: {READ_ONLY} is {now!r} after setting it {value}")
    return f"{before} -> {value}"


def georep_running(op: RecoveryOperator, domain: dict[str, Any]) -> str | None:
    """Why the replica is not still (the session runs, or nothing tells it does not), or None."""
    session = GeoRepSession(
        domain["master_volume"], domain["slave_host"], domain["slave_volume"], domain["slave_user"]
    )
    try:
        status = op.gluster.get(domain["master_ssh_conn_id"]).status(session)
    except Exception as e:  # noqa: BLE001 - any failure means: not proven still
        return f"geo-replication {session} cannot be read via {domain['master_ssh_conn_id']} ({e})"
    if status.is_running:
        states = ", ".join(sorted({w.status or "?" for w in status.workers}))
        return (
            f"geo-replication {session} is running ({states}): the replica is changing; the drill needs it "
            "stopped (does the sync DAG leave it running, or did someone start it?)"
        )
    return None


#: A spec larger than this goes to the node as a file (one argv string may hold 128 KiB on Linux).
MAX_ARGV_SPEC = 64 * 1024


def node_program(
    hook: GlusterGeoRepHook, program: str, spec: dict[str, Any], timeout: float, spool: str
) -> Any:
    """Run one of ``ovirt_dr.drill_node``'s programs with its JSON spec; its JSON document back.

    A large spec (thousands of disks) is written to ``spool`` on the node first (``write_file``: through
    stdin, never a command line) and passed as ``@<path>``.
    """
    text = json.dumps(spec, sort_keys=True)
    arg = text
    if len(text) > MAX_ARGV_SPEC:
        node_access(hook).write_file(spool, text.encode())
        arg = f"@{spool}"
    try:
        out = hook.run(["python3", "-c", program, arg], timeout=timeout).stdout
    finally:
        if arg != text:
            node_access(hook).remove_files([spool])
    try:
        return json.loads(out)
    except ValueError:
        raise RecoveryError(f"a drill node program printed no JSON: {show(out, 200)}") from None


def spool_path(domain: dict[str, Any]) -> str:
    return f"{domain['mount_root'].rstrip('/')}/.ovirt-dr-drill-{domain['sd_id']}.json"


def verify_disks(
    hook: GlusterGeoRepHook,
    domain: dict[str, Any],
    disks: list[dict[str, str]],
    *,
    read_only: bool,
    timeout: float,
    log: Any,
) -> dict[str, Any]:
    """Guest-view SHA-256 of each disk through the copy (its registered active volume) and on the replica.

    ``disks``: ``[{"image", "copy_volume", "replica_volume"}]``. Returns ``{image: {"copy_sha256",
    "replica_sha256", "bytes", "errors", "links"}}``.
    """
    with mounted(hook, domain["slave_host"], split_path(domain["path"])[0], drill_mountpoint(domain),
                 read_only=read_only, log=log) as mnt:  # fmt: skip
        spec = {
            "root": domain_root(mnt, domain),
            "sd_id": domain["replica_sd_id"],
            "copy_id": domain["sd_id"],
            "disks": disks,
            "timeout": int(timeout),
        }
        out = node_program(hook, VERIFY, spec, timeout, spool_path(domain))
    return out if isinstance(out, dict) else {}


def remove_copy(
    hook: GlusterGeoRepHook, domain: dict[str, Any], *, dry_run: bool, log: Any
) -> dict[str, Any]:
    """Delete the copy's directory (only one with this drill's marker for this replica; links, not targets)."""
    with mounted(hook, domain["slave_host"], split_path(domain["path"])[0], drill_mountpoint(domain),
                 read_only=dry_run, log=log) as mnt:  # fmt: skip
        spec = {
            "root": domain_root(mnt, domain),
            "sd_id": domain["replica_sd_id"],
            "copy_id": domain["sd_id"],
            "dry_run": dry_run,
        }
        out = node_program(hook, REMOVE_COPY, spec, 600, spool_path(domain))
    return out if isinstance(out, dict) else {}


class GlusterDrillCopyOperator(RecoveryOperator):
    """Make each domain's copy next to its replica, after the slave volume is made writable.

    Per domain of the plan: geo-replication must not be running (read through the master node: a drill
    runs while production is up, and a replica that changes under the copy proves nothing); then
    ``features.read-only off`` on the slave volume (the engine writes into the copy; the value before is in
    the plan and the cleanup puts it back); then the node program ``MAKE_COPY`` builds the copy (see
    ``ovirt_dr.drill_node``): it verifies the replica's metadata seal and every disk's chain and qcow2
    headers, and names what is missing or wrong per disk (a VM whose disk is broken then fails the drill;
    the copy still mirrors the replica as it is, so the engine meets exactly what a failover would).

    Retry-safe: a copy the target engine has not imported yet is built again from the replica; one it has
    imported is left as it is. A dry run reads (through a read-only mount) and says what it would make.
    Returns ``{"copies": [per domain: copy id, disks, problems, ...]}``.
    """

    def run(self, context: Context) -> dict[str, Any]:
        import ovirtsdk4

        params = DrillParams.from_context(context)
        plan = self.plan(context)
        if plan.get("blockers") and not params.dry_run:
            raise RecoveryError("the plan has blockers: " + "; ".join(plan["blockers"]))
        copies = []
        sds = self.target_hook.system.storage_domains_service()
        for d in plan["domains"]:
            try:
                sds.storage_domain_service(d["sd_id"]).get()
                imported = True
            except ovirtsdk4.NotFoundError:
                imported = False
            slave = self.gluster.get(d["slave_ssh_conn_id"])
            volume = split_path(d["path"])[0]
            if imported:
                self.log.info("Copy %s (%s) is imported already: left as it is", d["name"], d["sd_id"])
                copies.append(
                    {"copy_id": d["sd_id"], "result": "imported already", "disks": {}, "problems": []}
                )
                continue
            why = georep_running(self, d)
            if why and not params.dry_run:
                raise RecoveryError(why)
            if why:
                self.log.warning("A real run would stop here: %s", why)
            if params.dry_run:
                ro = f"{read_only_of(slave, volume)}: would set off for the drill"
            else:
                ro = set_read_only(slave, volume, "off")
            spec = {
                "sd_id": d["replica_sd_id"],
                "copy_id": d["sd_id"],
                "copy_name": d["name"],
                "run_id": context["run_id"],
                "dry_run": params.dry_run,
                "disks": [{k: disk[k] for k in ("vm", "image", "volume", "overlay")} for disk in d["disks"]],
            }
            with mounted(slave, d["slave_host"], volume, drill_mountpoint(d), read_only=params.dry_run,
                         log=self.log) as mnt:  # fmt: skip
                out = node_program(
                    slave, MAKE_COPY, {**spec, "root": domain_root(mnt, d)}, 3600, spool_path(d)
                )
            if not isinstance(out, dict):
                raise RecoveryError("the copy program printed no result")
            for other in out.get("others") or []:
                self.log.warning(
                    "An earlier drill's copy %s (run %s) is still on %s: its cleanup did not finish",
                    other.get("copy_id"),
                    other.get("run_id"),
                    volume,
                )
            for img, info in sorted((out.get("disks") or {}).items()):
                for p in info.get("problems") or []:
                    self.log.error("Replica disk %s (%s): %s", img, info.get("vm"), p)
            for p in out.get("problems") or []:
                self.log.warning("Copy of %s: %s", d["source_name"], p)
            verb = "would make" if params.dry_run else "made"
            self.log.info(
                "%s copy %s (%s) of %s on %s: %d disk(s), %d file(s); OVF_STORE %s; read-only %s",
                verb.capitalize(),
                d["name"],
                d["sd_id"],
                d["replica_sd_id"],
                volume,
                len(out.get("disks") or {}),
                out.get("created", 0),
                out.get("ovf_store"),
                ro,
            )
            copies.append(
                {
                    "copy_id": d["sd_id"],
                    "result": verb,
                    "read_only": ro,
                    "disks": out.get("disks") or {},
                    "problems": out.get("problems") or [],
                    "others": out.get("others") or [],
                    "ovf_store": out.get("ovf_store"),
                    "files": out.get("created", 0),
                }
            )
        return {"copies": copies}


__all__ = [
    "COPY_TASK",
    "GlusterDrillCopyOperator",
    "read_only_of",
    "remove_copy",
    "set_read_only",
    "verify_disks",
]
