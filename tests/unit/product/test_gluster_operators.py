"""Gluster-side operators against a fake node (a unit test of each operator; the lab tests use real Gluster).

The fake keeps a small file tree per mount and answers the batched shell scripts the way a node does,
by running them for real with /bin/sh on a local directory standing in for the mount.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from ovirt_dr.operators.gluster import (
    GlusterGeoRepCheckpointOperator,
    GlusterReplicaAuditOperator,
    GlusterReplicaCleanupOperator,
)
from ovirt_dr.replica import ReplicaError

SD = "5d5d5d5d-0000-4000-8000-000000000001"
IMG = "1a1a1a1a-0000-4000-8000-000000000001"
BASE = "b0b0b0b0-0000-4000-8000-000000000001"
OVER = "0e0e0e0e-0000-4000-8000-000000000001"
OLD = "01d01d01-0000-4000-8000-000000000001"
NULL = "00000000-0000-0000-0000-000000000000"


class FakeNode:
    """A Gluster node: mounts map to local dirs; commands run locally on them (no SSH)."""

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
        return NS(epoch=1795272949, label="2026-11-21 14:55:49")

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


def ovf_store(root: Path, vm_leaf: str) -> None:
    import io
    import tarfile

    store = root / SD / "images" / "0f0f0f0f-0000-4000-8000-000000000001"
    store.mkdir(parents=True)
    vol = "0f0f0f0f-0000-4000-8000-000000000002"
    ovf = (
        '<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1/"><References>'
        f'<File ovf:href="{IMG}/{vm_leaf}" ovf:id="{vm_leaf}"/></References>'
        '<Content ovf:id="vm-1"><Name>vm01</Name></Content></ovf:Envelope>'
    ).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("vm-1.ovf")
        info.size = len(ovf)
        tar.addfile(info, io.BytesIO(ovf))
    (store / vol).write_bytes(buf.getvalue() + b"\0" * 4096)
    desc = '{"Updated":true,"Size":1,"Last Updated":"Sat Nov 21 14:55:00 UTC 2026","Disk Description":"OVF_STORE"}'
    (store / f"{vol}.meta").write_text(
        f"DESCRIPTION={desc}\nDISKTYPE=OVFS\nFORMAT=RAW\nPUUID={NULL}\nVOLTYPE=LEAF\nEOF\n"
    )


SNAPS = {
    "vms": [{"vm_name": "vm01", "disks": [{"disk_id": IMG, "base_volume": BASE, "overlay_volume": OVER}]}]
}
SESSION = dict(
    master_volume="gvmaster", slave_host="127.0.0.1", slave_volume="gvslave", mount_root="/run/ovirt-dr/mnt"
)


def test_checkpoint_sets_touches_then_starts_and_unmounts(tmp_path):
    node = FakeNode({"gvmaster": tmp_path})
    op = GlusterGeoRepCheckpointOperator(task_id="c", ssh_conn_id="x", **SESSION)
    op.hook = node
    out = op.execute({})
    assert out == {"epoch": 1795272949, "label": "2026-11-21 14:55:49"}
    kinds = [c[0] for c in node.calls]
    assert kinds.index("checkpoint") < kinds.index("touch") < kinds.index("start")
    assert node.mounts == {}  # nothing left mounted on the node


def test_cleanup_deletes_overlays_and_orphans_and_relinks_base(tmp_path):
    slave = tmp_path / "slave"
    img = domain(slave, with_overlay=True, with_orphan=True)
    node = FakeNode({"gvslave": slave})
    op = GlusterReplicaCleanupOperator(task_id="c", ssh_conn_id="x", sd_id=SD, snapshots=SNAPS, **SESSION)
    op.hook = node
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
    op.hook = node
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
    op.hook = node_slave
    op.master_hook = node_master
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
    del op.master_hook  # the master side is reached only after the replica side is read
    with pytest.raises(ReplicaError, match="no updated OVF_STORE"):
        op.execute({"outlet_events": {}})
    assert "master_hook" not in op.__dict__
