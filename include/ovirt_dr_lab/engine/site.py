"""Site YAML: the inventory one emulated engine starts from, and the generator of big sites.

Every string value goes through :func:`os.path.expandvars` so that one shipped file serves any lab
(``${LAB_MASTER_MOUNT}``, ``${LAB_GLUSTER_HOST}``). Objects without an ``id`` get a stable uuid5 derived
from the site name, kind and object name, so a site file always describes the same engine.
"""

from __future__ import annotations

import copy
import os
import uuid
from pathlib import Path
from typing import Any

import yaml

SITES_DIR = Path(__file__).resolve().parent.parent / "sites"
_NS = uuid.UUID("5b0b8f3e-7d55-4bd4-9a4f-1f6a2d9c0e11")


class SiteError(ValueError):
    """The site file is inconsistent (unknown reference, unexpanded variable where a path is needed)."""


def stable_id(*parts: str) -> str:
    """A uuid that depends only on ``parts``: the same site file always yields the same ids."""
    return str(uuid.uuid5(_NS, ":".join(parts)))


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        return os.path.expandvars(value)
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, dict):
        return {_expand(k): _expand(v) for k, v in value.items()}
    return value


def load_site(site: dict[str, Any] | Path | str) -> dict[str, Any]:
    """Read (if a path) and expand a site; the raw structure is returned with variables substituted."""
    if isinstance(site, (str, Path)):
        raw = yaml.safe_load(Path(site).read_text())
        if not isinstance(raw, dict):
            raise SiteError(f"{site}: a site file must be a mapping")
        data = raw
    else:
        data = copy.deepcopy(site)
    return _expand(data)


def require_path(value: str | None, what: str) -> Path:
    """A directory value that must be fully expanded (an unset ``${VAR}`` would create a stray dir)."""
    if not value or "$" in value:
        raise SiteError(f"{what} is {value!r}: set the environment variable it names")
    return Path(value)


def generate_site(
    vms: int, disks_per_vm: int = 1, disk_size_mib: int = 64, name: str = "primary"
) -> dict[str, Any]:
    """A primary-like site with ``vms`` VMs (vm001...) on the primary's Gluster domain (benchmarks)."""
    base = yaml.safe_load((SITES_DIR / "primary.yaml").read_text())
    base["name"] = name
    sd_name = base["storage_domains"][0]["name"]
    cluster = base["clusters"][0]["name"]
    profile = base["vnic_profiles"][0]["name"]
    width = max(3, len(str(vms)))
    out_vms = []
    for i in range(1, vms + 1):
        vm_name = f"vm{i:0{width}d}"
        out_vms.append(
            {
                "name": vm_name,
                "cluster": cluster,
                "status": "up",
                "memory_mib": 512,
                "cpus": 1,
                "nics": [
                    {
                        "name": "nic1",
                        "vnic_profile": profile,
                        "mac": f"56:6f:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}:01",
                    }
                ],
                "disks": [
                    {
                        "alias": f"{vm_name}_disk{k + 1}",
                        "size_mib": disk_size_mib,
                        "format": "cow",
                        "storage_domain": sd_name,
                        "bootable": k == 0,
                    }
                    for k in range(disks_per_vm)
                ],
            }
        )
    base["vms"] = out_vms
    names = {v["name"] for v in out_vms}
    for group in base.get("affinity_groups", []):
        group["vms"] = [v for v in group.get("vms", []) if v in names] or sorted(names)[:2]
    for label in base.get("affinity_labels", []):
        label["vms"] = [v for v in label.get("vms", []) if v in names] or sorted(names)[:1]
    base.pop("templates", None)
    base.pop("disks", None)  # floating disks of the shipped site
    return base
