"""Conformance: a VM's vNICs are read and (un)plugged through ``VmNicService`` as the engine does it.

The DR drill starts copies of production VMs at the secondary site with every vNIC unplugged (no duplicate
MAC or IP on the production network), so ``PUT /vms/{vm}/nics/{nic}`` must keep what it is sent.
"""

from __future__ import annotations

import ovirtsdk4
import ovirtsdk4.types as types
import pytest

pytestmark = pytest.mark.lab


def _vm(conn: ovirtsdk4.Connection, name: str) -> types.Vm:
    (vm,) = conn.system_service().vms_service().list(search=f"name={name}")
    return vm


def test_unplug_and_plug_a_vnic_keeps_the_fields_not_sent(conn: ovirtsdk4.Connection) -> None:
    vms = conn.system_service().vms_service()
    for name in ("vm01", "vm06"):
        vm = _vm(conn, name)
        nics = vms.vm_service(vm.id).nics_service()
        (nic,) = nics.list()
        assert nic.plugged and nic.linked and nic.vnic_profile is not None
        one = nics.nic_service(nic.id)
        got = one.update(types.Nic(plugged=False))
        assert got.plugged is False and got.linked is True and got.mac.address == nic.mac.address
        assert one.get().plugged is False
        assert [n.plugged for n in nics.list()] == [False]
        one.update(types.Nic(linked=False))
        again = one.get()
        assert again.plugged is False and again.linked is False  # a field not sent is kept
        one.update(types.Nic(plugged=True, linked=True))
        assert one.get().plugged is True


def test_an_unknown_vnic_is_not_found(conn: ovirtsdk4.Connection) -> None:
    vm = _vm(conn, "vm01")
    nics = conn.system_service().vms_service().vm_service(vm.id).nics_service()
    missing = nics.nic_service("00000000-0000-0000-0000-0000000000aa")
    with pytest.raises(ovirtsdk4.NotFoundError):
        missing.get()
    with pytest.raises(ovirtsdk4.NotFoundError):
        missing.update(types.Nic(plugged=False))
