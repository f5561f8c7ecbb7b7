"""DR drill steps on the oVirt engines (``dr_drill``), one operator per step, each retry-safe.

The drill reuses the failover's steps where they are the same (validate, import, register templates and
VMs with the mapping file, start in tiers: ``ovirt_dr.operators.recovery_ovirt``) and adds what makes it a
drill: the sync is held still and the plan points every step at the COPY of the replica (a new domain id
and name: ``ovirt_dr.drill``); before any VM starts its vNICs are unplugged and its disks checked through
the copy against the replica; afterwards everything the drill made is removed. Only the secondary engine
is changed; the primary engine is only read (the mapping validation).
"""

from __future__ import annotations

import html
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ovirt_dr.drill import (
    CHECK_TASK,
    CLEANUP_TASK,
    COPY_TASK,
    IMPORT_TASK,
    PLAN_TASK,
    RESUME_TASK,
    START_TASK,
    TEMPLATES_TASK,
    VALIDATE_TASK,
    VMS_TASK,
    DrillParams,
    disk_verdicts,
    drill_plan,
    plan_text,
    summary,
    vm_outcomes,
)
from ovirt_dr.failover import age_seconds, build_plan, flatten, format_age, now_utc, outcome
from ovirt_dr.hooks.ovirt import status_of
from ovirt_dr.operators.drill_airflow import AirflowApiMixin, pause_and_wait, sync_states
from ovirt_dr.operators.drill_gluster import (
    georep_running,
    read_only_of,
    remove_copy,
    set_read_only,
    verify_disks,
)
from ovirt_dr.operators.recovery_base import (
    OUTCOMES_KEY,
    FailoverParams,
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
from ovirt_dr.operators.recovery_gluster import read_replica, split_path
from ovirt_dr.operators.recovery_ovirt import (
    OvirtFailoverPreflightOperator,
    OvirtFailoverValidateOperator,
    OvirtStartVmsOperator,
    selected_links,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Custom event ids of drill reports: base + a hash of the run (the engine never merges two runs' events).
DRILL_EVENT_BASE = 0x0D90000
#: What a drill's guard says: the failover's split-brain guard does not apply, production is not touched.
DRILL_GUARD = {
    "proceed": True,
    "forced": False,
    "wait_s": 0.0,
    "reason": "drill: production is not touched (a copy of the replica is imported, not the replica)",
    "probe": "not asked",
    "source_domains": [],
}


def _failover_params(params: DrillParams) -> FailoverParams:
    return FailoverParams(dry_run=params.dry_run, force=False, start_vms=True, domains=params.domains)


def _pairs(op: RecoveryOperator, params: DrillParams) -> list[str]:
    links, _ = selected_links(op.recovery, _failover_params(params))
    return sorted({link.pair.dag_id for link in links if link.pair is not None})


# ---------------------------------------------------------------------------------------------------------
class OvirtDrillValidateOperator(AirflowApiMixin, OvirtFailoverValidateOperator):
    """Step 1: the failover's validation (the mapping file against both engines, every problem at once),
    then the pairs' sync DAGs as they are now: paused or not (``resume_sync`` gives them back exactly so).

    Changes nothing, so its retries record the same. Fails without retry on a config problem.
    """

    hook_attrs = ("target_hook", "source_hook", "gluster", "airflow_api")

    def run(self, context: Context) -> dict[str, Any]:
        report = super().run(context)
        params = DrillParams.from_context(context)
        sync = sync_states(self.airflow_api, _pairs(self, params))
        for dag_id, s in sync.items():
            self.log.info(
                "Sync DAG %s: %s; running %s; queued %s",
                dag_id,
                "paused" if s["paused"] else "active",
                s["running"] or "none",
                s["queued"] or "none",
            )
        return {**report, "sync": sync}


# ---------------------------------------------------------------------------------------------------------
class OvirtDrillPreflightOperator(AirflowApiMixin, OvirtFailoverPreflightOperator):
    """Step 2: hold the sync still, then the plan.

    - pause each pair's sync DAG and wait until it runs no run (``drill.sync_dag_timeout``; a paused DAG
      finishes the run it has; a dry run pauses nothing and says what is running);
    - each replica's recovery point from the pair's asset events (read after the wait: the run that just
      finished may have made a newer one); none is a blocker (nothing known is proven);
    - geo-replication must be stopped (a replica that changes under the copy proves nothing);
    - the target engine answers with an up host in each data center, and holds nothing the drill would
      collide with: no domain on the slave volume (the replica itself, or an earlier drill's copy), no VM
      or template of the replica (it would be taken for the drill's own);
    - the replica's OVF_STORE (read on the slave node) -> the failover's plan -> the drill's plan (the
      copy's id and name everywhere, the disks and their overlays).

    A real run stops on a blocker; a dry run records them and the report fails it, naming them.
    """

    hook_attrs = ("target_hook", "source_hook", "gluster", "airflow_api")

    def run(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from ovirt_dr.sync import recovery_point_asset

        params = DrillParams.from_context(context)
        rec, cfg = self.recovery, self.cfg
        links, problems = selected_links(rec, _failover_params(params))
        if problems:
            raise AirflowFailException("; ".join(problems))
        validated = context["ti"].xcom_pull(task_ids=VALIDATE_TASK) or {}
        sync = validated.get("sync") if isinstance(validated, dict) else None
        if not isinstance(sync, dict):
            raise RecoveryError(f"no sync DAG state from task {VALIDATE_TASK!r} (did it succeed?)")
        if params.dry_run:
            for dag_id in sorted(sync):
                now = sync_states(self.airflow_api, [dag_id])[dag_id]
                self.log.info(
                    "Dry run: would pause %s (%s now) and wait for its running run(s) %s",
                    dag_id,
                    "paused" if now["paused"] else "active",
                    now["running"] or "none",
                )
        else:
            for line in pause_and_wait(
                self.airflow_api,
                sorted(sync),
                timeout=cfg.drill.sync_dag_timeout.total_seconds(),
                poll=cfg.poll_interval.total_seconds(),
                log=self.log,
            ):
                self.log.info("Sync DAG %s", line)

        blockers: list[str] = []
        target, target_problems = self._check_target(links)
        blockers += [f"target: {p}" for p in target_problems]
        now = now_utc()
        domains, inventories, read_only = [], {}, {}
        for link in links:
            s, pair = link.storage, link.pair
            assert pair is not None
            rp = self._recovery_point(context, recovery_point_asset(pair), pair.dag_id)
            age = age_seconds(rp["recovery_point"], now) if rp else None
            if rp:
                self.log.info(
                    "Domain %s: recovery point %s, %s old (run %s)",
                    s.dr_primary_name,
                    rp["recovery_point"],
                    format_age(age),
                    rp.get("run_id"),
                )
            else:
                blockers.append(
                    f"domain {s.dr_primary_name}: NO recovery point recorded by {pair.dag_id}: no sync run "
                    "has audited the replica, a drill would prove nothing known (run a sync cycle first)"
                )
            d = {
                "source_name": s.dr_primary_name,
                "name": s.dr_secondary_name,
                "dc": s.dr_secondary_dc_name,
                "address": s.dr_secondary_address,
                "path": s.dr_secondary_path,
                "vfs_type": s.dr_secondary_vfs_type or "glusterfs",
                "mount_options": s.dr_secondary_mount_options,
                "master": bool(s.dr_secondary_master_domain),
                "domain_id": s.dr_domain_id,
                "pair": pair.dag_id,
                "session": f"{pair.master_volume} -> {pair.slave_host}::{pair.slave_volume}",
                "master_volume": pair.master_volume,
                "slave_host": pair.slave_host,
                "slave_volume": pair.slave_volume,
                "slave_user": pair.slave_user,
                "master_ssh_conn_id": pair.gluster_ssh_conn_id,
                "slave_ssh_conn_id": pair.slave_ssh_conn_id,
                "mount_root": pair.mount_root,
                "recovery_point": rp,
                "recovery_point_age_s": age,
            }
            why = georep_running(self, d)
            if why:
                blockers.append(why)
            slave = self.gluster.get(pair.slave_ssh_conn_id)
            volume = split_path(d["path"])[0]
            read_only[volume] = read_only_of(slave, volume)
            inv = read_replica(
                slave,
                slave_host=d["slave_host"],
                path=d["path"],
                mount_root=d["mount_root"],
                source_name=d["source_name"],
                sd_id=d["domain_id"],
                log=self.log,
            )
            inventories[d["source_name"]] = inv
            domains.append(d)
        plan = build_plan(
            domains,
            inventories,
            register_shards=cfg.register_shards,
            start_tiers=cfg.start_tiers,
            start_only_running=cfg.start_only_running,
            params={"dry_run": params.dry_run, "force": False, "start_vms": True},
            guard=DRILL_GUARD,
            target=target,
        )
        plan = drill_plan(
            plan,
            inventories,
            run_id=context["run_id"],
            suffix=cfg.drill.name_suffix,
            sync=sync,
            read_only=read_only,
        )
        plan["blockers"] += blockers + self._collisions(plan)
        self.log.info("%s", plan_text(plan))
        if plan["blockers"] and not params.dry_run:
            raise AirflowFailException("the drill cannot run now: " + "; ".join(plan["blockers"]))
        return plan

    def _collisions(self, plan: dict[str, Any]) -> list[str]:
        """What on the target engine the drill would collide with (its own copy of this run is fine)."""
        system = self.target_hook.system
        mine = {d["sd_id"] for d in plan["domains"]}
        out = []
        paths = {(d["path"].rstrip("/"), d["replica_sd_id"], d["replica_name"]) for d in plan["domains"]}
        for sd in system.storage_domains_service().list():
            if sd.id in mine:
                continue
            storage = getattr(sd, "storage", None)
            path = (getattr(storage, "path", None) or "").rstrip("/")
            for want, replica_id, name in paths:
                if sd.id == replica_id or sd.name == name or path == want:
                    out.append(
                        f"the target engine has domain {sd.name} ({sd.id}) on {path or '?'}: the replica "
                        "itself (a failover happened?) or an earlier drill's copy; remove it first"
                    )
                    break
        if not mine & {sd.id for sd in system.storage_domains_service().list()}:
            ids = {v["id"]: v["name"] for v in plan["vms"]} | {t["id"]: t["name"] for t in plan["templates"]}
            there = [v for v in system.vms_service().list() if v.id in ids]
            there += [t for t in system.templates_service().list() if t.id in ids]
            out += [
                f"the target engine already has {ids[x.id]} ({x.id}): the drill would take it for its own"
                for x in there
            ]
        return out


# ---------------------------------------------------------------------------------------------------------
class OvirtDrillCheckVmsOperator(RecoveryOperator):
    """Step 6, the gate before any VM starts: every registered VM gets its vNICs unplugged (no duplicate MAC
    or IP on the production network), and every disk is checked: the engine runs it on the copy's overlay
    (never on a replica volume), and what the VM sees through the copy is the replica's frozen content
    (guest-view SHA-256 through the copy and on the replica, computed on the slave node).

    Pushes one outcome per VM (``step`` ``check``: ``done`` or ``failed`` with every reason) as XCom
    ``outcomes`` and the per-disk results as ``disks``; ``start_vms`` starts only VMs whose check is done.
    Fails after checking all if any VM failed, without retry (the replica does not change by trying again).
    Retry-safe (unplugging an unplugged vNIC changes nothing).
    """

    def run(self, context: Context) -> list[dict[str, Any]]:
        params = DrillParams.from_context(context)
        plan = self.plan(context)
        ti = context["ti"]
        system = self.target_hook.system
        vms_service = system.vms_service()
        current = {v.id: v for v in vms_service.list()}
        outcomes: list[dict[str, Any]] = []
        if params.dry_run:
            for vm in plan["vms"]:
                n = len(plan.get("vm_disks", {}).get(vm["id"], []))
                outcomes.append(
                    outcome(
                        vm["name"], vm["id"], "check", "planned",
                        f"would unplug its vNICs and check {n} disk(s) through the copy against the replica",
                    )
                )  # fmt: skip
            ti.xcom_push(key=OUTCOMES_KEY, value=outcomes)
            return outcomes
        nic_state: dict[str, str] = {}
        nic_problems: dict[str, list[str]] = {}
        registered: dict[str, dict[str, Any]] = {}
        for vm in plan["vms"]:
            if vm["id"] not in current:
                continue
            nic_state[vm["id"]], nic_problems[vm["id"]] = self._unplug(vms_service, vm)
            for att in vms_service.vm_service(vm["id"]).disk_attachments_service().list(follow="disk"):
                disk = att.disk
                sds = [s.id for s in (disk.storage_domains or [])] if disk is not None else []
                if disk is not None:
                    registered[disk.id] = {"image_id": disk.image_id, "sd_id": sds[0] if sds else None}
        checks: dict[str, dict[str, Any]] = {}
        for d in plan["domains"]:
            disks = [
                {"image": x["image"], "copy_volume": registered[x["image"]]["image_id"],
                 "replica_volume": x["volume"]}
                for x in d["disks"]
                if x["kind"] == "vm" and x["image"] in registered and registered[x["image"]]["image_id"]
            ]  # fmt: skip
            if not disks:
                continue
            hook = self.gluster.get(d["slave_ssh_conn_id"])
            checks.update(
                verify_disks(
                    hook,
                    d,
                    disks,
                    read_only=False,
                    timeout=self.cfg.drill.verify_timeout.total_seconds(),
                    log=self.log,
                )
            )
        copy = ti.xcom_pull(task_ids=COPY_TASK)
        verdicts = disk_verdicts(plan, copy if isinstance(copy, dict) else None, registered, checks)
        for vm in plan["vms"]:
            if vm["id"] not in current:
                outcomes.append(
                    outcome(vm["name"], vm["id"], "check", "failed", "not registered on the target")
                )
                continue
            reasons = nic_problems.get(vm["id"], []) + verdicts.get(vm["id"], [])
            if reasons:
                outcomes.append(outcome(vm["name"], vm["id"], "check", "failed", "; ".join(reasons)))
            else:
                sums = ", ".join(
                    f"{x['image'][:8]} sha256 {checks[x['image']]['copy_sha256'][:16]}"
                    for x in plan["vm_disks"].get(vm["id"], [])
                )
                outcomes.append(
                    outcome(
                        vm["name"], vm["id"], "check", "done",
                        f"{nic_state[vm['id']]}; disks as on the replica ({sums})",
                    )
                )  # fmt: skip
        ti.xcom_push(key="disks", value=checks)
        ti.xcom_push(key=OUTCOMES_KEY, value=outcomes)
        for o in outcomes:
            (self.log.error if o["result"] == "failed" else self.log.info)(
                "VM %s: %s %s", o["name"], o["result"], o["detail"]
            )
        bad = [o for o in outcomes if o["result"] == "failed"]
        if bad:
            from airflow.sdk.exceptions import AirflowFailException

            # what the replica holds does not change by trying again: no retry (an SSH or engine error
            # above raises as it is, and is retried)
            raise AirflowFailException(
                f"{len(bad)} VM(s) failed the check: " + "; ".join(f"{o['name']}: {o['detail']}" for o in bad)
            )
        return outcomes

    def _unplug(self, vms_service: Any, vm: dict[str, Any]) -> tuple[str, list[str]]:
        t = self.target_hook.types
        nics = vms_service.vm_service(vm["id"]).nics_service()
        problems: list[str] = []
        changed = 0
        listed = nics.list()
        for nic in listed:
            if nic.plugged:
                try:
                    nics.nic_service(nic.id).update(t.Nic(plugged=False))
                    changed += 1
                except Exception as e:  # recorded for this VM; it will not start
                    problems.append(f"vNIC {nic.name} could not be unplugged: {fault_text(e)}")
        still = [n.name for n in nics.list() if n.plugged]
        if still:
            problems.append(f"vNIC(s) {', '.join(still)} still plugged: not started (duplicate MAC/IP)")
        return f"{len(listed)} vNIC(s) unplugged ({changed} now)", problems


# ---------------------------------------------------------------------------------------------------------
class OvirtDrillStartVmsOperator(OvirtStartVmsOperator):
    """Step 7: the failover's start in tiers (HA first, then the tiers, then the rest, each waited until
    up), behind the gate: only VMs whose check passed are started; the others are not started, with the
    reason. Then the VMs stay up ``drill.keep_up`` (for an application check) before the cleanup.
    """

    def plan(self, context: Context) -> dict[str, Any]:
        plan = super().plan(context)
        checks = {o["id"]: o for o in flatten(context["ti"].xcom_pull(task_ids=CHECK_TASK, key=OUTCOMES_KEY))}
        ok = {vid for vid, o in checks.items() if o["result"] in ("done", "planned")}
        names = {v["name"]: v["id"] for v in plan["vms"]}
        not_started = dict(plan.get("not_started") or {})
        tiers = []
        for tier in plan.get("tiers") or []:
            keep = [n for n in tier["vms"] if names.get(n) in ok]
            for n in tier["vms"]:
                if n not in keep:
                    o = checks.get(names.get(n))
                    not_started[n] = f"its check failed: {o['detail']}" if o else "its check did not run"
            if keep:
                tiers.append({**tier, "vms": keep})
        return {**plan, "tiers": tiers, "not_started": not_started}

    def run(self, context: Context) -> list[dict[str, Any]]:
        results = super().run(context)
        keep = self.cfg.drill.keep_up
        if keep > timedelta(0) and not DrillParams.from_context(context).dry_run:
            self.log.info("Keeping the VMs up for %s before the cleanup", keep)
            time.sleep(keep.total_seconds())
        return results


# ---------------------------------------------------------------------------------------------------------
class OvirtDrillCleanupOperator(RecoveryOperator):
    """Step 8 (always runs): remove everything the drill made, and nothing else.

    Per copy domain of the plan: its VMs (only VMs with a disk on the copy: a VM of the same id elsewhere is
    never touched) powered off and removed without their disks (``detach_only``: the engine never deletes
    or wipes an image whose volumes are the replica's, by symlink); the copy deactivated, detached and
    removed WITHOUT format; then, once the engine no longer knows it, the copy's directory deleted on the
    slave node (a link is deleted, never its target) and ``features.read-only`` put back to what it was.
    Every step is tried even if an earlier one failed; the task fails at the end naming what could not be
    undone. Retry-safe: each step first reads what is left. A dry run lists what it would remove.
    """

    def run(self, context: Context) -> dict[str, Any]:
        import ovirtsdk4

        params = DrillParams.from_context(context)
        plan = context["ti"].xcom_pull(task_ids=PLAN_TASK)
        if not isinstance(plan, dict) or "domains" not in plan:
            self.log.info("No plan (the preflight did not finish): the drill made nothing to remove")
            return {"skipped": "no plan"}
        errors: list[str] = []
        result: dict[str, Any] = {
            "vms": [],
            "domains": [],
            "disks": [],
            "copies": [],
            "read_only": {},
            "errors": errors,
        }
        system = self.target_hook.system
        known = {sd.id for sd in system.storage_domains_service().list()}
        for d in plan["domains"]:
            cid = d["sd_id"]
            try:
                result["vms"] += self._vms(plan, cid, params.dry_run)
            except Exception as e:
                errors.append(f"VMs of {d['name']}: {fault_text(e)}")
            if cid in known:
                try:
                    result["domains"].append(self._domain(d, params.dry_run))
                except Exception as e:
                    errors.append(f"domain {d['name']} ({cid}): {fault_text(e)}")
            else:
                result["domains"].append(f"{d['name']} ({cid}): not on the target")
            try:
                result["disks"] += self._orphans(cid, params.dry_run)
            except Exception as e:
                errors.append(f"disks left listed for {d['name']}: {fault_text(e)}")
            try:
                still = cid in {sd.id for sd in system.storage_domains_service().list()}
            except ovirtsdk4.Error as e:
                still = True
                errors.append(f"cannot list the target's domains: {fault_text(e)}")
            slave = self.gluster.get(d["slave_ssh_conn_id"])
            volume = split_path(d["path"])[0]
            if still and not params.dry_run:
                errors.append(
                    f"copy {d['name']} ({cid}) is still known to the target engine: its files are kept "
                    "(deleting them under it would break it); remove the domain, then retry this task"
                )
            else:
                try:
                    gone = remove_copy(slave, d, dry_run=params.dry_run, log=self.log)
                    what = (
                        "not there"
                        if gone.get("absent")
                        else (
                            "would delete it"
                            if params.dry_run
                            else f"deleted ({gone.get('removed')} entries)"
                        )
                    )
                    result["copies"].append(f"{d['name']} ({cid}) on {volume}: {what}")
                except Exception as e:
                    errors.append(f"copy files of {d['name']} on {volume}: {e}")
            want = (plan.get("read_only") or {}).get(volume) or "off"
            try:
                if params.dry_run:
                    result["read_only"][volume] = f"{read_only_of(slave, volume)} (would be {want} after)"
                else:
                    result["read_only"][volume] = set_read_only(slave, volume, want)
            except Exception as e:
                errors.append(f"features.read-only of {volume} not put back to {want}: {e}")
        self.log.info(
            "Cleanup%s: VMs %s; domains %s; disk records %s; copies %s; read-only %s",
            " (dry run)" if params.dry_run else "",
            result["vms"] or "none",
            result["domains"],
            result["disks"] or "none",
            result["copies"],
            result["read_only"],
        )
        if errors:
            for e in errors:
                self.log.error("Cleanup: %s", e)
            context["ti"].xcom_push(key="cleanup", value=result)
            raise RecoveryError(f"cleanup left {len(errors)} thing(s) behind: " + "; ".join(errors))
        return result

    def _vms(self, plan: dict[str, Any], copy_id: str, dry_run: bool) -> list[str]:
        """Power off and remove (disks kept) the plan's VMs that have a disk on the copy."""
        system = self.target_hook.system
        vms_service = system.vms_service()
        ids = {v["id"] for v in plan["vms"]}
        mine = []
        for vm in vms_service.list():
            if vm.id not in ids:
                continue
            atts = vms_service.vm_service(vm.id).disk_attachments_service().list(follow="disk")
            if any(copy_id in {s.id for s in (a.disk.storage_domains or [])} for a in atts if a.disk):
                mine.append(vm)
        if dry_run:
            return [f"{vm.name}: would power off and remove" for vm in mine]
        for vm in mine:
            if status_of(vm) != "down":
                try:
                    vms_service.vm_service(vm.id).stop()
                except Exception as e:  # it may be going down already
                    self.log.info("Stop of %s: %s", vm.name, fault_text(e))
        deadline = time.monotonic() + self.cfg.tier_timeout.total_seconds()
        poll = self.cfg.poll_interval.total_seconds()
        pending = {vm.id for vm in mine}
        while pending:
            states = {v.id: status_of(v) for v in vms_service.list() if v.id in pending}
            pending = {i for i, s in states.items() if s != "down"}
            if not pending:
                break
            if time.monotonic() > deadline:
                raise RecoveryError(f"VM(s) {sorted(pending)} not down after the tier timeout")
            time.sleep(poll)
        done = []
        for vm in mine:
            vms_service.vm_service(vm.id).remove(detach_only=True)
            done.append(f"{vm.name}: powered off, removed (disks kept on the copy)")
        return done

    def _domain(self, d: dict[str, Any], dry_run: bool) -> str:
        """Deactivate, detach and remove (no format) the copy; waits as the failover's import does."""
        import ovirtsdk4

        system = self.target_hook.system
        sds = system.storage_domains_service()
        cid = d["sd_id"]
        sd = sds.storage_domain_service(cid).get()
        poll = self.cfg.poll_interval.total_seconds()
        deadline = time.monotonic() + self.cfg.import_timeout.total_seconds()
        steps = []
        for ref in sd.data_centers or []:
            attached = system.data_centers_service().data_center_service(ref.id).storage_domains_service()
            one = attached.storage_domain_service(cid)
            status = status_of(one.get())
            if dry_run:
                steps.append(f"{status}: would deactivate, detach")
                continue
            if status != "maintenance":
                if status == "active":
                    one.deactivate()
                    steps.append("deactivated")
                while status_of(one.get()) != "maintenance":
                    if time.monotonic() > deadline:
                        raise RecoveryError(
                            f"copy {d['name']} not in maintenance (still {status_of(one.get())})"
                        )
                    time.sleep(poll)
            try:
                one.remove()
                steps.append("detached")
            except ovirtsdk4.NotFoundError:
                pass
        host = (self.recovery.config.secondary_host if self.recovery.config else None) or self._host()
        if dry_run:
            return f"{d['name']} ({cid}): " + ", ".join(
                [*steps, f"would remove (no format) with host {host}"]
            )
        sds.storage_domain_service(cid).remove(host=host, format=False)
        steps.append(f"removed without format (host {host})")
        return f"{d['name']} ({cid}): " + ", ".join(steps)

    def _orphans(self, copy_id: str, dry_run: bool) -> list[str]:
        """Disk records the engine still lists for the copy once it is gone (a template's disk, as the
        engine leaves them at detach): dropped, as ``dr_cleanup_primary`` drops orphans. The domain is gone
        by then, so no image is deleted; a domain still there is left alone (its disks go with it)."""
        system = self.target_hook.system
        if copy_id in {sd.id for sd in system.storage_domains_service().list()}:
            return []
        disks = [
            d for d in system.disks_service().list() if copy_id in {s.id for s in d.storage_domains or []}
        ]
        if dry_run:
            return [f"{d.alias or d.id}: would drop the record" for d in disks]
        for d in disks:
            system.disks_service().disk_service(d.id).remove()
        return [f"{d.alias or d.id}: record dropped" for d in disks]

    def _host(self) -> str:
        up = [
            h
            for h in self.target_hook.system.hosts_service().list(search="status=up")
            if status_of(h) == "up"
        ]
        if not up:
            raise RecoveryError("no up host on the target to remove the copy with")
        return up[0].name


# ---------------------------------------------------------------------------------------------------------
class OvirtDrillReportOperator(ReportOperator):
    """Step 10 (always runs): did the replica prove recoverable, VM by VM?

    Per VM: ``passed`` (registered with the mapping, vNICs unplugged, disks as on the replica, up), or
    ``failed`` with every reason; the recovery point the drill proved and its age; the cleanup and what
    happened to the sync DAGs; every step that did not succeed. Returned as XCom, posted as an event on the
    secondary engine (not in a dry run: an event is a change) and mailed to ``alert_emails`` (built from
    values, escaped; nothing is rendered as a template). The run fails if any VM failed or any step did
    not succeed (a dry run: also if a real run would be blocked), naming the VMs.
    """

    def run(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        ti = context["ti"]
        run_id = context["run_id"]
        params = DrillParams.from_context(context)
        steps, bad_steps = step_states(context, self.dag_id, self.task_id)
        plan = ti.xcom_pull(task_ids=PLAN_TASK)
        cleanup = ti.xcom_pull(task_ids=CLEANUP_TASK) or ti.xcom_pull(task_ids=CLEANUP_TASK, key="cleanup")
        resume = ti.xcom_pull(task_ids=RESUME_TASK)
        report: dict[str, Any] = {
            "run_id": run_id,
            "dry_run": params.dry_run,
            "steps": steps,
            "failed_steps": bad_steps,
            "cleanup": cleanup,
            "sync": resume,
            "vms": [],
            "templates": [],
            "recovery_points": [],
        }
        blockers: list[str] = []
        if isinstance(plan, dict) and "vms" in plan:
            report.update(self._outcomes(context, plan, steps, params))
            blockers = list(plan.get("blockers") or [])
            report["blockers"] = blockers
            report["plan"] = plan_text(plan)
        failures = [v for v in report["vms"] if v["status"] == "failed"] + [
            t for t in report["templates"] if t["status"] == "failed"
        ]
        failed = bool(failures or bad_steps or (params.dry_run and blockers) or not isinstance(plan, dict))
        report["failed"] = failed
        report["summary"] = summary(report)
        if not isinstance(plan, dict):
            first = next((k for k in (VALIDATE_TASK, PLAN_TASK) if steps.get(k) != "success"), "a step")
            report["summary"] = (
                f"DR drill run {run_id} stopped before any change: {first} failed (see its log)"
            )
        self.log.info("%s", self._text(report))
        if params.dry_run:
            self.log.info("Dry run: no event posted on the target engine (an event is a change)")
        else:
            post_report_event(
                self.target_hook,
                base=DRILL_EVENT_BASE,
                dag_id=self.dag_id,
                run_id=run_id,
                text=report["summary"],
                failed=failed,
                log=self.log,
            )
        self._mail(report, failed)
        if failed:
            reasons = failure_reasons(failures, bad_steps, blockers, dry_run=params.dry_run)
            ti.xcom_push(key="report", value=report)
            raise AirflowFailException(f"{report['summary']}. " + " ".join(reasons))
        return report

    def _outcomes(
        self, context: Context, plan: dict[str, Any], steps: dict[str, str], params: DrillParams
    ) -> dict[str, Any]:
        ti = context["ti"]
        reg = flatten(ti.xcom_pull(task_ids=VMS_TASK, key=OUTCOMES_KEY))
        tpl = flatten(ti.xcom_pull(task_ids=TEMPLATES_TASK, key=OUTCOMES_KEY))
        checked = flatten(ti.xcom_pull(task_ids=CHECK_TASK, key=OUTCOMES_KEY))
        started = flatten(ti.xcom_pull(task_ids=START_TASK, key=OUTCOMES_KEY))
        disks = ti.xcom_pull(task_ids=CHECK_TASK, key="disks") or {}

        def first_bad(*task_ids: str) -> str:
            return first_bad_step(steps, *task_ids)

        vms = vm_outcomes(
            plan,
            reg,
            checked,
            started,
            dry_run=params.dry_run,
            no_register_reason=first_bad(COPY_TASK, IMPORT_TASK, VMS_TASK),
            no_check_reason=first_bad(CHECK_TASK),
            no_start_reason=first_bad(START_TASK),
        )
        for vm in vms:
            vm["disks"] = [
                {
                    "image": d["image"],
                    "sha256": (disks.get(d["image"]) or {}).get("copy_sha256"),
                    "replica_sha256": (disks.get(d["image"]) or {}).get("replica_sha256"),
                }
                for d in (plan.get("vm_disks") or {}).get(vm["id"], [])
            ]
        tpl_by_id = {o["id"]: o for o in tpl}
        templates = []
        for t in plan.get("templates") or []:
            o = tpl_by_id.get(t["id"])
            ok = o is not None and o["result"] != "failed"
            templates.append(
                {
                    "name": t["name"],
                    "id": t["id"],
                    "status": ("planned" if params.dry_run else "passed") if ok else "failed",
                    "reason": o["detail"] if o else first_bad(COPY_TASK, IMPORT_TASK, TEMPLATES_TASK),
                }
            )
        now = now_utc()
        rps = [
            {
                "domain": d["source_name"],
                "copy": d["name"],
                "recovery_point": (d.get("recovery_point") or {}).get("recovery_point"),
                "age_s": age_seconds((d.get("recovery_point") or {}).get("recovery_point"), now),
                "run_id": (d.get("recovery_point") or {}).get("run_id"),
            }
            for d in plan["domains"]
        ]
        return {"vms": vms, "templates": templates, "recovery_points": rps}

    @staticmethod
    def _text(report: dict[str, Any]) -> str:
        lines = [report["summary"]]
        for v in report.get("vms", []):
            lines.append(f"  VM {v['name']}: {v['status']}: {v['reason']}")
        for t in report.get("templates", []):
            lines.append(f"  template {t['name']}: {t['status']}: {t['reason']}")
        for s in report.get("failed_steps", []):
            lines.append(f"  step {s}: {report['steps'].get(s)}")
        for b in report.get("blockers", []) or []:
            lines.append(f"  BLOCKER: {b}")
        lines.append(f"  cleanup: {report.get('cleanup')}")
        lines.append(f"  sync DAGs: {report.get('sync')}")
        if report.get("plan"):
            lines.append(report["plan"])
        return "\n".join(lines)

    def _mail(self, report: dict[str, Any], failed: bool) -> None:
        state = "FAILED" if failed else ("planned" if report["dry_run"] else "PASSED")
        kind = "DR drill DRY RUN" if report["dry_run"] else "DR drill"
        rows = "".join(
            f"<tr><td>{html.escape(v['name'])}</td><td>{html.escape(v['status'])}</td>"
            f"<td>{html.escape(v['reason'] or '')}</td></tr>"
            for v in report.get("vms", [])
        )
        body = (
            f"<p>{html.escape(report['summary'])}</p>"
            f"<p>Run {html.escape(report['run_id'])}; failed steps: "
            f"{html.escape(', '.join(report['failed_steps']) or 'none')}</p>"
            f"<table><tr><th>VM</th><th>result</th><th>why</th></tr>{rows}</table>"
            f"<p>Cleanup: {html.escape(str(report.get('cleanup')))}</p>"
            f"<p>Sync DAGs: {html.escape(str(report.get('sync')))}</p>"
            f"<pre>{html.escape(report.get('plan') or '')}</pre>"
        )
        mail_report(
            self.smtp_conn_id,
            self.alert_emails,
            subject=f"[ovirt-dr] {kind} {state}: {report['summary'][:150]}",
            html_body=body,
            log=self.log,
        )


__all__ = [
    "DRILL_EVENT_BASE",
    "OvirtDrillCheckVmsOperator",
    "OvirtDrillCleanupOperator",
    "OvirtDrillPreflightOperator",
    "OvirtDrillReportOperator",
    "OvirtDrillStartVmsOperator",
    "OvirtDrillValidateOperator",
]
