"""What the primary cleanup and the failback call on an engine, through the real ovirtsdk4.

The old primary after a failover still has its domain active and its VMs running: they are powered off
(``stop``, also out of a hung ``shutdown``) or shut down gracefully; the OVF_STORE is written only while
the domain is active (and once more by the deactivation); deactivate -> detach -> remove without format
keeps every file; what the engine still lists for the gone domain (a template's disk, a floating disk) is
removed with ``DELETE /disks/{id}`` without touching the files, while a live floating disk's image goes.
"""

from __future__ import annotations

from pathlib import Path

import ovirtsdk4
import ovirtsdk4.types as t
import pytest

from ovirt_dr_lab.engine.storage import DomainStorage
from ovirt_dr_lab.engine.testing import connect, site_dict, wait_for

pytestmark = pytest.mark.lab

SD_ID = "9c3f0d51-6a7e-4c2b-b8d4-2f1e6a0b7c11"


def _vm(system, name: str):  # type: ignore[no-untyped-def]
    (vm,) = [v for v in system.vms_service().list() if v.name == name]
    return system.vms_service().vm_service(vm.id)


def test_stop_force_shutdown_and_their_refusals(conn: ovirtsdk4.Connection) -> None:
    system = conn.system_service()
    vm = _vm(system, "vm04")
    assert vm.get().status == t.VmStatus.UP
    vm.shutdown()
    assert vm.get().status == t.VmStatus.POWERING_DOWN
    with pytest.raises(ovirtsdk4.Error) as err:  # a second shutdown while it powers down
        vm.shutdown()
    assert err.value.code == 409 and "not running" in err.value.fault.detail
    vm.stop(force=True)  # the way out of a hung shutdown: power off
    wait_for(lambda: vm.get().status == t.VmStatus.DOWN, what="vm04 down")
    for call in (vm.stop, vm.shutdown):
        with pytest.raises(ovirtsdk4.Error) as err:
            call()
        assert err.value.code == 409
    other = _vm(system, "vm05")
    other.stop(force=True)
    wait_for(lambda: other.get().status == t.VmStatus.DOWN, what="vm05 down")
    events = [e.code for e in system.events_service().list(max=50)]
    assert events.count(61) >= 2  # "VM ... is down."


def test_ovf_update_only_while_active_and_the_way_out_without_format(
    start_engine, lab_dirs: dict[str, Path]
) -> None:  # type: ignore[no-untyped-def]
    site = site_dict("primary")
    # a floating disk on the domain (no VM uses it): an orphan once the domain is gone
    site["disks"] = [
        *site.get("disks", []),
        {"alias": "spare", "size_mib": 16, "storage_domain": "data_gluster"},
    ]
    server = start_engine(site, "engine-cleanup")
    ds = DomainStorage(lab_dirs["master"], SD_ID, "data_gluster", "gluster.lab:/gvmaster")
    with connect(server) as c:
        system = c.system_service()
        sds = system.storage_domains_service()
        sd = sds.storage_domain_service(SD_ID)
        (dc,) = [d for d in system.data_centers_service().list() if d.name == "Default"]
        attached = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
        one = attached.storage_domain_service(SD_ID)
        disks = {d.alias: d for d in system.disks_service().list()}
        spare, tpl_disk = disks["spare"], disks["tpl-base_disk1"]
        assert (lab_dirs["master"] / SD_ID / "images" / spare.id).is_dir()

        with pytest.raises(ovirtsdk4.Error) as err:  # a disk a template uses
            system.disks_service().disk_service(tpl_disk.id).remove()
        assert err.value.code == 409 and "in use" in err.value.fault.detail

        for vm in system.vms_service().list():
            if vm.status != t.VmStatus.DOWN:
                system.vms_service().vm_service(vm.id).stop(force=True)
        wait_for(
            lambda: all(v.status == t.VmStatus.DOWN for v in system.vms_service().list()), what="all down"
        )
        events = system.events_service()
        last = int(events.list(max=1)[0].id)
        sd.update_ovf_store()
        wait_for(
            lambda: any(
                e.code == 199 and e.storage_domain is not None and e.storage_domain.id == SD_ID
                for e in events.list(from_=last)
            ),
            what="OVF_STORE updated (199)",
        )
        store = ds.read_ovf_store_full()
        assert set(store["vm_status"].values()) == {0}  # every VM down in the store's metadata.json

        one.deactivate()
        wait_for(lambda: one.get().status == t.StorageDomainStatus.MAINTENANCE, what="maintenance")
        with pytest.raises(ovirtsdk4.Error) as err:  # the OVF_STORE is written only while active
            sd.update_ovf_store()
        assert err.value.code == 409 and "Cannot update OVF store" in err.value.fault.detail
        with pytest.raises(ovirtsdk4.Error) as err:  # an image on a domain that is not active
            system.disks_service().disk_service(spare.id).remove()
        assert err.value.code == 409 and "Maintenance" in err.value.fault.detail

        one.remove()  # detach
        assert sd.get().status == t.StorageDomainStatus.UNATTACHED
        assert (
            system.vms_service().list() == []
            and system.templates_service().list(search="name=tpl-base") == []
        )
        with pytest.raises(ovirtsdk4.Error) as err:
            sd.remove(host="no-such-host", format=False)
        assert err.value.code == 404
        sd.remove(host="host1", format=False)
        assert SD_ID not in {x.id for x in sds.list()}

        # what the engine still lists for the gone domain: dropped, the files stay
        left = {d.alias: d for d in system.disks_service().list()}
        assert {"spare", "tpl-base_disk1"} <= set(left)
        assert left["spare"].storage_domains[0].id == SD_ID
        for disk in (spare, tpl_disk):
            system.disks_service().disk_service(disk.id).remove()
        with pytest.raises(ovirtsdk4.NotFoundError):
            system.disks_service().disk_service(spare.id).get()
        assert {"spare", "tpl-base_disk1"}.isdisjoint(d.alias for d in system.disks_service().list())
        assert (lab_dirs["master"] / SD_ID / "dom_md" / "metadata").exists()
        assert (lab_dirs["master"] / SD_ID / "images" / spare.id).is_dir()  # never formatted


def test_a_live_floating_disk_is_deleted_with_its_image(start_engine, lab_dirs: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    site = site_dict("primary")
    site["disks"] = [
        *site.get("disks", []),
        {"alias": "scratch", "size_mib": 16, "storage_domain": "data_gluster"},
    ]
    server = start_engine(site, "engine-disk")
    with connect(server) as c:
        disks = c.system_service().disks_service()
        (scratch,) = [d for d in disks.list() if d.alias == "scratch"]
        image = lab_dirs["master"] / SD_ID / "images" / scratch.id
        assert image.is_dir()
        disks.disk_service(scratch.id).remove()
        assert not image.exists()
        (vm_disk,) = [d for d in disks.list() if d.alias == "vm01_disk1"]
        with pytest.raises(ovirtsdk4.Error) as err:
            disks.disk_service(vm_disk.id).remove()
        assert err.value.code == 409 and "vm01" in err.value.fault.detail
