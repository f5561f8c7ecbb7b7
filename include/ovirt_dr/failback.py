"""The failback's pure parts: the reverse session's endpoints, where a (re-)run stands, the plan text.

The failback brings the VMs home: the secondary's volume is replicated back to the primary's volume by a
geo-replication session created for it (the reverse session), with the sync pipeline's own cycles run the
other way; a final cycle with the VMs shut down; the secondary cleaned; the domains imported and the VMs
started on the primary (the failover's steps, direction ``failback``); then the forward replication is
re-established and the pair's sync DAG unpaused.

A run must converge when triggered again after it stopped half-way, so it first reads where things stand
(:func:`failback_phase`): while the secondary still has the domain, the reverse cycles run (the primary
must have been cleaned by ``dr_cleanup_primary``); once the secondary was cleaned (the final cycle passed
before that), the run continues with the import on the primary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from ovirt_dr.failback_config import ReverseSessionConfig
from ovirt_dr.mapping import ImportStorage

Phase = Literal["sync", "import"]


def _volume_of(path: str | None) -> str | None:
    parts = [p for p in (path or "").split("/") if p]
    return parts[0] if len(parts) == 1 else None


def reverse_endpoints(
    storage: ImportStorage, pair: Any, rs: ReverseSessionConfig, secondary_conn_id: str, pool: str
) -> tuple[dict[str, Any] | None, list[str]]:
    """The reverse session and the nodes of one mapped domain: (endpoints, problems).

    Master: the pair's slave volume (the secondary's), driven through its slave node; slave: the primary's
    volume (``dr_primary_path`` must be the pair's master volume, a whole volume), on the host the session
    names (``reverse_session.slave_host`` or the mapping's ``dr_primary_address``), cleaned and audited
    through the pair's master node. The engine is the secondary's; the pool the pair's (one driver of the
    two volumes at a time).
    """
    where = f"domain {storage.dr_secondary_name or storage.dr_primary_name}"
    problems = []
    if pair is None:
        return None, [f"{where}: no sync pair replicates it: the failback does not know its Gluster nodes"]
    volume = _volume_of(storage.dr_primary_path)
    if volume is None:
        problems.append(
            f"{where}: dr_primary_path {storage.dr_primary_path!r} is not a whole Gluster volume ('/<volume>'): "
            "geo-replication replicates volumes"
        )
    elif volume != pair.master_volume:
        problems.append(
            f"{where}: dr_primary_path {storage.dr_primary_path!r} is not the master volume {pair.master_volume!r} "
            f"of sync pair {pair.label}"
        )
    slave_host = rs.slave_host or storage.dr_primary_address
    if not slave_host:
        problems.append(f"{where}: no dr_primary_address and no reverse_session.slave_host")
    if not storage.dr_secondary_name:
        problems.append(f"{where}: no dr_secondary_name")
    if problems:
        return None, problems
    return {
        "ovirt_conn_id": secondary_conn_id,
        "storage_domain": storage.dr_secondary_name,
        "master_volume": pair.slave_volume,
        "master_ssh_conn_id": pair.slave_ssh_conn_id,
        "slave_host": slave_host,
        "slave_volume": volume,
        "slave_user": rs.slave_user,
        "slave_ssh_conn_id": pair.gluster_ssh_conn_id,
        "mount_root": pair.mount_root,
        "pool": pool,
    }, []


def session_text(ends: dict[str, Any]) -> str:
    user = "" if ends["slave_user"] == "root" else f"{ends['slave_user']}@"
    return f"{ends['master_volume']} -> {user}{ends['slave_host']}::{ends['slave_volume']}"


def parse_session_config(text: str) -> dict[str, str]:
    """``gluster volume geo-replication M S config`` output (``key:value`` lines) as a dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def settings_to_apply(current: dict[str, str], wanted: dict[str, str]) -> list[tuple[str, str]]:
    """The ``config`` options a session still needs (sorted), comparing as gluster prints them."""
    return sorted((k, v) for k, v in wanted.items() if current.get(k, "").strip().lower() != v.lower())


# -- where a run stands -------------------------------------------------------------------------------
def failback_phase(entries: Sequence[dict[str, Any]]) -> tuple[Phase | None, list[dict[str, Any]], list[str]]:
    """Decide, per domain and for the run, whether the reverse cycles are still to run (``sync``) or the
    secondary was already cleaned and the run continues with the import (``import``).

    ``entries``: ``{"name" (the secondary's name), "primary_name", "primary": facts|None, "secondary":
    facts|None}``; facts as ``ovirt_dr.cleanup`` reads them (``id``, ``attached`` [{status, dc}], ``vms``).
    Returns ``(phase, verdicts, problems)``; a phase of None when there are problems.
    """
    from ovirt_dr.cleanup import domain_state

    verdicts, problems = [], []
    for e in entries:
        p, s = e.get("primary"), e.get("secondary")
        ps, ss = domain_state(p), domain_state(s)
        name, pname = e["name"], e.get("primary_name") or e["name"]
        v: dict[str, Any] = {"name": name, "primary_state": ps, "secondary_state": ss}
        if ss == "absent":
            v["phase"] = "import"
            v["why"] = (
                f"the secondary engine no longer has {name}: an earlier run cleaned it after its final cycle; "
                f"continuing with the import on the primary ({pname} there: {ps})"
            )
            if p is not None and e.get("replica_id") and p.get("id") != e["replica_id"]:
                problems.append(
                    f"domain {pname}: the primary has a domain of that name with id {p.get('id')}, not the "
                    f"replica's {e['replica_id']}"
                )
        elif ss == "active":
            v["phase"] = "sync"
            if ps == "absent":
                v["why"] = f"the primary was cleaned ({pname} is not on its engine)"
            elif ps == "unattached" and p is not None and s is not None and p.get("id") == s.get("id"):
                v["why"] = (
                    f"the primary still lists {pname} unattached, with the replica's id: it is attached again"
                )
            elif ps == "unattached":
                problems.append(
                    f"domain {pname}: the primary engine has an unattached domain of that name with another id "
                    f"({(p or {}).get('id')}, the secondary's is {(s or {}).get('id')}): remove it there first"
                )
            else:
                problems.append(
                    f"domain {pname}: the primary engine still has it {ps}"
                    f"{' in ' + str((p or {}).get('attached', [{}])[0].get('dc')) if p and p.get('attached') else ''}: "
                    "it was not cleaned; run dr_cleanup_primary first (the failback must not write over a live domain)"
                )
        else:
            problems.append(
                f"domain {name}: the secondary engine has it {ss}, neither active (the reverse cycles need it) "
                "nor gone (an earlier failback cleaned it): activate it again to run the failback from the "
                "start, or finish removing it there so that the failback imports what the primary volume holds"
            )
        verdicts.append(v)
    phases = {v.get("phase") for v in verdicts if v.get("phase")}
    if len(phases) > 1:
        problems.append(
            "the domains are at different stages ("
            + ", ".join(f"{v['name']}: {v.get('phase')}" for v in verdicts)
            + "): trigger the failback for each group with the `domains` parameter"
        )
    if problems or not phases:
        return None, verdicts, problems
    return phases.pop(), verdicts, []  # type: ignore[return-value]


def running_vm_status(running: Sequence[str] | None, vm_ids: Sequence[str]) -> dict[str, int] | None:
    """The ``VM Status`` the failback's import plan starts VMs by: 1 (up) for each VM that ran on the
    secondary when the failback began, 0 for the others; None when that is unknown (a resumed run: every
    VM is started, a failback's point being to bring them back)."""
    if running is None:
        return None
    up = set(running)
    return {vid: 1 if vid in up else 0 for vid in vm_ids}


def failback_plan_text(plan: dict[str, Any]) -> str:
    """The whole failback as the preflight prints it, step by step."""
    mode = "DRY RUN (nothing is changed)" if plan.get("dry_run") else "REAL RUN"
    lines = [f"Failback plan, {mode}, phase {plan.get('phase')}:"]
    for v in plan.get("verdicts") or []:
        lines.append(
            f"  {v['name']}: primary {v['primary_state']}, secondary {v['secondary_state']}: {v.get('why', '')}"
        )
    sync = plan.get("phase") == "sync"
    n = 1

    def step(text: str) -> None:
        nonlocal n
        lines.append(f"  {n}. {text}")
        n += 1

    step(f"pause the sync DAG(s) {', '.join(plan.get('sync_dags') or [])} and wait until idle")
    for d in plan.get("domains") or []:
        r = d["reverse"]
        if sync:
            step(
                f"{d['source_name']}: create the reverse session {session_text(r)} (push-pem force, via "
                f"{r['master_ssh_conn_id']}), options {d.get('settings') or {}}, slave read-only"
            )
    if sync:
        running = plan.get("running_names") or []
        step(
            f"{plan.get('warm_cycles', 0)} reverse sync cycle(s) with the VMs running (snapshots on the "
            "secondary engine, checkpoint, wait, stop, overlay cleanup on the primary volume, audit)"
        )
        step(f"shut down the VMs on the secondary ({len(running)} running: {', '.join(running) or '-'})")
        step("the final reverse cycle with every VM down: nothing written on the secondary is left behind")
        step(
            "clean the secondary: deactivate, detach, remove its domains WITHOUT format; its replica read-only again"
        )
    else:
        lines.append("  (the reverse cycles and the secondary's cleanup are done: an earlier run did them)")
    step("delete the reverse session; the primary volume writable for the primary engine")
    step("read the primary volume's OVF_STORE, then import, register (failback mapping) and start in tiers")
    step("re-establish primary -> secondary replication (slave read-only, forward session usable)")
    step("unpause the sync DAG(s)")
    for d in plan.get("domains") or []:
        lines.append(
            f"     {d['source_name']} -> {d['name']} in {d['dc']} from {d['address']}:{d['path']} "
            f"(sd {d.get('sd_id')}, pair {d['pair']})"
        )
    for b in plan.get("blockers") or []:
        lines.append(f"  BLOCKER (a real run now would stop here): {b}")
    for w in plan.get("warnings") or []:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


__all__ = [
    "failback_phase",
    "failback_plan_text",
    "parse_session_config",
    "reverse_endpoints",
    "running_vm_status",
    "session_text",
    "settings_to_apply",
]
