"""The DR drill's pure parts: the copy's identity, the drill plan, the start gate, outcomes, the report.

A drill proves that the replica is recoverable without touching production: the pair's sync is held
still, a COPY of the replica (``ovirt_dr.drill_node``: the replica's volumes by symlink under a new domain
id, a new qcow2 overlay per disk) is imported into the secondary engine, the VMs are registered with the
mapping file (as a failover does) with every vNIC unplugged, their disks checked against the replica and
started, and everything is removed again. No I/O here: the operators (``ovirt_dr.operators.drill_*``)
gather the facts, these functions decide, so every decision is unit-tested and a dry run prints exactly
what a real run would do.

Everything passed between tasks is plain JSON (XCom). Names read from the replica are data: never a
template, escaped where they end up in HTML.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ovirt_dr.failover import PlanError, format_age, merge_outcomes
from ovirt_dr.form import form_domains, form_flag
from ovirt_dr.replica import require_uuid

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Namespace of the ids the drill derives (copy domain, overlays): the same run always gets the same ids,
#: so a retried task finds what an earlier try made instead of making a second one.
DRILL_NAMESPACE = uuid.UUID("8f4e2c1a-5b7d-4e9f-a3c6-0d2b1e7f9a41")
#: oVirt's limit for a storage domain name.
MAX_DOMAIN_NAME = 50

VALIDATE_TASK = "validate"
PLAN_TASK = "preflight"
COPY_TASK = "make_copy"
IMPORT_TASK = "import_domains"
TEMPLATES_TASK = "register_templates"
VMS_TASK = "register_vms"
CHECK_TASK = "check_vms"
START_TASK = "start_vms"
CLEANUP_TASK = "cleanup"
RESUME_TASK = "resume_sync"
REPORT_TASK = "report"


# -- identity ---------------------------------------------------------------------------------------------
def copy_sd_id(replica_sd_id: str, run_id: str) -> str:
    """The copy's storage domain id: new (never the replica's), the same for every try of one run."""
    require_uuid(replica_sd_id, "replica storage domain id")
    if not isinstance(run_id, str) or not run_id:
        raise PlanError("a drill needs its run id to name its copy")
    return str(uuid.uuid5(DRILL_NAMESPACE, f"copy/{replica_sd_id}/{run_id}"))


def overlay_volume_id(copy_id: str, image_id: str, volume_id: str) -> str:
    """The id of the overlay the copy puts on a disk's active volume (its new active volume)."""
    for value, what in ((copy_id, "copy id"), (image_id, "image id"), (volume_id, "volume id")):
        require_uuid(value, what)
    return str(uuid.uuid5(DRILL_NAMESPACE, f"overlay/{copy_id}/{image_id}/{volume_id}"))


def copy_name(secondary_name: str, suffix: str) -> str:
    """``<secondary name><suffix>``, cut to oVirt's 50 characters keeping the suffix: a drill's copy never
    takes the name the real domain gets at a failover."""
    if not secondary_name or not suffix:
        raise PlanError("the copy's name needs the secondary domain name and a suffix")
    return secondary_name[: MAX_DOMAIN_NAME - len(suffix)] + suffix


# -- the form -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DrillParams:
    """The trigger form's values, checked again here (a run may come from the REST API or the CLI)."""

    dry_run: bool
    domains: tuple[str, ...]

    @classmethod
    def from_context(cls, context: Context) -> DrillParams:
        params = context.get("params") or {}
        return cls(dry_run=form_flag(params, "dry_run", True), domains=form_domains(params))


# -- the plan -----------------------------------------------------------------------------------------------
def drill_plan(
    plan: dict[str, Any],
    inventories: dict[str, dict[str, Any]],
    *,
    run_id: str,
    suffix: str,
    sync: dict[str, Any],
    read_only: dict[str, str | None],
    blockers: Sequence[str] = (),
) -> dict[str, Any]:
    """The failover's plan (``ovirt_dr.failover.build_plan``) turned into the drill's: every domain becomes
    its copy (new id, new name; the import step then imports the copy, the registration steps register
    from it), and each domain gets what the copy step needs (the disks, their overlays).

    ``inventories``: the replicas as ``read_replica`` returned them, by source domain name; ``sync``: the
    pairs' sync DAGs as they were before the drill; ``read_only``: each slave volume's
    ``features.read-only`` before the drill (the cleanup puts it back).
    """
    out = {**plan, "domains": [], "kind": "drill", "sync": dict(sync), "read_only": dict(read_only)}
    renamed: dict[str, tuple[str, str]] = {}
    vm_disks: dict[str, list[dict[str, Any]]] = {}
    for d in plan["domains"]:
        inv = inventories[d["source_name"]]
        replica_id = d["sd_id"]
        cid = copy_sd_id(replica_id, run_id)
        name = copy_name(d["name"], suffix)
        renamed[replica_id] = (cid, name)
        disks = []
        for ent in sorted(inv["entities"], key=lambda e: (e["kind"], e["name"])):
            for disk in ent.get("disks") or []:
                overlay = (
                    overlay_volume_id(cid, disk["image"], disk["volume"]) if ent["kind"] == "vm" else None
                )
                entry = {
                    "vm": ent["name"],
                    "vm_id": ent["id"],
                    "kind": ent["kind"],
                    "image": disk["image"],
                    "volume": disk["volume"],
                    "overlay": overlay,
                }
                disks.append(entry)
                if ent["kind"] == "vm":
                    vm_disks.setdefault(ent["id"], []).append(entry)
        out["domains"].append(
            {
                **d,
                "sd_id": cid,
                "name": name,
                "replica_sd_id": replica_id,
                "replica_name": d["name"],
                "disks": disks,
            }
        )

    def moved(item: dict[str, Any]) -> dict[str, Any]:
        cid, name = renamed.get(item["sd_id"], (item["sd_id"], item["domain"]))
        return {**item, "sd_id": cid, "domain": name}

    out["vms"] = [moved(v) for v in plan["vms"]]
    out["templates"] = [moved(t) for t in plan["templates"]]
    out["shards"] = [[moved(v) for v in shard] for shard in plan["shards"]]
    out["vm_disks"] = vm_disks
    out["blockers"] = [*plan.get("blockers", []), *blockers]
    return out


def plan_text(plan: dict[str, Any]) -> str:
    """The drill as the dry run prints it: every step, in order, with what it would change."""
    mode = "DRY RUN (nothing is changed)" if plan.get("dry_run") else "REAL RUN"
    lines = [f"DR drill plan, {mode}:"]
    for dag_id, s in sorted((plan.get("sync") or {}).items()):
        state = "paused already (left paused after)" if s.get("paused") else "active (paused, then resumed)"
        lines.append(f"  1. sync DAG {dag_id}: {state}; its running run, if any, is waited for")
    target = plan.get("target") or {}
    lines.append(
        f"  2. target engine {target.get('conn_id')}, import host {target.get('host') or '(none up)'}"
    )
    for d in plan.get("domains", []):
        rp = d.get("recovery_point")
        rp_text = (
            f"recovery point {rp['recovery_point']} (age {format_age(d.get('recovery_point_age_s'))}, "
            f"sync run {rp.get('run_id')})"
            if rp
            else "NO recovery point recorded by its sync DAG: the drill proves nothing about a known point"
        )
        ro = (plan.get("read_only") or {}).get(d.get("slave_volume"))
        lines.append(f"     replica of {d.get('source_name')}: {d.get('replica_sd_id')}: {rp_text}")
        lines.append(
            f"  3. copy it on {d.get('slave_volume')} (via {d.get('slave_ssh_conn_id')}) as {d.get('name')} "
            f"({d.get('sd_id')}): {len(d.get('disks', []))} disk(s), the replica's volumes by symlink, one "
            f"new overlay per VM disk; features.read-only {ro or 'off'} -> off for the drill, then {ro or 'off'}"
        )
        lines.append(
            f"  4. import {d.get('name')} from {d.get('address')}:{d.get('path')}, attach to {d.get('dc')}"
        )
    lines.append(
        f"  5. register {len(plan.get('templates', []))} template(s), then {len(plan.get('vms', []))} VM(s) "
        "with the mapping file (failover direction):"
    )
    for i, shard in enumerate(plan.get("shards", [])):
        lines.append(f"     shard {i}: {', '.join(v['name'] for v in shard)}")
    lines.append("  6. unplug every vNIC; check every disk through the copy against the replica")
    for tier in plan.get("tiers", []):
        lines.append(f"  7. start {tier['name']}: {', '.join(tier['vms'])} (waited until up)")
    for name, why in sorted((plan.get("not_started") or {}).items()):
        lines.append(f"     not started: {name}: {why}")
    lines.append(
        "  8. cleanup: stop and remove the VMs, deactivate, detach and remove the copy (no format), "
        "delete the copy's files, put features.read-only back"
    )
    lines.append("  9. resume the sync DAGs as they were; report: mail, event, per-VM outcome")
    for u in plan.get("unreadable", []):
        lines.append(f"  PROBLEM: unreadable OVF {u['id']} on {u['domain']}: {u['why']}")
    for p in plan.get("problems", []):
        lines.append(f"  PROBLEM: {p}")
    for b in plan.get("blockers", []):
        lines.append(f"  BLOCKER (a real run now would stop here): {b}")
    for w in plan.get("warnings", []):
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


# -- the gate before start --------------------------------------------------------------------------------
def disk_verdicts(
    plan: dict[str, Any],
    copy_results: dict[str, Any] | None,
    registered: dict[str, dict[str, Any]],
    checks: dict[str, dict[str, Any]],
) -> dict[str, list[str]]:
    """Per VM id, every reason its disks are not what a failover would start it on (``[]``: good).

    - ``copy_results``: the copy step's per-disk findings on the replica (missing volumes, headers);
    - ``registered``: per disk (image) id, what the target engine registered: ``{"image_id",
      "sd_id"}``: the disk must run on the copy's overlay (else the VM would write into the replica);
    - ``checks``: the node's guest-view checksums through the copy and on the replica, per image.
    """
    copies = {d["sd_id"] for d in plan.get("domains", [])}
    by_image = {}
    for dom in (copy_results or {}).get("copies", []):
        by_image.update(dom.get("disks") or {})
    out: dict[str, list[str]] = {}
    for vm_id, disks in (plan.get("vm_disks") or {}).items():
        reasons: list[str] = []
        for d in disks:
            img = d["image"]
            found = by_image.get(img) or {}
            reasons += [f"disk {img}: {p}" for p in found.get("problems") or []]
            reg = registered.get(img)
            if reg is None:
                reasons.append(f"disk {img}: not registered on the target")
            else:
                if reg.get("image_id") != d["overlay"]:
                    reasons.append(
                        f"disk {img}: the engine runs it on volume {reg.get('image_id')}, not on the copy's "
                        f"overlay {d['overlay']}: it would write into the replica"
                    )
                if reg.get("sd_id") not in copies:
                    reasons.append(f"disk {img}: on domain {reg.get('sd_id')}, not on the copy")
            chk = checks.get(img)
            if chk is None:
                reasons.append(f"disk {img}: not checked")
                continue
            reasons += [f"disk {img}: {e}" for e in chk.get("errors") or []]
            if not chk.get("errors"):
                if not chk.get("copy_sha256") or chk.get("copy_sha256") != chk.get("replica_sha256"):
                    reasons.append(
                        f"disk {img}: what the VM sees through the copy (sha256 {chk.get('copy_sha256')}) "
                        f"is not the replica's frozen content (sha256 {chk.get('replica_sha256')})"
                    )
        out[vm_id] = reasons
    return out


# -- outcomes and the report ---------------------------------------------------------------------------------
def vm_outcomes(
    plan: dict[str, Any],
    registered: Iterable[dict[str, Any]],
    checked: Iterable[dict[str, Any]],
    started: Iterable[dict[str, Any]],
    *,
    dry_run: bool,
    no_register_reason: str,
    no_check_reason: str,
    no_start_reason: str,
) -> list[dict[str, Any]]:
    """Per VM of the plan: ``passed`` (registered, vNICs unplugged, disks match the replica, up, or not
    started on purpose), ``planned`` (dry run) or ``failed``, with every reason.

    The registration and start outcomes are merged as the failover merges them
    (``ovirt_dr.failover.merge_outcomes``); the check outcome (``step`` ``check``) adds what the drill
    proves on top: a VM whose disks do not match, or whose vNICs are plugged, failed the drill.
    """
    base = merge_outcomes(
        plan["vms"],
        registered,
        started,
        dry_run=dry_run,
        no_register_reason=no_register_reason,
        no_start_reason=no_start_reason,
    )
    chk = {o["id"]: o for o in checked}
    out = []
    for v in base:
        c = chk.get(v["id"])
        reasons = [v["reason"]] if v["reason"] else []
        if dry_run:
            status = "failed" if v["status"] == "failed" else "planned"
        elif v["status"] == "failed":
            status = "failed"
        elif c is None:
            status = "failed"
            reasons.append(f"not checked: {no_check_reason}")
        elif c["result"] == "failed":
            status = "failed"
            reasons.insert(0, f"check failed: {c['detail']}")
        elif v["status"] == "up":
            status = "passed"
            reasons.insert(0, c["detail"])
        elif v["status"] == "registered" and "not started:" in (v["reason"] or "") and c["result"] == "done":
            # down at the source and left down (start_only_running), as a failover would leave it
            status = "passed" if "start_only_running" in v["reason"] else "failed"
            reasons.insert(0, c["detail"])
        else:
            status = "failed"
        out.append({**v, "status": status, "reason": "; ".join(r for r in reasons if r)})
    return out


def summary(report: dict[str, Any]) -> str:
    """One line: passed/failed, how many VMs, which failed, the recovery point proven."""
    counts: dict[str, int] = {}
    for v in report.get("vms", []):
        counts[v["status"]] = counts.get(v["status"], 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no VM"
    failed = [v["name"] for v in report.get("vms", []) if v["status"] == "failed"]
    rps = "; ".join(
        f"{r['domain']} at {r['recovery_point']} ({format_age(r.get('age_s'))} old)"
        if r.get("recovery_point")
        else f"{r['domain']}: NO recovery point"
        for r in report.get("recovery_points", [])
    )
    head = "DRY RUN of the DR drill" if report.get("dry_run") else "DR drill"
    verdict = "FAILED" if report.get("failed") else ("planned" if report.get("dry_run") else "passed")
    tail = f"; failed: {', '.join(failed)}" if failed else ""
    return f"{head} {verdict}: {parts}{tail}; recovery point {rps or 'unknown'}"


__all__ = [
    "DrillParams",
    "copy_name",
    "copy_sd_id",
    "disk_verdicts",
    "drill_plan",
    "overlay_volume_id",
    "plan_text",
    "summary",
    "vm_outcomes",
]
