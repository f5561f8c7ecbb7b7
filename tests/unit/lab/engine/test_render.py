"""XML of the engine emulator: written by the SDK's writers, read back by the SDK's reader."""

from __future__ import annotations

import ovirtsdk4.types as T
from ovirtsdk4.reader import Reader

from ovirt_dr_lab.engine import render


def test_links_and_actions_are_added_and_the_sdk_reads_them() -> None:
    vm = T.Vm(id="v1", name="vm01", status=T.VmStatus.UP)
    vm.href = "/ovirt-engine/api/vms/v1"
    text = render.write(vm, links=["diskattachments"], actions=["start"])
    assert '<link href="/ovirt-engine/api/vms/v1/diskattachments" rel="diskattachments"/>' in text
    assert '<actions><link href="/ovirt-engine/api/vms/v1/start" rel="start"/></actions>' in text
    back = Reader.read(text)
    assert back.name == "vm01" and back.status == T.VmStatus.UP
    assert back.disk_attachments.href == "/ovirt-engine/api/vms/v1/diskattachments"


def test_self_closing_items_get_their_links() -> None:
    dom = T.Domain(id="d1")
    dom.href = "/ovirt-engine/api/domains/d1"
    text = render.write(dom, links=["users"])
    assert text.startswith("<domain") and text.endswith("</domain>")
    assert Reader.read(text).id == "d1"


def test_documents_fault_and_action() -> None:
    body = render.fault("Operation Failed", "[Cannot freeze VM because the VM is in Down status.]")
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>')
    fault = Reader.read(body.split(b"\n", 1)[1].decode())
    assert fault.reason == "Operation Failed" and "Down status" in fault.detail
    action = Reader.read(render.action("complete", "j1").split(b"\n", 1)[1].decode())
    assert action.status == "complete" and action.job.id == "j1"
    coll = Reader.read(render.collection("vms", []).split(b"\n", 1)[1].decode())
    assert coll == []
