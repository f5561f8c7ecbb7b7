"""The mapping generator on an inventory (no engine): the role's shape, what it fills in, what it leaves out."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import yaml

from ovirt_dr.inventory import Cluster, Domain, Inventory, Lun, LunDisk, Profile
from ovirt_dr.mapping import parse_mapping
from ovirt_dr.mapping_generator import GENERATED_MARKER, generate_mapping, summary
from ovirt_dr.recovery_config import load_recovery

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def dom(sd_id: str, name: str, **kw: object) -> Domain:
    base: dict[str, object] = dict(
        id=sd_id,
        name=name,
        type="data",
        storage_type="glusterfs",
        address="gluster1",
        path="/gvmaster",
        vfs_type="glusterfs",
        master=False,
        wipe_after_delete=False,
        backup=False,
        discard_after_delete=False,
        critical_space_action_blocker=5,
        warning_low_space=10,
    )
    base.update(kw)
    return Domain(**base)  # type: ignore[arg-type]


@pytest.fixture
def inv() -> Inventory:
    i = Inventory(url="https://engine1/ovirt-engine/api")
    i.data_centers = {"dc1": "Default", "dc2": "Second"}
    i.clusters = {
        "c1": Cluster("c1", "Default", "dc1", (4, 7)),
        "c2": Cluster("c2", 'odd "name": x', "dc2", (4, 7)),
    }
    i.profiles = {
        "11111111-1111-4111-8111-111111111111": Profile(
            "11111111-1111-4111-8111-111111111111", "ovirtmgmt", "ovirtmgmt", "Default"
        ),
        "22222222-2222-4222-8222-222222222222": Profile(
            "22222222-2222-4222-8222-222222222222", "ovirtmgmt", "ovirtmgmt", "Second"
        ),
        "33333333-3333-4333-8333-333333333333": Profile(
            "33333333-3333-4333-8333-333333333333", "prod", "prod", "Default"
        ),
    }
    i.affinity_groups = {"c1": {"db_app": ()}, "c2": {}}
    i.affinity_labels = {"tier1"}
    i.aaa_domains = {"internal"}
    i.domains = {
        "sd1": dom("sd1", "data_gluster", master=True),
        "sd2": dom("sd2", "hosted_storage", storage_type="nfs"),
        "sd3": dom("sd3", "export_legacy", type="export", storage_type="nfs"),
        "sd4": dom("sd4", "data_nfs", storage_type="nfs", path="/nfs"),
        "sd5": dom("sd5", "data2", path="/gvdata2"),
        "sd6": dom("sd6", "iso", type="iso", storage_type="nfs"),
        "sd7": dom("sd7", "unattached_one"),
    }
    i.attached = {
        "dc1": {"sd1": "active", "sd2": "active", "sd3": "active", "sd4": "active", "sd6": "active"},
        "dc2": {"sd5": "active"},
    }
    lun = Lun("3600a", "iscsi", "192.0.2.10", 3260, "iqn.p", "1", "chapuser")
    i.luns = {"3600a": lun}
    i.lun_disks = {"d1": LunDisk("d1", "quorum", "shared", lun, True, False)}
    return i


@pytest.fixture
def pairs(tmp_path: Path) -> list:
    for name in ("ovirt_dr.yaml", "disaster_recovery_vars.yml"):
        shutil.copy(REPO / "dags" / name, tmp_path / name)
    return load_recovery(tmp_path / "ovirt_dr.yaml").pairs  # data_gluster -> 127.0.0.1::gvslave


def test_role_shape_and_loads(inv: Inventory, pairs: list) -> None:
    text = generate_mapping(
        inv, username="admin@internal", ca_file="/ca.pem", pairs=pairs, used_roles=[], now=NOW
    )
    assert text.splitlines()[1].startswith(
        f"{GENERATED_MARKER} from https://engine1/ovirt-engine/api at 2026-01-02T03:04:05Z"
    )
    mapping = parse_mapping(text)
    raw = yaml.safe_load(text)
    assert [s["dr_primary_name"] for s in raw["dr_import_storages"]] == ["data_gluster", "data2"]
    first, second = mapping.dr_import_storages
    # the replica from the one sync pair of data_gluster; nothing known for data2
    assert (first.dr_secondary_address, first.dr_secondary_path) == ("127.0.0.1", "/gvslave")
    assert first.dr_primary_master_domain is True and first.dr_secondary_master_domain is None
    assert (second.dr_secondary_address, second.dr_secondary_path) == (None, None)
    assert "# No sync pair replicates this domain yet" in text
    # left out, each with its reason
    for name, reason in (
        ("hosted_storage", "Hosted storage should not be part"),
        ("export_legacy", "Export storage domain should not be part"),
        ("data_nfs", "not replicated by ovirt-dr"),
        ("iso", "ISO domains are not part"),
    ):
        assert f'#  dr_primary_name: "{name}"' in text and reason in text
    assert "unattached_one" not in text  # the role generates attached domains only
    assert [c.primary_name for c in mapping.dr_cluster_mappings] == ["Default", 'odd "name": x']
    assert all(c.secondary_name is None for c in mapping.dr_cluster_mappings)
    # the same profile in two DCs: the DC is written to tell them apart; a unique one leaves it commented
    nets = {(n.primary_profile_name, n.primary_network_dc): n for n in mapping.dr_network_mappings}
    assert set(nets) == {("ovirtmgmt", "Default"), ("ovirtmgmt", "Second"), ("prod", None)}
    assert nets[("prod", None)].primary_profile_id == "33333333-3333-4333-8333-333333333333"
    assert nets[("ovirtmgmt", "Second")].secondary_network_dc is None  # to fill in, not commented out
    assert "  secondary_network_dc: # Second" in text and '# secondary_network_dc: "Default"' in text
    assert mapping.dr_role_mappings == [] and "# Fill in any roles" in text
    lun = mapping.dr_lun_mappings[0]
    assert (lun.logical_unit_alias, lun.shareable, lun.primary_logical_unit_username) == (
        "quorum",
        True,
        "chapuser",
    )
    assert lun.secondary_storage_type == "iscsi" and lun.secondary_logical_unit_id is None
    assert "password:" not in text
    assert summary(text)["dr_import_storages"] == 2
    # as generated, only secondary values are missing: nothing of the primary side is left to fill in
    problems = mapping.static_problems("failover")
    assert "dr_cluster_mappings[0]: secondary_name is empty" in problems
    assert problems and all("secondary" in p for p in problems), problems


def test_roles_and_several_pairs(inv: Inventory, pairs: list) -> None:
    two = [pairs[0], pairs[0].model_copy(update={"target": "dr2", "slave_volume": "gvother"})]
    text = generate_mapping(inv, username="u", ca_file=None, pairs=two, used_roles=["B", "A", "B"], now=NOW)
    mapping = parse_mapping(text)
    assert [r.primary_name for r in mapping.dr_role_mappings] == ["A", "B"]
    assert "Several sync pairs replicate this domain" in text and "gvother" in text
    assert mapping.dr_import_storages[0].dr_secondary_path is None
