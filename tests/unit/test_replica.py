"""Pure replica helpers: .meta parsing and editing, OVF disk references, chain walking."""

from __future__ import annotations

import pytest

from ovirt_dr.replica import (
    NULL_UUID,
    ReplicaError,
    is_uuid,
    ovf_disks,
    parse_meta,
    set_meta_key,
    show,
    walk_chain,
)

IMG = "11111111-1111-1111-1111-111111111111"
A = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
B = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"
C = "cccccccc-cccc-cccc-cccc-cccccccccccc"

META = f"CAP=67108864\nCTIME=1700000000\nDESCRIPTION=\nDISKTYPE=DATA\nFORMAT=COW\nIMAGE={IMG}\nPUUID={A}\nVOLTYPE=INTERNAL\nEOF\n"


def test_parse_and_set_meta_keeps_other_lines():
    meta = parse_meta(META)
    assert meta["VOLTYPE"] == "INTERNAL" and meta["PUUID"] == A
    changed = set_meta_key(META, "VOLTYPE", "LEAF")
    assert parse_meta(changed)["VOLTYPE"] == "LEAF"
    assert changed.replace("VOLTYPE=LEAF", "VOLTYPE=INTERNAL") == META
    with pytest.raises(ReplicaError, match="no NOPE line"):
        set_meta_key(META, "NOPE", "x")


def test_walk_chain():
    metas = {A: {"PUUID": NULL_UUID}, B: {"PUUID": A}, C: {"PUUID": B}}
    assert walk_chain(metas, C) == [A, B, C]
    assert walk_chain(metas, A) == [A]
    with pytest.raises(ReplicaError, match="missing"):
        walk_chain({C: {"PUUID": B}}, C)
    with pytest.raises(ReplicaError, match="no .meta"):
        walk_chain({}, C)
    with pytest.raises(ReplicaError, match="loops"):
        walk_chain({A: {"PUUID": B}, B: {"PUUID": A}}, A)


def test_ovf_disks():
    ovf = f"""<?xml version='1.0' encoding='UTF-8'?>
<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1/" xmlns:rasd="x" ovf:version="4.4">
  <References><File ovf:href="{IMG}/{B}" ovf:id="{B}" ovf:size="1"/><File ovf:href="not/a-disk"/></References>
  <Content ovf:id="vm-id-1" xsi:type="ovf:VirtualSystem_Type" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
    <Name>vm01</Name>
  </Content>
</ovf:Envelope>"""
    entity, name, refs = ovf_disks(ovf)
    assert (entity, name, refs) == ("vm-id-1", "vm01", [(IMG, B)])


def test_ids_are_whole_uuids():
    assert is_uuid(A) and not is_uuid(A + "\n") and not is_uuid(A.upper()) and not is_uuid(f"../{A}")
    assert not is_uuid(None) and not is_uuid(A[:-1])


def test_walk_chain_refuses_a_parent_that_is_not_a_volume_id():
    with pytest.raises(ReplicaError, match="not a volume id"):
        walk_chain({C: {"PUUID": "../../etc/passwd"}}, C)


def test_ovf_that_is_not_xml_is_a_replica_error():
    with pytest.raises(ReplicaError, match="OVF is not XML"):
        ovf_disks("### not xml")


def test_show_keeps_hostile_text_on_one_line():
    assert show("a\nb") == "'a\\nb'" and len(show("x" * 500)) == 80
