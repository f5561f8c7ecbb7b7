"""Conformance of the emulated engine with the real ovirtsdk4: auth, TLS, faults, search, events, jobs.

Every call goes through the unmodified SDK (never raw HTTP), so what passes here is what the product's
OvirtHook will see.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ovirtsdk4
import ovirtsdk4.types as t
import pytest
import yaml

from ovirt_dr_lab.engine.server import EngineServer
from ovirt_dr_lab.engine.site import SITES_DIR
from ovirt_dr_lab.engine.testing import PASSWORD, USER, connect, site_dict, wait_for

pytestmark = pytest.mark.lab


def test_system_and_login(conn: ovirtsdk4.Connection, primary: EngineServer) -> None:
    assert conn.test(raise_exception=True)
    api = conn.system_service().get()
    assert api.product_info.version.major == 4
    assert api.product_info.version.full_version.startswith("4.5")
    assert primary.lab.counters()["POST /ovirt-engine/sso/oauth/token"] == 1


def test_bad_password_is_auth_error(primary: EngineServer) -> None:
    c = connect(primary, password="wrong")
    with pytest.raises(ovirtsdk4.AuthError) as err:
        c.system_service().get()
    assert "access_denied" in str(err.value)
    c.close(logout=False)


def test_expired_token_relogin_and_logout(conn: ovirtsdk4.Connection, primary: EngineServer) -> None:
    conn.system_service().vms_service().list()
    assert primary.lab.expire_tokens() == 1
    assert len(conn.system_service().vms_service().list()) == 6  # 401, SDK logs in again, retries
    counters = primary.lab.counters()
    assert counters["POST /ovirt-engine/sso/oauth/token"] == 2
    assert counters["GET /vms"] == 3  # one answered 401, then the retry
    conn.close()
    assert primary.lab.counters()["POST /ovirt-engine/services/sso-logout"] == 1


def test_tls_needs_the_generated_ca(primary: EngineServer, secondary: EngineServer) -> None:
    good = connect(primary)
    assert good.test(raise_exception=True)
    good.close()
    with pytest.raises(ovirtsdk4.Error):  # no ca_file and verification on: refused
        connect(primary, ca_file=None).system_service().get()
    with pytest.raises(ovirtsdk4.Error):  # another engine's CA does not vouch for this one
        connect(primary, ca_file=str(secondary.ca_file)).system_service().get()
    insecure = connect(primary, ca_file=None, insecure=True)
    assert insecure.system_service().get().product_info is not None
    insecure.close()


def test_unknown_ids_are_not_found(conn: ovirtsdk4.Connection) -> None:
    system = conn.system_service()
    with pytest.raises(ovirtsdk4.NotFoundError):
        system.vms_service().vm_service("00000000-0000-0000-0000-00000000dead").get()
    vm = system.vms_service().list(search="name=vm01")[0]
    with pytest.raises(ovirtsdk4.NotFoundError):
        system.vms_service().vm_service(vm.id).snapshots_service().snapshot_service("nope").get()
    with pytest.raises(ovirtsdk4.NotFoundError):
        system.disks_service().disk_service("nope").get()
    with pytest.raises(ovirtsdk4.NotFoundError):
        system.storage_domains_service().storage_domain_service("nope").get()


def test_faults_carry_reason_and_detail(conn: ovirtsdk4.Connection, primary: EngineServer) -> None:
    system = conn.system_service()
    vm = system.vms_service().list(search="name=vm02")[0]
    snaps = system.vms_service().vm_service(vm.id).snapshots_service()
    with pytest.raises(ovirtsdk4.Error) as err:
        snaps.add(t.Snapshot(persist_memorystate=False))
    assert err.value.code == 400
    assert err.value.fault.reason == "Incomplete parameters"
    assert "description" in err.value.fault.detail
    with pytest.raises(ovirtsdk4.Error) as err:
        system.events_service().add(t.Event(description="x"))
    assert err.value.code == 400 and err.value.fault.reason == "Incomplete parameters"
    sd = system.storage_domains_service().list()[0]
    with pytest.raises(ovirtsdk4.Error) as err:
        system.storage_domains_service().storage_domain_service(sd.id).remove()
    assert err.value.code == 400 and "host parameter is missing" in err.value.fault.detail

    primary.lab.inject_fault("GET", r"/vms$", status=500, count=2)
    for _ in range(2):
        with pytest.raises(ovirtsdk4.Error) as err:
            system.vms_service().list()
        assert err.value.code == 500 and err.value.fault is not None
    assert len(system.vms_service().list()) == 6  # the fault was for the next 2 calls only

    primary.lab.inject_fault("POST", r"/snapshots$", status=409)
    with pytest.raises(ovirtsdk4.Error) as err:
        snaps.add(t.Snapshot(description="x", persist_memorystate=False))
    assert err.value.code == 409

    primary.lab.inject_fault("GET", r"/vms/[^/]+$", hang_s=1.0)
    started = time.monotonic()
    assert system.vms_service().vm_service(vm.id).get().name == "vm02"
    assert time.monotonic() - started >= 1.0
    primary.lab.inject_fault("*", r"/vms", status=503, count=5)
    primary.lab.clear_faults()
    assert system.vms_service().list(max=1)


def test_freeze_thaw_log_and_409_when_down(conn: ovirtsdk4.Connection, primary: EngineServer) -> None:
    vms = {v.name: v for v in conn.system_service().vms_service().list()}
    order = ["vm02", "vm01", "vm03"]
    for name in order:
        conn.system_service().vms_service().vm_service(vms[name].id).freeze_filesystems()
    for name in reversed(order):
        conn.system_service().vms_service().vm_service(vms[name].id).thaw_filesystems()
    log = primary.lab.freeze_log()
    assert [(e["vm_name"], e["action"]) for e in log] == [(n, "freeze") for n in order] + [
        (n, "thaw") for n in reversed(order)
    ]
    assert [e["time"] for e in log] == sorted(e["time"] for e in log)
    vm4 = conn.system_service().vms_service().vm_service(vms["vm04"].id)
    vm4.stop()
    wait_for(lambda: vm4.get().status == t.VmStatus.DOWN, what="vm04 down")
    with pytest.raises(ovirtsdk4.Error) as err:
        vm4.freeze_filesystems()
    assert err.value.code == 409
    assert err.value.fault.detail == "[Cannot freeze VM because the VM is in Down status.]"


def test_search_max_follow(conn: ovirtsdk4.Connection, primary: EngineServer) -> None:
    system = conn.system_service()
    vms = system.vms_service()
    assert len(vms.list(search="storage.name=data_gluster and status=up")) == 6
    assert [v.name for v in vms.list(search='storage="data_gluster"', max=2)] == ["vm01", "vm02"]
    assert [v.name for v in vms.list(search="name=vm0* sortby name desc", max=3)] == ["vm06", "vm05", "vm04"]
    assert [v.name for v in vms.list(search="name=VM03 or name=vm05")] == ["vm03", "vm05"]
    assert vms.list(search="name=VM03", case_sensitive=True) == []
    assert vms.list(search="status!=up") == []
    assert [d.name for d in system.data_centers_service().list(search='storage="data_gluster"')] == [
        "Default"
    ]
    assert [h.name for h in system.hosts_service().list(search="status=up")] == ["host1"]
    sds = system.storage_domains_service().list(search="name=data_gluster")
    assert len(sds) == 1 and sds[0].storage.type == t.StorageType.GLUSTERFS
    assert sds[0].storage.path == "/gvmaster" and sds[0].storage.address == "gluster.lab"
    assert sds[0].status is None  # attached domains have no global status
    assert sds[0].data_centers[0].id == system.data_centers_service().list()[0].id
    with pytest.raises(ovirtsdk4.Error) as err:
        vms.list(search="name=")
    assert err.value.code == 400
    vm3 = vms.list(search="name=vm03")[0]
    atts = vms.vm_service(vm3.id).disk_attachments_service().list(follow="disk")
    assert len(atts) == 2
    for att in atts:
        assert att.disk.storage_domains[0].id == sds[0].id
        assert att.disk.format == t.DiskFormat.COW and att.disk.content_type == t.DiskContentType.DATA
        followed = conn.follow_link(vms.vm_service(vm3.id).disk_attachments_service().list()[0].disk)
        assert followed.image_id
    full = vms.list(search="name=vm03", follow="disk_attachments.disk")[0]
    assert {a.disk.alias for a in full.disk_attachments} == {"vm03_disk1", "vm03_data"}
    assert len(conn.follow_link(vm3.disk_attachments)) == 2
    # lists used by the recovery mapping
    cluster = system.clusters_service().list()[0]
    groups = system.clusters_service().cluster_service(cluster.id).affinity_groups_service().list()
    assert [g.name for g in groups] == ["db_app"] and len(groups[0].vms) == 2
    assert [label.name for label in system.affinity_labels_service().list()] == ["tier1"]
    assert {p.name for p in system.vnic_profiles_service().list()} == {"ovirtmgmt", "prod"}
    assert {r.name for r in system.roles_service().list()} >= {"SuperUser", "DrOperator"}
    assert [d.name for d in system.domains_service().list()] == ["internal"]
    # the site's users: the API user and the DR user that holds permissions on vm01/vm02
    assert [u.user_name for u in system.users_service().list()] == [USER, "dr_user@internal"]
    volumes = system.clusters_service().cluster_service(cluster.id).gluster_volumes_service().list()
    assert [v.name for v in volumes] == ["gvmaster"]
    ha = [v for v in vms.list() if v.high_availability.enabled]
    assert [(v.name, v.high_availability.priority) for v in ha] == [("vm01", 100)]
    counters = primary.lab.counters()
    assert counters["GET /vms"] >= 7 and counters["GET /vms/{id}/diskattachments"] >= 1


def test_events_add_list_search(conn: ovirtsdk4.Connection, primary: EngineServer) -> None:
    events = conn.system_service().events_service()
    last = int(events.list(max=1)[0].id) if events.list(max=1) else 0
    vm = conn.system_service().vms_service().list(search="name=vm01")[0]
    sd = conn.system_service().storage_domains_service().list()[0]
    added = events.add(
        t.Event(
            description="ovirt-dr sync ok",
            severity=t.LogSeverity.NORMAL,
            origin="ovirt-dr",
            custom_id=4242,
            vm=t.Vm(id=vm.id),
            storage_domain=t.StorageDomain(id=sd.id),
        )
    )
    assert int(added.id) > last and added.custom_id == 4242
    events.add(
        t.Event(description="ovirt-dr alert", severity=t.LogSeverity.ALERT, origin="ovirt-dr", custom_id=4243)
    )
    newest = events.list(max=2)
    assert [e.description for e in newest] == ["ovirt-dr alert", "ovirt-dr sync ok"]
    assert [e.custom_id for e in events.list(search="origin=ovirt-dr and severity=alert")] == [4243]
    assert [e.custom_id for e in events.list(search="custom_event_id=4242")] == [4242]
    assert {int(e.id) for e in events.list(from_=int(added.id))} == {int(added.id) + 1}
    with pytest.raises(ovirtsdk4.Error) as err:  # the same origin + custom id twice is refused
        events.add(
            t.Event(description="again", severity=t.LogSeverity.NORMAL, origin="ovirt-dr", custom_id=4242)
        )
    assert err.value.code == 409


def test_jobs_by_correlation_id(conn: ovirtsdk4.Connection) -> None:
    vm = conn.system_service().vms_service().list(search="name=vm05")[0]
    snaps = conn.system_service().vms_service().vm_service(vm.id).snapshots_service()
    snap = snaps.add(
        t.Snapshot(description="job test", persist_memorystate=False), query={"correlation_id": "corr-1"}
    )
    jobs = conn.system_service().jobs_service()
    found = jobs.list(search="correlation_id=corr-1")
    assert len(found) == 1 and "job test" in found[0].description
    wait_for(lambda: jobs.job_service(found[0].id).get().status == t.JobStatus.FINISHED, what="job finished")
    steps = jobs.job_service(found[0].id).steps_service().list()
    assert steps and steps[0].status == t.StepStatus.FINISHED
    assert snaps.snapshot_service(snap.id).get().snapshot_status == t.SnapshotStatus.OK


def test_wait_false_futures_run_in_parallel(conn: ovirtsdk4.Connection, primary: EngineServer) -> None:
    primary.lab.inject_fault("GET", r"/vms/[^/]+$", hang_s=1.0, count=6)
    vms = conn.system_service().vms_service()
    ids = [v.id for v in vms.list()]
    started = time.monotonic()
    futures = [vms.vm_service(i).get(wait=False) for i in ids]
    names = sorted(f.wait().name for f in futures)
    elapsed = time.monotonic() - started
    assert names == [f"vm0{i}" for i in range(1, 7)]
    assert elapsed < 3.0, f"6 requests hanging 1 s each took {elapsed:.1f}s: not concurrent"


def test_engine_down_and_back(conn: ovirtsdk4.Connection, primary: EngineServer) -> None:
    vms = conn.system_service().vms_service()
    assert vms.list()
    primary.lab.engine_down(1.5)
    time.sleep(0.5)
    with pytest.raises((ovirtsdk4.ConnectionError, ovirtsdk4.Error)):
        vms.list()
    fresh = connect(primary)
    with pytest.raises((ovirtsdk4.ConnectionError, ovirtsdk4.Error)):
        fresh.system_service().get()
    fresh.close(logout=False)
    time.sleep(1.5)
    assert len(wait_for(lambda: _try_list(vms), timeout=10, what="engine back")) == 6


def _try_list(vms: object) -> list:
    try:
        return vms.list()  # type: ignore[attr-defined]
    except ovirtsdk4.Error:
        return []


def test_restart_keeps_state(start_engine, lab_dirs) -> None:  # type: ignore[no-untyped-def]
    first = start_engine(site_dict("primary"), "engine-r")
    c = connect(first)
    vm = c.system_service().vms_service().list(search="name=vm06")[0]
    snaps = c.system_service().vms_service().vm_service(vm.id).snapshots_service()
    snap = snaps.add(t.Snapshot(description="kept", persist_memorystate=False))
    wait_for(lambda: snaps.snapshot_service(snap.id).get().snapshot_status == t.SnapshotStatus.OK, what="ok")
    c.close()
    first.stop()
    second = start_engine(site_dict("primary"), "engine-r")
    c2 = connect(second)
    snaps2 = c2.system_service().vms_service().vm_service(vm.id).snapshots_service()
    assert [s.description for s in snaps2.list()] == ["kept", "Active VM"]
    disks = snaps2.snapshot_service(snap.id).disks_service().list()
    assert second.lab.disk_chain(disks[0].id)[0] == disks[0].image_id
    c2.close()


def test_cli_engine_and_gen_site(tmp_path: Path, lab_dirs) -> None:  # type: ignore[no-untyped-def]
    site = tmp_path / "big.yaml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ovirt_dr_lab.cli",
            "gen-site",
            "--vms",
            "12",
            "--out",
            str(site),
            "--disk-size-mib",
            "4",
        ],
        check=True,
    )
    data = yaml.safe_load(site.read_text())
    assert len(data["vms"]) == 12 and data["vms"][0]["disks"][0]["size_mib"] == 4
    proc = subprocess.Popen(
        [sys.executable, "-m", "ovirt_dr_lab.cli", "engine", "--site", str(site), "--port", "0"]
        + ["--state-dir", str(tmp_path / "cli-state")],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        lines = {}
        for _ in range(2):
            key, _, value = proc.stdout.readline().strip().partition("=")  # type: ignore[union-attr]
            lines[key] = value
        c = ovirtsdk4.Connection(
            url=lines["API_URL"], username=USER, password=PASSWORD, ca_file=lines["CA_FILE"]
        )
        assert len(c.system_service().vms_service().list()) == 12
        c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_shipped_sites_load(lab_dirs) -> None:  # type: ignore[no-untyped-def]
    primary = yaml.safe_load((SITES_DIR / "primary.yaml").read_text())
    secondary = yaml.safe_load((SITES_DIR / "secondary.yaml").read_text())
    assert [v["name"] for v in primary["vms"]] == [f"vm0{i}" for i in range(1, 7)]
    assert len(next(v for v in primary["vms"] if v["name"] == "vm03")["disks"]) == 2
    assert secondary["storage_domains"] == [] and secondary["gluster_mounts"]


def test_concurrent_sdk_clients(primary: EngineServer) -> None:
    def one(_: int) -> int:
        c = connect(primary)
        try:
            return len(c.system_service().vms_service().list())
        finally:
            c.close()

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(16))) == [6] * 16
