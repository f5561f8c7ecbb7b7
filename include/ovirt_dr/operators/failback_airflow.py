"""Failback steps on Airflow itself: hold the pair's sync DAG still, let a reverse cycle run or skip it,
unpause the sync DAG once replication is re-established.

The sync DAG is paused and resumed through Airflow's REST API (``ovirt_dr.hooks.airflow_api``, by
connection id ``recovery.failback.airflow_conn_id``): a task cannot pause a DAG through the task SDK.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from ovirt_dr.operators.recovery_base import RecoveryError, RecoveryOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class _PlanOperator(RecoveryOperator):
    hook_attrs = ("api",)

    def failback_plan(self, context: Context) -> dict[str, Any]:
        plan = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        if not isinstance(plan, dict) or "domains" not in plan:
            raise RecoveryError(f"no failback plan from task {self.plan_task_id!r} (did it succeed?)")
        return plan

    @cached_property
    def api(self) -> Any:
        from ovirt_dr.hooks.airflow_api import AirflowApiHook

        return AirflowApiHook(airflow_conn_id=self.cfg.failback.airflow_conn_id)


class FailbackCycleGateOperator(_PlanOperator):
    """Let one reverse sync cycle of one domain run, or skip it (and so the whole cycle): skipped in a dry
    run (a cycle snapshots, starts geo-replication and writes the primary volume), in a resumed run past
    the final cycle, and for a domain the run does not fail back.

    :param domain: the secondary's name of the domain; :param cycle: ``warm k of N`` / ``final``.
    """

    hook_attrs = ()

    def __init__(self, *, domain: str, cycle: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.domain = domain
        self.cycle = cycle

    def run(self, context: Context) -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        plan = self.failback_plan(context)
        if plan.get("dry_run"):
            raise AirflowSkipException(f"dry run: the {self.cycle} reverse cycle of {self.domain} is not run")
        if plan.get("phase") != "sync":
            raise AirflowSkipException(
                f"phase {plan.get('phase')}: the reverse cycles were done by an earlier run (the secondary is cleaned)"
            )
        if self.domain not in plan.get("secondary_domains", []):
            raise AirflowSkipException(f"{self.domain} is not failed back in this run")
        if self.cycle == "final":
            running = [v for v in self._running(plan)]
            if running:
                raise RecoveryError(
                    f"the final cycle needs every VM down; still running on the secondary: {running}"
                )
        self.log.info("Reverse cycle %s of %s: running", self.cycle, self.domain)
        return self.cycle

    def _running(self, plan: dict[str, Any]) -> list[str]:
        from ovirt_dr.hooks.ovirt import OvirtHook

        with OvirtHook(ovirt_conn_id=self.recovery.conn_id("secondary")) as hook:
            vms = hook.system.vms_service().list(search=f'storage="{self.domain}"')
            return sorted(v.name for v in vms if getattr(v.status, "value", v.status) != "down")


class AirflowPauseSyncOperator(_PlanOperator):
    """Pause the pairs' sync DAGs and wait until none has a run queued or running (a paused DAG finishes
    the run it has): nothing drives the volumes while the failback works on them. Returns ``{dag: was
    paused before}``. Fails when Airflow's API cannot be reached (nothing would hold the sync DAG)."""

    def run(self, context: Context) -> dict[str, bool]:
        plan = self.failback_plan(context)
        timeout = self.cfg.failback.sync_dag_timeout.total_seconds()
        out = {}
        for dag_id in plan.get("sync_dags") or []:
            if plan.get("dry_run"):
                out[dag_id] = self.api.is_paused(dag_id)
                self.log.info(
                    "Dry run: %s is %s: would pause it and wait until idle",
                    dag_id,
                    "paused" if out[dag_id] else "active",
                )
                continue
            out[dag_id] = self.api.set_paused(dag_id, True)
            self.api.wait_idle(dag_id, timeout=timeout, poll=min(5.0, self.cfg.poll_interval.total_seconds()))
            self.log.info("%s paused (was %s) and idle", dag_id, "paused" if out[dag_id] else "active")
        return out


class AirflowResumeSyncOperator(_PlanOperator):
    """Unpause the pairs' sync DAGs once the domains are imported on the primary and primary -> secondary
    replication is re-established (each step checked in this run); otherwise say why not and skip.

    Runs whatever happened to the VM starts (trigger rule ``all_done``): a VM that failed to start is no
    reason to leave the domain unprotected.
    """

    def __init__(
        self, *, requires: tuple[str, ...] = ("import_domains", "reestablish_replication"), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.requires = tuple(requires)

    def run(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        plan = self.failback_plan(context)
        ti, run_id = context["ti"], context["run_id"]
        states = ti.get_task_states(dag_id=self.dag_id, run_ids=[run_id]).get(run_id, {})
        missing = [
            f"{t} {states.get(t) or 'did not run'}" for t in self.requires if states.get(t) != "success"
        ]
        if missing:
            raise AirflowSkipException(f"sync DAG(s) left paused: {', '.join(missing)}")
        out = {}
        for dag_id in plan.get("sync_dags") or []:
            if plan.get("dry_run"):
                out[dag_id] = f"would unpause (now {'paused' if self.api.is_paused(dag_id) else 'active'})"
            else:
                was = self.api.set_paused(dag_id, False)
                out[dag_id] = "unpaused" if was else "was active already"
            self.log.info("%s: %s", dag_id, out[dag_id])
        return out


__all__ = ["AirflowPauseSyncOperator", "AirflowResumeSyncOperator", "FailbackCycleGateOperator"]
