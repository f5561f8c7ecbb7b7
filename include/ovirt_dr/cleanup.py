"""The pure parts of cleaning a site of its mapped storage domains (``dr_cleanup_primary``, and the
failback's cleanup of the secondary): which domains may be touched, what is still to do, the plan text.

A site is cleaned after the other site took over its VMs: its VMs on the mapped domains are powered off,
the OVF_STORE is written, each domain goes deactivate -> detach -> remove, **never formatted** (its volume
holds the data the failback brings back), and what the engine still lists for a gone domain (VMs, disks)
is removed. The operators (``ovirt_dr.operators.cleanup_ovirt``) read the engine into plain dicts
("facts") and these functions decide; every decision is unit-tested without an engine.

A domain is touched only if it is in the mapping file (``dr_import_storages``) AND the engine's domain of
that name is where the mapping says (same server and path), is a data domain and not the hosted engine's:
anything else is refused by name, before anything changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from ovirt_dr.mapping import ImportStorage

Side = Literal["primary", "secondary"]
#: VM states that need no power-off
DOWN_STATES = frozenset({"down"})
#: domain states (as its data center sees it) that the cleanup waits out instead of acting on
TRANSIENT_STATES = frozenset({"locked", "activating", "preparing_for_maintenance", "detaching"})


class CleanupRefused(ValueError):
    """The cleanup will not touch a domain (not mapped, not the mapped one, or not a data domain)."""


def _norm_path(path: str | None) -> str:
    return "/" + "/".join(p for p in (path or "").split("/") if p)


def select_storages(
    storages: Sequence[ImportStorage], side: Side, chosen: Sequence[str]
) -> tuple[list[ImportStorage], list[str]]:
    """The mapped storages named ``chosen`` (this side's names; empty = all), and a refusal per name the
    mapping does not have: the cleanup never touches a domain the mapping file does not name."""
    names = {s.side(side, "name"): s for s in storages if s.side(side, "name")}
    refused = [
        f"domain {name!r} is not a {side} storage domain of the mapping file's dr_import_storages "
        f"(mapped: {', '.join(sorted(names)) or 'none'}): refused, nothing is touched"
        for name in chosen
        if name not in names
    ]
    picked = [
        s
        for s in storages
        if s.side(side, "name") in names and (not chosen or s.side(side, "name") in chosen)
    ]
    return picked, refused


def identity_problems(
    storage: ImportStorage, side: Side, facts: dict[str, Any], same_server: Any
) -> list[str]:
    """Why the engine's domain named like the mapping's is NOT the mapped domain (empty: it is).

    ``same_server(a, b)`` compares two Gluster server names (True/False, None when undecidable); the
    path must match exactly (normalized), the id when the mapping pins ``dr_domain_id``.
    """
    name = facts["name"]
    where = f"{side} domain {name!r} ({facts.get('id')})"
    out = []
    if facts.get("hosted_engine"):
        out.append(f"{where} is the hosted engine's storage domain: never touched")
    if facts.get("type") not in (None, "data"):
        out.append(f"{where} is an {facts.get('type')} domain, not a data domain")
    mapped_type = storage.dr_domain_type
    if mapped_type and facts.get("storage_type") and facts["storage_type"] != mapped_type:
        out.append(f"{where} is {facts['storage_type']}, the mapping says {mapped_type}")
    if storage.dr_domain_id and facts.get("id") != storage.dr_domain_id:
        out.append(f"{where}: the mapping's dr_domain_id is {storage.dr_domain_id}")
    path = storage.side(side, "path")
    if path and _norm_path(path) != _norm_path(facts.get("path")):
        out.append(f"{where} is on path {facts.get('path')!r}, the mapping's dr_{side}_path is {path!r}")
    address = storage.side(side, "address")
    if address and facts.get("address") and same_server(address, facts["address"]) is False:
        out.append(
            f"{where} is on server {facts['address']!r}, the mapping's dr_{side}_address is {address!r}"
        )
    return out


def domain_state(facts: dict[str, Any] | None) -> str:
    """``absent`` / ``unattached`` / the status its data center gives it (``active``, ``maintenance``...)."""
    if facts is None:
        return "absent"
    attached = facts.get("attached") or []
    if not attached:
        return "unattached"
    return str(attached[0].get("status") or "unknown")


def steps_left(facts: dict[str, Any] | None) -> list[str]:
    """What the cleanup still has to do for one domain, in order (empty: it is gone)."""
    state = domain_state(facts)
    if state == "absent":
        return []
    assert facts is not None
    steps = []
    if any(v.get("status") not in DOWN_STATES for v in facts.get("vms") or []):
        steps.append("stop_vms")
    if state == "active":
        steps += ["update_ovf_store", "deactivate"]
    if state != "unattached":
        steps.append("detach")
    steps.append("remove")
    return steps


def orphans(
    gone_ids: Sequence[str], vms: Sequence[dict[str, Any]], disks: Sequence[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """What an engine still lists for domains it no longer has (ids ``gone_ids``).

    ``vms``: ``{"id", "name", "status", "sd_ids"}`` (the domains of its disks); ``disks``: ``{"id", "alias",
    "sd_ids", "vm_ids", "template"}``. A VM with a disk on a gone domain is an orphan, and so is a disk there
    that no VM and no template uses any more. An orphan VM is removed keeping its disks (``detach_only``:
    nothing is ever deleted on the volume), so its disks are orphans of the next look.
    """
    gone = set(gone_ids)
    orphan_vms = [v for v in vms if gone & set(v.get("sd_ids") or [])]
    orphan_disks = [
        d
        for d in disks
        if gone & set(d.get("sd_ids") or []) and not d.get("template") and not d.get("vm_ids")
    ]
    return {"vms": orphan_vms, "disks": orphan_disks}


def build_cleanup_plan(
    side: Side,
    entries: Sequence[dict[str, Any]],
    *,
    params: dict[str, Any],
    host: str | None,
    other_side: dict[str, Any] | None,
    blockers: Sequence[str] = (),
) -> dict[str, Any]:
    """The cleanup as data: per domain its facts and the steps left, every VM to power off.

    ``entries``: ``{"name", "storage" (mapping label), "facts" (None = absent)}`` in mapping order;
    ``host``: the up host the removals name; ``other_side``: what the other site's engine said (the
    failover's result) or None when not checked.
    """
    domains = []
    vms: dict[str, dict[str, Any]] = {}
    for e in entries:
        facts = e.get("facts")
        steps = steps_left(facts)
        domains.append(
            {
                "name": e["name"],
                "sd_id": (facts or {}).get("id"),
                "state": domain_state(facts),
                "dc": ((facts or {}).get("attached") or [{}])[0].get("dc"),
                "dc_id": ((facts or {}).get("attached") or [{}])[0].get("dc_id"),
                "steps": steps,
                "vms": sorted((facts or {}).get("vms") or [], key=lambda v: v["name"]),
                "templates": sorted(t["name"] for t in (facts or {}).get("templates") or []),
                "disks": len((facts or {}).get("disks") or []),
            }
        )
        for vm in (facts or {}).get("vms") or []:
            vms.setdefault(vm["id"], {**vm, "domains": []})["domains"].append(e["name"])
    return {
        "side": side,
        "dry_run": bool(params.get("dry_run", True)),
        "force": bool(params.get("force", False)),
        "host": host,
        "domains": domains,
        "vms": sorted(vms.values(), key=lambda v: v["name"]),
        "other_side": other_side,
        "blockers": list(blockers),
    }


def cleanup_plan_text(plan: dict[str, Any]) -> str:
    """The plan as a dry run prints it: every domain, what is done, what each step would do."""
    mode = "DRY RUN (nothing is changed)" if plan.get("dry_run") else "REAL RUN"
    lines = [f"Cleanup of the {plan['side']} site, {mode}:"]
    other = plan.get("other_side")
    if other:
        lines.append(f"  the other site: {other.get('summary')}")
    for d in plan["domains"]:
        if not d["steps"]:
            lines.append(f"  domain {d['name']}: not on the {plan['side']} engine: nothing to do")
            continue
        lines.append(
            f"  domain {d['name']} ({d['sd_id']}), {d['state']}{' in ' + d['dc'] if d['dc'] else ''}:"
        )
        running = [v["name"] for v in d["vms"] if v.get("status") not in DOWN_STATES]
        if running:
            lines.append(f"    power off (force stop): {', '.join(running)}")
        if "update_ovf_store" in d["steps"]:
            lines.append("    update its OVF_STORE and wait until the engine reports it written")
        if "deactivate" in d["steps"]:
            lines.append("    deactivate, wait maintenance")
        if "detach" in d["steps"]:
            lines.append(
                f"    detach from {d['dc'] or 'its data center'} (its VMs and templates leave the engine)"
            )
        lines.append(
            f"    remove with host {plan.get('host') or '(none up)'}, format=false: the volume keeps every file"
        )
        lines.append(
            f"    then remove what the engine still lists for it (now {len(d['vms'])} VM(s), "
            f"{len(d['templates'])} template(s), {d['disks']} disk(s) on it)"
        )
    for b in plan.get("blockers") or []:
        lines.append(f"  BLOCKER (a real run now would stop here): {b}")
    return "\n".join(lines)


__all__ = [
    "CleanupRefused",
    "build_cleanup_plan",
    "cleanup_plan_text",
    "domain_state",
    "identity_problems",
    "orphans",
    "select_storages",
    "steps_left",
]
