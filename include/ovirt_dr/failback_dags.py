"""Factories of ``dr_cleanup_primary`` and ``dr_failback`` (manual runs, dry run by default).

A DAG file calls ``build_cleanup_primary_dag(config_path)`` / ``build_failback_dag(config_path)`` and
nothing else. Both DAGs are built even when the recovery config or the mapping file is broken (their
first task then fails naming every problem); the failback's reverse cycles exist only for the domains
the config can place (a mapped domain with its sync pair and a reverse session it can name).

No config value is rendered as a template: operators take literals and re-read the config file when they
run; the form's values are read from ``params``.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, TaskGroup, TriggerRule

from ovirt_dr.recovery_config import Recovery, RecoveryConfig
from ovirt_dr.recovery_dag import domains_param, dry_run_param, load_for_dag, problems_md, recovery_dag

CLEANUP_DAG_ID = "dr_cleanup_primary"
FAILBACK_DAG_ID = "dr_failback"


# ---------------------------------------------------------------------------------------------------------
def build_cleanup_primary_dag(config_path: str | Path) -> DAG:
    """``dr_cleanup_primary``: clean the OLD primary after a failover (``ovirt_dr.cleanup``)."""
    from ovirt_dr.operators.cleanup_ovirt import (
        OvirtCleanupOvfStoreOperator,
        OvirtCleanupPreflightOperator,
        OvirtCleanupReportOperator,
        OvirtCleanupStopVmsOperator,
        OvirtRemoveDomainsOperator,
        OvirtRemoveOrphansOperator,
    )

    config_path = str(config_path)
    rec, cfg = load_for_dag(config_path)
    names = rec.domain_names("failover") if rec.mapping is not None else []
    doc = textwrap.dedent(
        """\
        ### Clean the old primary site after a failover

        After `dr_failover` the old primary may come back with the mapped domains still attached and its
        VMs running: two sites then claim the same VMs. This DAG takes the mapped domains out of the
        primary engine **without formatting them** (the primary volume keeps every file: `dr_failback`
        brings the secondary's changes back onto it). **Trigger with `dry_run` (the default) first.**

        1. **preflight**: refuses any domain the mapping file does not name, or whose domain on the engine
           is not the mapped one (path, server, data domain, not the hosted engine's); refuses unless the
           secondary runs the domain now (the failover's result), except with `force`; the plan
        2. **stop_vms**: power off every VM with a disk on the domains, wait until down
        3. **update_ovf_store**: write each active domain's OVF_STORE and wait for the engine's event
        4. **remove_domains**: deactivate -> detach -> remove with `format=false`
        5. **remove_orphans**: what the engine still lists for the gone domains (VMs, disks)
        6. **report**: XCom, an event on the primary engine, a mail; fails if any step failed

        Every step is retry-safe: it reads the domain's state first and does only what is left.
        """
    ) + problems_md(rec)
    dag = recovery_dag(
        dag_id=CLEANUP_DAG_ID,
        tag="cleanup",
        rec=rec,
        cfg=cfg,
        doc_md=doc,
        description="Clean the old primary after a failover (manual; dry run by default)",
        params={
            "domains": domains_param(
                names, "The primary site's names of the mapped domains; empty = all of them."
            ),
            "dry_run": dry_run_param("cleanup"),
            "force": Param(
                False,
                type="boolean",
                title="Force",
                description_md="Clean although the secondary does not run the domains (or cannot tell).",
            ),
        },
    )
    common = {"config_path": config_path, "side": "primary"}
    with dag:
        plan = OvirtCleanupPreflightOperator(task_id="preflight", exclusive=True, **common)
        stop = OvirtCleanupStopVmsOperator(task_id="stop_vms", **common)
        ovf = OvirtCleanupOvfStoreOperator(task_id="update_ovf_store", **common)
        remove = OvirtRemoveDomainsOperator(
            task_id="remove_domains", execution_timeout=cfg.import_timeout * 4, **common
        )
        orphans = OvirtRemoveOrphansOperator(task_id="remove_orphans", **common)
        report = OvirtCleanupReportOperator(
            task_id="report",
            trigger_rule=TriggerRule.ALL_DONE,
            retries=1,
            alert_emails=list(cfg.alert_emails),
            smtp_conn_id=cfg.smtp_conn_id,
            **common,
        )
        plan >> stop >> ovf >> remove >> orphans
        [plan, stop, ovf, remove, orphans] >> report
    return dag


# ---------------------------------------------------------------------------------------------------------
def _failback_doc(rec: Recovery, cfg: RecoveryConfig, placed: list[tuple[Any, dict[str, Any]]]) -> str:
    from ovirt_dr.failback import session_text

    rows = (
        "\n".join(
            f"| `{link.storage.dr_secondary_name}` | `{session_text(ends)}` | `{link.storage.dr_primary_name}` in "
            f"`{link.storage.dr_primary_dc_name}` | `{link.pair.dag_id}` |"
            for link, ends in placed
        )
        or "| (none: see the problems below) | | | |"
    )
    fb = cfg.failback
    doc = textwrap.dedent(
        """\
        ### Failback to the primary site

        Brings the VMs home after a failover, with no manual step in between. Run `dr_cleanup_primary`
        first (the primary must not have the domains attached). **Trigger with `dry_run` (the default)
        first**: it changes nothing and prints the whole plan (`preflight` log).

        1. **validate** the config, the reverse session and the mapping (direction failback) on both engines
        2. **preflight**: where the run stands (the primary cleaned and the secondary running the domain, or a
           resumed run past the final cycle), the primary's import host, the VMs running on the secondary
        3. **pause_sync**: pause the pair's sync DAG (Airflow's REST API) and wait until it is idle
        4. **create_reverse_session**: secondary volume -> primary volume, `create push-pem force` and the
           configured options, the primary volume read-only
        5. **reverse cycles** with the VMs running (the sync pipeline's own tasks, run the other way:
           snapshots on the secondary engine, checkpoint, wait, stop, overlay cleanup on the primary volume,
           audit against the secondary's frozen volumes), then **shutdown_vms** and the **final** cycle
        6. the secondary cleaned (deactivate, detach, remove without format) and, beside it, the reverse
           session deleted and the primary volume made writable
        7. **plan_import**, **import_domains**, **register_templates**, **register_vms**, **start_vms**: the
           failover's steps towards the primary, with the failback mapping
        8. **reestablish_replication** (the secondary's volume read-only, the forward session usable),
           **resume_sync**, **report**

        Every step is retry-safe; a failback triggered again after it stopped half-way continues from where
        the domains are.
        """
    )
    doc += textwrap.dedent(
        f"""
        | secondary domain | reverse session | back to | sync pair |
        |---|---|---|---|
        {{rows}}

        {fb.warm_cycles} warm reverse cycle(s), then the final one; checkpoint timeout {fb.checkpoint_timeout};
        shutdown timeout {fb.shutdown_timeout}; Airflow API connection `{fb.airflow_conn_id}`.
        """
    ).replace("{rows}", rows)
    return doc + problems_md(rec)


def build_failback_dag(config_path: str | Path) -> DAG:
    """``dr_failback`` (``ovirt_dr.failback``), also when the config is broken."""
    from ovirt_dr.failback import reverse_endpoints
    from ovirt_dr.operators.cleanup_ovirt import (
        OvirtCleanupPreflightOperator,
        OvirtCleanupStopVmsOperator,
        OvirtRemoveDomainsOperator,
        OvirtRemoveOrphansOperator,
    )
    from ovirt_dr.operators.failback_airflow import (
        AirflowPauseSyncOperator,
        AirflowResumeSyncOperator,
        FailbackCycleGateOperator,
    )
    from ovirt_dr.operators.failback_gluster import (
        GlusterCreateReverseSessionOperator,
        GlusterDeleteReverseSessionOperator,
        GlusterReestablishReplicationOperator,
    )
    from ovirt_dr.operators.failback_ovirt import (
        SHUTDOWN_TASK,
        OvirtFailbackPlanImportOperator,
        OvirtFailbackPreflightOperator,
        OvirtFailbackReportOperator,
        OvirtFailbackValidateOperator,
        final_group,
        warm_group,
    )
    from ovirt_dr.operators.recovery_base import IMPORT_TASK, START_TASK, TEMPLATES_TASK, VMS_TASK
    from ovirt_dr.operators.recovery_gluster import GlusterMakeReplicaWritableOperator
    from ovirt_dr.operators.recovery_ovirt import (
        OvirtImportDomainsOperator,
        OvirtRegisterTemplatesOperator,
        OvirtRegisterVmsOperator,
        OvirtStartVmsOperator,
    )
    from ovirt_dr.sync import SyncEndpoints, add_sync_cycle, pool_name

    config_path = str(config_path)
    rec, cfg = load_for_dag(config_path)
    fb = cfg.failback
    names = rec.domain_names("failback") if rec.mapping is not None else []
    placed: list[tuple[Any, dict[str, Any]]] = []
    if rec.ok:
        for link in rec.links("failback"):
            ends, problems = reverse_endpoints(
                link.storage,
                link.pair,
                cfg.reverse_session,
                rec.conn_id("secondary"),
                pool_name(link.pair) if link.pair is not None else "",
            )
            if ends is not None and not problems:
                placed.append((link, ends))
    dag = recovery_dag(
        dag_id=FAILBACK_DAG_ID,
        tag="failback",
        rec=rec,
        cfg=cfg,
        doc_md=_failback_doc(rec, cfg, placed),
        description="Failback to the primary site (manual; dry run by default)",
        params={
            "domains": domains_param(
                names, "The secondary site's names of the mapped domains; empty = all of them."
            ),
            "dry_run": dry_run_param("failback"),
        },
    )
    common = {"config_path": config_path}
    plan_ref = {"plan_task_id": "preflight"}
    always = TriggerRule.ALL_DONE_MIN_ONE_SUCCESS
    cycle_args = {
        "always": always,
        "checkpoint_timeout": fb.checkpoint_timeout,
        "poll_interval": fb.poll_interval,
        "faulty_grace": fb.faulty_grace,
        # the checkpoint wait in the worker: a deferred wait whose trigger fires within the scheduler's
        # event delay is marked failed by Airflow 3.3 (apache/airflow#67287, #72716); a failback is one
        # run that may hold a worker slot for its few-minute waits
        "deferrable": False,
    }

    def cycle(group_id: str, label: str, link: Any, ends: dict[str, Any], upstream: list[Any]) -> list[Any]:
        with TaskGroup(group_id=group_id):
            gate = FailbackCycleGateOperator(
                task_id="gate",
                domain=link.storage.dr_secondary_name,
                cycle=label,
                trigger_rule=TriggerRule.NONE_FAILED,
                **common,
                **plan_ref,
            )
            tasks = add_sync_cycle(
                link.pair,
                SyncEndpoints(**ends),
                snapshot_label=group_id.replace("__", "."),
                gate=gate,
                **cycle_args,
            )
        upstream >> gate
        return [tasks.audit, tasks.merge]

    with dag:
        validate = OvirtFailbackValidateOperator(task_id="validate", **common)
        preflight = OvirtFailbackPreflightOperator(task_id="preflight", **common)
        pause = AirflowPauseSyncOperator(
            task_id="pause_sync",
            execution_timeout=fb.sync_dag_timeout + timedelta(minutes=10),
            **common,
            **plan_ref,
        )
        create = GlusterCreateReverseSessionOperator(task_id="create_reverse_session", **common, **plan_ref)
        validate >> preflight >> pause >> create
        done: list[Any] = [create]
        for k in range(1, fb.warm_cycles + 1):
            this: list[Any] = []
            for link, ends in placed:
                name = link.storage.dr_secondary_name
                this += cycle(warm_group(k, name), f"warm {k} of {fb.warm_cycles}", link, ends, done)
            done = this or done
        shutdown = OvirtCleanupStopVmsOperator(
            task_id=SHUTDOWN_TASK,
            side="secondary",
            graceful=True,
            names_key="secondary_domains",
            trigger_rule=TriggerRule.NONE_FAILED,
            **common,
            **plan_ref,
        )
        done >> shutdown
        final: list[Any] = []
        audits = {}
        for link, ends in placed:
            name = link.storage.dr_secondary_name
            final += cycle(final_group(name), "final", link, ends, [shutdown])
            audits[name] = f"{final_group(name)}.audit_replica"
        after_final = final or [shutdown]
        # the secondary cleaned, once each domain's final cycle audited the primary's copy
        sec_common = {**common, "side": "secondary", "plan_task_id": "plan_secondary_cleanup"}
        plan_sec = OvirtCleanupPreflightOperator(
            task_id="plan_secondary_cleanup",
            check_other_side=False,
            audited_by=audits,
            trigger_rule=TriggerRule.NONE_FAILED,
            side="secondary",
            **common,
        )
        stop_sec = OvirtCleanupStopVmsOperator(task_id="stop_secondary_vms", **sec_common)
        remove_sec = OvirtRemoveDomainsOperator(
            task_id="remove_secondary_domains", execution_timeout=cfg.import_timeout * 4, **sec_common
        )
        orphans_sec = OvirtRemoveOrphansOperator(task_id="remove_secondary_orphans", **sec_common)
        after_final >> plan_sec >> stop_sec >> remove_sec >> orphans_sec
        # beside it: the reverse session goes, the primary's volume is read and made writable
        delete = GlusterDeleteReverseSessionOperator(
            task_id="delete_reverse_session", trigger_rule=TriggerRule.NONE_FAILED, **common, **plan_ref
        )
        plan_import = OvirtFailbackPlanImportOperator(task_id="plan_import", **common)
        fb_args = {**common, "direction": "failback", "plan_task_id": "plan_import"}
        writable = GlusterMakeReplicaWritableOperator(task_id="make_primary_writable", **fb_args)
        after_final >> delete >> plan_import >> writable
        import_ = OvirtImportDomainsOperator(task_id=IMPORT_TASK, **fb_args)
        templates = OvirtRegisterTemplatesOperator(task_id=TEMPLATES_TASK, **fb_args)
        register = OvirtRegisterVmsOperator.partial(
            task_id=VMS_TASK,
            max_active_tis_per_dagrun=cfg.register_shards,
            trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
            **fb_args,
        ).expand(shard=import_.output)
        start = OvirtStartVmsOperator(
            task_id=START_TASK, trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, **fb_args
        )
        [orphans_sec, writable] >> import_ >> templates
        [import_, templates] >> register
        [import_, register] >> start
        reestablish = GlusterReestablishReplicationOperator(
            task_id="reestablish_replication", **common, **plan_ref
        )
        [orphans_sec, delete] >> reestablish
        resume = AirflowResumeSyncOperator(
            task_id="resume_sync", trigger_rule=TriggerRule.ALL_DONE, **common, **plan_ref
        )
        [import_, start, reestablish] >> resume
        report = OvirtFailbackReportOperator(
            task_id="report",
            trigger_rule=TriggerRule.ALL_DONE,
            retries=1,
            alert_emails=list(cfg.alert_emails),
            smtp_conn_id=cfg.smtp_conn_id,
            **common,
        )
        [t for t in dag.tasks if t is not report] >> report
    return dag


__all__ = ["CLEANUP_DAG_ID", "FAILBACK_DAG_ID", "build_cleanup_primary_dag", "build_failback_dag"]
