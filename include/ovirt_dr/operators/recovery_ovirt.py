"""Failover steps on the oVirt engines (DESIGN.md "Recovery"), one operator per step, each retry-safe.

Every step first reads what is already there and does only what is missing, so a retry (or a second run
after a half-done one) converges instead of duplicating: an imported domain is not imported again, a VM
with the same id is not registered again, a VM already up or powering up is not started again. In a dry
run (the form's default) no request that changes anything is sent; each step logs what it would do and
returns it, and the report puts the whole plan together.

Only the target engine is changed. The source engine is only read, by the split-brain probe, with a short
timeout: it may be gone with its site.
"""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ovirt_dr.failover import (
    STARTED_STATES,
    SourceProbe,
    age_seconds,
    build_plan,
    flatten,
    format_age,
    merge_outcomes,
    newest_recovery_point,
    now_utc,
    outcome,
    plan_domain,
    plan_text,
    rto_seconds,
    split_brain_verdict,
    split_shards,
)
from ovirt_dr.hooks.ovirt import status_of as _status
from ovirt_dr.operators.recovery_base import (
    IMPORT_TASK,
    OUTCOMES_KEY,
    PLAN_TASK,
    REPORT_TASK,
    START_TASK,
    TEMPLATES_TASK,
    VALIDATE_TASK,
    VMS_TASK,
    WRITABLE_TASK,
    FailoverParams,
    RecoveryError,
    RecoveryOperator,
    ReportOperator,
    failure_reasons,
    fault_text,
    first_bad_step,
    mail_report,
    post_report_event,
    push_outcomes,
    step_states,
    window,
)
from ovirt_dr.operators.recovery_gluster import read_replica
from ovirt_dr.recovery_config import Recovery, StorageLink, load_recovery

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Custom event ids of failover reports: base + a hash of the run (the engine never merges two runs' events).
FAILOVER_EVENT_BASE = 0x0D80000
#: How many of a pair's newest asset events are scanned for a recovery point.
EVENTS_SCANNED = 50


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else None


def check_mapping(
    rec: Recovery, *, source: Any | None, target: Any, domains: list[str] | None
) -> dict[str, Any]:
    """The mapping file checked against the engines (``ovirt_dr.validation``), as a plain dict."""
    from ovirt_dr.validation import validate_mapping

    report = validate_mapping(rec, "failover", source=source, target=target, domains=domains)
    return report.as_dict()


def probe_source(hook: Any, names: list[str]) -> SourceProbe:
    """Ask the source engine whether the domains are still attached and active somewhere.

    Connection refused or no answer within the hook's timeout: ``unreachable``. Any other failure (an
    authentication error, an HTTP error): ``error``, which the guard does not take as proof of anything.
    """
    import ovirtsdk4

    from ovirt_dr.hooks.ovirt import OvirtError

    try:
        system = hook.system
        sds = system.storage_domains_service().list()
    except (ovirtsdk4.ConnectionError, ovirtsdk4.TimeoutError) as e:
        return SourceProbe("unreachable", fault_text(e))
    except (ovirtsdk4.Error, OvirtError) as e:
        return SourceProbe("error", f"{type(e).__name__}: {fault_text(e)}")
    try:
        by_name = {sd.name: sd for sd in sds}
        states: dict[str, str] = {}
        active = []
        dcs = system.data_centers_service()
        for name in names:
            sd = by_name.get(name)
            if sd is None:
                states[name] = "absent"
                continue
            attached = sd.data_centers or []
            if not attached:
                states[name] = "unattached"
                continue
            seen = []
            for ref in attached:
                dc = dcs.data_center_service(ref.id)
                status = _status(dc.storage_domains_service().storage_domain_service(sd.id).get()) or "?"
                dc_name = dc.get().name
                seen.append(f"{status} in {dc_name}")
                if status == "active":
                    active.append(name)
            states[name] = ", ".join(seen)
    except (ovirtsdk4.ConnectionError, ovirtsdk4.TimeoutError) as e:
        return SourceProbe("unreachable", f"stopped answering: {fault_text(e)}")
    except ovirtsdk4.Error as e:
        return SourceProbe("error", f"{type(e).__name__}: {fault_text(e)}")
    return SourceProbe("answers", "", states, tuple(sorted(set(active))))


class _SourceMixin:
    """The source engine, reached with the short probe timeout."""

    @cached_property
    def source_hook(self) -> Any:
        from ovirt_dr.hooks.ovirt import OvirtHook

        rec = self.recovery  # type: ignore[attr-defined]
        timeout = max(1, int(rec.config.probe_timeout.total_seconds()))
        return OvirtHook(ovirt_conn_id=rec.conn_id("primary"), timeout=timeout)


def selected_links(rec: Recovery, params: FailoverParams) -> tuple[list[StorageLink], list[str]]:
    """The form's domains (all when empty), master first, and every problem with the choice."""
    names = rec.domain_names("failover")
    problems = [
        f"param domains: {d!r} is not a primary domain of the mapping file (known: {', '.join(names)})"
        for d in params.domains
        if d not in names
    ]
    links = rec.links("failover", list(params.domains) or None)
    if not links:
        problems.append(
            "no storage domain to recover (dr_import_storages is empty or the choice matches none)"
        )
    for link in links:
        s = link.storage
        if link.pair is None:
            problems.append(
                f"domain {s.dr_primary_name}: no sync pair replicates it (a pair with storage_domain "
                f"{s.dr_primary_name!r} and slave_volume {str(s.dr_secondary_path or '').strip('/')!r}): "
                "the failover does not know which Gluster nodes hold its replica"
            )
    return links, problems


# ---------------------------------------------------------------------------------------------------------
class OvirtFailoverValidateOperator(_SourceMixin, RecoveryOperator):
    """Step 1: the config and the mapping file, checked against the target engine (and the source engine
    when it answers), listing EVERY problem at once. Fails (without retry) when there is any."""

    hook_attrs = ("target_hook", "source_hook", "gluster")

    def run(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        self.refuse_concurrent_recovery(context)
        params = FailoverParams.from_context(context)
        rec = load_recovery(self.config_path)
        problems = list(rec.problems)
        if rec.ok:
            _, more = selected_links(rec, params)
            problems += more
        if problems:
            for p in problems:
                self.log.error("Config problem: %s", p)
            raise AirflowFailException(
                f"{len(problems)} problem(s) in the recovery config or mapping file: " + "; ".join(problems)
            )
        self.recovery = rec
        probe = probe_source(self.source_hook, [])
        source = self.source_hook if probe.state == "answers" else None
        if source is None:
            self.log.warning("Source engine not used for validation: %s %s", probe.state, probe.detail)
        report = check_mapping(
            rec, source=source, target=self.target_hook, domains=list(params.domains) or None
        )
        for w in report.get("warnings", []):
            self.log.warning("Mapping: %s", w)
        errors = report.get("errors", [])
        if errors:
            for e in errors:
                self.log.error("Mapping: %s", e)
            raise AirflowFailException(f"the mapping file has {len(errors)} problem(s): " + "; ".join(errors))
        self.log.info("Mapping valid (%s checked)", report.get("checked"))
        return {**report, "source_used": source is not None, "source_probe": probe.state}


# ---------------------------------------------------------------------------------------------------------
class OvirtFailoverPreflightOperator(_SourceMixin, RecoveryOperator):
    """Step 2: is it safe and possible now? Then the plan.

    - the target engine answers and each target data center has an ``up`` host (the import host);
    - each domain's recovery point and its age, from the sync pair's asset events (task ``inlets``);
    - the split-brain guard (``ovirt_dr.failover.split_brain_verdict``): refuse while the source engine
      answers and still has one of the domains active, unless ``force``; when it is unreachable, wait
      ``lease_wait`` (a plain wait in this task: a failover is one run that must not go on before the
      leases expired, and the worker slot it holds is needed by nothing else then; the source is probed
      again after the wait);
    - the replica's inventory (its OVF_STORE, read on the slave node) -> the plan: domains master first,
      templates, VMs, registration shards, start tiers.

    A dry run never waits and never fails on the guard or on the target's health: it records them as
    blockers in the plan (the report then fails the dry run, naming them). Returns the plan.
    """

    hook_attrs = ("target_hook", "source_hook", "gluster")

    def run(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from ovirt_dr.sync import recovery_point_asset

        params = FailoverParams.from_context(context)
        rec, cfg = self.recovery, self.cfg
        links, problems = selected_links(rec, params)
        if problems:
            raise AirflowFailException("; ".join(problems))
        blockers: list[str] = []
        target, target_problems = self._check_target(links)
        for p in target_problems:
            self.log.error("Target: %s", p)
        if target_problems:
            if not params.dry_run:
                raise RecoveryError("target engine not ready: " + "; ".join(target_problems))
            blockers += [f"target: {p}" for p in target_problems]

        now = now_utc()
        domains = []
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
                self.log.warning(
                    "Domain %s: NO recovery point recorded by %s: no sync run has audited the replica; "
                    "it may be incomplete or inconsistent",
                    s.dr_primary_name,
                    pair.dag_id,
                )
            domains.append(plan_domain(s, pair, rp, age))

        guard = self._guard(params, [d["source_name"] for d in domains])
        context["ti"].xcom_push(key="guard", value=guard)
        self.log.info("Split-brain guard: %s", guard["reason"])
        if not guard["proceed"]:
            if not params.dry_run:
                raise AirflowFailException(guard["reason"])
            blockers.append(guard["reason"])
        elif guard["wait_s"] > 0:
            if params.dry_run:
                self.log.info("Dry run: a real run would wait %.0fs here for the leases", guard["wait_s"])
            else:
                self.log.info("Waiting %.0fs for the old hosts' storage leases to expire", guard["wait_s"])
                time.sleep(guard["wait_s"])
                again = self._guard(params, [d["source_name"] for d in domains], waited=True)
                if not again["proceed"]:
                    raise AirflowFailException("after the lease wait: " + again["reason"])
                self.log.info("After the lease wait: %s", again["reason"])

        inventories = {}
        for d in domains:
            hook = self.gluster.get(d["slave_ssh_conn_id"])
            inv = read_replica(
                hook,
                slave_host=d["slave_host"],
                path=d["path"],
                mount_root=d["mount_root"],
                source_name=d["source_name"],
                sd_id=d["domain_id"],
                log=self.log,
            )
            self.log.info(
                "Replica of %s: domain %s, OVF_STORE updated %s, %d entities, %d unreadable",
                d["source_name"],
                inv["sd_id"],
                (inv.get("ovf_store") or {}).get("last_updated"),
                len(inv["entities"]),
                len(inv["unreadable"]),
            )
            inventories[d["source_name"]] = inv
        plan = build_plan(
            domains,
            inventories,
            register_shards=cfg.register_shards,
            start_tiers=cfg.start_tiers,
            start_only_running=cfg.start_only_running,
            params={"dry_run": params.dry_run, "force": params.force, "start_vms": params.start_vms},
            guard=guard,
            target=target,
            blockers=blockers,
        )
        self.log.info("%s", plan_text(plan))
        return plan

    def _guard(self, params: FailoverParams, names: list[str], waited: bool = False) -> dict[str, Any]:
        if waited:  # probe with a fresh session: the old one may have died with the engine
            self.source_hook.close()
        probe = probe_source(self.source_hook, names)
        self.log.info("Source engine: %s %s %s", probe.state, probe.detail, probe.domains or "")
        lease_wait = timedelta(0) if waited else self.cfg.lease_wait
        guard = split_brain_verdict(probe, force=params.force, lease_wait=lease_wait)
        return {**guard.as_dict(), "probe": probe.state, "source_domains": probe.domains}

    def _recovery_point(self, context: Context, asset: Any, dag_id: str) -> dict[str, Any] | None:
        events = context["inlet_events"][asset]
        if hasattr(events, "ascending"):
            events = events.ascending(False).limit(EVENTS_SCANNED)
        return newest_recovery_point(list(events), dag_id)

    def _check_target(self, links: list[StorageLink]) -> tuple[dict[str, Any], list[str]]:
        """The target engine's data centers and up hosts; problems are named, never raised here."""
        hook = self.target_hook
        system = hook.system
        dcs = {dc.name: dc for dc in system.data_centers_service().list()}
        clusters = {c.id: c for c in system.clusters_service().list()}
        hosts = [h for h in system.hosts_service().list(search="status=up") if _status(h) == "up"]
        problems: list[str] = []
        up_by_dc: dict[str, list[str]] = {}
        for h in hosts:
            c = clusters.get(h.cluster.id) if h.cluster is not None else None
            dc_id = c.data_center.id if c is not None and c.data_center is not None else None
            up_by_dc.setdefault(dc_id or "?", []).append(h.name)
        needed = []
        for link in links:
            dc_name = link.storage.dr_secondary_dc_name
            if dc_name not in needed:
                needed.append(dc_name)
        dc_hosts: dict[str, list[str]] = {}
        for dc_name in needed:
            dc = dcs.get(dc_name)
            if dc is None:
                problems.append(f"data center {dc_name!r} does not exist (known: {', '.join(sorted(dcs))})")
                continue
            dc_hosts[dc_name] = sorted(up_by_dc.get(dc.id, []))
            if not dc_hosts[dc_name]:
                problems.append(f"data center {dc_name!r} has no host in status up")
        host = self.cfg.secondary_host
        first_dc = needed[0] if needed else None
        if host:
            if not any(host in names for names in dc_hosts.values()):
                problems.append(f"recovery.secondary_host {host!r} is not an up host of {', '.join(needed)}")
        else:
            host = (dc_hosts.get(first_dc) or [None])[0] if first_dc else None
        self.log.info("Target engine: data centers %s, up hosts %s, import host %s", needed, dc_hosts, host)
        return {"conn_id": self.recovery.conn_id("secondary"), "host": host, "up_hosts": dc_hosts}, problems


# ---------------------------------------------------------------------------------------------------------
class OvirtImportDomainsOperator(RecoveryOperator):
    """Step 4: import each domain (master first), attach it to its mapped data center, wait until active.

    Per domain, what is already done is skipped: a domain the target already has (same id) is not imported
    again; attached to its data center it is not attached again; in maintenance it is activated. A domain
    of that name with another id, or attached to another data center, is an error. Domains go one after
    the other: the data center's master domain must be active before the others attach.

    Returns the registration shards (the mapped ``register_vms`` task expands over them); the per-domain
    results are pushed as XCom ``domains``.
    """

    def __init__(self, *, poll_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poll_s = poll_s

    def run(self, context: Context) -> list[list[dict[str, Any]]]:
        params = FailoverParams.from_context(context)
        plan = self.plan(context)
        host = (plan.get("target") or {}).get("host")
        results = []
        for d in plan["domains"]:
            results.append(self._converge(d, host, params.dry_run))
        context["ti"].xcom_push(key="domains", value=results)
        self.log_lines(
            "Domains " + ("(dry run):" if params.dry_run else "now:"),
            [f"{r['name']} ({r['sd_id']}): {r['result']}" for r in results],
        )
        shards = plan.get("shards") or []
        self.log.info("%d VM(s) to register in %d shard(s)", sum(len(s) for s in shards), len(shards))
        return shards

    def _converge(self, d: dict[str, Any], host: str | None, dry_run: bool) -> dict[str, Any]:
        import ovirtsdk4

        t = self.target_hook.types
        system = self.target_hook.system
        sds = system.storage_domains_service()
        sd_id, name, dc_name = d["sd_id"], d["name"], d["dc"]
        try:
            sd = sds.storage_domain_service(sd_id).get()
        except ovirtsdk4.NotFoundError:
            sd = None
        same_name = [x for x in sds.list(search=f'name="{name}"') if x.name == name and x.id != sd_id]
        if same_name:
            raise RecoveryError(
                f"domain {name}: the target already has a domain of that name with another id "
                f"({same_name[0].id}, not the replica's {sd_id}); rename one of them"
            )
        dcs = [x for x in system.data_centers_service().list(search=f'name="{dc_name}"') if x.name == dc_name]
        if not dcs:
            raise RecoveryError(f"domain {name}: data center {dc_name!r} does not exist on the target")
        dc = dcs[0]
        dc_sds = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
        steps: list[str] = []
        if sd is None:
            if not host:
                raise RecoveryError(f"domain {name}: no up host to import it with")
            steps.append(f"import from {d['address']}:{d['path']} with host {host}")
            if dry_run:
                return self._result(
                    d, "would " + ", then ".join([*steps, f"attach to {dc_name}", "wait active"])
                )
            self.log.info(
                "Importing %s (%s) from %s:%s with host %s", name, sd_id, d["address"], d["path"], host
            )
            sd = sds.add(
                t.StorageDomain(
                    id=sd_id,
                    name=name,
                    type=t.StorageDomainType.DATA,
                    import_=True,
                    host=t.Host(name=host),
                    storage=t.HostStorage(
                        type=t.StorageType.GLUSTERFS,
                        address=d["address"],
                        path=d["path"],
                        vfs_type=d["vfs_type"],
                        mount_options=d.get("mount_options"),
                    ),
                )
            )
        attached = [ref.id for ref in (sd.data_centers or [])]
        if attached and dc.id not in attached:
            raise RecoveryError(
                f"domain {name}: attached to another data center ({attached}), not {dc_name}: detach it there first"
            )
        if not attached:
            steps.append(f"attach to {dc_name}")
            if dry_run:
                return self._result(d, "imported already; would " + ", then ".join([*steps, "wait active"]))
            self.log.info("Attaching %s to data center %s", name, dc_name)
            try:
                dc_sds.add(t.StorageDomain(id=sd_id))
            except ovirtsdk4.Error as e:
                # a retry after a kill between the POST and its answer: attached already is what we want
                if "already attached" not in fault_text(e).lower():
                    raise
        service = dc_sds.storage_domain_service(sd_id)
        status = _status(service.get())
        if dry_run:
            what = (
                "already active: nothing to do"
                if status == "active"
                else f"{status}: would activate, wait active"
            )
            return self._result(d, what)
        timeout = self.cfg.import_timeout.total_seconds()
        poll = self.poll_s if self.poll_s is not None else self.cfg.poll_interval.total_seconds()
        # After an attach the engine activates the domain by itself (locked -> maintenance -> activating ->
        # active); it is activated here only when it sits in maintenance (found so, or left there).
        just_attached = "attach" in " ".join(steps)
        in_maintenance_since: float | None = None

        def activate_if_left_in_maintenance(status: str | None) -> None:
            nonlocal in_maintenance_since
            if status != "maintenance":
                in_maintenance_since = None
                return
            in_maintenance_since = in_maintenance_since or time.monotonic()
            settled = not just_attached or time.monotonic() - in_maintenance_since > 10 * poll
            if settled and "activate" not in steps:
                self.log.info("%s is in maintenance: activating", name)
                try:
                    service.activate()
                except ovirtsdk4.Error as e:  # it moved on by itself meanwhile (409): keep waiting
                    self.log.info("Activate of %s refused (%s): waiting", name, fault_text(e))
                steps.append("activate")

        status = self.target_hook.wait_attached_domain(
            dc.id, sd_id, "active", timeout, poll, on_status=activate_if_left_in_maintenance
        )
        if status != "active":
            raise RecoveryError(f"domain {name} still {status} in {dc_name} after {timeout:.0f}s")
        self.log.info("%s is active in %s", name, dc_name)
        return self._result(d, ", ".join([*steps, "active"]) if steps else "already active")

    @staticmethod
    def _result(d: dict[str, Any], result: str) -> dict[str, Any]:
        return {"name": d["name"], "sd_id": d["sd_id"], "dc": d["dc"], "result": result}


# ---------------------------------------------------------------------------------------------------------
def _registration_kwargs(rec: Recovery, direction: Any = "failover") -> dict[str, Any]:
    cfg = rec.config
    assert cfg is not None and rec.mapping is not None
    return {
        "allow_partial_import": cfg.allow_partial_import,
        "reassign_bad_macs": cfg.reassign_bad_macs,
        "registration_configuration": rec.mapping.registration_configuration(direction),
    }


def _register_all(
    op: RecoveryOperator, kind: str, items: list[dict[str, Any]], dry_run: bool
) -> list[dict[str, Any]]:
    """Register ``items`` (``{"id", "name", "sd_id", "domain"}``) of ``kind`` (``vms``/``templates``) with
    every mapping, at most ``register_concurrency`` at once; skip what the target already has (same id).
    Every failure is recorded with the engine's reason and the others still go on.
    """
    import ovirtsdk4

    system = op.target_hook.system
    coll = system.vms_service() if kind == "vms" else system.templates_service()
    step = "register" if kind == "vms" else "register_template"
    current = {x.id: x for x in coll.list()}
    names = {x.name: x.id for x in current.values()}
    sds = system.storage_domains_service()
    unregistered: dict[str, set[str]] = {}
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for item in items:
        if item["id"] in current:
            results[item["id"]] = outcome(
                item["name"], item["id"], step, "skipped", "already registered (same id)"
            )
            continue
        if item["name"] in names:
            results[item["id"]] = outcome(
                item["name"],
                item["id"],
                step,
                "failed",
                f"the target already has another {kind[:-1]} named {item['name']!r} ({names[item['name']]})",
            )
            continue
        if dry_run:
            results[item["id"]] = outcome(
                item["name"],
                item["id"],
                step,
                "planned",
                f"would register from {item['domain']} with the mapping",
            )
            continue
        if item["sd_id"] not in unregistered:
            service = getattr(sds.storage_domain_service(item["sd_id"]), f"{kind}_service")()
            try:
                unregistered[item["sd_id"]] = {x.id for x in service.list(unregistered=True)}
            except ovirtsdk4.NotFoundError:
                unregistered[item["sd_id"]] = set()
        if item["id"] not in unregistered[item["sd_id"]]:
            results[item["id"]] = outcome(
                item["name"],
                item["id"],
                step,
                "failed",
                f"not among the unregistered {kind} the target engine read from {item['domain']}'s OVF_STORE",
            )
            continue
        todo.append(item)
    kwargs = _registration_kwargs(op.recovery, op.direction)
    by_id = {i["id"]: i for i in todo}

    def call(item: dict[str, Any]) -> Any:
        domain = sds.storage_domain_service(item["sd_id"])
        entity = getattr(domain, f"{kind}_service")()
        service = entity.vm_service(item["id"]) if kind == "vms" else entity.template_service(item["id"])
        op.log.info("Registering %s %s (%s) from %s", kind[:-1], item["name"], item["id"], item["domain"])
        return service.register(wait=False, **kwargs)

    answers = window([(i["id"], lambda i=i: call(i)) for i in todo], op.cfg.register_concurrency)
    failed = [vid for vid, (ok, _) in answers.items() if not ok]
    now_there = {x.id for x in coll.list()} if failed else set()
    for vid, (ok, value) in answers.items():
        item = by_id[vid]
        if ok:
            results[vid] = outcome(item["name"], vid, step, "done", "registered with the mapping")
        elif vid in now_there:
            # an earlier try's request, still in flight when it died, registered it meanwhile
            results[vid] = outcome(item["name"], vid, step, "skipped", "registered by an earlier attempt")
        else:
            results[vid] = outcome(item["name"], vid, step, "failed", fault_text(value))
    out = [results[i["id"]] for i in items]
    for o in out:
        log = op.log.error if o["result"] == "failed" else op.log.info
        log("%s %s: %s %s", kind[:-1], o["name"], o["result"], o["detail"])
    return out


class OvirtRegisterTemplatesOperator(RecoveryOperator):
    """Step 5a: register the replica's templates before the VMs (a VM based on a template needs it).

    Pushes the outcomes as XCom ``outcomes`` and fails (after trying every template) if any failed.
    """

    def run(self, context: Context) -> list[dict[str, Any]]:
        params = FailoverParams.from_context(context)
        plan = self.plan(context)
        out = _register_all(self, "templates", list(plan.get("templates") or []), params.dry_run)
        return push_outcomes(context, out, "template(s) not registered")


class OvirtRegisterVmsOperator(RecoveryOperator):
    """Step 5b: register one shard of VMs (a mapped task instance per shard), ``register_concurrency``
    requests in flight at once, with every mapping of the mapping file.

    A VM already registered (same id) is skipped, so a retry registers only what is missing; a VM that
    fails does not stop the others: every VM of the shard is tried, the outcomes are pushed (XCom
    ``outcomes``), then the task fails naming the failed VMs.

    :param shard: ``[{"id", "name", "sd_id", "domain"}]`` (expanded from the import step's return value).
    """

    def __init__(self, *, shard: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard = list(shard or [])

    def run(self, context: Context) -> list[dict[str, Any]]:
        params = FailoverParams.from_context(context)
        self.log.info("Shard of %d VM(s): %s", len(self.shard), ", ".join(v["name"] for v in self.shard))
        out = _register_all(self, "vms", self.shard, params.dry_run)
        return push_outcomes(context, out, "VM(s) not registered")


# ---------------------------------------------------------------------------------------------------------
class OvirtStartVmsOperator(RecoveryOperator):
    """Step 6: start the registered VMs tier by tier (HA first, then ``start_tiers``, then the rest).

    Each tier is started at once and waited until every VM is ``up``, for at most ``tier_timeout``; then the
    next tier starts, whatever happened (a VM that failed does not hold the others back). A VM already up or
    powering up is not started again (a retry starts only what is still down). With ``start_only_running``
    only the VMs that were running at the source (the OVF_STORE's "VM Status") are started. Runs even when
    some registration failed, and starts what registered. ``start_vms=false`` skips the step.
    """

    def __init__(self, *, poll_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poll_s = poll_s

    def run(self, context: Context) -> list[dict[str, Any]]:
        from airflow.sdk.exceptions import AirflowSkipException

        params = FailoverParams.from_context(context)
        plan = self.plan(context)
        if not params.start_vms:
            raise AirflowSkipException("start_vms=false: the VMs stay registered and down")
        by_name = {v["name"]: v for v in plan["vms"]}
        results: list[dict[str, Any]] = []
        for name, why in sorted((plan.get("not_started") or {}).items()):
            results.append(outcome(name, by_name[name]["id"], "start", "not_started", why))
        for tier in plan.get("tiers") or []:
            vms = [by_name[n] for n in tier["vms"]]
            results += self._tier(tier["name"], vms, params.dry_run)
        return push_outcomes(context, results, "VM(s) not up")

    def _states(self) -> dict[str, Any]:
        return {vm.id: vm for vm in self.target_hook.system.vms_service().list()}

    def _tier(self, tier: str, vms: list[dict[str, Any]], dry_run: bool) -> list[dict[str, Any]]:
        vms_service = self.target_hook.system.vms_service()
        current = self._states()
        results: dict[str, dict[str, Any]] = {}
        to_start, waiting = [], []
        for vm in vms:
            found = current.get(vm["id"])
            status = _status(found) if found is not None else None
            if dry_run:
                what = (
                    f"would start in tier {tier} and wait until up"
                    if status in (None, "down")
                    else f"is {status}: would not start it again"
                )
                results[vm["id"]] = outcome(vm["name"], vm["id"], "start", "planned", what)
            elif found is None:
                results[vm["id"]] = outcome(
                    vm["name"], vm["id"], "start", "failed", "not registered on the target"
                )
            elif status in STARTED_STATES:
                waiting.append(vm)
            elif status == "down":
                to_start.append(vm)
            else:
                results[vm["id"]] = outcome(
                    vm["name"], vm["id"], "start", "failed", f"is {status}, not down: not started"
                )
        if dry_run:
            self.log.info("Tier %s (dry run): %s", tier, ", ".join(v["name"] for v in vms))
            return [results[v["id"]] for v in vms]
        self.log.info(
            "Tier %s: starting %s; already running: %s",
            tier,
            ", ".join(v["name"] for v in to_start) or "-",
            ", ".join(v["name"] for v in waiting) or "-",
        )
        answers = window(
            [(v["id"], lambda v=v: vms_service.vm_service(v["id"]).start(wait=False)) for v in to_start],
            max(1, len(to_start)),
        )
        started_now = set()
        for vid, (ok, value) in answers.items():
            if ok:
                started_now.add(vid)
            else:
                vm = next(v for v in to_start if v["id"] == vid)
                results[vid] = outcome(
                    vm["name"], vid, "start", "failed", f"start refused: {fault_text(value)}"
                )
        pending = [v for v in to_start + waiting if v["id"] not in results]
        timeout = self.cfg.tier_timeout.total_seconds()
        poll = self.poll_s if self.poll_s is not None else self.cfg.poll_interval.total_seconds()
        final = (
            self.target_hook.wait_vms([v["id"] for v in pending], "up", STARTED_STATES, timeout, poll)
            if pending
            else {}
        )
        for vm in pending:
            vid = vm["id"]
            status, found = final[vid]
            if status == "up":
                up_at = _iso(getattr(found, "start_time", None)) or now_utc().isoformat()
                how = "started, up" if vid in started_now else "was already running, up"
                results[vid] = outcome(
                    vm["name"], vid, "start", "done" if vid in started_now else "skipped", how, up_at
                )
                self.log.info("%s is up (tier %s)", vm["name"], tier)
            elif status not in STARTED_STATES:
                results[vid] = outcome(vm["name"], vid, "start", "failed", f"went {status} instead of up")
            else:
                results[vid] = outcome(
                    vm["name"],
                    vid,
                    "start",
                    "failed",
                    f"not up within tier_timeout {timeout:.0f}s (still {status})",
                )
        return [results[v["id"]] for v in vms]


# ---------------------------------------------------------------------------------------------------------
class OvirtFailoverReportOperator(ReportOperator):
    """Step 7 (always runs): what happened, for every VM, and how long it took.

    RTO (run start -> last VM up), the recovery point(s) used and their age, each VM's outcome with its
    reason, the templates', and every step that did not succeed. Returned as XCom, posted as an event on
    the target engine (not in a dry run: an event is a change) and mailed to ``alert_emails``. Then the run
    fails if any VM failed or any step failed (or, in a dry run, if a real run would be blocked), so
    Airflow's own failure shows it.
    """

    def run(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        ti = context["ti"]
        run_id = context["run_id"]
        params = FailoverParams.from_context(context)
        steps, bad_steps = step_states(context, self.dag_id, self.task_id)
        plan = ti.xcom_pull(task_ids=PLAN_TASK)
        guard = ti.xcom_pull(task_ids=PLAN_TASK, key="guard")
        report: dict[str, Any] = {
            "run_id": run_id,
            "dry_run": params.dry_run,
            "force": params.force,
            "steps": steps,
            "failed_steps": bad_steps,
            "guard": guard,
        }
        if not isinstance(plan, dict):
            first = next(
                (k for k in (VALIDATE_TASK, PLAN_TASK) if steps.get(k) not in ("success", None)), None
            )
            why = (guard or {}).get("reason") if first == PLAN_TASK and guard else None
            report.update({"vms": [], "templates": [], "rto_s": None, "recovery_points": []})
            summary = f"failover run {run_id} stopped before any change: {first or 'a step'} failed" + (
                f": {why}" if why else " (see its log)"
            )
        else:
            report.update(self._outcomes(context, plan, steps, params))
            summary = self._summary(report, plan)
        report["summary"] = summary
        self.log.info("%s", self._text(report))
        failures = [v for v in report["vms"] if v["status"] == "failed"] + [
            t for t in report["templates"] if t["status"] == "failed"
        ]
        blockers = (plan.get("blockers") or []) if isinstance(plan, dict) else []
        failed = bool(failures or bad_steps or (params.dry_run and blockers))
        report["failed"] = failed
        if not params.dry_run:
            post_report_event(
                self.target_hook,
                base=FAILOVER_EVENT_BASE,
                dag_id=self.dag_id,
                run_id=run_id,
                text=summary,
                failed=failed,
                log=self.log,
            )
        else:
            self.log.info("Dry run: no event posted on the target engine (an event is a change)")
        self._mail(report, failed)
        if failed:
            reasons = failure_reasons(failures, bad_steps, blockers, dry_run=params.dry_run)
            ti.xcom_push(key="report", value=report)
            raise AirflowFailException(f"{summary}. " + " ".join(reasons))
        return report

    def _outcomes(
        self, context: Context, plan: dict[str, Any], steps: dict[str, str], params: FailoverParams
    ) -> dict[str, Any]:
        ti = context["ti"]
        reg = flatten(ti.xcom_pull(task_ids=VMS_TASK, key=OUTCOMES_KEY))
        tpl = flatten(ti.xcom_pull(task_ids=TEMPLATES_TASK, key=OUTCOMES_KEY))
        started = flatten(ti.xcom_pull(task_ids=START_TASK, key=OUTCOMES_KEY))
        domains = ti.xcom_pull(task_ids=IMPORT_TASK, key="domains") or []
        writable = ti.xcom_pull(task_ids=WRITABLE_TASK) or []

        def first_bad(*task_ids: str) -> str:
            return first_bad_step(steps, *task_ids)

        start_state = steps.get(START_TASK)
        if start_state == "skipped" and not params.start_vms:
            no_start = "start_vms=false"
        else:
            no_start = first_bad(WRITABLE_TASK, IMPORT_TASK, TEMPLATES_TASK, START_TASK)
        vms = merge_outcomes(
            plan["vms"],
            reg,
            started,
            dry_run=params.dry_run,
            no_register_reason=first_bad(WRITABLE_TASK, IMPORT_TASK, VMS_TASK),
            no_start_reason=no_start,
        )
        for u in plan.get("unreadable") or []:
            vms.append(
                {
                    "name": f"(unreadable OVF {u['id']})",
                    "id": u["id"],
                    "domain": u["domain"],
                    "ha": False,
                    "status": "failed",
                    "reason": f"its OVF in the replica's OVF_STORE cannot be read: {u['why']}",
                    "up_at": None,
                }
            )
        tpl_by_id = {o["id"]: o for o in tpl}
        templates = []
        for t in plan.get("templates") or []:
            o = tpl_by_id.get(t["id"])
            status = (
                "failed"
                if o is None or o["result"] == "failed"
                else ("planned" if params.dry_run else "registered")
            )
            templates.append(
                {
                    "name": t["name"],
                    "id": t["id"],
                    "status": status,
                    "reason": o["detail"] if o else first_bad(WRITABLE_TASK, IMPORT_TASK, TEMPLATES_TASK),
                }
            )
        dag_run = context.get("dag_run")
        start = getattr(dag_run, "start_date", None)
        now = now_utc()
        rps = [
            {
                "domain": d["source_name"],
                "recovery_point": (d.get("recovery_point") or {}).get("recovery_point"),
                "age_s": age_seconds((d.get("recovery_point") or {}).get("recovery_point"), now),
                "run_id": (d.get("recovery_point") or {}).get("run_id"),
            }
            for d in plan["domains"]
        ]
        return {
            "vms": vms,
            "templates": templates,
            "domains": domains,
            "replica": writable,
            "recovery_points": rps,
            "run_start": _iso(start),
            "rto_s": None if params.dry_run else rto_seconds(start, vms),
            "blockers": plan.get("blockers") or [],
            "plan": plan_text(plan),
        }

    @staticmethod
    def _summary(report: dict[str, Any], plan: dict[str, Any]) -> str:
        counts: dict[str, int] = {}
        for v in report["vms"]:
            counts[v["status"]] = counts.get(v["status"], 0) + 1
        parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no VM"
        rps = "; ".join(
            f"{r['domain']} at {r['recovery_point']} ({format_age(r['age_s'])} old)"
            if r["recovery_point"]
            else f"{r['domain']}: NO recovery point"
            for r in report["recovery_points"]
        )
        head = "DRY RUN of failover" if report["dry_run"] else "Failover"
        rto = f", RTO {report['rto_s']:.0f}s" if report.get("rto_s") is not None else ""
        return (
            f"{head} to {', '.join(d['name'] for d in plan['domains'])}: {parts}{rto}; recovery point {rps}"
        )

    @staticmethod
    def _text(report: dict[str, Any]) -> str:
        lines = [report["summary"]]
        for v in report.get("vms", []):
            lines.append(
                f"  VM {v['name']}: {v['status']}: {v['reason']}"
                + (f" (up at {v['up_at']})" if v.get("up_at") else "")
            )
        for t in report.get("templates", []):
            lines.append(f"  template {t['name']}: {t['status']}: {t['reason']}")
        for s in report.get("failed_steps", []):
            lines.append(f"  step {s}: {report['steps'].get(s)}")
        for b in report.get("blockers", []) or []:
            lines.append(f"  BLOCKER: {b}")
        if report.get("plan"):
            lines.append(report["plan"])
        return "\n".join(lines)

    def _mail(self, report: dict[str, Any], failed: bool) -> None:
        state = "FAILED" if failed else "OK"
        kind = "failover DRY RUN" if report["dry_run"] else "failover"
        subject = f"[ovirt-dr] {kind} {state}: {report['summary'][:150]}"
        rows = "".join(
            f"<tr><td>{html.escape(v['name'])}</td><td>{html.escape(v['status'])}</td>"
            f"<td>{html.escape(v['reason'] or '')}</td><td>{html.escape(v.get('up_at') or '')}</td></tr>"
            for v in report.get("vms", [])
        )
        body = (
            f"<p>{html.escape(report['summary'])}</p>"
            f"<p>Run {html.escape(report['run_id'])}; failed steps: {html.escape(', '.join(report['failed_steps']) or 'none')}</p>"
            f"<table><tr><th>VM</th><th>status</th><th>reason</th><th>up at</th></tr>{rows}</table>"
            f"<pre>{html.escape(report.get('plan') or '')}</pre>"
        )
        mail_report(self.smtp_conn_id, self.alert_emails, subject=subject, html_body=body, log=self.log)


__all__ = [
    "REPORT_TASK",
    "OvirtFailoverPreflightOperator",
    "OvirtFailoverReportOperator",
    "OvirtFailoverValidateOperator",
    "OvirtImportDomainsOperator",
    "OvirtRegisterTemplatesOperator",
    "OvirtRegisterVmsOperator",
    "OvirtStartVmsOperator",
    "check_mapping",
    "probe_source",
    "split_shards",
]
