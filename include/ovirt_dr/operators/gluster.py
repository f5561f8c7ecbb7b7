"""Operators of the sync pipeline that act on Gluster nodes over SSH.

The product reaches Gluster only through ``gluster`` and file commands run over SSH on a node, as a
real deployment does (geo-replication sessions are not in the oVirt API). Volumes are mounted under
``mount_root`` on the node for the duration of one task and unmounted afterwards, so nothing is left
mounted between runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ovirt_dr.dr_snapshots import SnapshotSet
from ovirt_dr.gluster import GeoRepSession
from ovirt_dr.gluster.checkpoint import Checkpoint
from ovirt_dr.hooks.gluster import GlusterGeoRepHook
from ovirt_dr.hooks.node import GlusterNodeHook
from ovirt_dr.operators.base import HookClosingOperator
from ovirt_dr.replica import (
    VOLUME_FILE_RE,
    DomainFiles,
    ReplicaError,
    ovf_disks,
    require_uuid,
    set_meta_key,
    show,
    walk_chain,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class GeoRepError(RuntimeError):
    """The geo-replication session is not in a state this step can work with."""


class _GlusterOperator(HookClosingOperator):
    """Shared plumbing: the session, the node's access on ``ssh_conn_id`` (made on first use, closed
    whatever happens) and the geo-rep commands on that same SSH client.

    :param session: the geo-replication session.
    :param mount_root: where volumes are mounted on the node, for one task at a time.
    """

    hook_attrs = ("node",)

    def __init__(
        self,
        *,
        ssh_conn_id: str,
        session: GeoRepSession,
        mount_root: str = "/run/ovirt-dr/mnt",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(session, GeoRepSession):
            raise TypeError(f"session must be a GeoRepSession, got {type(session).__name__}")
        self.ssh_conn_id = ssh_conn_id
        self.session = session
        self.mount_root = mount_root.rstrip("/")

    @cached_property
    def node(self) -> GlusterNodeHook:
        return GlusterNodeHook(ssh_conn_id=self.ssh_conn_id)

    @cached_property
    def georep(self) -> GlusterGeoRepHook:
        return GlusterGeoRepHook(node=self.node)

    @contextmanager
    def mounted(
        self,
        node: GlusterNodeHook,
        host: str,
        volume: str,
        read_only: bool = False,
        as_georep: bool = False,
    ) -> Iterator[str]:
        """``host:/volume`` mounted at ``<mount_root>/<volume>[-rw]`` on the node for the block.

        ``as_georep`` mounts as geo-rep's own client, the only one a geo-rep slave lets write.
        """
        mountpoint = f"{self.mount_root}/{volume}{'-rw' if as_georep else ''}"
        with node.mounted(volume, host, mountpoint, read_only=read_only, as_georep=as_georep) as mnt:
            yield mnt


#: the slave volume option geo-replication's ``create push-pem`` sets: ordinary clients cannot write there
READ_ONLY = "features.read-only"


class _ReplicaGuardOperator(_GlusterOperator):
    """A step that may start geo-replication: it first checks, through the slave node, that the slave
    volume is still read-only.

    ``create push-pem`` makes the slave read-only; only a recovery (a failover, a drill, an admin) turns that
    off, so that VMs can run from the replica. Starting the session then would overwrite what they wrote
    with the primary's blocks: after a forced failover the primary may still run and its sync DAG may still
    be scheduled. So a slave that is writable stops the cycle before anything is snapshotted or started,
    and the error says why and how to go on.

    :param slave_ssh_conn_id: SSH connection to a node of the slave cluster.
    """

    hook_attrs = ("node", "slave")

    def __init__(self, *, slave_ssh_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not slave_ssh_conn_id:
            raise ValueError("slave_ssh_conn_id is required: the slave's read-only option is checked there")
        self.slave_ssh_conn_id = slave_ssh_conn_id

    @cached_property
    def slave(self) -> GlusterGeoRepHook:
        return GlusterGeoRepHook(ssh_conn_id=self.slave_ssh_conn_id)

    def require_read_only_replica(self) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        volume = self.session.slave_volume
        infos = self.slave.volume_info(volume)
        if len(infos) != 1 or infos[0].name != volume:
            raise GeoRepError(f"slave volume {volume!r} not found via {self.slave_ssh_conn_id}")
        value = infos[0].options.get(READ_ONLY, "off")
        if value != "on":
            # no retry: only an admin decision makes this safe again
            raise AirflowFailException(
                f"slave volume {volume!r} is writable ({READ_ONLY} {value}): the replica was made "
                "writable (a failover, a DR drill or an admin) and VMs may run from it; starting "
                f"geo-replication {self.session} now would overwrite what they wrote. After a failover, "
                "fail back (dr_cleanup_primary, dr_failback). If nothing runs from the replica, run "
                f"'gluster volume set {volume} {READ_ONLY} on' on the slave cluster and retry."
            )
        self.log.info("Slave volume %s is read-only (%s on): the replica is not in use", volume, READ_ONLY)


class GlusterGeoRepPreflightOperator(_ReplicaGuardOperator):
    """The geo-replication session exists and is not Faulty (a Faulty session never completes a checkpoint),
    and its slave volume is still read-only (no recovery runs from the replica).

    Returns the session's workers as seen now, for the log and the report.
    """

    def run(self, context: Context) -> dict[str, Any]:
        self.require_read_only_replica()
        status = self.georep.status(self.session)
        if not status.workers:
            raise GeoRepError(
                f"geo-replication {self.session.master_volume} -> {self.session.slave} has no workers"
            )
        faulty = status.faulty_workers
        if faulty:
            raise GeoRepError(
                f"geo-replication {self.session.master_volume} -> {self.session.slave} is Faulty on "
                f"{[w.primary_node + ':' + w.primary_brick for w in faulty]}: fix the session first "
                "(see the gsyncd log on those nodes)"
            )
        self.log.info("Geo-replication: %s", status.progress_summary())
        return {"workers": [{"node": w.primary_node, "status": w.status} for w in status.workers]}


class GlusterGeoRepCheckpointOperator(_ReplicaGuardOperator):
    """Set a checkpoint, make a change after it, and start the session.

    A checkpoint completes only when something changes after it is set (reference/gluster-lab.md), so the
    master volume's root is touched (mounted here for a moment). ``start`` on a started session is fine.
    Returns ``{"epoch", "label"}``: the label is the node-local time exactly as ``status detail`` will
    show it, which is what the sensor matches, so a stale checkpoint of an earlier run never counts.

    :param master_mount_host: the Gluster server the node mounts the master volume from.
    """

    def __init__(self, *, master_mount_host: str = "localhost", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.master_mount_host = master_mount_host

    def run(self, context: Context) -> dict[str, Any]:
        self.require_read_only_replica()  # again: a failover may have begun since the preflight
        checkpoint = self.georep.set_checkpoint(self.session)
        self.log.info("Checkpoint set at %s (epoch %d)", checkpoint.label, checkpoint.epoch)
        with self.mounted(self.node, self.master_mount_host, self.session.master_volume) as mnt:
            self.node.touch(mnt)
            self.node.touch(f"{mnt}/.ovirt-dr-checkpoint")
        started = self.georep.start(self.session)
        self.log.info("Geo-replication %s", "started" if started else "was already running")
        return checkpoint.as_dict()


class GlusterGeoRepStopOperator(_GlusterOperator):
    """Stop the session, so the replica is quiet while this run cleans and audits it. Idempotent."""

    def run(self, context: Context) -> dict[str, Any]:
        stopped = self.georep.stop(self.session)
        self.log.info("Geo-replication %s", "stopped" if stopped else "was already stopped")
        return {"stopped": stopped}


class GlusterReplicaCleanupOperator(_GlusterOperator):
    """On the replica, delete this run's overlay volumes and make each frozen base the leaf again.

    After it the replica holds exactly the chain the OVF_STORE describes, which is what the secondary
    engine will open. Volume files of a disk that are not on its frozen chain (overlays of earlier failed
    runs that geo-replication copied and never deletes) go too: only UUID-named volume files inside the
    image directories of disks this run snapshotted, never anything else.

    :param slave_ssh_conn_id: is ``ssh_conn_id`` here: the slave node.
    :param sd_id: storage domain id (templated, from preflight).
    :param snapshots: the snapshot step's result (templated XComArg).
    """

    template_fields: Sequence[str] = ("sd_id", "snapshots")

    def __init__(self, *, sd_id: str, snapshots: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sd_id = sd_id
        self.snapshots = snapshots

    def run(self, context: Context) -> dict[str, Any]:
        require_uuid(self.sd_id, "storage domain id")
        frozen = SnapshotSet.from_xcom(self.snapshots).frozen
        node = self.node
        removed: list[str] = []
        relinked = 0
        # geo-rep made the slave read-only for ordinary clients: write as geo-rep's own client
        with self.mounted(node, self.session.slave_host, self.session.slave_volume, as_georep=True) as mnt:
            files = DomainFiles(node, f"{mnt}/{self.sd_id}")
            images = files.images(frozen)
            for disk_id, base in frozen.items():
                image = images[disk_id]
                if base not in image.metas:
                    raise ReplicaError(
                        f"disk {disk_id}: frozen base volume {base} is not on the replica "
                        "(geo-replication did not deliver it)"
                    )
                keep = set(walk_chain(image.metas, base))
                doomed = []
                # only regular files named <uuid>[.meta|.lease] are in `sizes`: a symlink or a name of any
                # other shape on the replica is never deleted
                for name in image.sizes:
                    m = VOLUME_FILE_RE.match(name)
                    if m and m.group(1) not in keep:
                        doomed.append(files.path(disk_id, name))
                if doomed:
                    self.log.info("disk %s: removing %s", disk_id, [p.rsplit("/", 1)[-1] for p in doomed])
                files.remove(doomed)
                removed.extend(doomed)
                if image.metas[base].get("VOLTYPE") != "LEAF":
                    text = set_meta_key(image.raw_metas[base], "VOLTYPE", "LEAF")
                    node.write_file(files.path(disk_id, f"{base}.meta"), text.encode())
                    relinked += 1
        self.log.info(
            "Replica cleanup: %d file(s) removed, %d base volume(s) made leaf again", len(removed), relinked
        )
        return {"removed": len(removed), "relinked": relinked}


class GlusterReplicaAuditOperator(_GlusterOperator):
    """Prove the replica is importable and holds the frozen data: a completed checkpoint does not.

    For every VM and template in the replica's newest OVF_STORE: each disk's whole volume chain is there
    (volume, ``.meta``, ``.lease``), the leaf is ``LEAF``, every qcow2 volume passes ``qemu-img check``.
    For the disks this run froze, the OVF must name the frozen base (else the OVF_STORE is stale), and
    every volume of that chain must equal the master's, which is still frozen under the DR snapshot: full
    SHA-256 by default, or seeded sampled blocks (``audit_mode="sampled"``). Any mismatch fails the run.

    Returns the recovery point (the checkpoint time) and what was checked; also records it as an asset
    event (``outlets``) for the dashboard and the failover preflight.

    :param ssh_conn_id: the slave node; :param master_ssh_conn_id: the master node.
    """

    template_fields: Sequence[str] = ("sd_id", "snapshots", "checkpoint")
    hook_attrs = ("node", "master_node")

    def __init__(
        self,
        *,
        master_ssh_conn_id: str,
        sd_id: str,
        snapshots: Any,
        checkpoint: Any,
        master_mount_host: str = "localhost",
        audit_mode: str = "full",
        sample_blocks: int = 64,
        block_size: int = 1024 * 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if audit_mode not in ("full", "sampled"):
            raise ValueError(f"audit_mode must be 'full' or 'sampled', got {audit_mode!r}")
        self.master_ssh_conn_id = master_ssh_conn_id
        self.sd_id = sd_id
        self.snapshots = snapshots
        self.checkpoint = checkpoint
        self.master_mount_host = master_mount_host
        self.audit_mode = audit_mode
        self.sample_blocks = sample_blocks
        self.block_size = block_size

    @cached_property
    def master_node(self) -> GlusterNodeHook:
        return GlusterNodeHook(ssh_conn_id=self.master_ssh_conn_id)

    def run(self, context: Context) -> dict[str, Any]:
        t0 = time.monotonic()
        require_uuid(self.sd_id, "storage domain id")
        frozen = SnapshotSet.from_xcom(self.snapshots).frozen
        checkpoint = Checkpoint.from_xcom(self.checkpoint)
        problems: list[str] = []
        with self.mounted(
            self.node, self.session.slave_host, self.session.slave_volume, read_only=True
        ) as smnt:
            replica = DomainFiles(self.node, f"{smnt}/{self.sd_id}")
            store_image, store_vol, store_desc = replica.newest_ovf_store()
            store = replica.ovf_store(store_image, store_vol)
            ovfs = store.ovfs
            for member in store.unexpected:
                problems.append(
                    f"OVF_STORE {store_image}/{store_vol} holds {member}, which is not <uuid>.ovf, info.json "
                    "or metadata.json (not read)"
                )
            self.log.info(
                "Replica OVF_STORE %s/%s (last updated %s): %d OVF(s)",
                store_image,
                store_vol,
                show(store_desc.get("Last Updated")),
                len(ovfs),
            )
            refs: list[tuple[str, str, str]] = []  # (entity name, image, leaf)
            for entity, ovf in sorted(ovfs.items()):
                try:
                    _, name, disks = ovf_disks(ovf)
                except ReplicaError as e:
                    problems.append(f"OVF {entity}: {e}")
                    continue
                name = show(name) if name else entity
                refs.extend((name, image, vol) for image, vol in disks)
            images = replica.images({image for _, image, _ in refs})
            chains: dict[tuple[str, str], list[str]] = {}
            to_check: list[str] = []
            for name, image, leaf in refs:
                files = images[image]
                try:
                    chain = walk_chain(files.metas, leaf)
                except ReplicaError as e:
                    problems.append(f"{name}: disk {image}: {e}")
                    continue
                for vol in chain:
                    for suffix in ("", ".meta", ".lease"):
                        if vol + suffix not in files.sizes:
                            problems.append(f"{name}: disk {image}: {vol}{suffix} missing on the replica")
                    if files.metas[vol].get("FORMAT") == "COW":
                        to_check.append(replica.path(image, vol))
                if files.metas[leaf].get("VOLTYPE") != "LEAF":
                    problems.append(
                        f"{name}: disk {image}: leaf {leaf} is {show(files.metas[leaf].get('VOLTYPE'))}, not LEAF"
                    )
                if image in frozen and frozen[image] != leaf:
                    problems.append(
                        f"{name}: disk {image}: OVF_STORE names {leaf} but this run froze {frozen[image]} (stale OVF_STORE)"
                    )
                chains[(name, image)] = chain
            for path, (rc, out) in replica.qemu_check(to_check).items():
                if rc not in (0, 3):
                    problems.append(
                        f"qemu-img check {path.rsplit('/', 3)[-3:]} failed (rc {rc}): {out[-300:]}"
                    )
            compare = sorted(
                {(image, vol) for (_, image), chain in chains.items() if image in frozen for vol in chain}
            )
            replica_paths = [replica.path(i, v) for i, v in compare]
            with self.mounted(
                self.master_node, self.master_mount_host, self.session.master_volume, read_only=True
            ) as mmnt:
                master = DomainFiles(self.master_node, f"{mmnt}/{self.sd_id}")
                master_paths = [master.path(i, v) for i, v in compare]
                if self.audit_mode == "full":
                    r_sum, m_sum = replica.sha256(replica_paths), master.sha256(master_paths)
                    bytes_checked = sum(images[i].sizes.get(v, 0) for i, v in compare)
                    r_dig = [r_sum.get(p) for p in replica_paths]
                    m_dig = [m_sum.get(p) for p in master_paths]
                else:
                    seed = str(checkpoint.epoch)
                    r_s = replica.sampled_digest(replica_paths, self.block_size, self.sample_blocks, seed)
                    m_s = master.sampled_digest(master_paths, self.block_size, self.sample_blocks, seed)
                    bytes_checked = sum(v["bytes"] for v in r_s.values())
                    r_dig = [r_s.get(p, {}).get("digest") for p in replica_paths]
                    m_dig = [m_s.get(p, {}).get("digest") for p in master_paths]
            for (image, vol), r, m in zip(compare, r_dig, m_dig, strict=True):
                if r is None or r != m:
                    problems.append(
                        f"disk {image}: volume {vol} differs from the master's frozen copy ({self.audit_mode})"
                    )
        if problems:
            for p in problems:
                self.log.error("Replica audit: %s", p)
            raise ReplicaError(f"replica audit found {len(problems)} problem(s); first: {problems[0]}")
        result = {
            "recovery_point": checkpoint.recovery_point,
            "checkpoint_label": checkpoint.label,
            "vms": len(ovfs),
            "volumes": len(compare),
            "qemu_checked": len(to_check),
            "bytes_checked": bytes_checked,
            "mode": self.audit_mode,
            "seconds": round(time.monotonic() - t0, 3),
        }
        self.log.info("Replica audit passed: %s", result)
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = result
        return result


__all__ = [
    "GeoRepError",
    "GlusterGeoRepCheckpointOperator",
    "GlusterGeoRepPreflightOperator",
    "GlusterGeoRepStopOperator",
    "GlusterReplicaAuditOperator",
    "GlusterReplicaCleanupOperator",
]
