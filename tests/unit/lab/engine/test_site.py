"""Site files of the engine emulator: variable expansion, stable ids, the N-VM generator."""

from __future__ import annotations

import pytest

from ovirt_dr_lab.engine.site import SiteError, generate_site, load_site, require_path, stable_id


def test_values_go_through_expandvars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_MASTER_MOUNT", "/mnt/gvmaster")
    monkeypatch.setenv("LAB_GLUSTER_HOST", "node1")
    site = load_site(
        {"storage_domains": [{"local_dir": "${LAB_MASTER_MOUNT}", "address": "$LAB_GLUSTER_HOST"}]}
    )
    assert site["storage_domains"][0] == {"local_dir": "/mnt/gvmaster", "address": "node1"}


def test_unexpanded_path_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_SLAVE_MOUNT", raising=False)
    value = load_site({"x": "${LAB_SLAVE_MOUNT}"})["x"]
    with pytest.raises(SiteError, match="LAB_SLAVE_MOUNT"):
        require_path(value, "gluster_mounts")


def test_stable_ids() -> None:
    assert stable_id("primary", "vm", "vm01") == stable_id("primary", "vm", "vm01")
    assert stable_id("primary", "vm", "vm01") != stable_id("secondary", "vm", "vm01")


def test_generate_site() -> None:
    site = generate_site(120, disks_per_vm=2, disk_size_mib=8)
    assert len(site["vms"]) == 120
    assert site["vms"][0]["name"] == "vm001" and site["vms"][-1]["name"] == "vm120"
    assert all(len(v["disks"]) == 2 and v["disks"][0]["size_mib"] == 8 for v in site["vms"])
    macs = [v["nics"][0]["mac"] for v in site["vms"]]
    assert len(set(macs)) == 120
    names = {v["name"] for v in site["vms"]}
    assert all(set(g["vms"]) <= names for g in site["affinity_groups"])
    assert site["storage_domains"][0]["local_dir"] == "${LAB_MASTER_MOUNT}"  # expanded at load time
