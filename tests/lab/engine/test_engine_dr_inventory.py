"""What the DR mapping needs from the emulator, through the real ovirtsdk4: VM permissions (and their way
through the OVF_STORE to the secondary with the role and aaa-domain mappings), direct LUN disks (and the
LUN mapping at registration), cluster and data center compatibility versions and statuses, snapshots in
preview, hosted-engine and export domains, and the upgrade of an older state.json.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ovirtsdk4
import ovirtsdk4.types as t
import pytest

from ovirt_dr_lab.engine.ovf import parse_ovf
from ovirt_dr_lab.engine.server import EngineServer
from ovirt_dr_lab.engine.state import STATE_SCHEMA
from ovirt_dr_lab.engine.storage import DomainStorage
from ovirt_dr_lab.engine.testing import connect, site_dict, wait_for

pytestmark = pytest.mark.lab

SD_ID = "9c3f0d51-6a7e-4c2b-b8d4-2f1e6a0b7c11"
PRIMARY_LUN = "36001405a1b2c3d4e5f60718293a4b5c6"
SECONDARY_LUN = "36001405f6e5d4c3b2a1908172635a4b5"


def _vm(conn: ovirtsdk4.Connection, name: str) -> t.Vm:
    return conn.system_service().vms_service().list(search=f"name={name}")[0]


def _permissions(conn: ovirtsdk4.Connection, name: str) -> list[tuple[str, str]]:
    """(user name, role name) of each permission on the VM, read the way a client does: follow the links."""
    vm_service = conn.system_service().vms_service().vm_service(_vm(conn, name).id)
    out = []
    for perm in vm_service.permissions_service().list():
        out.append((conn.follow_link(perm.user).user_name, conn.follow_link(perm.role).name))
    return sorted(out)


def _failover(
    conn: ovirtsdk4.Connection, sconn: ovirtsdk4.Connection, lab_dirs: dict[str, Path]
) -> ovirtsdk4.services.StorageDomainService:
    """OVF_STORE update on the primary, a copy of the domain into the slave dir, import + attach there."""
    events = conn.system_service().events_service()
    last = int(events.list(max=1)[0].id)
    conn.system_service().storage_domains_service().storage_domain_service(SD_ID).update_ovf_store()
    wait_for(lambda: any(e.code == 199 for e in events.list(from_=last)), what="OVF_STORE updated")
    subprocess.run(
        ["cp", "-a", "--sparse=always", str(lab_dirs["master"] / SD_ID), str(lab_dirs["slave"])], check=True
    )
    system = sconn.system_service()
    system.storage_domains_service().add(
        t.StorageDomain(
            name="data_gluster",
            type=t.StorageDomainType.DATA,
            import_=True,
            host=t.Host(name="host2"),
            storage=t.HostStorage(
                type=t.StorageType.GLUSTERFS, address="gluster.lab", path="/gvslave", vfs_type="glusterfs"
            ),
        )
    )
    dc = system.data_centers_service().list()[0]
    attached = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
    attached.add(t.StorageDomain(id=SD_ID))
    wait_for(
        lambda: attached.storage_domain_service(SD_ID).get().status == t.StorageDomainStatus.ACTIVE,
        what="domain active",
    )
    return system.storage_domains_service().storage_domain_service(SD_ID)


def test_vm_permissions_api_shape(conn: ovirtsdk4.Connection) -> None:
    assert _permissions(conn, "vm01") == [("dr_user@internal", "DrOperator")]
    assert _permissions(conn, "vm02") == [("dr_user@internal", "DrOperator")]
    assert _permissions(conn, "vm03") == []
    vms = conn.system_service().vms_service()
    vm01 = _vm(conn, "vm01")
    perms = vms.vm_service(vm01.id).permissions_service()
    listed = perms.list()[0]
    got = perms.permission_service(listed.id).get()
    assert got.id == listed.id and got.vm.id == vm01.id and got.role.id == listed.role.id
    with pytest.raises(ovirtsdk4.NotFoundError):
        perms.permission_service("00000000-0000-0000-0000-000000000001").get()
    # the user holds permissions but has no password: it cannot log in
    with pytest.raises(ovirtsdk4.AuthError):
        connect_as(conn, "dr_user@internal", "None")


def connect_as(conn: ovirtsdk4.Connection, user: str, password: str) -> None:
    other = ovirtsdk4.Connection(url=conn.url, username=user, password=password, ca_file=conn._ca_file)
    try:
        other.test(raise_exception=True)
    finally:
        other.close()


def test_permissions_travel_in_the_ovf_and_come_back_with_the_role_mapping(
    conn: ovirtsdk4.Connection,
    sconn: ovirtsdk4.Connection,
    lab_dirs: dict[str, Path],
) -> None:
    sd_service = _failover(conn, sconn, lab_dirs)
    ovfs = DomainStorage(lab_dirs["slave"], SD_ID, "data_gluster", "gluster.lab:/gvslave").read_ovf_store()
    vm01 = _vm(conn, "vm01")
    assert parse_ovf(ovfs[vm01.id])["users"] == [{"user_domain": "dr_user@internal", "roles": ["DrOperator"]}]
    assert "users" not in parse_ovf(ovfs[_vm(conn, "vm03").id])
    unregistered = {v.name: v for v in sd_service.vms_service().list(unregistered=True)}
    cluster = [t.RegistrationClusterMapping(from_=t.Cluster(name="Default"), to=t.Cluster(name="Recovery"))]
    # vm01 with the role and aaa-domain mappings: the permission comes back with the mapped role
    sd_service.vms_service().vm_service(unregistered["vm01"].id).register(
        allow_partial_import=True,
        registration_configuration=t.RegistrationConfiguration(
            cluster_mappings=cluster,
            role_mappings=[
                t.RegistrationRoleMapping(
                    from_=t.Role(name="DrOperator"), to=t.Role(name="DrOperatorRecovery")
                )
            ],
            domain_mappings=[
                t.RegistrationDomainMapping(from_=t.Domain(name="internal"), to=t.Domain(name="internal"))
            ],
        ),
    )
    assert _permissions(sconn, "vm01") == [("dr_user@internal", "DrOperatorRecovery")]
    # vm02 without a role mapping: DrOperator does not exist here, so the permission is dropped (a warning)
    sd_service.vms_service().vm_service(unregistered["vm02"].id).register(
        allow_partial_import=True,
        registration_configuration=t.RegistrationConfiguration(cluster_mappings=cluster),
    )
    assert _permissions(sconn, "vm02") == []
    events = [e.description for e in sconn.system_service().events_service().list(search="type=1150")]
    assert any("vm02" in d and "role DrOperator of user dr_user@internal does not exist" in d for d in events)
    # a mapping to a role that does not exist is refused (the VM stays unregistered)
    with pytest.raises(ovirtsdk4.Error) as err:
        sd_service.vms_service().vm_service(unregistered["vm03"].id).register(
            registration_configuration=t.RegistrationConfiguration(
                cluster_mappings=cluster,
                role_mappings=[
                    t.RegistrationRoleMapping(from_=t.Role(name="DrOperator"), to=t.Role(name="Nope"))
                ],
            )
        )
    assert err.value.code == 409 and "Role Nope does not exist" in err.value.fault.detail
    # removing the VM removes its permissions
    vms = sconn.system_service().vms_service()
    vms.vm_service(_vm(sconn, "vm01").id).remove()
    state = json.loads((lab_dirs["state"] / "engine-secondary" / "state.json").read_text())
    wait_for(
        lambda: all(
            p["vm_id"] != vm01.id
            for p in json.loads((lab_dirs["state"] / "engine-secondary" / "state.json").read_text())[
                "permissions"
            ].values()
        ),
        what="vm01's permission gone from the saved state",
    )
    assert state["schema"] == STATE_SCHEMA


def test_direct_lun_disks_hosts_storage_and_lun_mapping(
    start_engine: Callable[..., EngineServer], lab_dirs: dict[str, Path]
) -> None:
    site = site_dict("primary")
    vm04 = next(v for v in site["vms"] if v["name"] == "vm04")
    vm04["disks"].append({"alias": "vm04_lun", "lun_id": PRIMARY_LUN, "interface": "virtio_scsi"})
    vm05 = next(v for v in site["vms"] if v["name"] == "vm05")
    vm05["disks"].append({"alias": "vm05_lun", "lun_id": PRIMARY_LUN, "shareable": True})
    primary = start_engine(site, "engine-primary")
    secondary = start_engine(site_dict("secondary"), "engine-secondary")
    conn, sconn = connect(primary), connect(secondary)
    try:
        system = conn.system_service()
        disks = {d.alias: d for d in system.disks_service().list()}
        for alias in ("db_quorum_lun", "vm04_lun"):
            lun = disks[alias]
            assert lun.storage_type == t.DiskStorageType.LUN and lun.storage_domains in (None, [])
            assert lun.lun_storage.type == t.StorageType.ISCSI
            assert [u.id for u in lun.lun_storage.logical_units] == [PRIMARY_LUN]
            assert lun.lun_storage.logical_units[0].target == "iqn.2024-01.lab.primary:san1"
        host = system.hosts_service().list()[0]
        seen = system.hosts_service().host_service(host.id).storage_service().list()
        assert [(s.id, s.type, s.logical_units[0].address) for s in seen] == [
            (PRIMARY_LUN, t.StorageType.ISCSI, "192.0.2.10")
        ]
        vm = _vm(conn, "vm04")
        atts = system.vms_service().vm_service(vm.id).disk_attachments_service().list(follow="disk")
        assert sorted(a.disk.storage_type.value for a in atts) == ["image", "lun"]
        # a snapshot of all disks leaves the LUN out; naming the LUN disk is refused
        snaps = system.vms_service().vm_service(vm.id).snapshots_service()
        snap = snaps.add(t.Snapshot(description="all disks", persist_memorystate=False))
        wait_for(lambda: snaps.snapshot_service(snap.id).get().snapshot_status == t.SnapshotStatus.OK)
        assert [d.alias for d in snaps.snapshot_service(snap.id).disks_service().list()] == ["vm04_disk1"]
        with pytest.raises(ovirtsdk4.Error) as err:
            snaps.add(
                t.Snapshot(
                    description="lun",
                    disk_attachments=[t.DiskAttachment(disk=t.Disk(id=disks["vm04_lun"].id))],
                )
            )
        assert err.value.code == 409 and "direct LUN disk" in err.value.fault.detail
        snaps.snapshot_service(snap.id).remove()
        wait_for(lambda: len(snaps.list()) == 1, what="snapshot merged")

        sd_service = _failover(conn, sconn, lab_dirs)
        ovfs = DomainStorage(
            lab_dirs["slave"], SD_ID, "data_gluster", "gluster.lab:/gvslave"
        ).read_ovf_store()
        assert parse_ovf(ovfs[vm.id])["luns"][0]["lun"] == {
            "id": PRIMARY_LUN,
            "storage_type": "iscsi",
            "address": "192.0.2.10",
            "port": 3260,
            "target": "iqn.2024-01.lab.primary:san1",
            "portal": "1",
        }
        entity = sd_service.vms_service().vm_service(vm.id)
        cluster = [
            t.RegistrationClusterMapping(from_=t.Cluster(name="Default"), to=t.Cluster(name="Recovery"))
        ]
        # the primary's LUN is not visible at the secondary: no mapping, no partial import -> refused
        with pytest.raises(ovirtsdk4.Error) as err:
            entity.register(registration_configuration=t.RegistrationConfiguration(cluster_mappings=cluster))
        assert err.value.code == 409 and PRIMARY_LUN in err.value.fault.detail
        lun_mapping = t.RegistrationLunMapping(
            from_=t.Disk(lun_storage=t.HostStorage(logical_units=[t.LogicalUnit(id=PRIMARY_LUN)])),
            to=t.Disk(
                lun_storage=t.HostStorage(
                    type=t.StorageType.ISCSI,
                    logical_units=[
                        t.LogicalUnit(
                            id=SECONDARY_LUN,
                            address="198.51.100.10",
                            port=3260,
                            target="iqn.2024-01.lab.secondary:san1",
                        )
                    ],
                )
            ),
        )
        entity.register(
            registration_configuration=t.RegistrationConfiguration(
                cluster_mappings=cluster, lun_mappings=[lun_mapping]
            )
        )
        registered = sconn.system_service().vms_service().vm_service(vm.id)
        by_type = {
            a.disk.storage_type.value: a.disk
            for a in registered.disk_attachments_service().list(follow="disk")
        }
        assert [u.id for u in by_type["lun"].lun_storage.logical_units] == [SECONDARY_LUN]
        assert by_type["lun"].alias == "vm04_lun" and by_type["image"].alias == "vm04_disk1"
        shost = sconn.system_service().hosts_service().list()[0]
        used = sconn.system_service().hosts_service().host_service(shost.id).storage_service().list()
        assert used[0].logical_units[0].status == t.LunStatus.USED
        # the registered VM starts: its LUN disk has no chain to check
        registered.start()
        wait_for(lambda: registered.get().status == t.VmStatus.UP, what="vm04 up at the secondary")
        # with a partial import and no mapping the LUN disk is dropped instead, with a warning
        vm05_id = _vm(conn, "vm05").id
        sd_service.vms_service().vm_service(vm05_id).register(
            allow_partial_import=True,
            registration_configuration=t.RegistrationConfiguration(cluster_mappings=cluster),
        )
        atts = (
            sconn.system_service()
            .vms_service()
            .vm_service(vm05_id)
            .disk_attachments_service()
            .list(follow="disk")
        )
        assert [a.disk.alias for a in atts] == ["vm05_disk1"]
        events = [e.description for e in sconn.system_service().events_service().list(search="type=1150")]
        assert any("vm05" in d and f"LUN disk vm05_lun ({PRIMARY_LUN}) dropped" in d for d in events)
    finally:
        conn.close()
        sconn.close()


def test_versions_statuses_domains_and_preview(
    conn: ovirtsdk4.Connection, sconn: ovirtsdk4.Connection, primary: EngineServer, secondary: EngineServer
) -> None:
    system = conn.system_service()
    cluster = system.clusters_service().list()[0]
    assert (cluster.version.major, cluster.version.minor) == (4, 7)
    dc = system.data_centers_service().list()[0]
    assert (dc.version.major, dc.version.minor) == (4, 7) and dc.status == t.DataCenterStatus.UP
    # the secondary's data center has no storage yet: uninitialized, as the engine says
    sdc = sconn.system_service().data_centers_service().list()[0]
    assert sdc.status == t.DataCenterStatus.UNINITIALIZED
    assert [
        d.name for d in sconn.system_service().data_centers_service().list(search="status=uninitialized")
    ] == ["Recovery"]
    # hosted-engine and export domains: listed and attached, never GlusterFS volumes
    sds = {sd.name: sd for sd in system.storage_domains_service().list()}
    assert sorted(sds) == ["data_gluster", "export_legacy", "hosted_storage"]
    assert sds["export_legacy"].type == t.StorageDomainType.EXPORT
    assert sds["hosted_storage"].type == t.StorageDomainType.DATA
    assert sds["hosted_storage"].storage.type == t.StorageType.NFS
    assert sds["hosted_storage"].storage.path == "/exports/hosted_engine"
    assert not sds["hosted_storage"].master and sds["data_gluster"].master
    attached = system.data_centers_service().data_center_service(dc.id).storage_domains_service().list()
    assert {a.name: a.status for a in attached}["export_legacy"] == t.StorageDomainStatus.ACTIVE
    assert [sd.name for sd in system.storage_domains_service().list(search="type=export")] == [
        "export_legacy"
    ]
    volumes = system.clusters_service().cluster_service(cluster.id).gluster_volumes_service().list()
    assert [v.name for v in volumes] == ["gvmaster"]
    # a host out of service: no host up, the data center stops answering
    host = system.hosts_service().list()[0]
    primary.lab.set_host_status(host.id, "maintenance")
    assert system.hosts_service().list(search="status=up") == []
    assert system.data_centers_service().list()[0].status == t.DataCenterStatus.PROBLEMATIC
    primary.lab.set_host_status(host.id, "up")
    assert system.data_centers_service().list()[0].status == t.DataCenterStatus.UP
    # a snapshot in preview: listed so, and no snapshot can be added or removed meanwhile
    vm = _vm(conn, "vm06")
    snaps = system.vms_service().vm_service(vm.id).snapshots_service()
    snap = snaps.add(t.Snapshot(description="before upgrade", persist_memorystate=False))
    wait_for(lambda: snaps.snapshot_service(snap.id).get().snapshot_status == t.SnapshotStatus.OK)
    primary.lab.set_snapshot_status(vm.id, snap.id, "in_preview")
    assert {s.description: s.snapshot_status for s in snaps.list()}[
        "before upgrade"
    ] == t.SnapshotStatus.IN_PREVIEW
    for call in (
        lambda: snaps.add(t.Snapshot(description="another", persist_memorystate=False)),
        lambda: snaps.snapshot_service(snap.id).remove(),
    ):
        with pytest.raises(ovirtsdk4.Error) as err:
            call()
        assert err.value.code == 409 and "previewing a Snapshot" in err.value.fault.detail
    primary.lab.set_snapshot_status(vm.id, snap.id, "ok")
    snaps.snapshot_service(snap.id).remove()
    wait_for(lambda: len(snaps.list()) == 1, what="snapshot merged")


def test_older_state_is_upgraded_once(
    start_engine: Callable[..., EngineServer], lab_dirs: dict[str, Path]
) -> None:
    """A state.json written before permissions/LUNs existed gets them from the site, once, nothing else."""
    server = start_engine(site_dict("primary"), "engine-old")
    with connect(server) as c:
        vms = c.system_service().vms_service()
        vms.vm_service(_vm(c, "vm06").id).stop()
    wait_for(lambda: server.engine.s["vms"][_vm_id(server, "vm06")]["status"] == "down", what="vm06 down")
    server.stop()
    path = lab_dirs["state"] / "engine-old" / "state.json"
    old: dict[str, Any] = json.loads(path.read_text())
    for key in ("permissions", "luns", "schema"):
        old.pop(key)
    old["disks"] = {k: d for k, d in old["disks"].items() if d.get("storage_type") != "lun"}
    old["users"] = {k: u for k, u in old["users"].items() if u["user_name"] == "admin@internal"}
    old["storage_domains"] = {
        k: sd for k, sd in old["storage_domains"].items() if sd["name"] == "data_gluster"
    }
    for sd in old["storage_domains"].values():
        sd.pop("type"), sd.pop("storage_type")
    for cl in old["clusters"].values():
        cl.pop("version")
    vm05 = _vm_id_in(old, "vm05")
    old["vms"].pop(vm05)  # removed on purpose before the upgrade: must not come back
    path.write_text(json.dumps(old))

    again = start_engine(site_dict("primary"), "engine-old")
    with connect(again) as c:
        assert _permissions(c, "vm01") == [("dr_user@internal", "DrOperator")]
        assert sorted(v.name for v in c.system_service().vms_service().list()) == [
            "vm01",
            "vm02",
            "vm03",
            "vm04",
            "vm06",
        ]
        assert _vm(c, "vm06").status == t.VmStatus.DOWN  # kept what the state had
        assert {sd.name for sd in c.system_service().storage_domains_service().list()} == {
            "data_gluster",
            "export_legacy",
            "hosted_storage",
        }
        assert [d.alias for d in c.system_service().disks_service().list(search="alias=db_quorum_lun")] == [
            "db_quorum_lun"
        ]
        assert c.system_service().clusters_service().list()[0].version.minor == 7
    again.stop()
    upgraded = json.loads(path.read_text())
    assert upgraded["schema"] == STATE_SCHEMA and len(upgraded["permissions"]) == 2
    # a second start changes nothing (the upgrade ran once)
    third = start_engine(site_dict("primary"), "engine-old")
    third.stop()
    assert json.loads(path.read_text())["permissions"] == upgraded["permissions"]


def _vm_id(server: EngineServer, name: str) -> str:
    return _vm_id_in(server.engine.s, name)


def _vm_id_in(state: dict[str, Any], name: str) -> str:
    return next(v["id"] for v in state["vms"].values() if v["name"] == name)
