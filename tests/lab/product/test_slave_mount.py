"""The replica cleanup can write on a geo-rep slave volume, which geo-rep made read-only for others."""

from __future__ import annotations

import subprocess

import pytest

from ovirt_dr.hooks.node import GlusterNodeHook

pytestmark = pytest.mark.lab


@pytest.fixture
def slave_hook(monkeypatch, tmp_path):
    from ovirt_dr_lab.labenv import load_lab_env

    env = load_lab_env()
    monkeypatch.setenv("AIRFLOW_CONN_GLUSTER_SECONDARY", env["AIRFLOW_CONN_GLUSTER_SECONDARY"])
    with GlusterNodeHook(ssh_conn_id="gluster_secondary") as hook:
        yield hook, env


def test_slave_is_read_only_but_the_georep_client_mount_writes(slave_hook, tmp_path):
    hook, env = slave_hook
    host = env["LAB_GLUSTER_HOST"]
    ro = f"{tmp_path}/plain"
    rw = f"{tmp_path}/georep"
    hook.mount("gvslave", host, ro)
    try:
        res = hook.run(["touch", f"{ro}/.ovirt-dr-probe"], check=False)
        assert res.rc != 0 and "Read-only" in res.stderr  # what geo-rep's create did to the slave
    finally:
        hook.umount(ro)
    hook.mount("gvslave", host, rw, as_georep=True)
    try:
        hook.write_file(f"{rw}/.ovirt-dr-probe", b"x")
        assert hook.exec_bytes(["cat", "--", f"{rw}/.ovirt-dr-probe"])[1] == b"x"
        hook.remove_files([f"{rw}/.ovirt-dr-probe"])
    finally:
        assert hook.umount(rw)
    assert subprocess.run(["findmnt", rw], capture_output=True).returncode == 1


def test_a_sync_cycle_refuses_to_start_geo_replication_onto_a_writable_replica(monkeypatch):
    """The sync's geo-rep preflight reads the real slave volume's option through the slave node: read-only
    (as geo-rep made it) passes; writable (as a failover leaves it) refuses before anything starts."""
    from airflow.sdk.exceptions import AirflowFailException

    from ovirt_dr.gluster import GeoRepSession
    from ovirt_dr.operators.gluster import GlusterGeoRepPreflightOperator
    from ovirt_dr_lab.labenv import load_lab_env

    env = load_lab_env()
    for name in ("AIRFLOW_CONN_GLUSTER_PRIMARY", "AIRFLOW_CONN_GLUSTER_SECONDARY"):
        monkeypatch.setenv(name, env[name])
    session = GeoRepSession("gvmaster", "127.0.0.1", "gvslave")  # as the lab session names it

    def preflight() -> object:
        op = GlusterGeoRepPreflightOperator(
            task_id="preflight_georep",
            ssh_conn_id="gluster_primary",
            slave_ssh_conn_id="gluster_secondary",
            session=session,
        )
        return op.execute({})

    def read_only(value: str) -> None:
        subprocess.run(
            ["gluster", "--mode=script", "volume", "set", "gvslave", "features.read-only", value],
            check=True,
            capture_output=True,
            timeout=120,
        )

    assert preflight()["workers"]  # the lab's slave is read-only: the cycle may go on
    read_only("off")
    try:
        with pytest.raises(AirflowFailException, match="slave volume 'gvslave' is writable"):
            preflight()
    finally:
        read_only("on")
    assert preflight()["workers"]
