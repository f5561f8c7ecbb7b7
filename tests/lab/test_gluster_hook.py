"""GlusterGeoRepHook and its node access (GlusterNodeHook) against the lab's real glusterd, geo-rep session
and sshd (``ovirt-dr-lab up`` first).

The hooks reach the node exactly as in production: an Airflow SSH connection (from the lab's env.json, host
key pinned), ``gluster`` and file commands; the async path (the trigger's) over asyncssh. The session is shared with the other lab tests, so every test leaves
it as it found it (started or stopped).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovirt_dr.gluster import (
    CommandTimeout,
    GeoRepSession,
    GeoRepStatus,
    SessionNotFound,
    build_volume_cmd,
    format_time,
    parse_volume_info,
)
from ovirt_dr.hooks.gluster import GlusterGeoRepHook
from ovirt_dr_lab.labenv import load_lab_env

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab_env() -> dict[str, str]:
    return load_lab_env()


@pytest.fixture
def session(lab_env: dict[str, str]) -> GeoRepSession:
    return GeoRepSession(lab_env["LAB_MASTER_VOLUME"], lab_env["LAB_SLAVE_HOST"], lab_env["LAB_SLAVE_VOLUME"])


@pytest.fixture
def hook(
    lab_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[GlusterGeoRepHook]:
    home = tmp_path / "home"
    home.mkdir()
    # Own HOME: a known_hosts entry there would override the pinned host key (reference/airflow-3.3.md).
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AIRFLOW_CONN_GLUSTER_PRIMARY", lab_env["AIRFLOW_CONN_GLUSTER_PRIMARY"])
    with GlusterGeoRepHook(ssh_conn_id="gluster_primary") as h:
        yield h
    assert not (home / ".ssh" / "known_hosts").exists(), "the SSH client wrote a known_hosts"


def _wait(hook: GlusterGeoRepHook, session: GeoRepSession, ok, timeout: float, what: str) -> GeoRepStatus:
    deadline = time.monotonic() + timeout
    status = hook.status(session)
    while not ok(status):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached in {timeout:.0f} s; last status: {status.progress_summary()}")
        time.sleep(2)
        status = hook.status(session)
    return status


def test_status_and_volume_info(hook, session, lab_env):
    status = hook.status(session)
    assert status.workers, status
    assert status.primary_volume == lab_env["LAB_MASTER_VOLUME"]
    for w in status.workers:
        assert w.secondary == session.slave and w.secondary_user == "root"
        assert w.status in {"Created", "Stopped", "Active", "Passive", "Initializing...", "Faulty", "Paused"}
    print(status.progress_summary())
    vols = {v.name: v for v in parse_volume_info(hook.run(build_volume_cmd("info")).stdout)}
    assert vols == {v.name: v for v in hook.volume_info()}
    for name in (lab_env["LAB_MASTER_VOLUME"], lab_env["LAB_SLAVE_VOLUME"]):
        assert vols[name].started and vols[name].options.get("features.shard") == "on", vols[name]


def test_missing_session_is_typed(hook, lab_env):
    with pytest.raises(SessionNotFound, match="nosuchvol"):
        hook.status(GeoRepSession(lab_env["LAB_MASTER_VOLUME"], lab_env["LAB_SLAVE_HOST"], "nosuchvol"))


def test_checkpoint_start_stop_cycle(hook, session, lab_env):
    was_running = hook.status(session).is_running
    try:
        hook.stop(session)
        assert hook.stop(session) is False  # stopping a stopped session is fine, and says so
        cp = hook.set_checkpoint(session)
        assert abs(cp.epoch - time.time()) < 120, cp
        # a change after the checkpoint is required for it to complete (reference pitfall 4)
        marker = f"{lab_env['LAB_MASTER_MOUNT']}/.ovirt-dr-hook-test"
        hook.node.write_file(marker, f"{cp.epoch}\n".encode())
        hook.node.touch(lab_env["LAB_MASTER_MOUNT"])
        assert hook.start(session) is True
        assert hook.start(session) is False  # already started: not an error
        status = _wait(
            hook,
            session,
            lambda s: bool(s.active_workers) and all(w.checkpoint_time for w in s.active_workers),
            120,
            "Active with a checkpoint time",
        )
        for w in status.active_workers:
            assert format_time(w.checkpoint_time) == cp.label, (cp, status.progress_summary())
        status = _wait(
            hook, session, lambda s: s.checkpoint_completed_for(cp.label), 240, f"checkpoint {cp.label}"
        )
        print(f"checkpoint {cp.label} completed: {status.progress_summary()}")
        assert hook.stop(session) is True
        assert hook.stop(session) is False
        assert not hook.status(session).is_running
    finally:
        if was_running:
            hook.start(session)
        else:
            hook.stop(session)


def _files(root: str | Path) -> dict[str, int]:
    """Regular files under ``root`` with their sizes, read locally (the lab's node is this machine)."""
    return {str(p.relative_to(root)): p.stat().st_size for p in Path(root).rglob("*") if p.is_file()}


def test_mount_umount_slave(hook, lab_env, tmp_path):
    node = hook.node
    mnt = str(tmp_path / "mnt" / "gvslave")
    assert node.is_mounted(mnt) is False
    assert node.mount(lab_env["LAB_SLAVE_VOLUME"], lab_env["LAB_GLUSTER_HOST"], mnt, read_only=True) is True
    try:
        assert node.is_mounted(mnt)
        assert node.mount_source(mnt) == f"{lab_env['LAB_GLUSTER_HOST']}:/{lab_env['LAB_SLAVE_VOLUME']}"
        assert node.mount(lab_env["LAB_SLAVE_VOLUME"], lab_env["LAB_GLUSTER_HOST"], mnt) is False
        files = _files(mnt)
        assert files == _files(lab_env["LAB_SLAVE_MOUNT"])  # the same volume as the lab's own mount
        sample = sorted(files)[:3]
        if sample:
            sums = node.sha256sum([f"{mnt}/{p}" for p in sample])
            for p in sample:
                assert sums[f"{mnt}/{p}"] == hashlib.sha256(Path(mnt, p).read_bytes()).hexdigest()
    finally:
        assert node.umount(mnt) is True
    assert node.umount(mnt) is False
    assert node.is_mounted(mnt) is False


def test_file_operations(hook, tmp_path):
    node = hook.node
    d = tmp_path / "files"
    sub = d / "images" / "a b"
    node.run(["mkdir", "-p", "--", str(sub)])
    data = os.urandom(3 * 1024 * 1024 + 17) + b"\x00\n\\ end"
    target = str(sub / "vol.img")
    node.write_file(target, data)
    assert Path(target).read_bytes() == data
    assert node.exec_bytes(["cat", "--", target]) == (0, data, b"")  # binary, whole, over SSH
    node.touch(str(d / "empty"))
    meta = str(d / "x.meta")
    node.write_file(meta, b"VOLTYPE=INTERNAL\nEOF\n")
    inode = Path(meta).stat().st_ino
    node.write_file(meta, b"VOLTYPE=LEAF\nEOF\n")  # rewritten in place: same inode (GFID on Gluster)
    assert Path(meta).stat().st_ino == inode and Path(meta).read_bytes() == b"VOLTYPE=LEAF\nEOF\n"
    assert _files(d) == {"images/a b/vol.img": len(data), "empty": 0, "x.meta": 17}
    sums = node.sha256sum([target, meta])
    assert sums == {
        target: hashlib.sha256(data).hexdigest(),
        meta: hashlib.sha256(b"VOLTYPE=LEAF\nEOF\n").hexdigest(),
    }
    assert node.remove_files([target, meta, str(d / "empty"), str(d / "never-existed")]) == 4
    assert _files(d) == {}
    assert sub.is_dir()  # rm -f never removes directories


def test_timeout_then_client_still_usable(hook):
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        hook.run(["sleep", "30"], timeout=1)
    assert time.monotonic() - started < 10
    assert hook.run(["echo", "still here"]).stdout == "still here\n"


def test_async_path_of_the_trigger(lab_env, session, monkeypatch, tmp_path):
    """The triggerer's path: ``async_status`` on one asyncssh connection, the sync path's classification."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_GLUSTER_PRIMARY", lab_env["AIRFLOW_CONN_GLUSTER_PRIMARY"])
    missing = GeoRepSession(session.master_volume, session.slave_host, "nosuchvol")
    hook = GlusterGeoRepHook(ssh_conn_id="gluster_primary")

    async def poll() -> tuple[GeoRepStatus, GeoRepStatus, BaseException | None, object]:
        try:
            first = await hook.async_status(session)
            conn = hook.node._async_conn
            second = await hook.async_status(session)
            try:
                await hook.async_status(missing)
                error = None
            except SessionNotFound as e:
                error = e
            assert hook.node._async_conn is conn  # one connection for every status read
            return first, second, error, conn
        finally:
            await hook.async_close()

    first, second, error, conn = asyncio.run(poll())
    assert first.workers and second.workers and conn is not None
    assert isinstance(error, SessionNotFound) and "nosuchvol" in str(error)
    assert hook.node._async_conn is None
