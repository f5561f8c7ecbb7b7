"""Gluster-side operators against a fake node (a unit test of each operator; the lab tests use real Gluster).

The fake keeps a small file tree per mount and answers the batched shell scripts the way a node does,
by running them for real with /bin/sh on a local directory standing in for the mount.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from ovirt_dr.gluster import GeoRepSession
from ovirt_dr.gluster.checkpoint import Checkpoint
from ovirt_dr.hooks.node import GlusterNodeHook
from ovirt_dr.operators.gluster import (
    GlusterGeoRepCheckpointOperator,
    GlusterGeoRepPreflightOperator,
    GlusterReplicaAuditOperator,
    GlusterReplicaCleanupOperator,
)
from ovirt_dr.replica import DomainFiles, ReplicaError

SD = "5d5d5d5d-0000-4000-8000-000000000001"
IMG = "1a1a1a1a-0000-4000-8000-000000000001"
BASE = "b0b0b0b0-0000-4000-8000-000000000001"
OVER = "0e0e0e0e-0000-4000-8000-000000000001"
OLD = "01d01d01-0000-4000-8000-000000000001"
NULL = "00000000-0000-0000-0000-000000000000"
VM = "0ec0ec0e-0000-4000-8000-000000000001"
STORE_IMG = "0f0f0f0f-0000-4000-8000-000000000001"
STORE_VOL = "0f0f0f0f-0000-4000-8000-000000000002"


class FakeNode:
    """A Gluster node: mounts map to local dirs; commands run locally on them (no SSH)."""

    log = logging.getLogger("fake-node")
    # the real node access's composites, on this fake's primitives
    mounted = GlusterNodeHook.mounted
    python_json = GlusterNodeHook.python_json

    def __init__(self, volumes: dict[str, Path]) -> None:
        self.volumes = volumes
        self.mounts: dict[str, Path] = {}
        self.calls: list[tuple] = []

    def _local(self, text: str) -> str:
        for mnt, root in self.mounts.items():
            text = text.replace(mnt, str(root))
        return text

    def is_mounted(self, mnt):
        return mnt in self.mounts

    def mount(self, volume, host, mnt, read_only=False, as_georep=False):
        self.calls.append(("mount", volume, mnt, read_only, as_georep))
        self.mounts[mnt] = self.volumes[volume]

    def umount(self, mnt):
        self.calls.append(("umount", mnt))
        self.mounts.pop(mnt, None)

    def run(self, argv, check=True, timeout=None):
        argv = [self._local(a) for a in argv]
        res = subprocess.run(argv, capture_output=True, text=True)
        if check and res.returncode:
            raise RuntimeError(res.stderr)
        out = res.stdout
        for mnt, root in self.mounts.items():
            out = out.replace(str(root), mnt)
        return NS(rc=res.returncode, stdout=out, stderr=res.stderr)

    def remove_files(self, paths):
        self.calls.append(("rm", *paths))
        for p in paths:
            Path(self._local(p)).unlink()

    def write_file(self, path, data):
        self.calls.append(("write", path))
        Path(self._local(path)).write_bytes(data)

    def sha256sum(self, paths):
        return {p: hashlib.sha256(Path(self._local(p)).read_bytes()).hexdigest() for p in paths}

    def touch(self, path):
        self.calls.append(("touch", path))

    def set_checkpoint(self, session):
        self.calls.append(("checkpoint",))
        return Checkpoint(epoch=1795272949, label="2026-11-21 14:55:49")

    def start(self, session):
        self.calls.append(("start",))
        return True

    def close(self):
        pass


def meta(parent: str, voltype: str, fmt: str = "COW") -> str:
    return f"CAP=1048576\nDISKTYPE=DATA\nFORMAT={fmt}\nIMAGE={IMG}\nPUUID={parent}\nVOLTYPE={voltype}\nEOF\n"


def qcow(path: Path, backing: str | None = None) -> None:
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing:
        args += ["-b", backing, "-F", "qcow2", "-u"]
    subprocess.run([*args, str(path), "1M"], check=True)


def domain(root: Path, with_overlay: bool = True, with_orphan: bool = False) -> Path:
    img = root / SD / "images" / IMG
    img.mkdir(parents=True)
    qcow(img / BASE)
    (img / f"{BASE}.meta").write_text(meta(NULL, "INTERNAL" if with_overlay else "LEAF"))
    (img / f"{BASE}.lease").write_bytes(b"")
    if with_overlay:
        qcow(img / OVER, BASE)
        (img / f"{OVER}.meta").write_text(meta(BASE, "LEAF"))
        (img / f"{OVER}.lease").write_bytes(b"")
    if with_orphan:
        (img / OLD).write_bytes(b"old overlay of a failed run")
        (img / f"{OLD}.meta").write_text(meta(BASE, "LEAF"))
    return img


def vm_ovf(vm_leaf: str, comment: str = "") -> str:
    return (
        '<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1/"><References>'
        f'<File ovf:href="{IMG}/{vm_leaf}" ovf:id="{vm_leaf}"/></References>{comment}'
        f'<Content ovf:id="{VM}"><Name>vm01</Name></Content></ovf:Envelope>'
    )


def ovf_store(root: Path, vm_leaf: str, members: dict[str, bytes] | None = None) -> None:
    """An OVF_STORE volume: a tar at offset 0 (``members``: name -> content; default one VM's OVF)."""
    import io
    import tarfile

    store = root / SD / "images" / STORE_IMG
    store.mkdir(parents=True)
    vol = STORE_VOL
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (members or {f"{VM}.ovf": vm_ovf(vm_leaf).encode()}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (store / vol).write_bytes(buf.getvalue() + b"\0" * 4096)
    desc = '{"Updated":true,"Size":1,"Last Updated":"Sat Nov 21 14:55:00 UTC 2026","Disk Description":"OVF_STORE"}'
    (store / f"{vol}.meta").write_text(
        f"DESCRIPTION={desc}\nDISKTYPE=OVFS\nFORMAT=RAW\nPUUID={NULL}\nVOLTYPE=LEAF\nEOF\n"
    )


SNAPS = {
    "vms": [{"vm_name": "vm01", "disks": [{"disk_id": IMG, "base_volume": BASE, "overlay_volume": OVER}]}]
}
SESSION = dict(session=GeoRepSession("gvmaster", "127.0.0.1", "gvslave"), mount_root="/run/ovirt-dr/mnt")


class FakeSlave:
    """The slave cluster's node as the guard sees it: ``volume info`` with the volume's options."""

    def __init__(self, options: dict[str, str], name: str = "gvslave") -> None:
        self.options, self.name, self.calls = options, name, []

    def volume_info(self, volume=None):
        self.calls.append(("volume_info", volume))
        return [NS(name=self.name, options=dict(self.options))]

    def close(self):
        pass


def test_checkpoint_sets_touches_then_starts_and_unmounts(tmp_path):
    node = FakeNode({"gvmaster": tmp_path})
    op = GlusterGeoRepCheckpointOperator(task_id="c", ssh_conn_id="x", slave_ssh_conn_id="s", **SESSION)
    op.node = op.georep = node
    op.slave = slave = FakeSlave({"features.read-only": "on"})
    out = op.execute({})
    assert out == {"epoch": 1795272949, "label": "2026-11-21 14:55:49"}
    assert slave.calls == [("volume_info", "gvslave")]
    kinds = [c[0] for c in node.calls]
    assert kinds.index("checkpoint") < kinds.index("touch") < kinds.index("start")
    assert node.mounts == {}  # nothing left mounted on the node


@pytest.mark.parametrize("options", [{"features.read-only": "off"}, {}], ids=["off", "never-set"])
@pytest.mark.parametrize("cls", [GlusterGeoRepPreflightOperator, GlusterGeoRepCheckpointOperator])
def test_a_writable_replica_is_never_overwritten_by_geo_replication(tmp_path, cls, options):
    """After a failover the VMs run from the slave volume (read-only off): a sync cycle of the old primary
    (still scheduled after a forced failover) must not set a checkpoint or start the session."""
    from airflow.sdk.exceptions import AirflowFailException

    node = FakeNode({"gvmaster": tmp_path})
    op = cls(task_id="t", ssh_conn_id="x", slave_ssh_conn_id="s", **SESSION)
    op.node = op.georep = node
    op.slave = FakeSlave(options)
    with pytest.raises(AirflowFailException) as e:
        op.execute({})
    assert "slave volume 'gvslave' is writable" in str(e.value)
    assert "gluster volume set gvslave features.read-only on" in str(e.value)
    assert node.calls == []  # no status read, no checkpoint, no start, nothing mounted


def test_the_guard_refuses_a_slave_volume_it_cannot_find(tmp_path):
    from ovirt_dr.operators.gluster import GeoRepError

    op = GlusterGeoRepPreflightOperator(task_id="t", ssh_conn_id="x", slave_ssh_conn_id="s", **SESSION)
    op.node = op.georep = FakeNode({})
    op.slave = FakeSlave({"features.read-only": "on"}, name="other")
    with pytest.raises(GeoRepError, match="slave volume 'gvslave' not found via s"):
        op.execute({})


def test_steps_that_start_geo_replication_need_the_slave_node():
    with pytest.raises(ValueError, match="slave_ssh_conn_id is required"):
        GlusterGeoRepCheckpointOperator(task_id="c", ssh_conn_id="x", slave_ssh_conn_id="", **SESSION)


def test_cleanup_deletes_overlays_and_orphans_and_relinks_base(tmp_path):
    slave = tmp_path / "slave"
    img = domain(slave, with_overlay=True, with_orphan=True)
    node = FakeNode({"gvslave": slave})
    op = GlusterReplicaCleanupOperator(task_id="c", ssh_conn_id="x", sd_id=SD, snapshots=SNAPS, **SESSION)
    op.node = node
    out = op.execute({})
    assert sorted(p.name for p in img.iterdir()) == sorted([BASE, f"{BASE}.meta", f"{BASE}.lease"])
    assert "VOLTYPE=LEAF" in (img / f"{BASE}.meta").read_text()
    assert out == {"removed": 5, "relinked": 1}  # overlay + .meta + .lease, orphan + .meta
    (mount,) = [c for c in node.calls if c[0] == "mount"]
    assert mount[4] is True  # as geo-rep's own client: the slave is read-only to everyone else
    assert node.mounts == {}


def test_cleanup_refuses_when_the_base_never_arrived(tmp_path):
    slave = tmp_path / "slave"
    (slave / SD / "images" / IMG).mkdir(parents=True)
    node = FakeNode({"gvslave": slave})
    op = GlusterReplicaCleanupOperator(task_id="c", ssh_conn_id="x", sd_id=SD, snapshots=SNAPS, **SESSION)
    op.node = node
    with pytest.raises(ReplicaError, match="did not deliver it"):
        op.execute({})


def audit_op(node_slave, node_master, **kw):
    op = GlusterReplicaAuditOperator(
        task_id="a",
        ssh_conn_id="x",
        master_ssh_conn_id="y",
        sd_id=SD,
        snapshots=SNAPS,
        checkpoint={"epoch": 1795272949, "label": "2026-11-21 14:55:49"},
        **SESSION,
        **kw,
    )
    op.node = node_slave
    op.master_node = node_master
    return op


@pytest.mark.parametrize("mode", ["full", "sampled"])
def test_audit_passes_on_a_faithful_replica(tmp_path, mode):
    master, slave = tmp_path / "m", tmp_path / "s"
    domain(master, with_overlay=True)
    domain(slave, with_overlay=False)
    (slave / SD / "images" / IMG / BASE).write_bytes((master / SD / "images" / IMG / BASE).read_bytes())
    ovf_store(slave, BASE)
    out = audit_op(
        FakeNode({"gvslave": slave}), FakeNode({"gvmaster": master}), audit_mode=mode, block_size=4096
    ).execute({"outlet_events": {}})
    assert out["vms"] == 1 and out["volumes"] == 1 and out["qemu_checked"] == 1
    assert out["recovery_point"] == "2026-11-21T14:55:49+00:00"
    assert out["bytes_checked"] > 0


def test_audit_catches_a_replica_that_differs(tmp_path):
    master, slave = tmp_path / "m", tmp_path / "s"
    domain(master, with_overlay=True)
    domain(slave, with_overlay=False)
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -P 7 0 4k", str(master / SD / "images" / IMG / BASE)],
        check=True,
        capture_output=True,
    )
    ovf_store(slave, BASE)
    with pytest.raises(ReplicaError, match="differs from the master"):
        audit_op(FakeNode({"gvslave": slave}), FakeNode({"gvmaster": master})).execute({"outlet_events": {}})


def test_audit_catches_a_stale_ovf_store_and_a_missing_lease(tmp_path):
    master, slave = tmp_path / "m", tmp_path / "s"
    domain(master, with_overlay=True)
    img = domain(slave, with_overlay=True)  # overlay never cleaned, OVF says the overlay is the leaf
    ovf_store(slave, OVER)
    (img / f"{OVER}.lease").unlink()
    op = audit_op(FakeNode({"gvslave": slave}), FakeNode({"gvmaster": master}))
    with pytest.raises(ReplicaError) as exc:
        op.execute({"outlet_events": {}})
    assert "problem" in str(exc.value)


def test_an_unused_hook_is_neither_created_nor_closed(tmp_path):
    slave = tmp_path / "s"
    (slave / SD / "images").mkdir(parents=True)
    node = FakeNode({"gvslave": slave})
    op = audit_op(node, None)
    del op.master_node  # the master side is reached only after the replica side is read
    with pytest.raises(ReplicaError, match="no updated OVF_STORE"):
        op.execute({"outlet_events": {}})
    assert "master_node" not in op.__dict__


# -- replica content is hostile: none of it may reach a shell, forge the output framing, or be followed --
def faithful(tmp_path: Path) -> tuple[Path, Path]:
    """A master with the run's overlay and a slave whose base equals the master's frozen base."""
    master, slave = tmp_path / "m", tmp_path / "s"
    domain(master, with_overlay=True)
    domain(slave, with_overlay=False)
    (slave / SD / "images" / IMG / BASE).write_bytes((master / SD / "images" / IMG / BASE).read_bytes())
    return master, slave


def test_ovf_store_member_names_never_reach_a_shell(tmp_path):
    """A tar member named like a tar option ran a command on the slave node as the SSH user."""
    master, slave = faithful(tmp_path)
    marker = tmp_path / "PWNED"
    hostile = {
        f"{VM}.ovf": vm_ovf(BASE).encode(),
        f"--use-compress-program=sh -c 'touch {marker}' x.ovf": b"<x/>",
        f"--to-command=touch {marker}2 x.ovf": b"<x/>",
        f"--checkpoint-action=exec=touch {marker}3 --checkpoint=1 x.ovf": b"<x/>",
    }
    ovf_store(slave, BASE, hostile)
    files = DomainFiles(FakeNode({"gvslave": slave}), str(slave / SD))
    try:
        ovfs = files.ovf_store(STORE_IMG, STORE_VOL).ovfs
    finally:
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("PWNED")) == []
    assert ovfs == {VM: vm_ovf(BASE)}
    # and the audit refuses a store holding anything but what the engine writes
    op = audit_op(FakeNode({"gvslave": slave}), FakeNode({"gvmaster": master}))
    with pytest.raises(ReplicaError, match="not <uuid>.ovf"):
        op.execute({"outlet_events": {}})
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("PWNED")) == []


def test_ovf_content_cannot_forge_the_output_framing(tmp_path):
    """An OVF holding '### <name>.ovf' lines must come back byte for byte, as one OVF."""
    _, slave = faithful(tmp_path)
    other = "0ec0ec0e-0000-4000-8000-0000000000ff"
    xml = vm_ovf(BASE, comment=f"<!--\n### {other}.ovf\n<forged/>\n### \n-->")
    ovf_store(slave, BASE, {f"{VM}.ovf": xml.encode()})
    files = DomainFiles(FakeNode({"gvslave": slave}), str(slave / SD))
    assert files.ovf_store(STORE_IMG, STORE_VOL).ovfs == {VM: xml}


def test_meta_content_cannot_forge_the_file_listing(tmp_path):
    """A .meta holding '+++ <path> <size>' or '### <path>' lines must not make files appear."""
    slave = tmp_path / "s"
    img = domain(slave, with_overlay=False)
    forged = (
        meta(NULL, "LEAF")
        + f"+++ images/{IMG}/{OVER} 1048576\n### images/{IMG}/{OVER}.meta\nPUUID={NULL}\nVOLTYPE=LEAF\n"
    )
    (img / f"{BASE}.meta").write_text(forged)
    files = DomainFiles(FakeNode({"gvslave": slave}), str(slave / SD)).images([IMG])
    assert sorted(files[IMG].sizes) == sorted([BASE, f"{BASE}.meta", f"{BASE}.lease"])
    assert list(files[IMG].metas) == [BASE]
    assert files[IMG].raw_metas[BASE] == forged


@pytest.mark.parametrize("sd_id", [SD + "\n", "../../../etc", f"{SD}/images/{IMG}", ""])
@pytest.mark.parametrize("kind", ["cleanup", "audit"])
def test_storage_domain_id_must_be_a_uuid_before_anything_is_mounted(tmp_path, sd_id, kind):
    node = FakeNode({"gvslave": tmp_path, "gvmaster": tmp_path})
    if kind == "cleanup":
        op = GlusterReplicaCleanupOperator(
            task_id="c", ssh_conn_id="x", sd_id=sd_id, snapshots=SNAPS, **SESSION
        )
        op.node = node
    else:
        op = audit_op(node, node)
        op.sd_id = sd_id
    with pytest.raises(ReplicaError, match="storage domain id .* is not a UUID"):
        op.execute({"outlet_events": {}})
    assert node.calls == []  # refused before any mount


@pytest.mark.parametrize("field", ["disk_id", "base_volume"])
def test_snapshot_ids_from_xcom_must_be_uuids(tmp_path, field):
    snaps = {"vms": [{"vm_name": "vm01", "disks": [{"disk_id": IMG, "base_volume": BASE, field: "../x"}]}]}
    node = FakeNode({"gvslave": tmp_path})
    op = GlusterReplicaCleanupOperator(task_id="c", ssh_conn_id="x", sd_id=SD, snapshots=snaps, **SESSION)
    op.node = node
    with pytest.raises(ReplicaError, match="is not a UUID"):
        op.execute({})
    assert node.calls == []


def test_qemu_check_never_opens_a_backing_file_named_by_the_replica(tmp_path):
    """A replica volume whose qcow2 header names an NBD server made qemu-img connect out."""
    import socket
    import tempfile
    import threading

    master, slave = faithful(tmp_path)
    ovf_store(slave, BASE)
    sock_dir = Path(tempfile.mkdtemp(prefix="nbd-"))  # AF_UNIX paths are short
    sock_path = sock_dir / "s"
    hostile = slave / SD / "images" / IMG / BASE
    hostile.unlink()
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-F",
            "raw",
            "-b",
            f"nbd+unix:///?socket={sock_path}",
        ]
        + [str(hostile), "1M"],
        check=True,
    )
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    server.listen(4)
    server.settimeout(0.2)
    connected: list[bool] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            connected.append(True)
            conn.close()

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        with pytest.raises(ReplicaError):  # it differs from the master's base, and that is all
            audit_op(FakeNode({"gvslave": slave}), FakeNode({"gvmaster": master})).execute(
                {"outlet_events": {}}
            )
    finally:
        done.set()
        thread.join()
        server.close()
    assert connected == []


def test_a_symlinked_volume_on_the_replica_is_not_followed(tmp_path):
    """A replica 'volume' that is a symlink to the master's frozen file would pass a byte comparison."""
    master, slave = faithful(tmp_path)
    ovf_store(slave, BASE)
    base = slave / SD / "images" / IMG / BASE
    base.unlink()
    base.symlink_to(master / SD / "images" / IMG / BASE)
    op = audit_op(FakeNode({"gvslave": slave}), FakeNode({"gvmaster": master}))
    with pytest.raises(ReplicaError, match=f"{BASE} missing on the replica"):
        op.execute({"outlet_events": {}})


def test_cleanup_never_deletes_what_is_not_a_regular_volume_file(tmp_path):
    slave = tmp_path / "s"
    img = domain(slave, with_overlay=True)
    outside = tmp_path / "outside"
    outside.write_text("keep me")
    (img / OLD).symlink_to(outside)  # not a regular file: left alone
    (img / f"{OLD}.meta.bak").write_text("x")  # not a volume file name: left alone
    node = FakeNode({"gvslave": slave})
    op = GlusterReplicaCleanupOperator(task_id="c", ssh_conn_id="x", sd_id=SD, snapshots=SNAPS, **SESSION)
    op.node = node
    out = op.execute({})
    assert out["removed"] == 3  # the overlay, its .meta and .lease
    assert (img / OLD).is_symlink() and outside.read_text() == "keep me"
    assert (img / f"{OLD}.meta.bak").exists()
