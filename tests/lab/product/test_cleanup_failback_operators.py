"""The cleanup operators and the failover steps run back (``direction="failback"``) against two in-process
engine emulators, through the real ovirtsdk4 (``ovirt_dr_lab.inprocess_dr``: both engines' Gluster mounts
are one tmp dir, so what the secondary imports is the primary's files, as after a sync cycle).

After a failover of the six VMs: the old primary still has the domain active with its VMs up. The cleanup
refuses a domain the mapping does not name (and changes nothing), its dry run changes nothing, the real run
powers the VMs off, writes the OVF_STORE, deactivates, detaches and removes the domain without format and
removes the template disk the engine still lists; run again it does nothing. Then the secondary is cleaned
the same way and the failover's import/registration/start run towards the primary with the failback
mapping: every VM back in cluster Default on profile prod/ovirtmgmt, up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ovirtsdk4.types as t
import pytest

from ovirt_dr.failover import build_plan, parse_entity_ovf
from ovirt_dr.operators.cleanup_ovirt import (
    OvirtCleanupOvfStoreOperator,
    OvirtCleanupPreflightOperator,
    OvirtCleanupStopVmsOperator,
    OvirtRemoveDomainsOperator,
    OvirtRemoveOrphansOperator,
)
from ovirt_dr.operators.recovery_ovirt import (
    OvirtImportDomainsOperator,
    OvirtRegisterTemplatesOperator,
    OvirtRegisterVmsOperator,
    OvirtStartVmsOperator,
)
from ovirt_dr_lab.engine.storage import DomainStorage
from ovirt_dr_lab.engine.testing import connect
from ovirt_dr_lab.inprocess_dr import FakeRun, InProcessDr

pytestmark = pytest.mark.lab

SD_NAME = "data_gluster"
STEPS = (
    ("preflight", OvirtCleanupPreflightOperator),
    ("stop_vms", OvirtCleanupStopVmsOperator),
    ("update_ovf_store", OvirtCleanupOvfStoreOperator),
    ("remove_domains", OvirtRemoveDomainsOperator),
    ("remove_orphans", OvirtRemoveOrphansOperator),
)


def files(root: Path) -> dict[str, str]:
    """Every file of the domain but the OVF_STORE images (the engines rewrite those by design)."""
    stores = {m.parent for m in root.glob("images/*/*.meta") if "OVF_STORE" in m.read_text(errors="replace")}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.parent not in stores
    }


def state(server: Any) -> dict[str, Any]:
    s = json.loads(json.dumps(server.lab.state()))
    s["events"] = [e for e in s.get("events", []) if e.get("code") != 30]  # logins
    s["next_event_id"] = None
    return s


@pytest.fixture
def failed_over() -> Iterator[InProcessDr]:
    """A failover done: the secondary has the domain active and the VMs up; the primary still runs them."""
    dr = InProcessDr(recovery={"register_shards": 2, "tier_timeout": "30s", "import_timeout": "60s"}).start()
    try:
        plan = dr.plan({"dry_run": False, "start_vms": True})
        run = FakeRun(params={"dry_run": False})
        run.xcoms[("preflight", "return_value", -1)] = plan
        shards = run.execute(dr.operator(OvirtImportDomainsOperator, "import_domains", poll_s=0.2))
        run.execute(dr.operator(OvirtRegisterTemplatesOperator, "register_templates"))
        for i, shard in enumerate(shards):
            run.execute(dr.operator(OvirtRegisterVmsOperator, "register_vms", shard=shard), map_index=i)
        run.execute(dr.operator(OvirtStartVmsOperator, "start_vms", poll_s=0.2))
        yield dr
    finally:
        dr.close()


def cleanup(dr: InProcessDr, params: dict[str, Any], side: str = "primary", **pre: Any) -> FakeRun:
    run = FakeRun(params=params)
    for task_id, cls in STEPS:
        kw = {"side": side, "poll_s": 0.2}
        if task_id == "preflight":
            kw.update(pre)
        run.execute(dr.operator(cls, task_id, **kw))
    return run


def test_cleanup_refuses_unmapped_and_its_dry_run_changes_nothing(failed_over: InProcessDr) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    dr = failed_over
    before = (state(dr.primary), state(dr.secondary))
    run = FakeRun(params={"dry_run": False, "domains": ["hosted_storage"]})
    with pytest.raises(AirflowFailException, match="'hosted_storage' is not a primary storage domain"):
        run.execute(dr.operator(OvirtCleanupPreflightOperator, "preflight"))
    assert (state(dr.primary), state(dr.secondary)) == before

    run = cleanup(dr, {"dry_run": True})
    assert (state(dr.primary), state(dr.secondary)) == before
    plan = run.xcoms[("preflight", "return_value", -1)]
    (d,) = plan["domains"]
    assert d["steps"] == ["stop_vms", "update_ovf_store", "deactivate", "detach", "remove"]
    assert plan["other_side"]["domains"] == {SD_NAME: "active"} and not plan["blockers"]
    assert run.xcoms[("remove_domains", "return_value", -1)][SD_NAME][0].startswith(
        "active: would deactivate"
    )


def test_cleanup_refuses_while_the_secondary_does_not_run_the_domain(failed_over: InProcessDr) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    dr = failed_over
    dr.new_secondary()  # an empty secondary: no failover happened there
    run = FakeRun(params={"dry_run": False})
    with pytest.raises(AirflowFailException, match="does not run data_gluster \\(absent\\)"):
        run.execute(dr.operator(OvirtCleanupPreflightOperator, "preflight"))
    plan = FakeRun(params={"dry_run": True}).execute(dr.operator(OvirtCleanupPreflightOperator, "preflight"))
    assert plan["blockers"] and "fail over first" in plan["blockers"][0]


def test_cleanup_then_failback_steps_towards_the_primary(failed_over: InProcessDr) -> None:
    dr = failed_over
    domain_dir = dr.root / "gvmaster" / dr.sd_id
    before = files(domain_dir)
    with connect(dr.primary) as c:
        assert {v.status.value for v in c.system_service().vms_service().list()} == {"up"}
    run = cleanup(dr, {"dry_run": False})
    assert run.xcoms[("remove_domains", "return_value", -1)] == {
        SD_NAME: ["deactivated", "detached", "removed (not formatted)"]
    }
    assert run.xcoms[("remove_orphans", "return_value", -1)] == {"vms": [], "disks": ["tpl-base_disk1"]}
    assert set(run.xcoms[("stop_vms", "return_value", -1)]["vms"]) == {f"vm0{i}" for i in range(1, 7)}
    with connect(dr.primary) as c:
        system = c.system_service()
        assert SD_NAME not in {sd.name for sd in system.storage_domains_service().list()}
        assert {"hosted_storage", "export_legacy"} <= {
            sd.name for sd in system.storage_domains_service().list()
        }
        assert (
            system.vms_service().list() == []
            and system.templates_service().list(search="name=tpl-base") == []
        )
        assert {d.alias for d in system.disks_service().list()} == {"db_quorum_lun"}
    assert files(domain_dir) == before  # never formatted: every volume as it was
    again = cleanup(dr, {"dry_run": False})  # converges: nothing left to do
    assert again.xcoms[("remove_domains", "return_value", -1)] == {
        SD_NAME: ["not on the engine: nothing to do"]
    }

    # the secondary cleaned the same way (its side's names), then the failover's steps run back
    sec = cleanup(dr, {"dry_run": False}, side="secondary", check_other_side=False)
    assert sec.xcoms[("remove_domains", "return_value", -1)][SD_NAME][-1] == "removed (not formatted)"
    with connect(dr.secondary) as c:
        assert c.system_service().storage_domains_service().list() == []
        assert c.system_service().vms_service().list() == []
    rec_plan = failback_plan(dr, domain_dir)
    run = FakeRun(params={"dry_run": False})
    run.xcoms[("plan_import", "return_value", -1)] = rec_plan
    common = {"direction": "failback", "plan_task_id": "plan_import"}
    shards = run.execute(dr.operator(OvirtImportDomainsOperator, "import_domains", poll_s=0.2, **common))
    run.execute(dr.operator(OvirtRegisterTemplatesOperator, "register_templates", **common))
    for i, shard in enumerate(shards):
        run.execute(dr.operator(OvirtRegisterVmsOperator, "register_vms", shard=shard, **common), map_index=i)
    run.execute(dr.operator(OvirtStartVmsOperator, "start_vms", poll_s=0.2, **common))
    with connect(dr.primary) as c:
        system = c.system_service()
        vms = {v.name: v for v in system.vms_service().list()}
        assert sorted(vms) == [f"vm0{i}" for i in range(1, 7)] and {v.status.value for v in vms.values()} == {
            "up"
        }
        clusters = {cl.id: cl.name for cl in system.clusters_service().list()}
        assert {clusters[v.cluster.id] for v in vms.values()} == {"Default"}
        profiles = {p.id: p.name for p in system.vnic_profiles_service().list()}
        nics = system.vms_service().vm_service(vms["vm01"].id).nics_service().list()
        assert [profiles[n.vnic_profile.id] for n in nics] == ["prod"]
        (group,) = [
            g
            for cl in system.clusters_service().list()
            for g in system.clusters_service().cluster_service(cl.id).affinity_groups_service().list()
            if g.name == "db_app"
        ]
        assert sorted(v.id for v in group.vms) == sorted(vms[n].id for n in ("vm01", "vm02"))
        (sd,) = [x for x in system.storage_domains_service().list() if x.name == SD_NAME]
        assert sd.id == dr.sd_id


def failback_plan(dr: InProcessDr, domain_dir: Path) -> dict[str, Any]:
    """The import plan the failback's ``plan_import`` builds (here from the domain dir, not over SSH)."""
    from ovirt_dr.recovery_config import load_recovery

    rec = load_recovery(dr.config_path)
    store = DomainStorage(domain_dir.parent, dr.sd_id, SD_NAME, "gluster.lab:/gvmaster").read_ovf_store_full()
    entities = [parse_entity_ovf(x) for x in store["ovfs"].values()]
    (link,) = rec.links("failback")
    s = link.storage
    domains = [
        {
            "source_name": s.dr_secondary_name,
            "name": s.dr_primary_name,
            "dc": s.dr_primary_dc_name,
            "address": s.dr_primary_address,
            "path": s.dr_primary_path,
            "vfs_type": "glusterfs",
            "mount_options": None,
            "master": bool(s.dr_primary_master_domain),
        }
    ]
    inv = {
        s.dr_secondary_name: {"sd_id": dr.sd_id, "entities": entities, "vm_status": None, "unreadable": {}}
    }
    assert {e["cluster"] for e in entities if e["kind"] == "vm"} == {"Recovery"}  # the secondary's OVF
    return build_plan(
        domains,
        inv,
        register_shards=2,
        start_tiers=[],
        start_only_running=True,
        params={"dry_run": False},
        guard={"proceed": True},
        target={"conn_id": rec.conn_id("primary"), "host": "host1"},
    )


def test_plan_has_the_vms_as_down(failed_over: InProcessDr) -> None:
    """After the cleanup's OVF step the store lists every VM down (what the failback must not start by)."""
    dr = failed_over
    cleanup(dr, {"dry_run": False})
    store = DomainStorage(
        dr.root / "gvmaster", dr.sd_id, SD_NAME, "gluster.lab:/gvmaster"
    ).read_ovf_store_full()
    assert set(store["vm_status"].values()) == {0}
    assert t.VmStatus.DOWN.value == "down"
