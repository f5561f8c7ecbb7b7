"""What every failover operator shares: the recovery config, the run's form values, the plan, hook sets.

Each operator takes the config file's path (a literal, never a template) and re-reads it when it runs, so
the task runs with exactly the config its DAG was parsed from. ``template_fields`` stay empty on purpose:
no config value and no name read from the replica is ever rendered as a Jinja template. Upstream results
are read with ``xcom_pull`` by task id, the form's values from ``context["params"]`` (Params are data).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ovirt_dr.form import form_domains, form_flag
from ovirt_dr.hooks.gluster import GlusterGeoRepHook, node_access
from ovirt_dr.hooks.node import GlusterNodeHook
from ovirt_dr.operators.base import HookClosingOperator
from ovirt_dr.recovery_config import Recovery, load_recovery

if TYPE_CHECKING:
    from airflow.sdk import Context

PLAN_TASK = "preflight"
VALIDATE_TASK = "validate"
WRITABLE_TASK = "make_replica_writable"
IMPORT_TASK = "import_domains"
TEMPLATES_TASK = "register_templates"
VMS_TASK = "register_vms"
START_TASK = "start_vms"
REPORT_TASK = "report"
#: XCom key under which registration / start tasks push their per-entity outcomes (also when failing).
OUTCOMES_KEY = "outcomes"
#: The DAGs that change engines and Gluster: at most one of them runs at a time (each also has
#: ``max_active_runs=1``). ``dr_mapping`` is not here: it only reads engines and writes its own file.
RECOVERY_DAG_IDS = ("dr_failover", "dr_cleanup_primary", "dr_failback", "dr_drill")


class RecoveryError(RuntimeError):
    """A failover step could not do what it must: names the domain, VM or engine."""


@dataclass(frozen=True)
class FailoverParams:
    """The trigger form's values, checked again here (a run may come from the REST API or the CLI)."""

    dry_run: bool
    force: bool
    start_vms: bool
    domains: tuple[str, ...]

    @classmethod
    def from_context(cls, context: Context) -> FailoverParams:
        params = context.get("params") or {}
        return cls(
            dry_run=form_flag(params, "dry_run", True),
            force=form_flag(params, "force", False),
            start_vms=form_flag(params, "start_vms", True),
            domains=form_domains(params),
        )


class HookSet:
    """One lazily made hook per connection id, all closed together (a failover talks to many nodes)."""

    def __init__(self, factory: Callable[[str], Any]) -> None:
        self.factory = factory
        self.hooks: dict[str, Any] = {}

    def get(self, conn_id: str) -> Any:
        if conn_id not in self.hooks:
            self.hooks[conn_id] = self.factory(conn_id)
        return self.hooks[conn_id]

    def close(self) -> None:
        for hook in self.hooks.values():
            try:
                hook.close()
            except Exception:  # closing one must not stop closing the others
                pass
        self.hooks.clear()


class RecoveryOperator(HookClosingOperator):
    """Base of the failover operators.

    :param config_path: the ovirt-dr config file (its ``recovery:`` section names the mapping file).
    :param plan_task_id: the task whose return value is the plan (the preflight).
    :param direction: ``failover`` (the target is the secondary site) or ``failback`` (the primary): the
        failback runs the same import, registration and start steps towards the primary.
    """

    hook_attrs: tuple[str, ...] = ("target_hook", "gluster")

    def __init__(
        self, *, config_path: str, plan_task_id: str = PLAN_TASK, direction: str = "failover", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if direction not in ("failover", "failback"):
            raise ValueError(f"direction must be 'failover' or 'failback', got {direction!r}")
        self.config_path = str(config_path)
        self.plan_task_id = plan_task_id
        self.direction = direction

    @property
    def target_side(self) -> str:
        """The site this recovery brings the VMs to: ``secondary`` for a failover, ``primary`` for a failback."""
        return "secondary" if self.direction == "failover" else "primary"

    @cached_property
    def recovery(self) -> Recovery:
        """The config as it is now; every problem fails the task (no retry: a file does not fix itself)."""
        from airflow.sdk.exceptions import AirflowFailException

        rec = load_recovery(self.config_path)
        if not rec.ok:
            raise AirflowFailException(
                f"the recovery config cannot be used ({len(rec.problems)} problem(s)): "
                + "; ".join(rec.problems)
            )
        return rec

    @property
    def cfg(self) -> Any:
        assert self.recovery.config is not None
        return self.recovery.config

    @cached_property
    def target_hook(self) -> Any:
        from ovirt_dr.hooks.ovirt import OvirtHook

        return OvirtHook(ovirt_conn_id=self.recovery.conn_id(self.target_side))

    @cached_property
    def gluster(self) -> HookSet:
        """One ``GlusterGeoRepHook`` per node connection; its ``.node`` is that node's access (same client)."""
        return HookSet(lambda conn_id: GlusterGeoRepHook(ssh_conn_id=conn_id))

    def node(self, conn_id: str) -> GlusterNodeHook:
        """The node access of ``conn_id`` (on the SSH client of ``self.gluster.get(conn_id)``)."""
        return self.gluster.get(conn_id).node

    def refuse_concurrent_recovery(self, context: Context) -> None:
        """Fail (without retry) while another recovery DAG has a run queued or running.

        A failover and a drill would import the same replica twice, a failback would reverse the session a
        failover is using, a cleanup would remove domains a failback is importing. Called by each recovery
        DAG's first task. Two runs that overlap in any way cannot both pass: the one that checks second
        sees the other (a run is ``queued`` from the moment it is triggered), or both see each other and
        both stop. Dry runs count too: their plan would describe a state that is changing under them.
        """
        from airflow.sdk.exceptions import AirflowFailException

        ti = context["ti"]
        busy = {}
        for dag_id in RECOVERY_DAG_IDS:
            if dag_id != self.dag_id:
                count = ti.get_dr_count(dag_id=dag_id, states=["queued", "running"])
                if count:
                    busy[dag_id] = count
        if busy:
            raise AirflowFailException(
                "another recovery is in progress: "
                + ", ".join(f"{dag_id} ({n} run(s) queued or running)" for dag_id, n in sorted(busy.items()))
                + f"; trigger {self.dag_id} again when it has ended (recovery DAGs never run side by side)"
            )
        self.log.info("No other recovery DAG is running (%s)", ", ".join(RECOVERY_DAG_IDS))

    def plan(self, context: Context) -> dict[str, Any]:
        plan = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        if not isinstance(plan, dict) or "vms" not in plan:
            raise RecoveryError(f"no plan from task {self.plan_task_id!r} (did it succeed?)")
        return plan

    def log_lines(self, title: str, lines: Sequence[str]) -> None:
        self.log.info("%s", "\n".join([title, *(f"  {line}" for line in lines)]) if lines else title)


class ReportOperator(RecoveryOperator):
    """Base of each recovery DAG's last step: who gets its mail (``alert_emails`` through
    ``smtp_conn_id``; none: no mail). The report itself is each DAG's own."""

    def __init__(
        self, *, alert_emails: list[str] | None = None, smtp_conn_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.alert_emails = list(alert_emails or [])
        self.smtp_conn_id = smtp_conn_id


@contextmanager
def mounted(
    hook: GlusterGeoRepHook | GlusterNodeHook,
    host: str,
    volume: str,
    mountpoint: str,
    *,
    read_only: bool,
    log: Any = None,
) -> Iterator[str]:
    """``GlusterNodeHook.mounted`` of either hook's node access (``log`` is unused: the hook logs)."""
    with node_access(hook).mounted(volume, host, mountpoint, read_only=read_only) as mnt:
        yield mnt


def push_outcomes(context: Context, outcomes: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    """Push a step's per-entity outcomes (XCom ``outcomes``, also when failing), then fail naming each
    failed entity; return them when none failed. ``what``: the step's result in words (``not registered``)."""
    context["ti"].xcom_push(key=OUTCOMES_KEY, value=outcomes)
    bad = [o for o in outcomes if o["result"] == "failed"]
    if bad:
        raise RecoveryError(f"{len(bad)} {what}: " + "; ".join(f"{o['name']}: {o['detail']}" for o in bad))
    return outcomes


# -- the report step: what every recovery DAG's last task does ------------------------------------------
def step_states(context: Context, dag_id: str, own_task_id: str) -> tuple[dict[str, str], list[str]]:
    """The run's other tasks and their states, and (sorted) those that did not succeed or skip."""
    run_id = context["run_id"]
    states = context["ti"].get_task_states(dag_id=dag_id, run_ids=[run_id]).get(run_id, {})
    steps = {k: v for k, v in sorted(states.items()) if k != own_task_id}
    return steps, sorted(k for k, v in steps.items() if v not in ("success", "skipped"))


def first_bad_step(steps: dict[str, str], *task_ids: str) -> str:
    """Why a step's outcome is missing: the first of ``task_ids`` (or its mapped instances) not done."""
    for t in task_ids:
        state = next((v for k, v in steps.items() if k == t or k.startswith(f"{t}_")), None)
        if state not in ("success", "skipped"):
            return f"step {t} {state or 'did not run'}"
    return "its step did not run"


def failure_reasons(
    failures: Sequence[dict[str, Any]], bad_steps: Sequence[str], blockers: Sequence[str], *, dry_run: bool
) -> list[str]:
    """The report's reasons to fail the run: failed VMs/templates (the first ten), failed steps, and in a
    dry run what would block a real run."""
    reasons = []
    if failures:
        reasons.append(
            f"{len(failures)} VM(s)/template(s) failed: "
            + "; ".join(f"{f['name']}: {f['reason']}" for f in failures[:10])
        )
    if bad_steps:
        reasons.append(f"step(s) not successful: {', '.join(bad_steps)}")
    if dry_run and blockers:
        reasons.append("a real run now would be blocked: " + "; ".join(blockers))
    return reasons


def post_report_event(
    hook: Any, *, base: int, dag_id: str, run_id: str, text: str, failed: bool, log: Any
) -> None:
    """The report as an event on an engine: ``alert`` when failed; custom id ``base`` + a hash of the run
    (the engine never merges two runs' events). Never raises: the engine may be why the run failed."""
    crc = zlib.crc32(f"{dag_id}/{run_id}".encode()) & 0xFFFF
    text = text[:900]
    try:
        event = hook.add_event(
            description=text, severity="alert" if failed else "normal", custom_id=base + 2 * crc + int(failed)
        )
        log.info("Posted event %s on the target engine: %s", event.id, text)
    except Exception:
        # still report, still fail with the real reason
        log.exception("Could not post the event on the target engine")


def mail_report(
    smtp_conn_id: str | None, to: Sequence[str], *, subject: str, html_body: str, log: Any
) -> None:
    """Mail the report (values only: the body is built with ``html.escape``, nothing is a template).
    Without recipients or an SMTP connection nothing is sent; a failed send is logged, never raised."""
    if not to or not smtp_conn_id:
        log.info("No alert_emails configured: no mail")
        return
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    try:
        with SmtpHook(smtp_conn_id=smtp_conn_id) as smtp:
            smtp.send_email_smtp(to=list(to), subject=subject, html_content=html_body)
        log.info("Mailed the report to %s", ", ".join(to))
    except Exception:
        log.exception("Could not mail the report to %s", list(to))


def window(calls: Sequence[tuple[str, Callable[[], Any]]], limit: int) -> dict[str, tuple[bool, Any]]:
    """Run SDK requests with at most ``limit`` in flight: each call sends one request (``wait=False``) and
    returns its future. Returns ``{key: (ok, result or exception)}``; one failure never stops the others.

    The SDK's futures share one connection's curl multi handle, so no threads are needed: waiting for the
    oldest future also drives the others.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    results: dict[str, tuple[bool, Any]] = {}
    in_flight: list[tuple[str, Any]] = []

    def drain_one() -> None:
        key, future = in_flight.pop(0)
        try:
            results[key] = (True, future.wait())
        except Exception as e:  # recorded per entity, the others go on
            results[key] = (False, e)

    for key, call in calls:
        if len(in_flight) >= limit:
            drain_one()
        try:
            in_flight.append((key, call()))
        except Exception as e:
            results[key] = (False, e)
    while in_flight:
        drain_one()
    return results


def fault_text(error: BaseException) -> str:
    """An SDK error as the engine put it (``fault.detail``/``reason``), else its message, on one line."""
    fault = getattr(error, "fault", None)
    detail = getattr(fault, "detail", None) or getattr(fault, "reason", None) if fault is not None else None
    text = str(detail or error)
    return " ".join(text.split())[:500]
