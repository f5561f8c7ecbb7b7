"""Failback steps on the engines: validate, preflight (where the run stands, the plan), the import plan
read from the primary volume after the final reverse cycle, the report.

The import, registration and start on the primary are the failover's operators with ``direction=
"failback"`` (``ovirt_dr.operators.recovery_ovirt``); the secondary's cleanup is the cleanup's operators
with ``side="secondary"`` (``ovirt_dr.operators.cleanup_ovirt``); the reverse cycles are the sync
pipeline's own (``ovirt_dr.sync.add_sync_cycle``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ovirt_dr.failback import (
    failback_phase,
    failback_plan_text,
    reverse_endpoints,
    running_vm_status,
    session_text,
)
from ovirt_dr.failover import (
    STARTED_STATES,
    age_seconds,
    build_plan,
    flatten,
    format_age,
    merge_outcomes,
    now_utc,
    rto_seconds,
)
from ovirt_dr.form import form_domains, form_flag
from ovirt_dr.operators.cleanup_ovirt import domain_facts
from ovirt_dr.operators.recovery_base import (
    IMPORT_TASK,
    OUTCOMES_KEY,
    START_TASK,
    TEMPLATES_TASK,
    VMS_TASK,
    RecoveryError,
    RecoveryOperator,
    ReportOperator,
    failure_reasons,
    fault_text,
    first_bad_step,
    mail_report,
    post_report_event,
    step_states,
)
from ovirt_dr.operators.recovery_gluster import read_replica
from ovirt_dr.recovery_config import Recovery, StorageLink, load_recovery

if TYPE_CHECKING:
    from airflow.sdk import Context

FAILBACK_PLAN_TASK = "preflight"
IMPORT_PLAN_TASK = "plan_import"
SHUTDOWN_TASK = "shutdown_vms"
FAILBACK_EVENT_BASE = 0x0DA0000


def final_group(domain: str) -> str:
    """The task group of a domain's final reverse cycle (its audit gives the failback's recovery point)."""
    return f"final__{domain}"


def warm_group(k: int, domain: str) -> str:
    return f"reverse_{k}__{domain}"


@dataclass(frozen=True)
class FailbackParams:
    dry_run: bool
    domains: tuple[str, ...]

    @classmethod
    def from_context(cls, context: Context) -> FailbackParams:
        params = context.get("params") or {}
        return cls(dry_run=form_flag(params, "dry_run", True), domains=form_domains(params))


def selected(
    rec: Recovery, params: FailbackParams
) -> tuple[list[tuple[StorageLink, dict[str, Any] | None]], list[str]]:
    """The form's domains (the secondary's names; all when empty), with their reverse endpoints, and every
    problem with the choice, the sync pairs or the reverse session's endpoints."""
    from ovirt_dr.sync import pool_name

    assert rec.config is not None
    names = rec.domain_names("failback")
    problems = [
        f"param domains: {d!r} is not a secondary domain of the mapping file (known: {', '.join(names)})"
        for d in params.domains
        if d not in names
    ]
    out = []
    for link in rec.links("failback", list(params.domains) or None):
        ends, more = reverse_endpoints(
            link.storage,
            link.pair,
            rec.config.reverse_session,
            rec.conn_id("secondary"),
            pool_name(link.pair) if link.pair is not None else "",
        )
        problems += more
        out.append((link, ends))
    if not out:
        problems.append(
            "no storage domain to fail back (dr_import_storages is empty or the choice matches none)"
        )
    return out, problems


class _FailbackMixin:
    """Both engines: the primary (the target, ``target_hook``) and the secondary (``secondary_hook``)."""

    @cached_property
    def secondary_hook(self) -> Any:
        from ovirt_dr.hooks.ovirt import OvirtHook

        return OvirtHook(ovirt_conn_id=self.recovery.conn_id("secondary"))  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------------------
class OvirtFailbackValidateOperator(_FailbackMixin, RecoveryOperator):
    """Step 1: the config (sync pairs, the reverse session) and the mapping file for direction ``failback``
    against both engines, every problem at once. Fails without retry when there is any."""

    hook_attrs = ("target_hook", "secondary_hook", "gluster")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(direction="failback", **kwargs)

    def run(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from ovirt_dr.validation import validate_mapping

        self.refuse_concurrent_recovery(context)
        params = FailbackParams.from_context(context)
        rec = load_recovery(self.config_path)
        problems = list(rec.problems)
        if rec.ok:
            _, more = selected(rec, params)
            problems += more
        if problems:
            for p in problems:
                self.log.error("Config problem: %s", p)
            raise AirflowFailException(
                f"{len(problems)} problem(s) in the recovery config or mapping file: " + "; ".join(problems)
            )
        self.recovery = rec
        chosen, _ = selected(rec, params)
        wanted = {link.storage.dr_secondary_name for link, _ in chosen}
        have = {sd.name for sd in self.secondary_hook.system.storage_domains_service().list()} & wanted
        source = self.secondary_hook
        if not have:
            # a failback triggered again after it cleaned the secondary: nothing is left to check there
            source = None
            self.log.warning(
                "The secondary engine no longer has %s (an earlier failback cleaned it after its final "
                "cycle): only the primary side is checked",
                ", ".join(sorted(n for n in wanted if n)),
            )
        report = validate_mapping(
            rec, "failback", source=source, target=self.target_hook, domains=list(params.domains) or None
        ).as_dict()
        for w in report.get("warnings", []):
            self.log.warning("Mapping: %s", w)
        errors = report.get("errors", [])
        if errors:
            for e in errors:
                self.log.error("Mapping: %s", e)
            raise AirflowFailException(f"the mapping file has {len(errors)} problem(s): " + "; ".join(errors))
        self.log.info("Mapping valid for the failback (%s checked)", report.get("checked"))
        return report


# ---------------------------------------------------------------------------------------------------------
class OvirtFailbackPreflightOperator(_FailbackMixin, RecoveryOperator):
    """Step 2: where the run stands, and the plan.

    - both engines are read: each domain on the secondary (with its VMs and their state) and on the primary;
    - :func:`ovirt_dr.failback.failback_phase`: the primary must have been cleaned (the domain absent
      there, or unattached with the replica's id) while the secondary still runs it: phase ``sync``; once
      the secondary no longer has it (an earlier run cleaned it after its final cycle): phase ``import``;
      anything else is refused, naming the domain and what to do;
    - the primary's target data center and an up host there (the import host);
    - the VMs running on the secondary now: they are the ones started on the primary at the end.

    Returns the plan (each domain with its reverse session and both engines' names); a dry run records
    what would stop a real run as blockers (the report then fails the dry run).
    """

    hook_attrs = ("target_hook", "secondary_hook", "gluster")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(direction="failback", **kwargs)

    def run(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        params = FailbackParams.from_context(context)
        rec, cfg = self.recovery, self.cfg
        chosen, problems = selected(rec, params)
        if problems:
            raise AirflowFailException("; ".join(problems))
        primary, secondary = self.target_hook.system, self.secondary_hook.system
        entries, domains = [], []
        running: list[str] = []
        running_names: list[str] = []
        for link, ends in chosen:
            s, pair = link.storage, link.pair
            assert ends is not None and pair is not None
            sfacts = self._facts(secondary, s.dr_secondary_name)
            pfacts = self._facts(primary, s.dr_primary_name)
            replica_id = (sfacts or {}).get("id") or s.dr_domain_id
            entries.append(
                {
                    "name": s.dr_secondary_name,
                    "primary_name": s.dr_primary_name,
                    "primary": pfacts,
                    "secondary": sfacts,
                    "replica_id": replica_id,
                }
            )
            for vm in (sfacts or {}).get("vms") or []:
                if vm["status"] in STARTED_STATES and vm["id"] not in running:
                    running.append(vm["id"])
                    running_names.append(vm["name"])
            domains.append(
                {
                    "source_name": s.dr_secondary_name,
                    "name": s.dr_primary_name,
                    "dc": s.dr_primary_dc_name,
                    "address": s.dr_primary_address,
                    "path": s.dr_primary_path,
                    "vfs_type": s.dr_primary_vfs_type or "glusterfs",
                    "mount_options": s.dr_primary_mount_options,
                    "master": bool(s.dr_primary_master_domain),
                    "domain_id": s.dr_domain_id,
                    "sd_id": replica_id or (pfacts or {}).get("id"),
                    "pair": pair.dag_id,
                    "reverse": ends,
                    "settings": rec.config.reverse_session.settings() if rec.config else {},
                    "forward": {
                        "master_volume": pair.master_volume,
                        "slave_host": pair.slave_host,
                        "slave_volume": pair.slave_volume,
                        "slave_user": pair.slave_user,
                        "master_ssh_conn_id": pair.gluster_ssh_conn_id,
                        "slave_ssh_conn_id": pair.slave_ssh_conn_id,
                        "session": f"{pair.master_volume} -> {pair.slave_host}::{pair.slave_volume}",
                    },
                    # the reverse session as GlusterMakeReplicaWritableOperator reads a plan's domain: it stops
                    # it and makes its slave (the primary's volume) writable for the primary engine
                    "session": session_text(ends),
                    "master_volume": ends["master_volume"],
                    "slave_host": ends["slave_host"],
                    "slave_volume": ends["slave_volume"],
                    "slave_user": ends["slave_user"],
                    "master_ssh_conn_id": ends["master_ssh_conn_id"],
                    "slave_ssh_conn_id": ends["slave_ssh_conn_id"],
                    "mount_root": ends["mount_root"],
                }
            )
        phase, verdicts, problems = failback_phase(entries)
        target, target_problems = self._target(primary, [d["dc"] for d in domains])
        problems += target_problems
        blockers = []
        if problems:
            for p in problems:
                self.log.error("Failback: %s", p)
            if not params.dry_run:
                raise AirflowFailException("failback refused: " + "; ".join(problems))
            blockers = problems
        plan = {
            "dry_run": params.dry_run,
            "phase": phase,
            "verdicts": verdicts,
            "domains": domains,
            "secondary_domains": [d["source_name"] for d in domains],
            "running": running if phase == "sync" else None,
            "running_names": running_names,
            "sync_dags": sorted({d["pair"] for d in domains}),
            "warm_cycles": cfg.failback.warm_cycles,
            "target": target,
            "blockers": blockers,
            "warnings": [],
            "started_at": now_utc().isoformat(),
        }
        self.log.info("%s", failback_plan_text(plan))
        return plan

    def _facts(self, system: Any, name: str | None) -> dict[str, Any] | None:
        if not name:
            return None
        found = [
            sd for sd in system.storage_domains_service().list(search=f'name="{name}"') if sd.name == name
        ]
        return domain_facts(system, found[0]) if found else None

    def _target(self, system: Any, dc_names: list[str]) -> tuple[dict[str, Any], list[str]]:
        dcs = {dc.name: dc for dc in system.data_centers_service().list()}
        clusters = {c.id: c for c in system.clusters_service().list()}
        problems, hosts_by_dc = [], {}
        for h in system.hosts_service().list():
            if getattr(h.status, "value", h.status) != "up" or h.cluster is None:
                continue
            c = clusters.get(h.cluster.id)
            if c is not None and c.data_center is not None:
                hosts_by_dc.setdefault(c.data_center.id, []).append(h.name)
        up: dict[str, list[str]] = {}
        for name in dict.fromkeys(dc_names):
            dc = dcs.get(name)
            if dc is None:
                problems.append(
                    f"primary data center {name!r} does not exist (known: {', '.join(sorted(dcs))})"
                )
                continue
            up[name] = sorted(hosts_by_dc.get(dc.id, []))
            if not up[name]:
                problems.append(f"primary data center {name!r} has no host in status up")
        host = self.cfg.primary_host or next((h for names in up.values() for h in names), None)
        return {"conn_id": self.recovery.conn_id("primary"), "host": host, "up_hosts": up}, problems


# ---------------------------------------------------------------------------------------------------------
class OvirtFailbackPlanImportOperator(RecoveryOperator):
    """Step: after the final reverse cycle, read the primary volume's OVF_STORE (on the primary's Gluster
    node, through a read-only mount for the task's duration) and plan the import, registration and start
    on the primary: the failover's plan (``ovirt_dr.failover.build_plan``), for direction ``failback``.

    Started at the end: the VMs that ran on the secondary when the failback began (the final cycle wrote
    them into the OVF_STORE as down, since they were shut down for it); in a resumed run that is unknown
    and every VM is started. The recovery point is the final cycle's audit.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(direction="failback", plan_task_id=FAILBACK_PLAN_TASK, **kwargs)

    def run(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        plan = ti.xcom_pull(task_ids=self.plan_task_id)
        if not isinstance(plan, dict) or "domains" not in plan:
            raise RecoveryError(f"no failback plan from task {self.plan_task_id!r}")
        cfg = self.cfg
        inventories, domains = {}, []
        for d in plan["domains"]:
            ends = d["reverse"]
            hook = self.gluster.get(ends["slave_ssh_conn_id"])
            inv = read_replica(
                hook,
                slave_host=ends["slave_host"],
                path=d["path"],
                mount_root=ends["mount_root"],
                source_name=d["name"],
                sd_id=d.get("sd_id") or d.get("domain_id"),
                log=self.log,
            )
            vm_ids = [e["id"] for e in inv["entities"] if e["kind"] == "vm"]
            inv["vm_status"] = running_vm_status(plan.get("running"), vm_ids)
            inventories[d["source_name"]] = inv
            audit = ti.xcom_pull(task_ids=f"{final_group(d['source_name'])}.audit_replica") or {}
            rp = (
                {"recovery_point": audit["recovery_point"], "run_id": context.get("run_id")}
                if audit.get("recovery_point")
                else None
            )
            domains.append(
                {
                    **d,
                    "recovery_point": rp,
                    "recovery_point_age_s": age_seconds(rp["recovery_point"], now_utc()) if rp else None,
                }
            )
            self.log.info(
                "Primary volume %s:%s: domain %s, OVF_STORE updated %s, %d entities, %d unreadable",
                ends["slave_host"],
                d["path"],
                inv["sd_id"],
                (inv.get("ovf_store") or {}).get("last_updated"),
                len(inv["entities"]),
                len(inv["unreadable"]),
            )
        fplan = build_plan(
            domains,
            inventories,
            register_shards=cfg.register_shards,
            start_tiers=cfg.start_tiers,
            start_only_running=cfg.start_only_running,
            params={"dry_run": bool(plan.get("dry_run")), "force": False, "start_vms": True},
            guard={
                "proceed": True,
                "forced": False,
                "wait_s": 0,
                "reason": "failback: the primary was cleaned and the secondary's VMs were shut down first",
            },
            target=plan["target"],
            blockers=plan.get("blockers") or [],
        )
        fplan["phase"] = plan.get("phase")
        lines = [
            f"{len(fplan['templates'])} template(s), {len(fplan['vms'])} VM(s) to register on the primary"
        ]
        lines += [f"shard {i}: {', '.join(v['name'] for v in s)}" for i, s in enumerate(fplan["shards"])]
        lines += [f"start {t['name']}: {', '.join(t['vms'])}" for t in fplan["tiers"]]
        lines += [f"not started: {n}: {w}" for n, w in sorted(fplan["not_started"].items())]
        lines += [f"PROBLEM: {p}" for p in fplan["problems"]]
        self.log_lines(
            "Import plan" + (" (dry run: the primary volume as it is now):" if plan.get("dry_run") else ":"),
            lines,
        )
        return fplan


# ---------------------------------------------------------------------------------------------------------
class OvirtFailbackReportOperator(ReportOperator):
    """The last step (always runs): what happened to every VM, how long they were down, the reverse
    cycles' audits and the final recovery point, every step that did not succeed; XCom, an event on the
    primary engine (not in a dry run) and a mail. Fails the run if any VM or step failed (or, in a dry
    run, if a real run would be refused now)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(direction="failback", plan_task_id=FAILBACK_PLAN_TASK, **kwargs)

    def run(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        ti = context["ti"]
        run_id = context["run_id"]
        params = FailbackParams.from_context(context)
        steps, bad = step_states(context, self.dag_id, self.task_id)
        plan = ti.xcom_pull(task_ids=FAILBACK_PLAN_TASK)
        iplan = ti.xcom_pull(task_ids=IMPORT_PLAN_TASK)
        report: dict[str, Any] = {
            "run_id": run_id,
            "dry_run": params.dry_run,
            "steps": steps,
            "failed_steps": bad,
        }
        vms: list[dict[str, Any]] = []
        if isinstance(plan, dict):
            report["phase"] = plan.get("phase")
            report["blockers"] = plan.get("blockers") or []
            report["plan"] = failback_plan_text(plan)
            cycles = {}
            for d in plan["domains"]:
                name = d["source_name"]
                for k in range(1, int(plan.get("warm_cycles") or 0) + 1):
                    cycles[warm_group(k, name)] = ti.xcom_pull(
                        task_ids=f"{warm_group(k, name)}.audit_replica"
                    )
                cycles[final_group(name)] = ti.xcom_pull(task_ids=f"{final_group(name)}.audit_replica")
            report["cycles"] = cycles
        if isinstance(iplan, dict):
            reg = flatten(ti.xcom_pull(task_ids=VMS_TASK, key=OUTCOMES_KEY))
            started = flatten(ti.xcom_pull(task_ids=START_TASK, key=OUTCOMES_KEY))
            tpl = flatten(ti.xcom_pull(task_ids=TEMPLATES_TASK, key=OUTCOMES_KEY))
            vms = merge_outcomes(
                iplan["vms"],
                reg,
                started,
                dry_run=params.dry_run,
                no_register_reason=first_bad_step(steps, IMPORT_TASK, VMS_TASK),
                no_start_reason=first_bad_step(steps, IMPORT_TASK, START_TASK),
            )
            tpl_by = {o["id"]: o for o in tpl}
            report["templates"] = [
                {
                    "name": t["name"],
                    "status": "failed"
                    if (o := tpl_by.get(t["id"])) is None or o["result"] == "failed"
                    else ("planned" if params.dry_run else "registered"),
                    "reason": (o or {}).get("detail") or first_bad_step(steps, IMPORT_TASK, TEMPLATES_TASK),
                }
                for t in iplan.get("templates") or []
            ]
            report["domains"] = ti.xcom_pull(task_ids=IMPORT_TASK, key="domains") or []
            report["recovery_points"] = [
                {"domain": d["name"], "recovery_point": (d.get("recovery_point") or {}).get("recovery_point")}
                for d in iplan["domains"]
            ]
        report["vms"] = vms
        shutdown = ti.xcom_pull(task_ids=SHUTDOWN_TASK) or {}
        down_since = shutdown.get("started_at") if isinstance(shutdown, dict) else None
        report["downtime_s"] = (
            None if params.dry_run or not down_since else rto_seconds(datetime.fromisoformat(down_since), vms)
        )
        report["sync_resumed"] = ti.xcom_pull(task_ids="resume_sync")
        report["replication"] = ti.xcom_pull(task_ids="reestablish_replication")
        counts: dict[str, int] = {}
        for v in vms:
            counts[v["status"]] = counts.get(v["status"], 0) + 1
        head = "DRY RUN of failback" if params.dry_run else "Failback"
        where = (
            ", ".join(d["name"] for d in (plan or {}).get("domains") or []) if isinstance(plan, dict) else "?"
        )
        rps = "; ".join(
            f"{r['domain']} at {r['recovery_point']}"
            for r in report.get("recovery_points") or []
            if r["recovery_point"]
        )
        down = (
            f", VMs down {format_age(report['downtime_s'])}" if report.get("downtime_s") is not None else ""
        )
        report["summary"] = (
            f"{head} to {where}: "
            + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no VM")
            + down
            + (f"; final recovery point {rps}" if rps else "")
            + ("" if not bad else f"; failed: {', '.join(bad)}")
        )
        failures = [v for v in vms if v["status"] == "failed"] + [
            t for t in report.get("templates") or [] if t["status"] == "failed"
        ]
        failed = bool(failures or bad or (params.dry_run and report.get("blockers")))
        report["failed"] = failed
        self.log.info(
            "%s\n%s",
            report["summary"],
            "\n".join(f"  VM {v['name']}: {v['status']}: {v['reason']}" for v in vms),
        )
        if not params.dry_run:
            post_report_event(
                self.target_hook,
                base=FAILBACK_EVENT_BASE,
                dag_id=self.dag_id,
                run_id=run_id,
                text=report["summary"],
                failed=failed,
                log=self.log,
            )
        rows = "".join(
            f"<tr><td>{html.escape(v['name'])}</td><td>{html.escape(v['status'])}</td>"
            f"<td>{html.escape(v['reason'] or '')}</td></tr>"
            for v in vms
        )
        mail_report(
            self.smtp_conn_id,
            self.alert_emails,
            subject=f"[ovirt-dr] failback{' DRY RUN' if params.dry_run else ''} "
            f"{'FAILED' if failed else 'OK'}: {report['summary'][:150]}",
            html_body=f"<p>{html.escape(report['summary'])}</p><table><tr><th>VM</th><th>status</th>"
            f"<th>reason</th></tr>{rows}</table><pre>{html.escape(report.get('plan') or '')}</pre>",
            log=self.log,
        )
        if failed:
            ti.xcom_push(key="report", value=report)
            why = failure_reasons(failures, bad, report.get("blockers") or [], dry_run=params.dry_run)
            raise AirflowFailException(f"{report['summary']}. " + " ".join(why))
        return report


__all__ = [
    "FAILBACK_PLAN_TASK",
    "IMPORT_PLAN_TASK",
    "SHUTDOWN_TASK",
    "FailbackParams",
    "OvirtFailbackPlanImportOperator",
    "OvirtFailbackPreflightOperator",
    "OvirtFailbackReportOperator",
    "OvirtFailbackValidateOperator",
    "final_group",
    "fault_text",
    "selected",
    "warm_group",
]
