"""The DR path through the real ovirtsdk4: OVF_STORE update on the primary, then on the secondary engine
import + attach of a copy of the domain directory, unregistered VMs from the OVF_STORE, registration with
the DR mappings, start (which checks every volume chain), and the domain's way out (deactivate, detach,
remove). A corrupted volume file makes its VM fail to start.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import ovirtsdk4
import ovirtsdk4.types as t
import pytest

from ovirt_dr_lab.engine.server import EngineServer
from ovirt_dr_lab.engine.storage import DomainStorage
from ovirt_dr_lab.engine.testing import wait_for

pytestmark = pytest.mark.lab

SD_ID = "9c3f0d51-6a7e-4c2b-b8d4-2f1e6a0b7c11"


def mapping(
    prod_dr_id: str, cluster_to: str = "Recovery", group_to: str = "db_app_dr"
) -> t.RegistrationConfiguration:
    """The shape the product builds from the Ansible DR mapping file."""
    return t.RegistrationConfiguration(
        cluster_mappings=[
            t.RegistrationClusterMapping(from_=t.Cluster(name="Default"), to=t.Cluster(name=cluster_to))
        ],
        affinity_group_mappings=[
            t.RegistrationAffinityGroupMapping(
                from_=t.AffinityGroup(name="db_app"), to=t.AffinityGroup(name=group_to)
            )
        ],
        affinity_label_mappings=[
            t.RegistrationAffinityLabelMapping(
                from_=t.AffinityLabel(name="tier1"), to=t.AffinityLabel(name="tier1_dr")
            )
        ],
        role_mappings=[
            t.RegistrationRoleMapping(from_=t.Role(name="DrOperator"), to=t.Role(name="DrOperatorRecovery"))
        ],
        domain_mappings=[
            t.RegistrationDomainMapping(from_=t.Domain(name="internal"), to=t.Domain(name="internal"))
        ],
        vnic_profile_mappings=[
            t.RegistrationVnicProfileMapping(
                from_=t.VnicProfile(name="prod", network=t.Network(name="prod")),
                to=t.VnicProfile(id=prod_dr_id),
            )
        ],
    )


def update_ovf_and_wait(conn: ovirtsdk4.Connection, sd_id: str) -> None:
    events = conn.system_service().events_service()
    newest = events.list(max=1)
    last = int(newest[0].id) if newest else 0
    conn.system_service().storage_domains_service().storage_domain_service(sd_id).update_ovf_store()
    wait_for(
        lambda: any(e.code == 199 for e in events.list(from_=last)), what="OVF_STORE updated event (199)"
    )


def import_and_attach(sconn: ovirtsdk4.Connection) -> tuple[t.StorageDomain, list[str]]:
    system = sconn.system_service()
    sds = system.storage_domains_service()
    imported = sds.add(
        t.StorageDomain(
            name="data_gluster_dr",
            type=t.StorageDomainType.DATA,
            import_=True,
            host=t.Host(name="host2"),
            storage=t.HostStorage(
                type=t.StorageType.GLUSTERFS, address="gluster.lab", path="/gvslave", vfs_type="glusterfs"
            ),
        )
    )
    assert imported.id == SD_ID and imported.status == t.StorageDomainStatus.UNATTACHED
    assert sds.storage_domain_service(SD_ID).vms_service().list(unregistered=True) == []  # only after attach
    dc = system.data_centers_service().list()[0]
    attached_sds = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
    attached = attached_sds.add(t.StorageDomain(id=SD_ID))
    seen = [attached.status.value]

    def active() -> bool:
        status = attached_sds.storage_domain_service(SD_ID).get().status.value
        if status != seen[-1]:
            seen.append(status)
        return status == "active"

    wait_for(active, interval=0.02, what="domain active")
    assert sds.storage_domain_service(SD_ID).get().status is None  # attached: no global status
    return imported, seen


def test_import_register_start_with_mapping(
    conn: ovirtsdk4.Connection, sconn: ovirtsdk4.Connection, primary: EngineServer, lab_dirs: dict[str, Path]
) -> None:
    pvms = {v.name: v for v in conn.system_service().vms_service().list()}
    update_ovf_and_wait(conn, SD_ID)
    ovfs = DomainStorage(lab_dirs["master"], SD_ID, "data_gluster", "gluster.lab:/gvmaster").read_ovf_store()
    tpl = conn.system_service().templates_service().list()[0]
    assert set(ovfs) == {v.id for v in pvms.values()} | {tpl.id}
    subprocess.run(
        ["cp", "-a", "--sparse=always", str(lab_dirs["master"] / SD_ID), str(lab_dirs["slave"])], check=True
    )

    _, seen = import_and_attach(sconn)
    assert seen[0] == "locked" and seen[-1] == "active"
    assert [s for s in ["locked", "maintenance", "activating", "active"] if s in seen] == seen
    system = sconn.system_service()
    sd_service = system.storage_domains_service().storage_domain_service(SD_ID)
    unregistered = {v.name: v for v in sd_service.vms_service().list(unregistered=True)}
    assert {n: v.id for n, v in unregistered.items()} == {n: v.id for n, v in pvms.items()}
    assert len(sd_service.disks_service().list(unregistered=True)) == 8  # 7 VM disks + the template's
    templates = sd_service.templates_service().list(unregistered=True)
    assert [tpl.name for tpl in templates] == ["tpl-base"]
    sd_service.templates_service().template_service(templates[0].id).register(
        registration_configuration=t.RegistrationConfiguration(
            cluster_mappings=[
                t.RegistrationClusterMapping(from_=t.Cluster(name="Default"), to=t.Cluster(name="Recovery"))
            ]
        )
    )
    assert [tpl.name for tpl in system.templates_service().list()] == ["tpl-base"]
    assert sd_service.templates_service().list(unregistered=True) == []

    prod_dr = next(p for p in system.vnic_profiles_service().list() if p.name == "prod_dr")
    vm01 = sd_service.vms_service().vm_service(unregistered["vm01"].id)
    for bad in (
        mapping(prod_dr.id, cluster_to="NoSuchCluster"),
        mapping(prod_dr.id, group_to="no_such_group"),
    ):
        with pytest.raises(ovirtsdk4.Error) as err:
            vm01.register(allow_partial_import=True, reassign_bad_macs=True, registration_configuration=bad)
        assert err.value.code == 409 and "does not exist" in err.value.fault.detail
    with pytest.raises(ovirtsdk4.Error):  # unknown profile id in the mapping
        vm01.register(registration_configuration=mapping("00000000-0000-0000-0000-0000000000ff"))
    assert system.vms_service().list() == []

    futures = [
        sd_service.vms_service()
        .vm_service(v.id)
        .register(
            allow_partial_import=True,
            reassign_bad_macs=True,
            registration_configuration=mapping(prod_dr.id),
            wait=False,
        )
        for v in unregistered.values()
    ]
    for f in futures:
        f.wait()
    assert sd_service.vms_service().list(unregistered=True) == []
    vms = {v.name: v for v in system.vms_service().list()}
    assert {n: v.id for n, v in vms.items()} == {n: v.id for n, v in pvms.items()}
    recovery = system.clusters_service().list()[0]
    assert {v.status for v in vms.values()} == {t.VmStatus.DOWN}
    assert {v.cluster.id for v in vms.values()} == {recovery.id}
    assert vms["vm01"].high_availability.enabled and vms["vm01"].high_availability.priority == 100
    nics = system.vms_service().vm_service(vms["vm01"].id).nics_service().list()
    assert [n.vnic_profile.id for n in nics] == [prod_dr.id]
    assert nics[0].mac.address == "56:6f:00:00:00:01"
    group = system.clusters_service().cluster_service(recovery.id).affinity_groups_service().list()[0]
    assert sorted(v.id for v in group.vms) == sorted([vms["vm01"].id, vms["vm02"].id])
    label = system.affinity_labels_service().list()[0]
    assert sorted(v.id for v in label.vms) == sorted([vms["vm01"].id, vms["vm02"].id])
    disks = system.vms_service().vm_service(vms["vm03"].id).disk_attachments_service().list(follow="disk")
    assert sorted(a.disk.alias for a in disks) == ["vm03_data", "vm03_disk1"]

    # a broken replica shows as a VM that cannot start
    bad_disk = (
        system.vms_service().vm_service(vms["vm05"].id).disk_attachments_service().list(follow="disk")[0].disk
    )
    volume = lab_dirs["slave"] / SD_ID / "images" / bad_disk.id / bad_disk.image_id
    with volume.open("r+b") as fh:
        fh.write(b"\xde\xad\xbe\xef" * 1024)
    with pytest.raises(ovirtsdk4.Error) as err:
        system.vms_service().vm_service(vms["vm05"].id).start()
    assert err.value.code == 409 and "vm05_disk1" in err.value.fault.detail
    assert system.vms_service().vm_service(vms["vm05"].id).get().status == t.VmStatus.DOWN

    for name in ("vm01", "vm02", "vm03", "vm04", "vm06"):
        system.vms_service().vm_service(vms[name].id).start()
    with pytest.raises(ovirtsdk4.Error) as err:
        system.vms_service().vm_service(vms["vm01"].id).start()
    assert err.value.code == 409
    statuses: set[t.VmStatus] = set()

    def all_up() -> bool:
        current = {v.name: v.status for v in system.vms_service().list() if v.name != "vm05"}
        statuses.update(current.values())
        return set(current.values()) == {t.VmStatus.UP}

    wait_for(all_up, interval=0.02, what="VMs up")
    assert t.VmStatus.POWERING_UP in statuses or t.VmStatus.WAIT_FOR_LAUNCH in statuses


def test_missing_volume_file_fails_start(
    conn: ovirtsdk4.Connection, sconn: ovirtsdk4.Connection, lab_dirs: dict[str, Path]
) -> None:
    update_ovf_and_wait(conn, SD_ID)
    subprocess.run(
        ["cp", "-a", "--sparse=always", str(lab_dirs["master"] / SD_ID), str(lab_dirs["slave"])], check=True
    )
    import_and_attach(sconn)
    sd_service = sconn.system_service().storage_domains_service().storage_domain_service(SD_ID)
    vm = next(v for v in sd_service.vms_service().list(unregistered=True) if v.name == "vm03")
    sd_service.vms_service().vm_service(vm.id).register(cluster=t.Cluster(name="Recovery"))
    disk = sconn.system_service().disks_service().list(search="alias=vm03_data")[0]
    (lab_dirs["slave"] / SD_ID / "images" / disk.id / disk.image_id).unlink()
    with pytest.raises(ovirtsdk4.Error) as err:
        sconn.system_service().vms_service().vm_service(vm.id).start()
    assert err.value.code == 409 and "vm03_data" in err.value.fault.detail


def test_domain_lifecycle_on_secondary(
    conn: ovirtsdk4.Connection, sconn: ovirtsdk4.Connection, lab_dirs: dict[str, Path]
) -> None:
    update_ovf_and_wait(conn, SD_ID)
    subprocess.run(
        ["cp", "-a", "--sparse=always", str(lab_dirs["master"] / SD_ID), str(lab_dirs["slave"])], check=True
    )
    system = sconn.system_service()
    sds = system.storage_domains_service()
    with pytest.raises(ovirtsdk4.Error) as err:  # no storage path: incomplete
        sds.add(
            t.StorageDomain(name="x", type=t.StorageDomainType.DATA, import_=True, host=t.Host(name="host2"))
        )
    assert err.value.code == 400
    import_and_attach(sconn)
    with pytest.raises(ovirtsdk4.Error) as err:  # importing twice
        import_and_attach(sconn)
    assert err.value.code == 409
    sd_service = sds.storage_domain_service(SD_ID)
    vm = next(v for v in sd_service.vms_service().list(unregistered=True) if v.name == "vm04")
    sd_service.vms_service().vm_service(vm.id).register(cluster=t.Cluster(name="Recovery"))
    vm_service = system.vms_service().vm_service(vm.id)
    vm_service.start()
    wait_for(lambda: vm_service.get().status == t.VmStatus.UP, what="vm04 up")
    dc = system.data_centers_service().list()[0]
    attached = (
        system.data_centers_service()
        .data_center_service(dc.id)
        .storage_domains_service()
        .storage_domain_service(SD_ID)
    )
    with pytest.raises(ovirtsdk4.Error) as err:  # running VMs keep the domain active
        attached.deactivate()
    assert err.value.code == 409
    with pytest.raises(ovirtsdk4.Error) as err:  # detach needs maintenance
        attached.remove()
    assert err.value.code == 409
    vm_service.stop()
    wait_for(lambda: vm_service.get().status == t.VmStatus.DOWN, what="vm04 down")
    attached.deactivate()
    wait_for(lambda: attached.get().status == t.StorageDomainStatus.MAINTENANCE, what="maintenance")
    attached.activate()
    wait_for(lambda: attached.get().status == t.StorageDomainStatus.ACTIVE, what="active again")
    attached.deactivate(force=True)
    wait_for(lambda: attached.get().status == t.StorageDomainStatus.MAINTENANCE, what="maintenance")
    attached.remove()
    with pytest.raises(ovirtsdk4.NotFoundError):
        attached.get()
    assert sd_service.get().status == t.StorageDomainStatus.UNATTACHED
    assert system.vms_service().list() == []  # detaching takes the domain's VMs out of the engine
    with pytest.raises(ovirtsdk4.Error) as err:
        sd_service.remove()
    assert err.value.code == 400
    sd_service.remove(host="host2")
    assert sds.list() == []
    assert (lab_dirs["slave"] / SD_ID / "dom_md" / "metadata").exists()  # no format: files stay


def test_periodic_ovf_updater(start_engine, lab_dirs: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    from ovirt_dr_lab.engine.testing import site_dict

    server = start_engine(site_dict("primary", ovf_update_interval_s=0.3), "engine-ovf")
    ds = DomainStorage(lab_dirs["master"], SD_ID, "data_gluster", "gluster.lab:/gvmaster")
    ovfs = wait_for(lambda: _read_ovfs(ds), timeout=10, what="periodic OVF_STORE write")
    assert len(ovfs) == 7  # 6 VMs + the template
    assert server.lab.counters() == {}  # the engine did it on its own


def _read_ovfs(ds: DomainStorage) -> dict[str, str]:
    try:
        return ds.read_ovf_store()
    except Exception:  # no store written yet
        return {}


def test_import_reaches_the_volume_under_any_name_of_its_host(
    start_engine, lab_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import socket

    from ovirt_dr_lab.engine.testing import connect, site_dict

    monkeypatch.setenv("LAB_GLUSTER_HOST", socket.gethostname())
    primary = start_engine(site_dict("primary"), "engine-p2")
    pconn = connect(primary)
    update_ovf_and_wait(pconn, SD_ID)
    pconn.close()
    subprocess.run(
        ["cp", "-a", "--sparse=always", str(lab_dirs["master"] / SD_ID), str(lab_dirs["slave"])], check=True
    )
    secondary = start_engine(site_dict("secondary"), "engine-s2")
    sconn = connect(secondary)
    sds = sconn.system_service().storage_domains_service()

    def imported(address: str) -> t.StorageDomain:
        return sds.add(
            t.StorageDomain(
                name="dr",
                type=t.StorageDomainType.DATA,
                import_=True,
                host=t.Host(name="host2"),
                storage=t.HostStorage(
                    type=t.StorageType.GLUSTERFS, address=address, path="/gvslave", vfs_type="glusterfs"
                ),
            )
        )

    with pytest.raises(ovirtsdk4.Error) as err:
        imported("203.0.113.7")  # TEST-NET: not this machine
    assert err.value.code == 409 and "not mounted" in err.value.fault.detail
    assert imported("127.0.0.1").id == SD_ID  # the site maps <hostname>:/gvslave; 127.0.0.1 is the same host
    with pytest.raises(ovirtsdk4.Error) as err:
        imported("localhost")
    assert err.value.code == 409 and "already exists" in err.value.fault.detail
    sconn.close()


def test_register_with_explicit_cluster_and_legacy_vnic_mappings(
    conn: ovirtsdk4.Connection, sconn: ovirtsdk4.Connection, lab_dirs: dict[str, Path]
) -> None:
    update_ovf_and_wait(conn, SD_ID)
    subprocess.run(
        ["cp", "-a", "--sparse=always", str(lab_dirs["master"] / SD_ID), str(lab_dirs["slave"])], check=True
    )
    import_and_attach(sconn)
    system = sconn.system_service()
    sd_vms = system.storage_domains_service().storage_domain_service(SD_ID).vms_service()
    by_name = {v.name: v for v in sd_vms.list(unregistered=True)}
    with pytest.raises(ovirtsdk4.NotFoundError) as err:  # an explicit unknown cluster: the REST layer's 404
        sd_vms.vm_service(by_name["vm02"].id).register(cluster=t.Cluster(name="Nope"))
    assert "Cluster" in err.value.fault.detail
    prod_dr = next(p for p in system.vnic_profiles_service().list() if p.name == "prod_dr")
    sd_vms.vm_service(by_name["vm02"].id).register(
        cluster=t.Cluster(name="Recovery"),
        vnic_profile_mappings=[
            t.VnicProfileMapping(
                source_network_name="prod",
                source_network_profile_name="prod",
                target_vnic_profile=t.VnicProfile(id=prod_dr.id),
            )
        ],
    )
    sd_vms.vm_service(by_name["vm05"].id).register(cluster=t.Cluster(name="Recovery"))  # no mapping for prod
    nics = {
        name: system.vms_service().vm_service(by_name[name].id).nics_service().list()[0]
        for name in ("vm02", "vm05")
    }
    assert nics["vm02"].vnic_profile.id == prod_dr.id and nics["vm02"].plugged
    assert nics["vm05"].vnic_profile is None and not nics["vm05"].plugged  # profile missing here: left empty
    assert {v.name for v in sd_vms.list(unregistered=True)} == {"vm01", "vm03", "vm04", "vm06"}


def test_import_refuses_a_domain_whose_metadata_seal_is_broken(
    conn: ovirtsdk4.Connection, sconn: ovirtsdk4.Connection, lab_dirs: dict[str, Path]
) -> None:
    subprocess.run(
        ["cp", "-a", "--sparse=always", str(lab_dirs["master"] / SD_ID), str(lab_dirs["slave"])], check=True
    )
    md = lab_dirs["slave"] / SD_ID / "dom_md" / "metadata"
    md.write_text(md.read_text().replace("DESCRIPTION=data_gluster", "DESCRIPTION=tampered"))
    with pytest.raises(ovirtsdk4.Error) as err:
        import_and_attach(sconn)
    assert err.value.code == 409 and "no storage domain" in err.value.fault.detail
