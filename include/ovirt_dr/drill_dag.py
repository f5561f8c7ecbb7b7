"""Factory of the ``dr_drill`` DAG: prove the replica is recoverable without touching production.

A DAG file calls ``build_drill_dag(config_path)`` and nothing else. Like ``dr_failover`` the DAG is built
even when the recovery config or the mapping file is broken (its first task then fails naming every
problem); no config value is rendered as a template: operators take literals and re-read the config file
when they run, the form's values are read from ``params`` (data, never Jinja).
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Param, TriggerRule

from ovirt_dr.drill import (
    CHECK_TASK,
    CLEANUP_TASK,
    COPY_TASK,
    IMPORT_TASK,
    PLAN_TASK,
    REPORT_TASK,
    RESUME_TASK,
    START_TASK,
    TEMPLATES_TASK,
    VALIDATE_TASK,
    VMS_TASK,
)
from ovirt_dr.recovery_config import Recovery, RecoveryConfig
from ovirt_dr.recovery_dag import (
    domain_rows,
    domains_param,
    dry_run_param,
    load_for_dag,
    problems_md,
    recovery_dag,
    recovery_point_assets,
)

DRILL_DAG_ID = "dr_drill"


def _doc(rec: Recovery, cfg: RecoveryConfig) -> str:
    table = domain_rows(rec, cfg.drill.name_suffix)
    doc = textwrap.dedent(
        """\
        ### DR drill: prove the replica is recoverable, without touching production

        **Trigger with `dry_run` (the default) first**: it changes nothing anywhere and prints the plan (the
        `preflight` and `report` logs and XCom). A real run:

        1. **validate** the mapping file against both engines; record whether each pair's sync DAG is paused
        2. **preflight**: pause the sync DAGs and wait for their running run; the recovery point (asset
           events); geo-replication stopped; the secondary engine ready and holding nothing in the way; plan
        3. **make_copy**: the slave volume writable; a COPY of the replica beside it under a new domain id:
           the replica's volumes by symlink, a new qcow2 overlay per VM disk (the replica is never written)
        4. **import_domains**: import and attach the copy on the secondary engine
        5. **register_templates**, **register_vms**: with the mapping file, as a failover does
        6. **check_vms**: unplug every vNIC; each disk runs on its overlay and shows the replica's content
        7. **start_vms** in tiers (HA first), each waited until up; only VMs whose check passed
        8. **cleanup** (always): VMs off and removed, the copy deactivated, detached, removed without
           format, its files deleted, `features.read-only` put back
        9. **resume_sync** (always): each sync DAG as it was before; **report**: mail, event, per-VM outcome

        Every step is retry-safe; the cleanup and the resume run whatever failed before them.
        """
    )
    doc += textwrap.dedent(
        f"""
        | primary domain | copy imported as | from | replica |
        |---|---|---|---|
        {{table}}

        Start tiers after the HA VMs: {"; ".join(", ".join(t) for t in cfg.start_tiers) or "none"}; sync
        wait {cfg.drill.sync_dag_timeout}; Airflow API connection `{cfg.drill.airflow_conn_id}`.
        """
    ).replace("{table}", table)
    return doc + problems_md(rec)


def _params(names: list[str]) -> dict[str, Param]:
    return {
        "domains": domains_param(
            names, "Primary-side names of the mapped domains to drill; empty = all of them."
        ),
        "dry_run": dry_run_param("drill"),
    }


def build_drill_dag(config_path: str | Path) -> DAG:
    """The ``dr_drill`` DAG (README "Recovery: DR drill"), also when the config is broken."""
    from ovirt_dr.operators.drill_airflow import AirflowResumeSyncOperator
    from ovirt_dr.operators.drill_gluster import GlusterDrillCopyOperator
    from ovirt_dr.operators.drill_ovirt import (
        OvirtDrillCheckVmsOperator,
        OvirtDrillCleanupOperator,
        OvirtDrillPreflightOperator,
        OvirtDrillReportOperator,
        OvirtDrillStartVmsOperator,
        OvirtDrillValidateOperator,
    )
    from ovirt_dr.operators.recovery_ovirt import (
        OvirtImportDomainsOperator,
        OvirtRegisterTemplatesOperator,
        OvirtRegisterVmsOperator,
    )

    config_path = str(config_path)
    rec, cfg = load_for_dag(config_path)
    names = rec.domain_names("failover") if rec.mapping is not None else []
    assets = recovery_point_assets(rec)
    common = {"config_path": config_path}
    dag = recovery_dag(
        dag_id=DRILL_DAG_ID,
        tag="drill",
        rec=rec,
        cfg=cfg,
        doc_md=_doc(rec, cfg),
        description="DR drill: the replica proven recoverable, production untouched (manual; dry run by default)",
        params=_params(names),
    )
    always = TriggerRule.ALL_DONE
    with dag:
        validate = OvirtDrillValidateOperator(task_id=VALIDATE_TASK, **common)
        preflight = OvirtDrillPreflightOperator(
            task_id=PLAN_TASK,
            inlets=assets,
            execution_timeout=cfg.drill.sync_dag_timeout + timedelta(minutes=30),
            **common,
        )
        copy = GlusterDrillCopyOperator(task_id=COPY_TASK, **common)
        import_ = OvirtImportDomainsOperator(task_id=IMPORT_TASK, **common)
        templates = OvirtRegisterTemplatesOperator(task_id=TEMPLATES_TASK, **common)
        register = OvirtRegisterVmsOperator.partial(
            task_id=VMS_TASK,
            max_active_tis_per_dagrun=cfg.register_shards,
            trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
            **common,
        ).expand(shard=import_.output)
        check = OvirtDrillCheckVmsOperator(
            task_id=CHECK_TASK,
            trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
            execution_timeout=cfg.drill.verify_timeout + timedelta(minutes=10),
            **common,
        )
        start = OvirtDrillStartVmsOperator(
            task_id=START_TASK, trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, **common
        )
        cleanup = OvirtDrillCleanupOperator(task_id=CLEANUP_TASK, trigger_rule=always, **common)
        resume = AirflowResumeSyncOperator(task_id=RESUME_TASK, trigger_rule=always, **common)
        report = OvirtDrillReportOperator(
            task_id=REPORT_TASK,
            trigger_rule=always,
            retries=1,
            alert_emails=list(cfg.alert_emails),
            smtp_conn_id=cfg.smtp_conn_id,
            **common,
        )
        validate >> preflight >> copy >> import_ >> templates
        [import_, templates] >> register
        [import_, register] >> check
        [import_, check] >> start
        [validate, preflight, copy, import_, templates, register, check, start] >> cleanup
        cleanup >> resume >> report
        [validate, preflight, copy, import_, templates, register, check, start, cleanup] >> report
    return dag
