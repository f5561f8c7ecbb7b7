"""The failback's pure parts (``ovirt_dr.failback``): reverse endpoints, where a run stands, the plan text."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from ovirt_dr.failback import (
    failback_phase,
    failback_plan_text,
    parse_session_config,
    reverse_endpoints,
    running_vm_status,
    session_text,
    settings_to_apply,
)
from ovirt_dr.failback_config import ReverseSessionConfig
from ovirt_dr.mapping import ImportStorage

PAIR = NS(
    master_volume="gvmaster",
    slave_volume="gvslave",
    slave_host="dr-gluster",
    gluster_ssh_conn_id="gluster_primary",
    slave_ssh_conn_id="gluster_secondary",
    mount_root="/run/ovirt-dr/mnt",
    label="data_gluster/dr1",
)
STORAGE = ImportStorage(
    dr_domain_type="glusterfs",
    dr_primary_name="data_gluster",
    dr_primary_address="prod-gluster",
    dr_primary_path="/gvmaster",
    dr_secondary_name="data_gluster_dr",
    dr_secondary_address="dr-gluster",
    dr_secondary_path="/gvslave",
)


def test_reverse_endpoints_swap_the_pair():
    ends, problems = reverse_endpoints(STORAGE, PAIR, ReverseSessionConfig(), "ovirt_secondary", "pool1")
    assert problems == []
    assert ends == {
        "ovirt_conn_id": "ovirt_secondary",
        "storage_domain": "data_gluster_dr",
        "master_volume": "gvslave",
        "master_ssh_conn_id": "gluster_secondary",
        "slave_host": "prod-gluster",
        "slave_volume": "gvmaster",
        "slave_user": "root",
        "slave_ssh_conn_id": "gluster_primary",
        "mount_root": "/run/ovirt-dr/mnt",
        "pool": "pool1",
    }
    assert session_text(ends) == "gvslave -> prod-gluster::gvmaster"
    ends, _ = reverse_endpoints(
        STORAGE, PAIR, ReverseSessionConfig(slave_host="10.0.0.5", slave_user="geo"), "s", "p"
    )
    assert session_text(ends) == "gvslave -> geo@10.0.0.5::gvmaster"


@pytest.mark.parametrize(
    ("storage", "pair", "needle"),
    [
        (STORAGE, None, "no sync pair replicates it"),
        (STORAGE.model_copy(update={"dr_primary_path": "/gvmaster/sub"}), PAIR, "not a whole Gluster volume"),
        (
            STORAGE.model_copy(update={"dr_primary_path": "/other"}),
            PAIR,
            "is not the master volume 'gvmaster'",
        ),
        (STORAGE.model_copy(update={"dr_primary_address": None}), PAIR, "no dr_primary_address"),
    ],
)
def test_reverse_endpoints_problems(storage, pair, needle):
    ends, problems = reverse_endpoints(storage, pair, ReverseSessionConfig(), "s", "p")
    assert ends is None and any(needle in p for p in problems), problems


def test_session_config_is_read_and_only_what_differs_is_set():
    text = (Path(__file__).parents[1] / "fixtures" / "failback" / "georep-config.txt").read_text()
    current = parse_session_config(text)
    assert current["change_detector"] == "xsync" and current["ssh_port"] == "2223"
    assert current["ssh_options"].startswith("-oPasswordAuthentication=no")
    wanted = {"change_detector": "xsync", "sync_jobs": "3", "ssh_port": "2223", "use_meta_volume": "TRUE"}
    assert settings_to_apply(current, wanted) == [("sync_jobs", "3"), ("use_meta_volume", "TRUE")]


def facts(sd_id: str = "sd1", status: str | None = "active", vms=()):  # type: ignore[no-untyped-def]
    return {
        "id": sd_id,
        "attached": [{"dc": "DC", "status": status}] if status else [],
        "vms": list(vms),
    }


def entry(primary, secondary):  # type: ignore[no-untyped-def]
    return {
        "name": "d_dr",
        "primary_name": "d",
        "primary": primary,
        "secondary": secondary,
        "replica_id": "sd1",
    }


def test_phase_sync_when_the_primary_was_cleaned():
    phase, verdicts, problems = failback_phase([entry(None, facts())])
    assert (phase, problems) == ("sync", []) and "was cleaned" in verdicts[0]["why"]
    phase, verdicts, problems = failback_phase([entry(facts(status=None), facts())])
    assert phase == "sync" and "attached again" in verdicts[0]["why"]


@pytest.mark.parametrize(
    ("primary", "secondary", "needle"),
    [
        (facts(), facts(), "run dr_cleanup_primary first"),
        (facts(status="maintenance"), facts(), "still has it maintenance"),
        (facts("other", status=None), facts(), "another id"),
        (None, facts(status="maintenance"), "neither active"),
        (facts("other"), None, "not the replica's sd1"),
    ],
)
def test_phase_refusals_name_the_domain(primary, secondary, needle):
    phase, _, problems = failback_phase([entry(primary, secondary)])
    assert phase is None and any(needle in p for p in problems), problems


def test_phase_import_when_the_secondary_was_cleaned_and_mixed_stages_are_refused():
    phase, verdicts, problems = failback_phase([entry(None, None)])
    assert (phase, problems) == ("import", []) and "earlier run cleaned it" in verdicts[0]["why"]
    assert failback_phase([entry(facts(), None)])[0] == "import"  # an interrupted import continues
    mixed = [entry(None, None), {**entry(None, facts()), "name": "e_dr"}]
    phase, _, problems = failback_phase(mixed)
    assert phase is None and "different stages" in problems[0]


def test_running_vm_status():
    assert running_vm_status(["a"], ["a", "b"]) == {"a": 1, "b": 0}
    assert running_vm_status(None, ["a"]) is None


def test_plan_text_names_every_step():
    ends, _ = reverse_endpoints(STORAGE, PAIR, ReverseSessionConfig(), "s", "p")
    plan = {
        "dry_run": True,
        "phase": "sync",
        "verdicts": [
            {"name": "data_gluster_dr", "primary_state": "absent", "secondary_state": "active", "why": "w"}
        ],
        "domains": [
            {
                "source_name": "data_gluster_dr",
                "name": "data_gluster",
                "dc": "Default",
                "address": "prod-gluster",
                "path": "/gvmaster",
                "sd_id": "sd1",
                "pair": "dr_sync__data_gluster__dr1",
                "reverse": ends,
                "settings": {"change_detector": "xsync"},
            }
        ],
        "sync_dags": ["dr_sync__data_gluster__dr1"],
        "warm_cycles": 2,
        "running_names": ["vm1"],
        "blockers": ["x"],
    }
    text = failback_plan_text(plan)
    for needle in (
        "DRY RUN",
        "pause the sync DAG(s) dr_sync__data_gluster__dr1",
        "create the reverse session gvslave -> prod-gluster::gvmaster",
        "2 reverse sync cycle(s)",
        "shut down the VMs on the secondary (1 running: vm1)",
        "WITHOUT format",
        "unpause",
        "BLOCKER",
    ):
        assert needle in text, needle
    assert "done: an earlier run did them" in failback_plan_text({**plan, "phase": "import"})
