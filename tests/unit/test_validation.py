"""The mapping checks on inventories (no engine): every check category, and what must NOT be reported.

The inventories mirror the lab's two engines; each test breaks one thing and looks for the one message.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from ovirt_dr.inventory import Cluster, Domain, Inventory, Lun, Profile, VmInfo
from ovirt_dr.recovery_config import Recovery, load_recovery
from ovirt_dr.validation import (
    ValidationReport,
    _norm_url,
    check_inventories,
    format_report,
    same_server,
)

REPO = Path(__file__).resolve().parents[2]
P_URL = "https://127.0.0.1:18443/ovirt-engine/api"
S_URL = "https://127.0.0.1:18444/ovirt-engine/api"
SD = "9c3f0d51-6a7e-4c2b-b8d4-2f1e6a0b7c11"
P_LUN, S_LUN = "36001405a1b2c3d4e5f60718293a4b5c6", "36001405f6e5d4c3b2a1908172635a4b5"
PROD, MGMT = "2aec11a2-2e7a-580a-8739-5085b88b329c", "2f673665-d90b-5592-94f2-2385cfba7878"
PROD_DR, MGMT_DR = "2213f1a8-919c-5817-98e9-bfbc3b98dee3", "170a816e-1586-51de-82d3-335b117cc7e4"


def domain(sd_id: str, name: str, **kw: Any) -> Domain:
    base = dict(
        id=sd_id,
        name=name,
        type="data",
        storage_type="glusterfs",
        address="127.0.0.1",
        path="/gvmaster",
        vfs_type="glusterfs",
        master=True,
        wipe_after_delete=False,
        backup=False,
        discard_after_delete=False,
        critical_space_action_blocker=5,
        warning_low_space=10,
    )
    base.update(kw)
    return Domain(**base)


def primary() -> Inventory:
    inv = Inventory(url=P_URL)
    inv.data_centers = {"dc1": "Default"}
    inv.clusters = {"c1": Cluster("c1", "Default", "dc1", (4, 7))}
    inv.hosts = {"h1": ("host1", "c1", "up")}
    inv.profiles = {
        PROD: Profile(PROD, "prod", "prod", "Default"),
        MGMT: Profile(MGMT, "ovirtmgmt", "ovirtmgmt", "Default"),
    }
    inv.affinity_groups = {"c1": {"db_app": ("vm1", "vm2")}}
    inv.affinity_labels = {"tier1"}
    inv.aaa_domains = {"internal"}
    inv.roles = {"SuperUser", "DrOperator"}
    inv.domains = {SD: domain(SD, "data_gluster")}
    inv.attached = {"dc1": {SD: "active"}}
    inv.luns = {P_LUN: Lun(P_LUN, "iscsi", "192.0.2.10", 3260, "iqn.p", "1")}
    inv.vms = {
        "data_gluster": [
            VmInfo("vm1", "vm01", "c1", (("nic1", PROD),), (), ()),
            VmInfo("vm2", "vm02", "c1", (("nic1", MGMT),), (), ()),
        ]
    }
    return inv


def secondary() -> Inventory:
    inv = Inventory(url=S_URL)
    inv.data_centers = {"dc2": "Recovery"}
    inv.clusters = {"c2": Cluster("c2", "Recovery", "dc2", (4, 7))}
    inv.hosts = {"h2": ("host2", "c2", "up")}
    inv.profiles = {
        PROD_DR: Profile(PROD_DR, "prod_dr", "prod_dr", "Recovery"),
        MGMT_DR: Profile(MGMT_DR, "ovirtmgmt", "ovirtmgmt", "Recovery"),
    }
    inv.affinity_groups = {"c2": {"db_app_dr": ()}}
    inv.affinity_labels = {"tier1_dr"}
    inv.aaa_domains = {"internal"}
    inv.roles = {"SuperUser", "DrOperatorRecovery"}
    inv.luns = {S_LUN: Lun(S_LUN, "iscsi", "198.51.100.10", 3260, "iqn.s", "1")}
    return inv


@pytest.fixture
def rec(tmp_path: Path) -> Recovery:
    for name in ("ovirt_dr.yaml", "disaster_recovery_vars.yml"):
        shutil.copy(REPO / "dags" / name, tmp_path / name)
    loaded = load_recovery(tmp_path / "ovirt_dr.yaml")
    assert loaded.ok, loaded.problems
    return loaded


def edit(rec: Recovery, change: Any) -> Recovery:
    doc = yaml.safe_load(
        (REPO / "dags" / "disaster_recovery_vars.yml").read_text()
    )  # each edit from the lab's
    change(doc)
    rec.mapping_path.write_text(yaml.safe_dump(doc))  # type: ignore[union-attr]
    again = load_recovery(rec.config_path)
    assert again.mapping is not None, again.problems
    return again


def check(
    rec: Recovery, p: Inventory | None = None, s: Inventory | None = None, **kw: Any
) -> ValidationReport:
    invs = {"primary": p if p is not None else primary(), "secondary": s if s is not None else secondary()}
    if kw.pop("no_source", False):
        invs["primary"] = None
    return check_inventories(rec, "failover", invs, {"primary": P_URL, "secondary": S_URL}, **kw)


def only(report: ValidationReport, *parts: str) -> str:
    """The single error containing every part (and no other error)."""
    assert len(report.errors) == 1, format_report(report, "expected one error")
    assert all(p in report.errors[0] for p in parts), report.errors[0]
    return report.errors[0]


def test_the_lab_mapping_is_clean(rec: Recovery) -> None:
    report = check(rec)
    assert report.ok and report.warnings == [], format_report(report, "lab")
    assert report.checked["vms"] == 2 and report.checked["luns"] == 1 and report.checked["sites"] == 2
    assert report.as_dict() == {"ok": True, "errors": [], "warnings": [], "checked": report.checked}


def test_cluster_version_older_is_an_error_newer_a_warning(rec: Recovery) -> None:
    s = secondary()
    s.clusters["c2"] = dataclasses.replace(s.clusters["c2"], version=(4, 6))
    only(check(rec, s=s), "dr_cluster_mappings[0]", "'Recovery' is at compatibility version 4.6", "(4.7)")
    s.clusters["c2"] = dataclasses.replace(s.clusters["c2"], version=(4, 8))
    report = check(rec, s=s)
    assert report.ok and "newer" in report.warnings[0]


def test_vm_cluster_not_mapped(rec: Recovery) -> None:
    p = primary()
    p.clusters["c9"] = Cluster("c9", "Other", "dc1", (4, 7))
    p.vms["data_gluster"].append(VmInfo("vm3", "vm03", "c9", (), (), ()))
    only(check(rec, p=p), "VM 'vm03' is in primary cluster 'Other'", "does not map it")
    s = secondary()
    s.clusters["c8"] = Cluster("c8", "Other", "dc2", (4, 7))
    assert check(rec, p=p, s=s).ok  # same name at the target: fine


def test_vm_cluster_in_another_data_center(rec: Recovery) -> None:
    s = secondary()
    s.data_centers["dc3"] = "Elsewhere"
    s.clusters["c2"] = dataclasses.replace(s.clusters["c2"], dc_id="dc3")
    s.hosts["h3"] = ("host3", "c9", "up")
    errors = check(rec, s=s).errors
    assert any(
        "goes to secondary cluster 'Recovery', which is not in data center 'Recovery'" in e for e in errors
    )


def test_vm_lun_not_mapped_nor_visible(rec: Recovery) -> None:
    p = primary()
    p.vms["data_gluster"][0] = dataclasses.replace(p.vms["data_gluster"][0], lun_ids=("3600aaaa",))
    only(check(rec, p=p), "VM 'vm01' has a direct LUN disk on 3600aaaa", "does not map it")
    s = secondary()
    s.luns["3600aaaa"] = Lun("3600aaaa", "fcp")
    assert check(rec, p=p, s=s).ok


def test_lun_storage_type_differs(rec: Recovery) -> None:
    s = secondary()
    s.luns[S_LUN] = dataclasses.replace(s.luns[S_LUN], storage_type="fcp")
    only(check(rec, s=s), "dr_lun_mappings[0]", "secondary_storage_type 'iscsi'", "over fcp")


def test_already_imported_is_a_warning_a_clash_an_error(rec: Recovery) -> None:
    s = secondary()
    s.domains[SD] = domain(SD, "data_gluster", path="/gvslave")
    s.attached = {"dc2": {SD: "active"}}
    report = check(rec, s=s)
    assert report.ok and "already imported on the secondary engine" in report.warnings[0]
    s.domains = {"other": domain("other", "data_gluster")}
    only(check(rec, s=s), "already has a different storage domain named 'data_gluster'")


def test_retried_failover_with_the_primary_gone(rec: Recovery) -> None:
    """Primary unreachable: its domain id is unknown; the domain on the replica's volume is the import."""
    s = secondary()
    s.domains["imp"] = domain("imp", "data_gluster", path="/gvslave")
    s.attached = {"dc2": {"imp": "maintenance"}}
    report = check(rec, s=s, no_source=True)
    assert report.ok and any("already imported" in w and "(maintenance)" in w for w in report.warnings)
    s.domains["imp"] = domain("imp", "data_gluster", path="/elsewhere")
    only(check(rec, s=s, no_source=True), "already has a different storage domain named 'data_gluster'")


def test_target_dc_without_an_up_host(rec: Recovery) -> None:
    s = secondary()
    s.hosts["h2"] = ("host2", "c2", "maintenance")
    only(check(rec, s=s), "data center 'Recovery' has no host that is up")


def test_hosted_engine_and_type_checks_on_the_source(rec: Recovery) -> None:
    p = primary()
    p.domains[SD] = domain(SD, "data_gluster", storage_type="nfs")
    only(check(rec, p=p), "dr_domain_type is 'glusterfs', but 'data_gluster' is a nfs domain")
    p.domains[SD] = domain(SD, "data_gluster", address="10.99.99.99")
    only(check(rec, p=p), "dr_primary_address '127.0.0.1', but 'data_gluster' is on server '10.99.99.99'")
    p.domains[SD] = domain(SD, "data_gluster")
    p.attached = {}
    only(check(rec, p=p), "'data_gluster' is not attached to a data center")


def test_profiles_ambiguous_or_id_of_another_profile(rec: Recovery) -> None:
    s = secondary()
    s.data_centers["dc3"] = "Other"
    s.profiles["x"] = Profile("x", "prod_dr", "prod_dr", "Other")
    assert check(rec, s=s).ok  # the mapping gives the profile id: not ambiguous

    def no_ids(doc: dict[str, Any]) -> None:
        for n in doc["dr_network_mappings"]:
            n.pop("secondary_profile_id")

    rec2 = edit(rec, no_ids)
    only(check(rec2, s=s), "dr_network_mappings[0]", "exists in 2 data centers", "set secondary_network_dc")

    def wrong_id(doc: dict[str, Any]) -> None:
        doc["dr_network_mappings"][0]["secondary_profile_id"] = MGMT_DR

    only(check(edit(rec, wrong_id)), "secondary_profile_id", "is profile 'ovirtmgmt' on network 'ovirtmgmt'")


def test_unmapped_missing_affinity_group_is_a_warning(rec: Recovery) -> None:
    rec2 = edit(rec, lambda doc: doc.update(dr_affinity_group_mappings=[]))
    report = check(rec2)
    assert report.ok
    assert any("'db_app' does not exist in secondary cluster 'Recovery'" in w for w in report.warnings)


def test_source_unreachable_checks_the_target_only(rec: Recovery) -> None:
    s = secondary()
    s.roles.discard("DrOperatorRecovery")
    p = primary()
    p.vms["data_gluster"][0] = dataclasses.replace(p.vms["data_gluster"][0], previews=("x",))
    report = check(rec, p=p, s=s, no_source=True)
    only(report, "dr_role_mappings[0]: secondary role 'DrOperatorRecovery'")
    assert "vms" not in report.checked and "cluster_versions" not in report.checked


def test_domains_subset(rec: Recovery) -> None:
    report = check(rec, domains=["nope"])
    only(report, "domains: 'nope' is not a primary storage domain")
    assert "vms" not in report.checked


def test_site_url_mismatch_and_empty(rec: Recovery) -> None:
    rec2 = edit(rec, lambda doc: doc.update(dr_sites_primary_url="https://127.0.0.1:18443/ovirt-engine/api/"))
    assert check(rec2).ok  # a trailing slash is the same URL
    rec3 = edit(rec, lambda doc: doc.update(dr_sites_primary_url="https://other:443/ovirt-engine/api"))
    only(check(rec3), "dr_sites_primary_url", "'ovirt_primary'", "for other engines")
    rec4 = edit(rec, lambda doc: doc.update(dr_sites_secondary_url=None))
    report = check(rec4)
    assert report.ok and "dr_sites_secondary_url is empty" in report.warnings[0]


def test_url_and_server_helpers() -> None:
    assert _norm_url("HTTPS://Engine:443/ovirt-engine/api/") == _norm_url("https://engine/ovirt-engine/api")
    assert _norm_url("https://engine:8443/x") != _norm_url("https://engine/x")
    assert same_server("gluster1", "GLUSTER1") is True
    assert same_server("127.0.0.1", "localhost") is True
    assert same_server("127.0.0.1", "no-such-host.invalid") is None
    assert same_server(None, "x") is None
