"""The failover's pure parts: the split-brain decision, the plan, shards, start tiers, outcomes, the report.

No I/O here: the operators (``ovirt_dr.operators.recovery_ovirt`` / ``recovery_gluster``) gather facts from
the engines and the replica, and these functions decide what to do with them, so every decision is
unit-tested without an engine and the dry run prints exactly what a real run would do.

Everything passed between tasks is plain JSON (XCom): dicts of strings, numbers, booleans and lists.
Names read from the replica (VM names, OVF contents) are untrusted data: they are never rendered as
templates and are escaped where they end up in HTML.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ovirt_dr import ovf
from ovirt_dr.ids import NULL_UUID, is_uuid
from ovirt_dr.rpo import RECOVERY_POINT_TASK
from ovirt_dr.rpo import format_age as _format_age
from ovirt_dr.rpo import newest_recovery_point as _newest

#: oVirt VMStatus numbers of the OVF_STORE's metadata.json that mean "running at the source site":
#: up, powering_up, paused, wait_for_launch, reboot_in_progress, powering_down.
RUNNING_STATUS_NUMS = frozenset({1, 2, 4, 9, 10, 16})
#: Target VM states that count as "already started": a retry does not start these again.
STARTED_STATES = frozenset({"up", "powering_up", "wait_for_launch", "reboot_in_progress", "migrating"})

MAX_OVF_BYTES = 4 * 1024 * 1024
MAX_NAME = 255


class PlanError(ValueError):
    """Input the failover cannot plan with: names what and where."""


# -- split-brain guard ---------------------------------------------------------------------------------
ProbeState = Literal["answers", "unreachable", "error"]


@dataclass(frozen=True)
class SourceProbe:
    """What the source engine said when asked about the domains to recover.

    ``state``: ``answers`` (the engine answered every question), ``unreachable`` (connection refused or no
    answer within the probe timeout), ``error`` (it answered, but not usefully: an authentication error, an
    HTTP error). ``domains``: source-side domain name -> ``"active in DC"`` / ``"maintenance in DC"`` /
    ``"unattached"`` / ``"absent"``; ``active``: the names of the domains attached and active in a DC.
    """

    state: ProbeState
    detail: str = ""
    domains: dict[str, str] = field(default_factory=dict)
    active: tuple[str, ...] = ()


@dataclass(frozen=True)
class Guard:
    """The split-brain decision: proceed or refuse, whether forced, how long to wait for the leases."""

    proceed: bool
    forced: bool
    wait_s: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_brain_verdict(probe: SourceProbe, *, force: bool, lease_wait: timedelta) -> Guard:
    """Decide whether the failover may touch the replica (see README "split-brain guard").

    - The source engine answers and none of the domains is active there: proceed (nothing runs on them).
    - It answers and some are active: REFUSE, unless ``force`` (the admin's word that the old site is
      fenced): two sites writing one VM's disks is the one outcome worse than an outage.
    - It is unreachable (refused / timed out): proceed after ``lease_wait``, the time the old hosts'
      sanlock leases on the replicated volumes need to expire, so the new hosts can take them.
    - It answers but its answer cannot be used (auth error, HTTP error): nothing proves the domains are
      inactive, so refuse unless ``force``; with ``force`` still wait the leases out (the hosts may be up).
    """
    wait = max(0.0, lease_wait.total_seconds())
    if probe.state == "answers":
        if not probe.active:
            return Guard(
                True, False, 0.0, "the source engine answers and none of the domains is active there"
            )
        where = ", ".join(f"{n} ({probe.domains.get(n, 'active')})" for n in probe.active)
        if force:
            return Guard(
                True,
                True,
                0.0,
                f"FORCED although the source engine answers and still has active: {where}; the admin "
                "vouches that the old site no longer writes to them",
            )
        return Guard(
            False,
            False,
            0.0,
            f"REFUSED: the source engine answers and still has active: {where}. Starting the same VMs on "
            "both sites would corrupt their disks (split brain). Deactivate the domains at the source, or "
            "make sure the old site is fenced and trigger again with force=true",
        )
    if probe.state == "unreachable":
        return Guard(
            True,
            force,
            wait,
            f"the source engine is unreachable ({probe.detail}); waiting {wait:.0f}s for the storage leases "
            "of its hosts to expire before the replica is touched",
        )
    if force:
        return Guard(
            True,
            True,
            wait,
            f"FORCED although the source engine's state is unknown ({probe.detail}); waiting {wait:.0f}s for "
            "the storage leases of its hosts to expire",
        )
    return Guard(
        False,
        False,
        0.0,
        f"REFUSED: the source engine answers but cannot tell whether the domains are still active "
        f"({probe.detail}). Fix access to it, or make sure the old site is fenced and trigger with force=true",
    )


# -- recovery points ---------------------------------------------------------------------------------------
def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC (what Airflow's DB holds)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def newest_recovery_point(events: Iterable[Any], dag_id: str) -> dict[str, Any] | None:
    """The newest usable recovery point among a pair's asset events, or None.

    Only events the pair's own sync DAG emitted from its audit task count (an event posted by hand through
    the REST API vouches for nothing); each ``extra`` is read by ``ovirt_dr.rpo`` exactly as the dashboard
    and the deadline alert read it (malformed: skipped; later than its event: clamped, so an age is never
    under-reported). Each event has ``extra``, ``timestamp``, ``source_dag_id``, ``source_task_id`` and
    ``source_run_id`` (attributes or keys).
    """
    rows = []
    for ev in events:
        get = ev.get if isinstance(ev, dict) else (lambda k, e=ev: getattr(e, k, None))
        if get("source_dag_id") != dag_id or get("source_task_id") != RECOVERY_POINT_TASK:
            continue
        stamp = get("timestamp")
        if isinstance(stamp, datetime):
            rows.append((get("extra"), stamp, get("source_run_id")))
    best = _newest(rows)
    if best is None:
        return None
    return {
        "recovery_point": best.time.isoformat(),
        "run_id": best.run_id,
        "recorded_at": best.recorded_at.isoformat(),
    }


def age_seconds(iso: str | None, now: datetime) -> float | None:
    if not iso:
        return None
    return max(0.0, (as_utc(now) - as_utc(datetime.fromisoformat(iso))).total_seconds())


def format_age(seconds: float | None) -> str:
    """``45s``, ``4m 07s``, ``2h 05m``, ``3d 04h`` (``ovirt_dr.rpo.format_age``, of seconds); None: ``never``."""
    return _format_age(None if seconds is None else timedelta(seconds=seconds))


# -- the replica's OVF_STORE -------------------------------------------------------------------------------
def _is_true(text: str | None) -> bool:
    return (text or "").strip().lower() == "true"


def parse_entity_ovf(ovf_xml: str) -> dict[str, Any]:
    """What the failover needs from one OVF of the replica's OVF_STORE, as plain JSON.

    ``{"id", "name", "kind": "vm"|"template", "ha", "priority", "cluster", "template_id", "nics":
    [{"name", "profile", "network"}], "affinity_groups", "affinity_labels", "disks": [{"image", "volume"}]}``.
    The engine's rule for templates (``OvfParser.isTemplate``): ``TemplateId`` equals the entity's own id
    (the OS section's ``ovf:id``). Raises ``PlanError`` for XML that is not such an OVF.
    """
    try:
        root = ovf.parse_xml(ovf_xml, MAX_OVF_BYTES)
    except ovf.OvfError as e:
        raise PlanError(str(e)) from None
    if ovf.local(root.tag) != "Envelope":
        raise PlanError(f"root element is {ovf.local(root.tag)!r}, not Envelope")
    content = next((el for el in root if ovf.local(el.tag) == "Content"), None)
    if content is None:
        raise PlanError("no Content section")
    sections = {}
    for sec in content:
        if ovf.local(sec.tag) == "Section":
            sections[sec.get(f"{{{ovf.XSI_NS}}}type", "")] = sec
    ossec = sections.get("ovf:OperatingSystemSection_Type")
    entity_id = ossec.get(f"{{{ovf.OVF_NS}}}id") if ossec is not None else None
    template_id = ovf.child_text(content, "TemplateId") or None
    is_template = (template_id is not None and template_id == entity_id) or ovf.child_text(
        content, "TemplateType"
    ) is not None
    if is_template:
        entity_id = entity_id or template_id
        template_id = None
    elif template_id == NULL_UUID:
        template_id = None
    if not entity_id:
        raise PlanError("no entity id (OperatingSystemSection ovf:id)")
    # ids end up in REST paths (/vms/<id>/register): only UUIDs, never a string that could be a path
    if not is_uuid(entity_id):
        raise PlanError(f"entity id {entity_id[:80]!r} is not a UUID")
    if template_id is not None and not is_uuid(template_id):
        raise PlanError(f"template id {template_id[:80]!r} is not a UUID")
    name = ovf.child_text(content, "Name") or ""
    if not name:
        raise PlanError(f"entity {entity_id} has no Name")
    if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise PlanError(f"entity {entity_id}: name {name[:80]!r} is too long or holds control characters")
    try:
        priority = int(ovf.child_text(content, "Priority") or 0)
    except ValueError:
        priority = 0
    nics = []
    hw = sections.get("ovf:VirtualHardwareSection_Type")
    for item in hw if hw is not None else []:
        if ovf.local(item.tag) != "Item":
            continue
        fields = {ovf.local(el.tag): (el.text or "").strip() for el in item}
        if fields.get("ResourceType") == "10":
            nics.append(
                {
                    "name": fields.get("Name") or fields.get("ElementName") or "",
                    "profile": fields.get("OtherResourceType") or "",
                    "network": fields.get("Connection") or "",
                }
            )
    groups = [
        el.get(f"{{{ovf.OVF_NS}}}name") or ""
        for el in sections.get("ovf:AffinityGroupsSection_Type", [])
        if ovf.local(el.tag) == "AffinityGroup"
    ]
    labels = [
        el.get(f"{{{ovf.OVF_NS}}}name") or ""
        for el in sections.get("ovf:AffinityLabelsSection_Type", [])
        if ovf.local(el.tag) == "AffinityLabel"
    ]
    disks = [{"image": image, "volume": volume} for image, volume in ovf.disk_refs(root)]
    return {
        "id": entity_id,
        "name": name,
        "kind": "template" if is_template else "vm",
        "ha": _is_true(ovf.child_text(content, "AutoStartup")),
        "priority": priority,
        "cluster": ovf.child_text(content, "ClusterName") or "",
        "template_id": template_id,
        "nics": nics,
        "affinity_groups": sorted(g for g in groups if g),
        "affinity_labels": sorted(lbl for lbl in labels if lbl),
        "disks": disks,
    }


def was_running(vm_status: dict[str, Any] | None, vm_id: str) -> bool | None:
    """From the OVF_STORE's metadata.json ``{"VM Status": {id: n}}``: running at the source? None: unknown."""
    if not isinstance(vm_status, dict) or vm_id not in vm_status:
        return None
    try:
        return int(vm_status[vm_id]) in RUNNING_STATUS_NUMS
    except (TypeError, ValueError):
        return None


# -- plan --------------------------------------------------------------------------------------------------
def split_shards(items: Sequence[Any], shards: int) -> list[list[Any]]:
    """``items`` dealt round-robin into at most ``shards`` non-empty lists (sizes differ by one at most).

    Round-robin rather than chunks so that VMs sorted by start priority spread evenly over the shards.
    """
    if shards < 1:
        raise PlanError(f"shards must be >= 1, got {shards}")
    n = min(shards, len(items))
    out: list[list[Any]] = [[] for _ in range(n)]
    for i, item in enumerate(items):
        out[i % n].append(item)
    return out


def plan_tiers(
    vms: Sequence[dict[str, Any]], tiers: Sequence[Sequence[str]], *, only_running: bool
) -> tuple[list[dict[str, Any]], dict[str, str], list[str]]:
    """The start order: HA VMs first, then each configured tier, then the rest.

    ``vms``: plan entries with ``name``, ``ha``, ``priority``, ``was_running`` (bool or None = unknown).
    Returns ``(tiers, not_started, warnings)``: ``tiers`` = ``[{"name": "ha"|"tier N"|"rest", "vms":
    [names]}]`` without empty tiers, highest oVirt priority first inside a tier; ``not_started`` = VM name
    -> reason (down at the source, with ``only_running``); ``warnings``: configured names not in the plan.
    A VM whose source status is unknown is started (a failover's purpose is to bring VMs back).
    """
    by_name = {vm["name"]: vm for vm in vms}
    not_started: dict[str, str] = {}
    startable: list[dict[str, Any]] = []
    for vm in vms:
        if only_running and vm.get("was_running") is False:
            not_started[vm["name"]] = "was not running at the source site (start_only_running)"
        else:
            startable.append(vm)

    def order(names: Iterable[str]) -> list[str]:
        return sorted(names, key=lambda n: (-int(by_name[n].get("priority") or 0), n))

    placed: set[str] = set()
    out: list[dict[str, Any]] = []
    ha = order(vm["name"] for vm in startable if vm.get("ha"))
    if ha:
        out.append({"name": "ha", "vms": ha})
        placed.update(ha)
    warnings: list[str] = []
    startable_names = {vm["name"] for vm in startable}
    for i, tier in enumerate(tiers, start=1):
        missing = [n for n in tier if n not in by_name]
        if missing:
            warnings.append(f"start_tiers[{i - 1}]: {missing} not among the VMs being recovered")
        names = order(n for n in tier if n in startable_names and n not in placed)
        if names:
            out.append({"name": f"tier {i}", "vms": names})
            placed.update(names)
    rest = order(n for n in startable_names if n not in placed)
    if rest:
        out.append({"name": "rest", "vms": rest})
    return out, not_started, warnings


def plan_domain(
    storage: Any, pair: Any = None, recovery_point: dict[str, Any] | None = None, age_s: float | None = None
) -> dict[str, Any]:
    """One recovered domain of the plan, as JSON: the mapping file's entry (``ovirt_dr.mapping``'s
    ``ImportStorage``) and, when a sync pair replicates it, the pair's geo-rep session, its nodes and
    the recovery point (with its age in seconds) read from its audit."""
    out: dict[str, Any] = {
        "source_name": storage.dr_primary_name,
        "name": storage.dr_secondary_name,
        "dc": storage.dr_secondary_dc_name,
        "address": storage.dr_secondary_address,
        "path": storage.dr_secondary_path,
        "vfs_type": storage.dr_secondary_vfs_type or "glusterfs",
        "mount_options": storage.dr_secondary_mount_options,
        "master": bool(storage.dr_secondary_master_domain),
        "domain_id": storage.dr_domain_id,
    }
    if pair is not None:
        out.update(
            {
                "pair": pair.dag_id,
                "session": str(pair.session),
                **pair.session.as_dict(),
                "master_ssh_conn_id": pair.gluster_ssh_conn_id,
                "slave_ssh_conn_id": pair.slave_ssh_conn_id,
                "mount_root": pair.mount_root,
                "recovery_point": recovery_point,
                "recovery_point_age_s": age_s,
            }
        )
    return out


def build_plan(
    domains: Sequence[dict[str, Any]],
    inventories: dict[str, dict[str, Any]],
    *,
    register_shards: int,
    start_tiers: Sequence[Sequence[str]],
    start_only_running: bool,
    params: dict[str, Any],
    guard: dict[str, Any],
    target: dict[str, Any],
    blockers: Sequence[str] = (),
) -> dict[str, Any]:
    """The whole failover as data: domains (master first), templates, VMs, shards, start tiers.

    ``domains``: one dict per recovered domain in recovery order (``source_name`` keyed into
    ``inventories``, the replica's content as ``read_replica`` returns it). Each domain's ``sd_id`` is set
    from its inventory (the replica's domain is imported under its own id). A VM listed by two domains'
    OVF_STOREs (disks on both) is registered once, from the first. ``blockers``: what would stop a real run
    now (the guard's refusal, an unhealthy target), listed by a dry run.
    """
    out_domains = []
    templates: list[dict[str, Any]] = []
    vms: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    warnings: list[str] = []
    unreadable = []
    for d in domains:
        inv = inventories[d["source_name"]]
        dom = {**d, "sd_id": inv["sd_id"], "ovf_store": inv.get("ovf_store")}
        out_domains.append(dom)
        for entity_id, why in sorted((inv.get("unreadable") or {}).items()):
            unreadable.append({"id": entity_id, "domain": dom["name"], "why": why})
        for ent in sorted(inv["entities"], key=lambda e: (e["kind"], e["name"])):
            if ent["id"] in seen:
                warnings.append(
                    f"{ent['kind']} {ent['name']} ({ent['id']}) is in the OVF_STORE of {seen[ent['id']]} and "
                    f"{dom['name']}: registered from {seen[ent['id']]}"
                )
                continue
            seen[ent["id"]] = dom["name"]
            base = {"id": ent["id"], "name": ent["name"], "domain": dom["name"], "sd_id": dom["sd_id"]}
            if ent["kind"] == "template":
                templates.append(base)
                continue
            vms.append(
                {
                    **base,
                    "ha": bool(ent.get("ha")),
                    "priority": int(ent.get("priority") or 0),
                    "was_running": was_running(inv.get("vm_status"), ent["id"]),
                    "cluster": ent.get("cluster", ""),
                    "nics": ent.get("nics", []),
                    "affinity_groups": ent.get("affinity_groups", []),
                    "affinity_labels": ent.get("affinity_labels", []),
                }
            )
    names = [v["name"] for v in vms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    problems = [f"VM name {n!r} is used by more than one VM being recovered" for n in dupes]
    tiers, not_started, tier_warnings = plan_tiers(vms, start_tiers, only_running=start_only_running)
    ordered = [n for tier in tiers for n in tier["vms"]] + sorted(not_started)
    by_name = {v["name"]: v for v in vms}
    shards = split_shards(shard_items([by_name[n] for n in ordered]), register_shards) if vms else []
    return {
        "dry_run": bool(params.get("dry_run", True)),
        "force": bool(params.get("force", False)),
        "start_vms": bool(params.get("start_vms", True)),
        "guard": dict(guard),
        "target": dict(target),
        "domains": out_domains,
        "templates": templates,
        "vms": vms,
        "unreadable": unreadable,
        "shards": shards,
        "tiers": tiers,
        "not_started": not_started,
        "warnings": warnings + tier_warnings,
        "problems": problems,
        "blockers": list(blockers),
    }


def shard_items(vms: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """What a registration shard needs per VM: id, name, the target storage domain id and name."""
    return [{"id": v["id"], "name": v["name"], "sd_id": v["sd_id"], "domain": v["domain"]} for v in vms]


# -- outcomes ----------------------------------------------------------------------------------------------
Result = Literal["done", "skipped", "planned", "not_started", "failed"]


def outcome(
    name: str, vm_id: str, step: str, result: Result, detail: str = "", up_at: str | None = None
) -> dict[str, Any]:
    """One entity's result of one step (``register`` / ``start``).

    ``result``: ``done`` (this try did it), ``skipped`` (already done, by an earlier try or by hand),
    ``planned`` (dry run), ``not_started`` (on purpose: down at the source, ``start_vms=false``),
    ``failed``; ``detail`` says why; ``up_at``: when the VM was seen up (ISO, UTC).
    """
    return {"name": name, "id": vm_id, "step": step, "result": result, "detail": detail, "up_at": up_at}


def flatten(values: Any) -> list[dict[str, Any]]:
    """Outcome lists pulled from XCom: one task's list, several mapped tasks' lists, or nothing."""
    out: list[dict[str, Any]] = []
    if values is None:
        return out
    if isinstance(values, dict):
        return [values] if "step" in values else flatten(values.get("outcomes"))
    for v in values:
        if isinstance(v, dict) and "step" in v:
            out.append(v)
        elif isinstance(v, list | tuple | dict):
            out.extend(flatten(v))
    return out


def merge_outcomes(
    plan_vms: Sequence[dict[str, Any]],
    registered: Iterable[dict[str, Any]],
    started: Iterable[dict[str, Any]],
    *,
    dry_run: bool,
    no_register_reason: str = "the registration step did not run",
    no_start_reason: str = "the start step did not run",
) -> list[dict[str, Any]]:
    """Per VM of the plan, its final status and why: ``up``, ``registered`` (registered, not started),
    ``planned`` (dry run) or ``failed``.

    ``registered`` / ``started``: the registration and start steps' outcomes (latest try of each task).
    A VM without a registration outcome failed for ``no_register_reason`` (what stopped its step); one
    without a start outcome stays ``registered`` for ``no_start_reason``.
    """
    reg = {o["id"]: o for o in registered}
    st = {o["id"]: o for o in started}
    out = []
    for vm in plan_vms:
        r, s = reg.get(vm["id"]), st.get(vm["id"])
        up_at = None
        if r is None:
            status, reason = "failed", f"not registered: {no_register_reason}"
        elif r["result"] == "failed":
            status, reason = "failed", f"registration failed: {r['detail']}"
        elif dry_run:
            status = "planned"
            reason = "; ".join(x for x in (r["detail"], s["detail"] if s else no_start_reason) if x)
        elif s is None:
            status, reason = "registered", f"not started: {no_start_reason}"
        elif s["result"] == "failed":
            status, reason = "failed", f"start failed: {s['detail']}"
        elif s["result"] == "not_started":
            status, reason = "registered", f"not started: {s['detail']}"
        else:
            status, reason, up_at = "up", s["detail"], s.get("up_at")
        out.append(
            {
                "name": vm["name"],
                "id": vm["id"],
                "domain": vm.get("domain"),
                "ha": bool(vm.get("ha")),
                "status": status,
                "reason": reason,
                "up_at": up_at,
            }
        )
    return out


def rto_seconds(run_start: datetime | None, vm_results: Sequence[dict[str, Any]]) -> float | None:
    """Recovery time: from the run's start to the last VM seen ``up`` (None when no VM came up)."""
    times = [as_utc(datetime.fromisoformat(v["up_at"])) for v in vm_results if v.get("up_at")]
    if run_start is None or not times:
        return None
    return max(0.0, (max(times) - as_utc(run_start)).total_seconds())


def plan_text(plan: dict[str, Any]) -> str:
    """The plan as the dry run prints it: every step, in order, with what it would change."""
    mode = "DRY RUN (nothing is changed)" if plan.get("dry_run") else "REAL RUN"
    lines = [f"Failover plan, {mode}:"]
    guard = plan.get("guard") or {}
    verdict = "proceed" if guard.get("proceed") else "REFUSE"
    lines.append(f"  1. split-brain guard: {verdict}: {guard.get('reason')}")
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
            else "NO recovery point recorded by its sync DAG (the replica may be incomplete or inconsistent)"
        )
        master = " [master]" if d.get("master") else ""
        lines.append(
            f"     domain {d.get('source_name')} -> {d.get('name')} ({d.get('sd_id')}) from "
            f"{d.get('address')}:{d.get('path')} into data center {d.get('dc')}{master}: {rp_text}"
        )
        lines.append(
            f"  3. replica: stop geo-rep {d.get('session')} (stop force, via {d.get('master_ssh_conn_id')}), "
            f"then 'gluster volume set {d.get('slave_volume')} features.read-only off' (via "
            f"{d.get('slave_ssh_conn_id')})"
        )
        lines.append(f"  4. import {d.get('name')}, attach it to {d.get('dc')}, wait active")
    templates = plan.get("templates", [])
    lines.append(f"  5. register {len(templates)} template(s), then {len(plan.get('vms', []))} VM(s):")
    for t in templates:
        lines.append(f"     template {t['name']} ({t['id']}) from {t['domain']}")
    for i, shard in enumerate(plan.get("shards", [])):
        lines.append(f"     shard {i}: {', '.join(v['name'] for v in shard)}")
    if plan.get("start_vms", True):
        for tier in plan.get("tiers", []):
            lines.append(f"  6. start {tier['name']}: {', '.join(tier['vms'])} (waited until up)")
        for name, why in sorted((plan.get("not_started") or {}).items()):
            lines.append(f"     not started: {name}: {why}")
    else:
        lines.append("  6. VMs are not started (start_vms=false)")
    lines.append("  7. report: RTO, recovery points, every VM's outcome; event on the target engine, mail")
    for u in plan.get("unreadable", []):
        lines.append(
            f"  PROBLEM: unreadable OVF {u['id']} on {u['domain']}: {u['why']} (cannot be recovered)"
        )
    for p in plan.get("problems", []):
        lines.append(f"  PROBLEM: {p}")
    for b in plan.get("blockers", []):
        lines.append(f"  BLOCKER (a real run now would stop here): {b}")
    for w in plan.get("warnings", []):
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


def now_utc() -> datetime:
    return datetime.now(UTC)
