"""DR drill steps on Airflow itself: hold the pairs' sync DAGs still, and give them back as they were.

Tasks cannot pause a DAG through the task SDK, so this goes through Airflow's REST API as a user
(``AirflowApiHook``, connection ``recovery.drill.airflow_conn_id``). The state before the drill is read by
the first task (``validate``), which changes nothing, so a retry of any later task never mistakes the
drill's own pause for the admin's: ``resume_sync`` resumes exactly the DAGs that were active before, and
leaves a DAG that was paused before paused.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from ovirt_dr.drill import VALIDATE_TASK, DrillParams
from ovirt_dr.operators.recovery_base import RecoveryOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

#: a paused DAG finishes its running run; a queued run does not start before the DAG is resumed
RUNNING = ("running",)


class AirflowApiMixin:
    """The Airflow REST API hook of the drill (``recovery.drill.airflow_conn_id``)."""

    @cached_property
    def airflow_api(self) -> Any:
        from ovirt_dr.hooks.airflow_api import AirflowApiHook

        return AirflowApiHook(airflow_conn_id=self.cfg.drill.airflow_conn_id)  # type: ignore[attr-defined]


def sync_states(hook: Any, dag_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each sync DAG's paused flag and its running / queued runs, as they are now."""
    out = {}
    for dag_id in sorted(set(dag_ids)):
        out[dag_id] = {
            "paused": hook.is_paused(dag_id),
            "running": hook.active_runs(dag_id, RUNNING),
            "queued": hook.active_runs(dag_id, ("queued",)),
        }
    return out


def pause_and_wait(hook: Any, dag_ids: list[str], *, timeout: float, poll: float, log: Any) -> list[str]:
    """Pause each DAG (idempotent) and wait until none has a running run. Returns what was done."""
    done = []
    for dag_id in sorted(set(dag_ids)):
        was = hook.set_paused(dag_id, True)
        running = hook.active_runs(dag_id, RUNNING)
        if running:
            log.info("Sync DAG %s: waiting for its running run(s) %s to finish", dag_id, running)
        hook.wait_idle(dag_id, timeout=timeout, poll=poll, states=RUNNING)
        done.append(f"{dag_id}: {'paused already' if was else 'paused'}; no run running")
    return done


class AirflowResumeSyncOperator(AirflowApiMixin, RecoveryOperator):
    """Give the pairs' sync DAGs back exactly as they were before the drill (always runs, last but the report).

    Resumes a DAG that was active before the drill (``validate`` recorded it); leaves one that was paused
    before paused. Runs after the cleanup, so the replica changes again only once the copy is gone. A
    dry run paused nothing and resumes nothing. Returns ``{dag_id: what was done}``.
    """

    hook_attrs = ("target_hook", "gluster", "airflow_api")

    def run(self, context: Context) -> dict[str, str]:
        params = DrillParams.from_context(context)
        validated = context["ti"].xcom_pull(task_ids=VALIDATE_TASK)
        before = (validated or {}).get("sync") if isinstance(validated, dict) else None
        if not isinstance(before, dict):
            self.log.info("No sync DAG state was recorded (validate did not finish): nothing was paused")
            return {}
        out: dict[str, str] = {}
        for dag_id, state in sorted(before.items()):
            paused_now = self.airflow_api.is_paused(dag_id)
            if state.get("paused"):
                out[dag_id] = "paused before the drill: left paused"
            elif params.dry_run:
                out[dag_id] = f"dry run: left as it is ({'paused' if paused_now else 'active'})"
            elif paused_now:
                self.airflow_api.set_paused(dag_id, False)
                out[dag_id] = "resumed (it was active before the drill)"
            else:
                out[dag_id] = "active (as before the drill)"
            self.log.info("Sync DAG %s: %s", dag_id, out[dag_id])
        return out


__all__ = ["AirflowApiMixin", "AirflowResumeSyncOperator", "pause_and_wait", "sync_states"]
