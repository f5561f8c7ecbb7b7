"""The site cleanup's pure parts (``ovirt_dr.cleanup``): what is touched, what is left to do, orphans."""

from __future__ import annotations

import pytest

from ovirt_dr.cleanup import (
    build_cleanup_plan,
    cleanup_plan_text,
    domain_state,
    identity_problems,
    orphans,
    select_storages,
    steps_left,
)
from ovirt_dr.mapping import ImportStorage

SD = "9c3f0d51-6a7e-4c2b-b8d4-2f1e6a0b7c11"


def storage(**kw: object) -> ImportStorage:
    base = {
        "dr_domain_type": "glusterfs",
        "dr_primary_name": "data_gluster",
        "dr_primary_address": "gluster1",
        "dr_primary_path": "/gvmaster",
        "dr_primary_dc_name": "Default",
        "dr_secondary_name": "data_gluster_dr",
        "dr_secondary_address": "gluster2",
        "dr_secondary_path": "/gvslave",
        "dr_secondary_dc_name": "Recovery",
    }
    return ImportStorage(**{**base, **kw})


def facts(**kw: object) -> dict[str, object]:
    base = {
        "id": SD,
        "name": "data_gluster",
        "type": "data",
        "storage_type": "glusterfs",
        "address": "gluster1",
        "path": "/gvmaster",
        "hosted_engine": False,
        "attached": [{"dc_id": "dc1", "dc": "Default", "status": "active"}],
        "vms": [{"id": "v1", "name": "vm1", "status": "up"}, {"id": "v2", "name": "vm2", "status": "down"}],
        "templates": [{"id": "t1", "name": "tpl"}],
        "disks": [{"id": "d1", "alias": "x"}],
    }
    return {**base, **kw}


def same(a: str, b: str) -> bool:
    return a == b


def test_only_mapped_names_are_selected_and_each_other_name_is_refused():
    storages = [storage(), storage(dr_primary_name="data2", dr_secondary_name="data2_dr")]
    picked, refused = select_storages(storages, "primary", ["data2", "hosted_storage", "data_gluster_dr"])
    assert [s.dr_primary_name for s in picked] == ["data2"]
    assert len(refused) == 2 and "'hosted_storage' is not a primary storage domain" in refused[0]
    assert "refused, nothing is touched" in refused[1]
    picked, refused = select_storages(storages, "secondary", [])
    assert [s.dr_secondary_name for s in picked] == ["data_gluster_dr", "data2_dr"] and refused == []


def test_the_engines_domain_must_be_the_mapped_one():
    s = storage()
    assert identity_problems(s, "primary", facts(), same) == []
    assert identity_problems(s, "primary", facts(path="/gvmaster/"), same) == []  # normalized
    bad = identity_problems(
        s,
        "primary",
        facts(path="/other", address="gluster9", type="export", hosted_engine=True, storage_type="nfs"),
        lambda a, b: False,
    )
    assert len(bad) == 5
    assert any("hosted engine" in b for b in bad) and any("export domain" in b for b in bad)
    assert any("path '/other'" in b for b in bad) and any("server 'gluster9'" in b for b in bad)
    assert any("is nfs" in b for b in bad)
    pinned = storage(dr_domain_id="11111111-1111-1111-1111-111111111111")
    assert "dr_domain_id" in identity_problems(pinned, "primary", facts(), same)[0]
    # a server name that cannot be resolved is not a mismatch (None): the path still has to match
    assert identity_problems(s, "primary", facts(address="elsewhere"), lambda a, b: None) == []


@pytest.mark.parametrize(
    ("f", "state", "steps"),
    [
        (None, "absent", []),
        (facts(), "active", ["stop_vms", "update_ovf_store", "deactivate", "detach", "remove"]),
        (facts(vms=[]), "active", ["update_ovf_store", "deactivate", "detach", "remove"]),
        (
            facts(attached=[{"dc": "Default", "status": "maintenance"}], vms=[]),
            "maintenance",
            ["detach", "remove"],
        ),
        (facts(attached=[], vms=[]), "unattached", ["remove"]),
        (facts(attached=[{"status": "locked"}], vms=[]), "locked", ["detach", "remove"]),
    ],
)
def test_what_is_left_to_do_follows_the_state(f, state, steps):
    assert domain_state(f) == state
    assert steps_left(f) == steps


def test_orphans_are_what_still_points_at_a_gone_domain():
    vms = [
        {"id": "a", "name": "a", "status": "down", "sd_ids": ["gone"]},
        {"id": "b", "name": "b", "status": "up", "sd_ids": ["live"]},
        {"id": "c", "name": "c", "status": "down", "sd_ids": ["live", "gone"]},
    ]
    disks = [
        {"id": "d1", "alias": "floating", "sd_ids": ["gone"], "vm_ids": [], "template": False},
        {"id": "d2", "alias": "of-a", "sd_ids": ["gone"], "vm_ids": ["a"], "template": False},
        {"id": "d3", "alias": "tpl", "sd_ids": ["gone"], "vm_ids": [], "template": True},
        {"id": "d4", "alias": "live", "sd_ids": ["live"], "vm_ids": [], "template": False},
        {"id": "d5", "alias": "lun", "sd_ids": [], "vm_ids": [], "template": False},
    ]
    out = orphans(["gone"], vms, disks)
    assert [v["name"] for v in out["vms"]] == ["a", "c"]
    assert [d["alias"] for d in out["disks"]] == ["floating"]  # d2 goes once VM a is removed (next look)
    assert orphans([], vms, disks) == {"vms": [], "disks": []}


def test_plan_and_its_text():
    entries = [
        {"name": "data_gluster", "storage": "data_gluster", "facts": facts()},
        {"name": "data2", "storage": "data2", "facts": None},
    ]
    plan = build_cleanup_plan(
        "primary",
        entries,
        params={"dry_run": True},
        host="host1",
        other_side={"summary": "data_gluster_dr active"},
        blockers=["b1"],
    )
    assert plan["dry_run"] and plan["host"] == "host1"
    assert [d["state"] for d in plan["domains"]] == ["active", "absent"]
    assert [v["name"] for v in plan["vms"]] == ["vm1", "vm2"] and plan["vms"][0]["domains"] == [
        "data_gluster"
    ]
    text = cleanup_plan_text(plan)
    assert (
        "DRY RUN" in text
        and "power off (force stop): vm1" in text
        and "vm2" not in text.split("power off")[1].split("\n")[0]
    )
    assert "format=false" in text and "data2: not on the primary engine" in text and "BLOCKER" in text
