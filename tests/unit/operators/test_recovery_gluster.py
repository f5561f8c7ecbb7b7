"""The failover's Gluster step (make the replica writable, from the slave side) against fake geo-rep hooks."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from ovirt_dr.hooks.gluster import GlusterGeoRepHook
from ovirt_dr.operators.recovery_gluster import GlusterMakeReplicaWritableOperator, split_path
from ovirt_dr_lab.inprocess_dr import FakeRun


class FakeGluster:
    def __init__(self, reachable=True, read_only="on", running=True):
        self.reachable, self.read_only, self.running = reachable, read_only, running
        self.ran: list[list[str]] = []
        self.stopped = None

    def get_conn(self):
        if not self.reachable:
            raise OSError("No route to host")

    def status(self, session):
        return NS(is_running=self.running, workers=[NS(status="Active" if self.running else "Stopped")])

    def stop(self, session, force=False):
        self.stopped = force

    def volume_info(self, volume):
        return [NS(options={"features.read-only": self.read_only})]

    def run(self, argv):
        self.ran.append(argv)
        self.read_only = argv[-1]

    volume_set = GlusterGeoRepHook.volume_set  # the real command, through this fake's run

    def close(self):
        pass


DOMAIN = {
    "master_volume": "gvmaster",
    "slave_host": "gluster.lab",
    "slave_volume": "gvslave",
    "slave_user": "root",
    "master_ssh_conn_id": "gp",
    "slave_ssh_conn_id": "gs",
}


@pytest.mark.parametrize("dry_run", [False, True])
def test_replica_writable_from_the_slave_side_when_the_master_is_gone(config, dry_run, build):
    master, slave = FakeGluster(reachable=False), FakeGluster()
    op = build(GlusterMakeReplicaWritableOperator, config)
    op.gluster.hooks.update({"gp": master, "gs": slave})
    run = FakeRun({"dry_run": dry_run})
    run.xcoms[("preflight", "return_value", -1)] = {"vms": [], "domains": [DOMAIN, dict(DOMAIN)]}
    (out,) = run.execute(op)
    assert "cannot be stopped" in out["georep"] and "No route to host" in out["georep"]
    if dry_run:
        assert (
            slave.ran == []
            and "would run 'gluster --mode=script volume set gvslave features.read-only off'"
            in out["read_only"]
        )
    else:
        assert slave.ran == [
            ["gluster", "--mode=script", "volume", "set", "gvslave", "features.read-only", "off"]
        ]
        assert out["read_only"] == "on -> off"


def test_replica_writable_stops_the_session_with_force_and_is_idempotent(config, build):
    master, slave = FakeGluster(), FakeGluster(read_only="off")
    op = build(GlusterMakeReplicaWritableOperator, config)
    op.gluster.hooks.update({"gp": master, "gs": slave})
    run = FakeRun({"dry_run": False})
    run.xcoms[("preflight", "return_value", -1)] = {"vms": [], "domains": [DOMAIN]}
    (out,) = run.execute(op)
    assert master.stopped is True and out["georep"].startswith("stopped")
    assert slave.ran == [] and out["read_only"] == "already off"


def test_split_path():
    assert split_path("/gvslave") == ("gvslave", "") and split_path("/gv/a/b") == ("gv", "/a/b")
