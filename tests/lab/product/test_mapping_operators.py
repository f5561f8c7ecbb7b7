"""dr_mapping's operators on the real lab engines (the emulators, over HTTPS, through the real ovirtsdk4).

- A mapping seeded with 15 distinct faults (one per category of check) fails validation in ONE run, and
  every fault is reported, naming its entry and site.
- The lab's own mapping validates clean; with the primary unreachable only the secondary side is checked.
- generate writes a file (role format, commented hosted-engine/export domains, the replica's address and
  path from the sync pair) that ``load_mapping`` and plain ``yaml.safe_load`` read, and that validates
  clean once the test fills in the secondary values.

Each test works on a copy of the lab config in its tmp dir; the one change it makes to an engine (a
snapshot in preview on the primary) is undone in its teardown.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import ovirtsdk4
import ovirtsdk4.types as t
import pytest
import yaml

from ovirt_dr.mapping import load_mapping
from ovirt_dr.mapping_generator import GENERATED_MARKER
from ovirt_dr.operators.mapping import (
    MappingValidationFailed,
    OvirtGenerateMappingOperator,
    OvirtValidateMappingOperator,
)

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[3]
SECONDARY_LUN = "36001405f6e5d4c3b2a1908172635a4b5"


class FakeTI:
    """The only part of a task instance the operators use: XCom pushes, kept for the assertions."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = json.loads(json.dumps(value))  # what XCom would store (JSON)


def run(op: Any, **params: Any) -> tuple[Any, FakeTI]:
    ti = FakeTI()
    return op.execute({"params": params, "ti": ti}), ti


def make(cls: type, **kw: Any) -> Any:
    from airflow.sdk import DAG

    with DAG("dr_mapping_test", schedule=None):
        return cls(task_id=cls.__name__, **kw)


@pytest.fixture(scope="module")
def lab_env() -> dict[str, str]:
    from ovirt_dr_lab.labenv import load_lab_env

    return load_lab_env()


@pytest.fixture(autouse=True)
def connections(lab_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in lab_env.items():
        if key.startswith("AIRFLOW_CONN_"):
            monkeypatch.setenv(key, value)


def sdk(lab_env: dict[str, str], side: str) -> ovirtsdk4.Connection:
    c = json.loads(lab_env[f"AIRFLOW_CONN_OVIRT_{side.upper()}"])
    return ovirtsdk4.Connection(
        url=c["host"], username=c["login"], password=c["password"], ca_file=c["extra"]["ca_file"]
    )


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the lab's ovirt-dr config and mapping file (tests edit their copy only)."""
    for name in ("ovirt_dr.yaml", "disaster_recovery_vars.yml"):
        shutil.copy(REPO / "dags" / name, tmp_path / name)
    return tmp_path


def mapping_doc(config_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((config_dir / "disaster_recovery_vars.yml").read_text())


def write_mapping(config_dir: Path, doc: dict[str, Any]) -> None:
    (config_dir / "disaster_recovery_vars.yml").write_text(yaml.safe_dump(doc, sort_keys=False))


def validate(config_dir: Path, **kw: Any) -> tuple[Any, FakeTI]:
    return run(make(OvirtValidateMappingOperator, config_path=str(config_dir / "ovirt_dr.yaml"), **kw))


@pytest.fixture
def preview_on_vm06(lab_env: dict[str, str]) -> Any:
    """A snapshot of vm06 in preview on the primary engine for the test; merged again afterwards."""
    from ovirt_dr_lab.demo import lab_client

    conn = sdk(lab_env, "primary")
    vms = conn.system_service().vms_service()
    vm = vms.list(search="name=vm06")[0]
    snaps = vms.vm_service(vm.id).snapshots_service()
    snap = snaps.add(t.Snapshot(description="before the upgrade", persist_memorystate=False))
    deadline = time.monotonic() + 30
    while snaps.snapshot_service(snap.id).get().snapshot_status != t.SnapshotStatus.OK:
        assert time.monotonic() < deadline, "snapshot not ok in 30 s"
        time.sleep(0.2)
    lab = lab_client(lab_env)
    lab.set_snapshot_status(vm.id, snap.id, "in_preview")
    yield snap
    lab.set_snapshot_status(vm.id, snap.id, "ok")
    snaps.snapshot_service(snap.id).remove()
    deadline = time.monotonic() + 60
    while any(s.id == snap.id for s in snaps.list()):
        assert time.monotonic() < deadline, "preview snapshot not merged in 60 s"
        time.sleep(0.3)
    conn.close()


def seed_faults(doc: dict[str, Any]) -> dict[str, Any]:
    """The lab mapping with one fault of each category (the comment names the category)."""
    bad = copy.deepcopy(doc)
    # 1. the file is for other engines: its secondary URL is not the secondary connection's
    bad["dr_sites_secondary_url"] = "https://engine2.example.com/ovirt-engine/api"
    # 2. an affinity group that does not exist at the secondary (so vm01/vm02 lose their group there)
    bad["dr_affinity_group_mappings"][0]["secondary_name"] = "db_app_gone"
    # 3. an affinity label that does not exist at the secondary
    bad["dr_affinity_label_mappings"][0]["secondary_name"] = "tier9"
    # 4. an aaa domain that does not exist at the secondary
    bad["dr_domain_mappings"][0]["secondary_name"] = "corp.example.com"
    # 5. a role that does not exist at the secondary
    bad["dr_role_mappings"][0]["secondary_name"] = "DrOperatorMissing"
    nets = bad["dr_network_mappings"]
    mgmt = next(n for n in nets if n["primary_profile_name"] == "ovirtmgmt")
    # 6. a vNIC profile id that does not exist at the secondary
    mgmt["secondary_profile_id"] = str(uuid.UUID(int=0xDEAD))
    # 7. a vNIC profile (by name and network) that does not exist at the primary
    nets.append(
        {
            "primary_network_name": "backup",
            "primary_profile_name": "backup",
            "secondary_network_name": "ovirtmgmt",
            "secondary_profile_name": "ovirtmgmt",
        }
    )
    # 8. (coverage) the prod profile that vm01/vm02/vm05 use is no longer mapped and has no twin there
    bad["dr_network_mappings"] = [n for n in nets if n["primary_profile_name"] != "prod"]
    # 9. a LUN the secondary's hosts do not see
    bad["dr_lun_mappings"][0]["secondary_logical_unit_id"] = "36001405000000000000000000000dead"
    storage = bad["dr_import_storages"][0]
    # 10. the primary domain is not on that path
    storage["dr_primary_path"] = "/gvwrong"
    # 11. the target data center does not exist
    storage["dr_secondary_dc_name"] = "NoSuchDC"
    # 12. no sync pair replicates the domain to that slave volume
    storage["dr_secondary_path"] = "/gvslave2"
    # 13. a duplicate entry
    bad["dr_cluster_mappings"].append(dict(bad["dr_cluster_mappings"][0]))
    # 14. the export domain mapped as if it were a data domain to recover
    bad["dr_import_storages"].append(
        {
            "dr_domain_type": "nfs",
            "dr_storage_domain_type": "data",
            "dr_primary_name": "export_legacy",
            "dr_primary_master_domain": False,
            "dr_primary_dc_name": "Default",
            "dr_primary_address": "nfs.lab.example",
            "dr_primary_path": "/exports/export",
            "dr_secondary_name": "export_legacy",
            "dr_secondary_master_domain": False,
            "dr_secondary_dc_name": "Recovery",
            "dr_secondary_address": "nfs.lab.example",
            "dr_secondary_path": "/exports/export",
        }
    )
    # 15. (engine) vm06 has a snapshot in preview: the preview_on_vm06 fixture
    return bad


#: what each fault must produce: (fault, substrings that one error line must all contain)
EXPECTED = [
    ("1 url", ["dr_sites_secondary_url", "engine2.example.com", "ovirt_secondary", "other engines"]),
    ("2 affinity group", ["dr_affinity_group_mappings[0]", "secondary affinity group 'db_app_gone'"]),
    ("2 per cluster", ["VM 'vm01'", "affinity group 'db_app'", "'db_app_gone' does not exist", "'Recovery'"]),
    ("3 label", ["dr_affinity_label_mappings[0]", "secondary affinity label 'tier9' does not exist"]),
    ("4 aaa domain", ["dr_domain_mappings[0]", "secondary aaa domain 'corp.example.com' does not exist"]),
    ("5 role", ["dr_role_mappings[0]", "secondary role 'DrOperatorMissing' does not exist"]),
    ("6 profile id", ["dr_network_mappings[0]", "secondary_profile_id 00000000-0000-0000-0000-00000000dead"]),
    ("7 profile name", ["dr_network_mappings[1]", "primary vNIC profile 'backup' on network 'backup'"]),
    ("8 VM profile", ["VM 'vm01' nic 'nic1'", "'prod' on network 'prod'", "does not map it"]),
    ("9 LUN", ["dr_lun_mappings[0]", "secondary_logical_unit_id 36001405000000000000000000000dead"]),
    ("10 path", ["dr_import_storages[0] (data_gluster)", "dr_primary_path '/gvwrong'", "/gvmaster"]),
    ("11 DC", ["dr_import_storages[0]", "dr_secondary_dc_name 'NoSuchDC' is not a data center"]),
    ("12 pair", ["dr_import_storages[0]", "no sync pair", "'/gvslave2'", "lab_dr -> 127.0.0.1::gvslave"]),
    ("13 duplicate", ["dr_cluster_mappings[0, 1]", "'Default' appears 2 times"]),
    ("14 export", ["dr_import_storages[1] (export_legacy)", "is an export domain"]),
    ("15 preview", ["VM 'vm06'", "'before the upgrade' in preview", "primary engine"]),
]


def test_every_seeded_fault_is_reported_in_one_run(config_dir: Path, preview_on_vm06: Any) -> None:
    write_mapping(config_dir, seed_faults(mapping_doc(config_dir)))
    started = time.monotonic()
    with pytest.raises(MappingValidationFailed) as exc:
        validate(config_dir, direction="failover")
    elapsed = time.monotonic() - started
    message = str(exc.value)
    errors = [line.strip().removeprefix("ERROR").strip() for line in message.splitlines() if "ERROR" in line]
    missing = [fault for fault, parts in EXPECTED if not any(all(p in e for p in parts) for e in errors)]
    assert not missing, f"not reported: {missing}\n{message}"
    # and nothing that is right in the file is reported as wrong
    for fine in (
        "cluster 'Default' does not",
        "cluster 'Recovery' does not",
        "label 'tier1' does not",
        "profile 'ovirtmgmt' on network 'ovirtmgmt' does not",
        "dr_primary_address",
        "VM 'vm03'",
        "VM 'vm04'",
    ):
        assert not any(fine in e for e in errors), f"false alarm {fine!r}:\n{message}"
    print(
        f"\nvalidate with {len({f.split()[0] for f, _ in EXPECTED})} seeded faults: {len(errors)} errors in {elapsed:.2f} s\n{message}"
    )


def test_report_is_in_xcom_and_lab_mapping_validates_clean(config_dir: Path) -> None:
    result, ti = validate(config_dir, direction="failover")
    assert result["ok"] and result["errors"] == [] and result["warnings"] == []
    assert ti.xcom["report"] == result
    checked = result["checked"]
    for category, n in {
        "clusters": 1,
        "affinity_groups": 1,
        "affinity_labels": 1,
        "aaa_domains": 1,
        "roles": 1,
        "vnic_profiles": 2,
        "luns": 1,
        "storage_domains": 1,
        "data_centers": 1,
        "vms": 6,
        "cluster_versions": 1,
        "sites": 2,
    }.items():
        assert checked.get(category) == n, (category, checked)
    # the failed run's XCom holds the same report shape
    doc = mapping_doc(config_dir)
    doc["dr_role_mappings"][0]["secondary_name"] = "Nope"
    write_mapping(config_dir, doc)
    op = make(OvirtValidateMappingOperator, config_path=str(config_dir / "ovirt_dr.yaml"))
    ti = FakeTI()
    with pytest.raises(MappingValidationFailed):
        op.execute({"params": {"direction": "failover"}, "ti": ti})
    assert ti.xcom["report"]["ok"] is False
    assert any("secondary role 'Nope'" in e for e in ti.xcom["report"]["errors"])


def test_unreachable_primary_checks_the_secondary_only(
    config_dir: Path, lab_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(lab_env["AIRFLOW_CONN_OVIRT_PRIMARY"])
    conn["host"] = "https://127.0.0.1:1/ovirt-engine/api"  # nothing listens there: a primary that is gone
    monkeypatch.setenv("AIRFLOW_CONN_OVIRT_PRIMARY", json.dumps(conn))
    doc = mapping_doc(config_dir)
    doc["dr_sites_primary_url"] = conn["host"]
    doc["dr_cluster_mappings"][0]["secondary_name"] = "NoSuchCluster"  # a target-side fault is still found
    write_mapping(config_dir, doc)
    with pytest.raises(MappingValidationFailed) as exc:
        validate(config_dir, direction="failover")
    text = str(exc.value)
    assert "secondary cluster 'NoSuchCluster' does not exist" in text
    assert "the primary (source) engine is not reachable: checked the secondary side only" in text
    assert "ERROR" in text and text.count("ERROR") == 1, text


def test_broken_config_fails_naming_the_problem(config_dir: Path) -> None:
    (config_dir / "disaster_recovery_vars.yml").write_text("dr_cluster_mappings:\n  - primry_name: x\n")
    with pytest.raises(MappingValidationFailed) as exc:
        validate(config_dir, direction="failover")
    assert "dr_cluster_mappings[0].primry_name: unknown key" in str(exc.value)


def fill_in(doc: dict[str, Any], lab_env: dict[str, str]) -> dict[str, Any]:
    """What an admin writes into a generated file: the secondary values (ids read from that engine)."""
    conn = sdk(lab_env, "secondary")
    try:
        system = conn.system_service()
        nets = {n.id: n.name for n in system.networks_service().list()}
        profiles = {(p.name, nets[p.network.id]): p.id for p in system.vnic_profiles_service().list()}
    finally:
        conn.close()
    secondary = json.loads(lab_env["AIRFLOW_CONN_OVIRT_SECONDARY"])
    doc["dr_sites_secondary_url"] = secondary["host"]
    doc["dr_sites_secondary_username"] = secondary["login"]
    doc["dr_sites_secondary_ca_file"] = secondary["extra"]["ca_file"]
    for s in doc["dr_import_storages"]:
        s.update(
            dr_secondary_name=s["dr_primary_name"],
            dr_secondary_master_domain=True,
            dr_secondary_dc_name="Recovery",
        )
    names = {
        "dr_cluster_mappings": {"Default": "Recovery"},
        "dr_affinity_group_mappings": {"db_app": "db_app_dr"},
        "dr_affinity_label_mappings": {"tier1": "tier1_dr"},
        "dr_domain_mappings": {"internal": "internal"},
        "dr_role_mappings": {"DrOperator": "DrOperatorRecovery"},
    }
    for key, mapping in names.items():
        for entry in doc[key]:
            entry["secondary_name"] = mapping[entry["primary_name"]]
    for n in doc["dr_network_mappings"]:
        net, prof = {"prod": ("prod_dr", "prod_dr")}.get(
            n["primary_profile_name"], (n["primary_network_name"], n["primary_profile_name"])
        )
        n.update(
            secondary_network_name=net,
            secondary_profile_name=prof,
            secondary_profile_id=profiles[(prof, net)],
        )
    for lun in doc["dr_lun_mappings"]:
        lun.update(
            secondary_logical_unit_id=SECONDARY_LUN,
            secondary_logical_unit_address="198.51.100.10",
            secondary_logical_unit_port=3260,
            secondary_logical_unit_portal="1",
            secondary_logical_unit_target="iqn.2024-01.lab.secondary:san1",
        )
    return doc


def test_generate_then_fill_in_then_validate_clean(config_dir: Path, lab_env: dict[str, str]) -> None:
    gen = make(OvirtGenerateMappingOperator, config_path=str(config_dir / "ovirt_dr.yaml"))
    # dry run: the file only in the result (XCom), nothing written
    dry, _ = run(gen, dry_run=True)
    target = config_dir / "disaster_recovery_vars.generated.yml"
    assert dry["written"] is False and dry["path"] == str(target) and not target.exists()
    started = time.monotonic()
    result, _ = run(gen, dry_run=False)
    elapsed = time.monotonic() - started
    text = target.read_text()
    assert result["written"] is True and result["text"] == text
    assert text.splitlines()[1].startswith(GENERATED_MARKER)
    # commented out, each with the reason; never a password
    assert "# Hosted storage should not be part of the recovery process!" in text
    assert '#  dr_primary_name: "hosted_storage"' in text
    assert "# Export storage domain should not be part of the recovery process!" in text
    assert '#  dr_primary_name: "export_legacy"' in text
    assert not re.search(r"password\s*:", text), "a password key in a generated file"
    assert (
        lab_env["AIRFLOW_CONN_OVIRT_PRIMARY"]
        and json.loads(lab_env["AIRFLOW_CONN_OVIRT_PRIMARY"])["password"] not in text
    )
    # the role's shape, read by plain yaml.safe_load (what Ansible's vars loader does)
    raw = yaml.safe_load(text)
    assert [s["dr_primary_name"] for s in raw["dr_import_storages"]] == ["data_gluster"]
    storage = raw["dr_import_storages"][0]
    assert storage["dr_domain_type"] == "glusterfs" and storage["dr_storage_domain_type"] == "data"
    assert storage["dr_primary_master_domain"] is True and storage["dr_primary_path"] == "/gvmaster"
    assert storage["dr_secondary_name"] is None and storage["dr_secondary_dc_name"] is None  # to fill in
    assert (storage["dr_secondary_address"], storage["dr_secondary_path"]) == (
        "127.0.0.1",
        "/gvslave",
    )  # the pair
    assert raw["dr_sites_secondary_url"] is None
    assert [c["primary_name"] for c in raw["dr_cluster_mappings"]] == ["Default"]
    assert [g["primary_name"] for g in raw["dr_affinity_group_mappings"]] == ["db_app"]
    assert [g["primary_name"] for g in raw["dr_affinity_label_mappings"]] == ["tier1"]
    assert [g["primary_name"] for g in raw["dr_domain_mappings"]] == ["internal"]
    assert [g["primary_name"] for g in raw["dr_role_mappings"]] == [
        "DrOperator"
    ]  # from vm01/vm02's permissions
    nets = {n["primary_profile_name"]: n for n in raw["dr_network_mappings"]}
    assert set(nets) == {"ovirtmgmt", "prod"} and all(n["primary_profile_id"] for n in nets.values())
    assert raw["dr_lun_mappings"][0]["primary_logical_unit_id"] == "36001405a1b2c3d4e5f60718293a4b5c6"
    assert raw["dr_lun_mappings"][0]["logical_unit_alias"] == "db_quorum_lun"
    # load_mapping reads it as generated; validation names what is left to fill in
    load_mapping(target)
    (config_dir / "ovirt_dr.yaml").write_text(
        (config_dir / "ovirt_dr.yaml").read_text().replace("disaster_recovery_vars.yml", target.name)
    )
    with pytest.raises(MappingValidationFailed) as exc:
        validate(config_dir, direction="failover")
    assert "dr_cluster_mappings[0]: secondary_name is empty" in str(exc.value)
    # filled in, it validates clean
    filled = config_dir / "filled.yml"
    filled.write_text(yaml.safe_dump(fill_in(raw, lab_env), sort_keys=False))
    (config_dir / "ovirt_dr.yaml").write_text(
        (config_dir / "ovirt_dr.yaml").read_text().replace(target.name, filled.name)
    )
    report, _ = validate(config_dir, direction="failover")
    assert report["errors"] == [] and report["warnings"] == []
    # generate again overwrites its own file, never the configured mapping file or a file it did not write
    run(gen, dry_run=False)
    with pytest.raises(Exception, match="is the configured mapping file"):
        run(gen, output_path=str(filled), dry_run=False)
    (config_dir / "mine.yml").write_text("# my notes\n")
    with pytest.raises(Exception, match="was not written by dr_mapping generate"):
        run(gen, output_path="mine.yml", dry_run=False)
    assert (config_dir / "mine.yml").read_text() == "# my notes\n"
    print(f"\ngenerate from the primary: {elapsed:.2f} s, {result['counts']}")
