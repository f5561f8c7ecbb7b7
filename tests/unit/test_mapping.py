"""The Ansible role's mapping file, read as-is; the recovery side config that ties it to connections and pairs."""

from __future__ import annotations

from pathlib import Path

import ovirtsdk4.types as t
import pytest
import yaml

from ovirt_dr.mapping import MappingError, load_mapping, parse_mapping
from ovirt_dr.recovery_config import load_recovery

REPO = Path(__file__).resolve().parents[2]
ROLE_EXAMPLE = REPO / "tests" / "fixtures" / "mapping" / "ansible_role_example.yml"
LAB_MAPPING = REPO / "dags" / "disaster_recovery_vars.yml"


def test_the_roles_own_example_loads_unchanged():
    m = load_mapping(ROLE_EXAMPLE)
    assert [s.dr_primary_name for s in m.dr_import_storages] == [
        "primary_master_storage",
        "path2",
        "scsi_domain",
    ]
    first, second, scsi = m.dr_import_storages
    assert (
        first.dr_primary_master_domain is True and second.dr_primary_master_domain is False
    )  # "True"/"False"
    assert second.dr_secondary_master_domain is False  # a real YAML boolean too
    assert scsi.dr_primary_target == ["iqn.2017-10.com.primary.redhat:444"] and scsi.dr_primary_port == 3260
    assert m.dr_lun_mappings[0].secondary_logical_unit_portal == "1"
    assert m.name_map("dr_role_mappings", "failover") == {"VmMananger": "NeverMnd"}


def test_registration_configuration_both_directions():
    m = load_mapping(ROLE_EXAMPLE)
    fo = m.registration_configuration("failover", t)
    assert [(c.from_.name, c.to.name) for c in fo.cluster_mappings] == [("cluster_prod", "cluster_recovery")]
    assert [(g.from_.name, g.to.name) for g in fo.affinity_group_mappings] == [
        ("primary_affinity", "secondary_affinity")
    ]
    (vnic,) = fo.vnic_profile_mappings
    assert (vnic.from_.name, vnic.from_.network.name, vnic.to.id) == (
        "ovirtmgmt",
        "ovirtmgmt",
        "e368cbd4-59d9-4a7e-86c1-e405c916a836",
    )
    (lun,) = fo.lun_mappings
    assert lun.from_.lun_storage.logical_units[0].id == "360014056a2be431c0fd46c4bdce92b66"
    dst = lun.to.lun_storage.logical_units[0]
    assert (dst.id, dst.port, dst.target, dst.password) == (
        "36001405961a7f95e6aa461b8dba53052",
        3260,
        "iqn.2017-10.com.recovery.redhat:444",
        None,
    )
    fb = m.registration_configuration("failback", t)
    assert [(c.from_.name, c.to.name) for c in fb.cluster_mappings] == [("cluster_recovery", "cluster_prod")]
    assert fb.lun_mappings[0].to.lun_storage.logical_units[0].id == "360014056a2be431c0fd46c4bdce92b66"


def test_storages_master_first_and_subset():
    doc = yaml.safe_load(ROLE_EXAMPLE.read_text())
    doc["dr_import_storages"].reverse()  # master last in the file
    m = parse_mapping(yaml.safe_dump(doc))
    assert [s.dr_primary_name for s in m.storages("failover")][0] == "primary_master_storage"
    assert [s.dr_primary_name for s in m.storages("failover", ["path2"])] == ["path2"]
    assert [s.dr_secondary_name for s in m.storages("failback")][0] == "secondary_master_storage"


def test_a_generated_file_with_empty_secondary_values_loads_and_lists_what_is_missing():
    text = """---
dr_sites_primary_url: https://e1/ovirt-engine/api
dr_sites_secondary_url: # https://e1/ovirt-engine/api
dr_import_storages:
- dr_domain_type: glusterfs
  dr_primary_name: data
  dr_primary_master_domain: True
  dr_primary_dc_name: Default
  dr_primary_path: /gv0
  dr_primary_address: g1
  dr_secondary_name: # data
  dr_secondary_master_domain: # True
  dr_secondary_dc_name: # Default
  dr_secondary_path: # /gv0
  dr_secondary_address: # g1
dr_cluster_mappings:
- primary_name: Default
  secondary_name: # Default
dr_role_mappings:
- primary_name:
  secondary_name:
dr_affinity_group_mappings:
"""
    m = parse_mapping(text)
    assert m.dr_sites_secondary_url is None and m.dr_affinity_group_mappings == []
    problems = m.static_problems("failover")
    for expected in (
        "dr_import_storages[0] (data): dr_secondary_name is empty",
        "dr_import_storages[0] (data): dr_secondary_dc_name is empty",
        "dr_import_storages[0] (data): dr_secondary_address is empty",
        "dr_import_storages[0] (data): dr_secondary_master_domain is empty (true or false)",
        "dr_cluster_mappings[0]: secondary_name is empty",
        "dr_role_mappings[0]: primary_name is empty",
    ):
        assert expected in problems, problems
    # half-filled entries never reach the engine (the role sends EMPTY_ELEMENT placeholders)
    assert m.registration_configuration("failover", t).cluster_mappings == []


def test_static_problems_duplicates_masters_types_hosted_engine():
    text = """
dr_import_storages:
- {dr_domain_type: glusterfs, dr_primary_name: a, dr_primary_master_domain: true, dr_primary_dc_name: DC,
   dr_primary_address: h, dr_primary_path: /a, dr_secondary_name: a, dr_secondary_master_domain: true,
   dr_secondary_dc_name: R, dr_secondary_address: h, dr_secondary_path: a}
- {dr_domain_type: glusterfs, dr_primary_name: a, dr_primary_master_domain: true, dr_primary_dc_name: DC,
   dr_primary_address: h, dr_primary_path: /b, dr_secondary_name: hosted_storage, dr_secondary_master_domain: true,
   dr_secondary_dc_name: R, dr_secondary_address: h, dr_secondary_path: /b}
- {dr_domain_type: nfs, dr_storage_domain_type: export, dr_primary_name: exp, dr_primary_master_domain: false,
   dr_primary_dc_name: DC, dr_primary_address: h, dr_primary_path: /e, dr_secondary_name: exp,
   dr_secondary_master_domain: false, dr_secondary_dc_name: R, dr_secondary_address: h, dr_secondary_path: /e}
dr_cluster_mappings:
- {primary_name: c1, secondary_name: r1}
- {primary_name: c1, secondary_name: r2}
"""
    problems = parse_mapping(text).static_problems("failover")
    joined = "\n".join(problems)
    assert "dr_secondary_path 'a' must start with '/'" in joined
    assert "dr_import_storages[0, 1]: dr_primary_name 'a' appears 2 times" in joined
    assert "2 master domains for primary data center 'DC'" in joined
    assert "hosted-engine domain must never be part of a recovery" in joined
    assert "dr_domain_type 'nfs' is not replicated by ovirt-dr" in joined
    assert "dr_storage_domain_type 'export'" in joined
    assert "dr_cluster_mappings[0, 1]: primary_name 'c1' appears 2 times" in joined


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dr_sites_primary_password: hunter2\n", "dr_sites_primary_password: passwords are never read"),
        (
            "dr_lun_mappings:\n- {primary_logical_unit_id: x, primary_logical_unit_password: s3cret}\n",
            "dr_lun_mappings[0].primary_logical_unit_password: passwords are never read",
        ),
        (
            "dr_import_storages:\n- {dr_domain_type: iscsi, dr_secondary_password: pw}\n",
            "dr_import_storages[0].dr_secondary_password: passwords are never read",
        ),
        (
            "dr_cluster_mappings:\n- {primary_name: a, secondry_name: b}\n",
            "dr_cluster_mappings[0].secondry_name: unknown key",
        ),
        ("dr_cluster_mappings: Default\n", "dr_cluster_mappings: must be a list"),
        (
            "dr_import_storages:\n- {dr_domain_type: ceph}\n",
            "dr_import_storages[0].dr_domain_type: 'ceph' is not one of",
        ),
        ("dr_import_storages:\n- {dr_primary_master_domain: maybe}\n", "'maybe' is not a boolean"),
        ("dr_import_storages:\n- {dr_domain_id: not-a-uuid}\n", "is not a storage domain id"),
        ("dr_network_mappings:\n- {primary_profile_id: 12}\n", "'12' is not a vNIC profile id"),
        ("dr_cluster_mappings:\n- {primary_name: true}\n", "is a boolean, expected a name"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("dr_cluster_mappings: [\n", "not valid YAML"),
        (
            "dr_cluster_mappings:\n- {primary_name: a, secondary_name: b}\ndr_cluster_mappings: []\n",
            "duplicate key 'dr_cluster_mappings' (first at line 1)",
        ),
    ],
)
def test_bad_files_are_refused_naming_the_place(text, expected):
    with pytest.raises(MappingError) as err:
        parse_mapping(text, "m.yml")
    assert expected in str(err.value), str(err.value)
    assert "hunter2" not in str(err.value) and "s3cret" not in str(err.value)


def test_every_problem_is_reported_at_once():
    text = "dr_sites_primary_password: x\ndr_cluster_mappings:\n- {primary_name: a, bogus: 1}\ndr_backup: 1\n"
    with pytest.raises(MappingError) as err:
        parse_mapping(text)
    assert len(err.value.problems) == 3, err.value.problems


def test_non_utf8_and_missing_files(tmp_path):
    bad = tmp_path / "m.yml"
    bad.write_bytes(b"dr_cluster_mappings:\n- {primary_name: caf\xe9}\n")
    with pytest.raises(MappingError, match=r"line 2: not UTF-8"):
        load_mapping(bad)
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "missing.yml")


# -- the recovery side config --------------------------------------------------------------------------
def _config(tmp_path: Path, recovery: dict | None, mapping: str | None = None) -> Path:
    (tmp_path / "dr.yml").write_text(mapping if mapping is not None else LAB_MAPPING.read_text())
    doc = {
        "sites": {
            "primary": {"ovirt_conn_id": "ovirt_primary"},
            "secondary": {"ovirt_conn_id": "ovirt_secondary"},
        },
        "pairs": [
            {
                "storage_domain": "data_gluster",
                "target": "lab_dr",
                "site": "primary",
                "master_volume": "gvmaster",
                "gluster_ssh_conn_id": "gluster_primary",
                "slave_host": "127.0.0.1",
                "slave_volume": "gvslave",
                "slave_ssh_conn_id": "gluster_secondary",
            }
        ],
    }
    if recovery is not None:
        doc["recovery"] = recovery
    path = tmp_path / "ovirt_dr.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_shipped_config_links_the_lab_domain_to_its_sync_pair():
    rec = load_recovery(REPO / "dags" / "ovirt_dr.yaml")
    assert rec.ok, rec.problems
    assert rec.conn_id("primary") == "ovirt_primary" and rec.conn_id("secondary") == "ovirt_secondary"
    (link,) = rec.links("failover")
    assert link.storage.dr_primary_name == "data_gluster"
    assert link.pair is not None and link.pair.dag_id == "dr_sync__data_gluster__lab_dr"
    assert rec.mapping.static_problems("failover") == []
    assert rec.domain_names("failover") == ["data_gluster"]


def test_recovery_section_problems_are_collected_not_raised(tmp_path):
    rec = load_recovery(_config(tmp_path, None))
    assert not rec.ok and "no 'recovery:' section" in rec.problems[0]
    rec = load_recovery(
        _config(tmp_path, {"mapping_file": "dr.yml", "secondary_site": "dr", "register_shards": 0})
    )
    assert any("recovery.register_shards" in p for p in rec.problems), rec.problems
    rec = load_recovery(_config(tmp_path, {"mapping_file": "dr.yml", "secondary_site": "elsewhere"}))
    assert rec.problems == [
        "recovery.secondary_site: 'elsewhere' is not one of sites ['primary', 'secondary']"
    ]
    rec = load_recovery(_config(tmp_path, {"mapping_file": "dr.yml", "start_tiers": [["vm01"], ["vm01"]]}))
    assert any("more than one tier" in p for p in rec.problems), rec.problems
    rec = load_recovery(
        _config(tmp_path, {"mapping_file": "dr.yml"}, mapping="dr_sites_primary_password: pw\n")
    )
    assert rec.problems and "passwords are never read" in rec.problems[0] and "pw\n" not in rec.problems[0]


def test_a_domain_without_a_sync_pair_is_not_linked(tmp_path):
    doc = yaml.safe_load(LAB_MAPPING.read_text())
    doc["dr_import_storages"][0]["dr_secondary_path"] = "/othervol"
    rec = load_recovery(_config(tmp_path, {"mapping_file": "dr.yml"}, mapping=yaml.safe_dump(doc)))
    assert rec.ok
    (link,) = rec.links("failover")
    assert link.pair is None
