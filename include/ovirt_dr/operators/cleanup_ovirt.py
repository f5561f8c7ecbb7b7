"""Cleaning a site of its mapped storage domains, one operator per step, each retry-safe.

``dr_cleanup_primary`` runs them on the old primary after a failover (it may have come back with its VMs
running); ``dr_failback`` runs the same steps on the secondary once the final reverse cycle has copied
everything back. Steps: plan (refuses any domain the mapping does not name, or that is not the mapped
one) -> power off the domains' VMs -> write the OVF_STORE while the domain is still active (and wait for
the engine to say it did) -> deactivate -> detach -> remove with ``format=false`` (never formatted, never
destroyed: the volume keeps every file) -> remove what the engine still lists for the gone domains.

Every step first reads what is there now and does only what is missing, so a retry (or a second run after
a half-done one) converges. In a dry run nothing that changes anything is sent.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ovirt_dr.cleanup import (
    DOWN_STATES,
    Side,
    build_cleanup_plan,
    cleanup_plan_text,
    domain_state,
    identity_problems,
    orphans,
    select_storages,
)
from ovirt_dr.form import form_domains, form_flag
from ovirt_dr.operators.recovery_base import (
    RecoveryError,
    RecoveryOperator,
    ReportOperator,
    failure_reasons,
    fault_text,
    mail_report,
    post_report_event,
    step_states,
    window,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

CLEANUP_PLAN_TASK = "preflight"
CLEANUP_EVENT_BASE = 0x0D90000
#: the oVirt audit log code of "OVF_STORE updated" (as the sync's OVF step waits for it)
OVF_UPDATED = 199


def _v(value: Any) -> Any:
    return getattr(value, "value", value)


@dataclass(frozen=True)
class CleanupParams:
    """The trigger form's values, checked again (a run may come from the REST API or the CLI)."""

    dry_run: bool
    force: bool
    domains: tuple[str, ...]

    @classmethod
    def from_context(cls, context: Context) -> CleanupParams:
        params = context.get("params") or {}
        return cls(
            dry_run=form_flag(params, "dry_run", True),
            force=form_flag(params, "force", False),
            domains=form_domains(params),
        )


def domain_facts(system: Any, sd: Any) -> dict[str, Any]:
    """One storage domain as plain data: identity, attachment and status per data center, and what
    lives on it (VMs with their status, registered templates, disks)."""
    storage = sd.storage
    attached = []
    dcs = system.data_centers_service()
    for ref in sd.data_centers or []:
        dc = dcs.data_center_service(ref.id)
        try:
            status = _v(dc.storage_domains_service().storage_domain_service(sd.id).get().status)
        except Exception as e:  # the DC's view of it cannot be read: say so, never guess "maintenance"
            status = f"unknown ({fault_text(e)})"
        attached.append({"dc_id": ref.id, "dc": dc.get().name, "status": status})
    sd_service = system.storage_domains_service().storage_domain_service(sd.id)
    vms = [
        {"id": v.id, "name": v.name, "status": _v(v.status)}
        for v in system.vms_service().list(search=f'storage="{sd.name}"')
    ]
    try:
        templates = [{"id": t.id, "name": t.name} for t in sd_service.templates_service().list()]
        disks = [{"id": d.id, "alias": d.alias} for d in sd_service.disks_service().list()]
    except Exception:  # an unattached domain lists nothing of its own
        templates, disks = [], []
    return {
        "id": sd.id,
        "name": sd.name,
        "type": _v(sd.type),
        "storage_type": _v(storage.type) if storage is not None else None,
        "address": storage.address if storage is not None else None,
        "path": storage.path if storage is not None else None,
        "hosted_engine": sd.name == "hosted_storage",
        "master": bool(sd.master),
        "attached": attached,
        "vms": sorted(vms, key=lambda v: v["name"]),
        "templates": templates,
        "disks": disks,
    }


class SiteCleanupOperator(RecoveryOperator):
    """Base of the cleanup steps: which site, its engine, the plan.

    :param side: ``primary`` (``dr_cleanup_primary``) or ``secondary`` (the failback's cleanup).
    :param plan_task_id: the task whose return value is the cleanup plan.
    :param names_key: the plan key listing the domain names to act on (the cleanup plan's own
        ``cleanup_domains``; the failback's plan names the secondary's as ``secondary_domains``).
    """

    hook_attrs = ("site_hook", "other_hook", "gluster")

    def __init__(
        self,
        *,
        side: Side = "primary",
        plan_task_id: str = CLEANUP_PLAN_TASK,
        names_key: str = "cleanup_domains",
        poll_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(plan_task_id=plan_task_id, **kwargs)
        if side not in ("primary", "secondary"):
            raise ValueError(f"side must be 'primary' or 'secondary', got {side!r}")
        self.side = side
        self.names_key = names_key
        self.poll_s = poll_s

    @property
    def other(self) -> Side:
        return "secondary" if self.side == "primary" else "primary"

    @cached_property
    def site_hook(self) -> Any:
        from ovirt_dr.hooks.ovirt import OvirtHook

        return OvirtHook(ovirt_conn_id=self.recovery.conn_id(self.side))

    @cached_property
    def other_hook(self) -> Any:
        from ovirt_dr.hooks.ovirt import OvirtHook

        timeout = max(1, int(self.cfg.probe_timeout.total_seconds()))
        return OvirtHook(ovirt_conn_id=self.recovery.conn_id(self.other), timeout=timeout)

    @property
    def poll(self) -> float:
        return self.poll_s if self.poll_s is not None else self.cfg.poll_interval.total_seconds()

    def cleanup_plan(self, context: Context) -> dict[str, Any]:
        plan = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        if not isinstance(plan, dict) or self.names_key not in plan:
            raise RecoveryError(f"no plan from task {self.plan_task_id!r} (did it succeed?)")
        return plan

    def names(self, context: Context) -> list[str]:
        return list(self.cleanup_plan(context)[self.names_key])

    def find(self, name: str) -> Any | None:
        system = self.site_hook.system
        found = [
            sd for sd in system.storage_domains_service().list(search=f'name="{name}"') if sd.name == name
        ]
        return found[0] if found else None

    def wait(self, what: str, done: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = done()
            if value:
                return value
            if time.monotonic() > deadline:
                raise RecoveryError(f"{self.side}: {what} not reached within {timeout:.0f}s")
            time.sleep(self.poll)


# ---------------------------------------------------------------------------------------------------------
class OvirtCleanupPreflightOperator(SiteCleanupOperator):
    """Plan the cleanup and refuse what must not be touched (before anything changes).

    - every name of the form's ``domains`` must be a mapped domain of this side (empty: all mapped ones);
    - the engine's domain of each name must be the mapped one: same path and server, a data domain, not the
      hosted engine's; any mismatch refuses the whole run, naming it;
    - with ``check_other_side`` (``dr_cleanup_primary``): the other site must run the domain (attached and
      active there, the failover's result); if it does not, or cannot tell, the run is refused unless
      ``force`` (a cleaned primary whose domain runs nowhere is an outage);
    - the up host the removals name (``recovery.<side>_host`` or the domain's data center's first).

    With ``audited_by`` (the failback: domain -> its final cycle's audit task) a domain still on the engine
    is cleaned only if that task succeeded in this run: the secondary's copy goes only once the primary's
    is proven complete.

    A dry run records the other-side refusal as a blocker instead (the report then fails it). Returns the plan.

    With ``exclusive`` (the first task of ``dr_cleanup_primary``) it first refuses while another recovery
    DAG runs; the failback's own cleanup of the secondary is inside that failback's run.
    """

    def __init__(
        self,
        *,
        check_other_side: bool = True,
        audited_by: dict[str, str] | None = None,
        exclusive: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.check_other_side = check_other_side
        self.audited_by = dict(audited_by or {}) if audited_by is not None else None
        self.exclusive = exclusive

    def run(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from ovirt_dr.validation import same_server

        if self.exclusive:
            self.refuse_concurrent_recovery(context)
        params = CleanupParams.from_context(context)
        rec = self.recovery
        assert rec.mapping is not None
        storages, refused = select_storages(rec.mapping.dr_import_storages, self.side, params.domains)
        if not storages and not refused:
            refused.append("no storage domain to clean (dr_import_storages is empty)")
        system = self.site_hook.system
        entries = []
        for s in storages:
            name = s.side(self.side, "name")
            sd = self.find(name)
            facts = domain_facts(system, sd) if sd is not None else None
            if facts is not None:
                refused += identity_problems(s, self.side, facts, same_server)
            entries.append({"name": name, "storage": s.label(), "facts": facts})
        if self.audited_by is not None and not params.dry_run:
            ti, run_id = context["ti"], context["run_id"]
            states = ti.get_task_states(dag_id=self.dag_id, run_ids=[run_id]).get(run_id, {})
            for e in entries:
                task = self.audited_by.get(e["name"])
                if e["facts"] is not None and (task is None or states.get(task) != "success"):
                    refused.append(
                        f"{self.side} domain {e['name']} is not removed: this run's final reverse cycle did not "
                        f"audit the primary's copy ({task or 'no such cycle'}: {states.get(task or '', 'not run')})"
                    )
        if refused:
            for r in refused:
                self.log.error("REFUSED: %s", r)
            raise AirflowFailException(f"cleanup of the {self.side} site refused: " + "; ".join(refused))
        blockers: list[str] = []
        other = None
        if self.check_other_side:
            other, problems = self._other_side(storages)
            self.log.info("The %s site: %s", self.other, other["summary"])
            if problems and not params.force:
                if not params.dry_run:
                    raise AirflowFailException("; ".join(problems))
                blockers += problems
            elif problems:
                self.log.warning("FORCED although: %s", "; ".join(problems))
        host = self._host(system, entries)
        plan = build_cleanup_plan(
            self.side,
            entries,
            params={"dry_run": params.dry_run, "force": params.force},
            host=host,
            other_side=other,
            blockers=blockers,
        )
        plan["cleanup_domains"] = [e["name"] for e in entries]
        self.log.info("%s", cleanup_plan_text(plan))
        return plan

    def _other_side(self, storages: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        """Is each domain attached and active at the other site? (its engine asked with a short timeout)"""
        states: dict[str, str] = {}
        problems = []
        try:
            system = self.other_hook.system
            for s in storages:
                name = s.side(self.other, "name")
                sds = [
                    sd
                    for sd in system.storage_domains_service().list(search=f'name="{name}"')
                    if sd.name == name
                ]
                facts = domain_facts(system, sds[0]) if sds else None
                states[name] = domain_state(facts)
                if states[name] != "active":
                    problems.append(
                        f"the {self.other} site does not run {name} ({states[name]}): cleaning the {self.side} "
                        f"now would leave the domain's VMs running nowhere; fail over first (dr_failover), or "
                        "trigger with force=true if they are meant to be down"
                    )
        except Exception as e:  # unreachable or unusable: nothing proves the failover happened
            problems.append(
                f"the {self.other} engine cannot tell whether it runs the domains ({fault_text(e)}): refused "
                "unless force=true"
            )
            return {"summary": f"not readable: {fault_text(e)}", "domains": states}, problems
        summary = ", ".join(f"{n} {st}" for n, st in sorted(states.items())) or "no domain"
        return {"summary": summary, "domains": states}, problems

    def _host(self, system: Any, entries: list[dict[str, Any]]) -> str | None:
        configured = self.cfg.primary_host if self.side == "primary" else self.cfg.secondary_host
        if configured:
            return configured
        hosts = [h for h in system.hosts_service().list() if _v(h.status) == "up"]
        clusters = {c.id: c for c in system.clusters_service().list()}
        wanted = {
            (e["facts"].get("attached") or [{}])[0].get("dc_id") for e in entries if e["facts"] is not None
        } - {None}
        for h in sorted(hosts, key=lambda h: h.name):
            c = clusters.get(h.cluster.id) if h.cluster is not None else None
            if not wanted or (c is not None and c.data_center is not None and c.data_center.id in wanted):
                return h.name
        return hosts[0].name if hosts else None


# ---------------------------------------------------------------------------------------------------------
class OvirtCleanupStopVmsOperator(SiteCleanupOperator):
    """Power off every VM with a disk on the domains (``stop`` with ``force``), and wait until each is down.

    With ``graceful`` (the failback, before its final cycle) the guests are asked to shut down first and
    powered off only after ``failback.shutdown_timeout``. VMs already down are left alone; every VM is
    tried, the failures are raised together. Returns ``{"vms": {name: "was STATUS -> down"}, "started_at"}``
    (when the first VM was asked to go down: the failback measures the VMs' downtime from it).
    """

    def __init__(self, *, graceful: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.graceful = graceful

    def _vms(self, names: list[str]) -> dict[str, Any]:
        vms = self.site_hook.system.vms_service()
        out = {}
        for name in names:
            for vm in vms.list(search=f'storage="{name}"'):
                out[vm.id] = vm
        return out

    def run(self, context: Context) -> dict[str, Any]:
        from ovirt_dr.failover import now_utc

        started_at = now_utc().isoformat()
        params = CleanupParams.from_context(context)
        names = self.names(context)
        vms = self._vms(names)
        running = {vid: vm for vid, vm in vms.items() if _v(vm.status) not in DOWN_STATES}
        before = {vm.name: _v(vm.status) for vm in running.values()}
        how = "shut down (then power off)" if self.graceful else "power off"
        if params.dry_run:
            self.log_lines(
                f"Dry run: would {how} on the {self.side}:", [f"{n} ({s})" for n, s in sorted(before.items())]
            )
            return {"vms": {n: f"is {s}: would {how}" for n, s in before.items()}, "started_at": None}
        if not running:
            self.log.info("Every VM on %s is down already", ", ".join(names))
            return {"vms": {}, "started_at": None}
        service = self.site_hook.system.vms_service()
        errors: dict[str, str] = {}
        if self.graceful:
            up = [vid for vid, vm in running.items() if _v(vm.status) == "up"]
            self.log.info("Shutting down %s", ", ".join(running[v].name for v in up))
            for vid, (ok, value) in window(
                [(v, lambda v=v: service.vm_service(v).shutdown(wait=False)) for v in up], 16
            ).items():
                if not ok:
                    self.log.warning("Shutdown of %s refused: %s", running[vid].name, fault_text(value))
            try:
                self.wait(
                    "every VM down after shutdown",
                    lambda: not self._still_running(set(running)),
                    self.cfg.failback.shutdown_timeout.total_seconds(),
                )
            except RecoveryError:
                self.log.warning("Not every guest shut down within the timeout: powering off the rest")
        left = self._still_running(set(running))
        if left:
            self.log.info("Powering off %s", ", ".join(running[v].name for v in left))
            for vid, (ok, value) in window(
                [(v, lambda v=v: service.vm_service(v).stop(force=True, wait=False)) for v in left], 16
            ).items():
                if not ok and vid in self._still_running({vid}):
                    errors[running[vid].name] = fault_text(value)
        waited = set(running) - {v for v in running if running[v].name in errors}
        try:
            self.wait(
                "every VM down",
                lambda: not self._still_running(waited),
                self.cfg.failback.stop_timeout.total_seconds(),
            )
        except RecoveryError as e:
            errors.update({running[v].name: str(e) for v in self._still_running(waited)})
        if errors:
            raise RecoveryError(
                f"{len(errors)} VM(s) not down: " + "; ".join(f"{n}: {w}" for n, w in errors.items())
            )
        self.log.info("Down now: %s", ", ".join(sorted(before)))
        return {"vms": {n: f"was {s} -> down" for n, s in before.items()}, "started_at": started_at}

    def _still_running(self, ids: set[str]) -> set[str]:
        current = {vm.id: _v(vm.status) for vm in self.site_hook.system.vms_service().list()}
        return {vid for vid in ids if current.get(vid, "down") not in DOWN_STATES}


# ---------------------------------------------------------------------------------------------------------
class OvirtCleanupOvfStoreOperator(SiteCleanupOperator):
    """Write each domain's OVF_STORE now, and wait until the engine reports it written (event 199).

    The Ansible role's cleanup asks for it without waiting and on domains in any state; here it is asked
    only for a domain that is active (the engine refuses it otherwise, and writes the store itself when it
    deactivates one), and its completion is the engine's event for that domain, newer than the request, so
    the store on the volume lists the VMs as they are now (down). Returns ``{domain: what happened}``.
    """

    def run(self, context: Context) -> dict[str, str]:
        params = CleanupParams.from_context(context)
        hook = self.site_hook
        out = {}
        for name in self.names(context):
            sd = self.find(name)
            if sd is None:
                out[name] = "not on the engine: nothing to write"
                continue
            state = domain_state(domain_facts(hook.system, sd))
            if state != "active":
                out[name] = (
                    f"{state}: not active, nothing to write (the engine wrote it when it deactivated it)"
                )
                continue
            if params.dry_run:
                out[name] = "active: would update its OVF_STORE and wait for the engine's event"
                continue
            last = hook.last_event_id()
            hook.update_ovf_store(sd.id)
            self.log.info(
                "Asked for the OVF_STORE of %s (%s); waiting for event %d", name, sd.id, OVF_UPDATED
            )

            def written(sd_id: str = sd.id, after: int = last) -> bool:
                return any(
                    e.code == OVF_UPDATED and e.storage_domain is not None and e.storage_domain.id == sd_id
                    for e in hook.events_since(after)
                )

            self.wait(f"OVF_STORE of {name} written", written, self.cfg.import_timeout.total_seconds())
            out[name] = "OVF_STORE written"
        self.log_lines(
            "OVF_STORE" + (" (dry run):" if params.dry_run else ":"), [f"{k}: {v}" for k, v in out.items()]
        )
        return out


# ---------------------------------------------------------------------------------------------------------
class OvirtRemoveDomainsOperator(SiteCleanupOperator):
    """Deactivate -> detach -> remove each domain, never formatting it.

    Each domain is driven from the state it is in now (active, maintenance, unattached, gone), so a retry
    continues where the last try stopped. The removal names an up host and sends ``format=false``; the
    ``destroy`` shortcut is never used. A domain whose id is not the planned one is not touched.
    Returns ``{domain: [steps done]}``.
    """

    def run(self, context: Context) -> dict[str, list[str]]:
        params = CleanupParams.from_context(context)
        plan = self.cleanup_plan(context)
        planned = {d["name"]: d.get("sd_id") for d in plan.get("domains") or []}
        host = plan.get("host")
        out = {}
        for name in self.names(context):
            out[name] = self._converge(name, planned.get(name), host, params.dry_run)
        self.log_lines(
            "Domains" + (" (dry run):" if params.dry_run else ":"),
            [f"{k}: {', '.join(v)}" for k, v in out.items()],
        )
        return out

    def _converge(self, name: str, sd_id: str | None, host: str | None, dry_run: bool) -> list[str]:
        import ovirtsdk4

        system = self.site_hook.system
        done: list[str] = []
        deadline = time.monotonic() + self.cfg.import_timeout.total_seconds()
        while True:
            sd = self.find(name)
            if sd is None:
                return done or ["not on the engine: nothing to do"]
            if sd_id and sd.id != sd_id:
                raise RecoveryError(
                    f"{self.side} domain {name} is {sd.id} now, not the planned {sd_id}: not touched"
                )
            facts = domain_facts(system, sd)
            state = domain_state(facts)
            attached = (facts["attached"] or [{}])[0]
            dc_sd = (
                system.data_centers_service()
                .data_center_service(attached["dc_id"])
                .storage_domains_service()
                .storage_domain_service(sd.id)
                if attached.get("dc_id")
                else None
            )
            if dry_run:
                steps = {"active": "deactivate, detach, ", "maintenance": "detach, "}.get(state, "")
                return [f"{state}: would {steps}remove with host {host} and format=false"]
            try:
                if state == "active":
                    running = [v["name"] for v in facts["vms"] if v["status"] not in DOWN_STATES]
                    if running:
                        raise RecoveryError(
                            f"{name}: VMs still running: {', '.join(running)} (the stop step failed?)"
                        )
                    self.log.info("Deactivating %s in %s", name, attached.get("dc"))
                    dc_sd.deactivate()
                    done.append("deactivated")
                elif state == "maintenance":
                    self.log.info("Detaching %s from %s", name, attached.get("dc"))
                    dc_sd.remove()
                    done.append("detached")
                elif state == "unattached":
                    if not host:
                        raise RecoveryError(f"{name}: no up host on the {self.side} engine to remove it with")
                    self.log.info("Removing %s (%s) with host %s, format=false", name, sd.id, host)
                    system.storage_domains_service().storage_domain_service(sd.id).remove(
                        host=host, format=False
                    )
                    done.append("removed (not formatted)")
            except ovirtsdk4.Error as e:
                # another try's request may have got there first (409 on a state that moved on): read again
                self.log.info("%s: %s refused: %s; reading its state again", name, state, fault_text(e))
            if time.monotonic() > deadline:
                raise RecoveryError(
                    f"{name} still {state} after {self.cfg.import_timeout.total_seconds():.0f}s (done: {done})"
                )
            time.sleep(self.poll)


# ---------------------------------------------------------------------------------------------------------
class OvirtRemoveOrphansOperator(SiteCleanupOperator):
    """Remove what the engine still lists for the removed domains: VMs with a disk there (removed keeping
    their disks, ``detach_only``), then disks there that no VM or template uses.

    Only for domains that are really gone from the engine (a domain still there is never touched here) and
    by id, so nothing on another domain is touched and no image on a volume is deleted.
    Returns ``{"vms": [...], "disks": [...]}`` removed (or, in a dry run, that would be).
    """

    def run(self, context: Context) -> dict[str, list[str]]:
        params = CleanupParams.from_context(context)
        plan = self.cleanup_plan(context)
        system = self.site_hook.system
        present = {sd.id for sd in system.storage_domains_service().list()}
        planned = [
            d for d in plan.get("domains") or [] if d.get("sd_id") and d["name"] in self.names(context)
        ]
        gone = [d["sd_id"] for d in planned if d["sd_id"] not in present]
        kept = [d["name"] for d in planned if d["sd_id"] in present]
        if kept and not params.dry_run:
            self.log.warning("Still on the engine, not looked at for orphans: %s", ", ".join(kept))
        if params.dry_run:
            gone = [d["sd_id"] for d in planned]  # what a real run would look at once they are removed
        found = self._orphans(system, gone)
        removed: dict[str, list[str]] = {"vms": [], "disks": []}
        if params.dry_run:
            self.log_lines(
                "Dry run: would remove (as the engine lists them now):",
                [f"VM {v['name']}" for v in found["vms"]] + [f"disk {d['alias']}" for d in found["disks"]],
            )
            return {"vms": [v["name"] for v in found["vms"]], "disks": [d["alias"] for d in found["disks"]]}
        vms = system.vms_service()
        for vm in found["vms"]:
            if vm["status"] not in DOWN_STATES:
                vms.vm_service(vm["id"]).stop(force=True)
                self.wait(f"orphan VM {vm['name']} down", lambda v=vm: self._down(v["id"]), 120)
            self.log.info("Removing orphan VM %s (%s), keeping its disks", vm["name"], vm["id"])
            vms.vm_service(vm["id"]).remove(detach_only=True)
            removed["vms"].append(vm["name"])
        if found["vms"]:
            found = self._orphans(system, gone)
        import ovirtsdk4

        disks = system.disks_service()
        for disk in found["disks"]:
            self.log.info("Removing orphan disk %s (%s) of a removed domain", disk["alias"], disk["id"])
            try:
                disks.disk_service(disk["id"]).remove()
            except ovirtsdk4.NotFoundError:
                pass  # an earlier try removed it
            except ovirtsdk4.Error as e:
                if getattr(e, "code", None) != 409:
                    raise
                # the engine says something still uses it (a template): not an orphan, kept
                self.log.warning("Kept disk %s: %s", disk["alias"], fault_text(e))
                continue
            removed["disks"].append(disk["alias"])
        self.log.info("Orphans removed: %s", removed)
        return removed

    def _down(self, vm_id: str) -> bool:
        return _v(self.site_hook.system.vms_service().vm_service(vm_id).get().status) == "down"

    @staticmethod
    def _orphans(system: Any, gone: list[str]) -> dict[str, list[dict[str, Any]]]:
        if not gone:
            return {"vms": [], "disks": []}
        vm_rows = []
        users: dict[str, list[str]] = {}
        for vm in system.vms_service().list(follow="disk_attachments.disk"):
            sd_ids = []
            for att in vm.disk_attachments or []:
                users.setdefault(att.id, []).append(vm.id)
                if att.disk is not None:
                    sd_ids += [sd.id for sd in att.disk.storage_domains or []]
            vm_rows.append({"id": vm.id, "name": vm.name, "status": _v(vm.status), "sd_ids": sd_ids})
        # a template's disk is not seen from here: the engine refuses its removal (409), which is kept as is
        disk_rows = [
            {
                "id": d.id,
                "alias": d.alias,
                "sd_ids": [sd.id for sd in d.storage_domains or []],
                "vm_ids": users.get(d.id, []),
                "template": False,
            }
            for d in system.disks_service().list()
        ]
        return orphans(gone, vm_rows, disk_rows)


# ---------------------------------------------------------------------------------------------------------
class OvirtCleanupReportOperator(SiteCleanupOperator, ReportOperator):
    """The cleanup's outcome (always runs): per domain what was done, the VMs powered off, the orphans
    removed, every step that did not succeed; as XCom, an event on the cleaned engine (not in a dry run)
    and a mail. Fails the run if a step failed (or, in a dry run, a real run would be refused now)."""

    def run(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        ti = context["ti"]
        run_id = context["run_id"]
        params = CleanupParams.from_context(context)
        steps, bad = step_states(context, self.dag_id, self.task_id)
        plan = ti.xcom_pull(task_ids=self.plan_task_id)
        results = {
            t: ti.xcom_pull(task_ids=t)
            for t in ("stop_vms", "update_ovf_store", "remove_domains", "remove_orphans")
        }
        blockers = (plan or {}).get("blockers") or [] if isinstance(plan, dict) else []
        head = f"{'DRY RUN of ' if params.dry_run else ''}cleanup of the {self.side} site"
        if not isinstance(plan, dict):
            summary = f"{head}: stopped before any change (the {self.plan_task_id} step failed: see its log)"
        else:
            done = results.get("remove_domains") or {}
            summary = f"{head}: " + "; ".join(
                f"{d['name']}: {', '.join(done.get(d['name']) or []) or d['state']}" for d in plan["domains"]
            )
        report = {
            "run_id": run_id,
            "dry_run": params.dry_run,
            "side": self.side,
            "summary": summary,
            "steps": steps,
            "failed_steps": bad,
            "blockers": blockers,
            "plan": cleanup_plan_text(plan) if isinstance(plan, dict) else None,
            **results,
        }
        failed = bool(bad or (params.dry_run and blockers))
        report["failed"] = failed
        self.log.info("%s\n%s", summary, report["plan"] or "")
        if not params.dry_run:
            post_report_event(
                self.site_hook,
                base=CLEANUP_EVENT_BASE,
                dag_id=self.dag_id,
                run_id=run_id,
                text=summary,
                failed=failed,
                log=self.log,
            )
        mail_report(
            self.smtp_conn_id,
            self.alert_emails,
            subject=f"[ovirt-dr] {'FAILED' if failed else 'OK'}: {summary[:150]}",
            html_body=f"<p>{html.escape(summary)}</p><pre>{html.escape(report.get('plan') or '')}</pre>",
            log=self.log,
        )
        if failed:
            ti.xcom_push(key="report", value=report)
            why = failure_reasons([], bad, blockers, dry_run=params.dry_run)
            raise AirflowFailException(f"{summary}. " + " ".join(why))
        return report


__all__ = [
    "CLEANUP_PLAN_TASK",
    "CleanupParams",
    "OvirtCleanupOvfStoreOperator",
    "OvirtCleanupPreflightOperator",
    "OvirtCleanupReportOperator",
    "OvirtCleanupStopVmsOperator",
    "OvirtRemoveDomainsOperator",
    "OvirtRemoveOrphansOperator",
    "domain_facts",
]
