"""Factories of the recovery DAGs (manual runs): ``dr_failover``.

A DAG file calls ``build_failover_dag(config_path)`` and nothing else. The DAG is built even when the
recovery config or the mapping file is broken: in an emergency the admin must see the DAG; its first task
then fails naming every problem (and the DAG's description lists them too).

No config value is rendered as a template: operators take literals and re-read the config file when they
run; the form's values are read from ``params`` (data, never Jinja).
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Param, TriggerRule

from ovirt_dr.operators.recovery_base import (
    IMPORT_TASK,
    PLAN_TASK,
    REPORT_TASK,
    START_TASK,
    TEMPLATES_TASK,
    VALIDATE_TASK,
    VMS_TASK,
    WRITABLE_TASK,
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

FAILOVER_DAG_ID = "dr_failover"


def _failover_doc(rec: Recovery, cfg: RecoveryConfig) -> str:
    table = domain_rows(rec)
    tiers = "; ".join(", ".join(t) for t in cfg.start_tiers) or "none"
    doc = textwrap.dedent(
        """\
        ### Failover to the secondary site

        Brings the VMs of the mapped storage domains back at the secondary site from the Gluster replica
        that the sync DAGs keep. **Trigger with `dry_run` (the default) first**: it changes nothing on
        either engine or on Gluster and prints the whole plan (see the `report` task's log and XCom).

        1. **validate** the mapping file against the engines (every problem at once)
        2. **preflight**: target engine and an up host per data center; each replica's recovery point and
           its age; split-brain guard (refuses while the primary engine answers and still has the domains
           active, unless `force`; waits out the storage leases when it is unreachable); the plan
        3. **make_replica_writable**: stop geo-replication (from the master node, if reachable), slave
           volume `features.read-only off`
        4. **import_domains** (master first), attach, wait active
        5. **register_templates**, then **register_vms** in parallel shards, with every mapping
        6. **start_vms** in tiers: HA first, then the configured tiers, then the rest, each waited until up
        7. **report**: RTO, recovery points, every VM's outcome; oVirt event and mail; fails if any VM failed

        Every step is retry-safe: clear a failed task (or trigger again) and it does only what is missing.
        """
    )
    doc += textwrap.dedent(
        f"""
        | primary domain | imported as | from | replica |
        |---|---|---|---|
        {{table}}

        Start tiers after the HA VMs: {tiers}; start only VMs running at the primary:
        {cfg.start_only_running}; {cfg.register_shards} registration shards of {cfg.register_concurrency}
        requests each; lease wait {cfg.lease_wait}; tier timeout {cfg.tier_timeout}.
        """
    ).replace("{table}", table)
    return doc + problems_md(rec)


def _params(names: list[str]) -> dict[str, Param]:
    return {
        "domains": domains_param(
            names, "Primary-side names of the mapped domains to recover; empty = all of them."
        ),
        "dry_run": dry_run_param("failover"),
        "force": Param(
            False,
            type="boolean",
            title="Force (split brain accepted)",
            description_md="Proceed although the primary engine answers and still has the domains active. "
            "Only when the old site is fenced and can no longer write to its disks.",
        ),
        "start_vms": Param(
            True,
            type="boolean",
            title="Start VMs",
            description_md="Start the registered VMs in tiers (HA first). Off: register only.",
        ),
    }


def build_failover_dag(config_path: str | Path) -> DAG:
    """The ``dr_failover`` DAG (DESIGN.md "Recovery"), also when the config is broken."""
    from ovirt_dr.operators.recovery_gluster import GlusterMakeReplicaWritableOperator
    from ovirt_dr.operators.recovery_ovirt import (
        OvirtFailoverPreflightOperator,
        OvirtFailoverReportOperator,
        OvirtFailoverValidateOperator,
        OvirtImportDomainsOperator,
        OvirtRegisterTemplatesOperator,
        OvirtRegisterVmsOperator,
        OvirtStartVmsOperator,
    )

    config_path = str(config_path)
    rec, cfg = load_for_dag(config_path)
    names = rec.domain_names("failover") if rec.mapping is not None else []
    assets = recovery_point_assets(rec)
    common = {"config_path": config_path}
    dag = recovery_dag(
        dag_id=FAILOVER_DAG_ID,
        tag="failover",
        rec=rec,
        cfg=cfg,
        doc_md=_failover_doc(rec, cfg),
        description="Failover to the secondary site (manual; dry run by default)",
        params=_params(names),
    )
    with dag:
        validate = OvirtFailoverValidateOperator(task_id=VALIDATE_TASK, **common)
        preflight = OvirtFailoverPreflightOperator(
            task_id=PLAN_TASK,
            inlets=assets,
            execution_timeout=cfg.lease_wait + cfg.import_timeout + timedelta(minutes=30),
            **common,
        )
        writable = GlusterMakeReplicaWritableOperator(task_id=WRITABLE_TASK, **common)
        import_ = OvirtImportDomainsOperator(task_id=IMPORT_TASK, **common)
        templates = OvirtRegisterTemplatesOperator(task_id=TEMPLATES_TASK, **common)
        register = OvirtRegisterVmsOperator.partial(
            task_id=VMS_TASK,
            max_active_tis_per_dagrun=cfg.register_shards,
            trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
            **common,
        ).expand(shard=import_.output)
        start = OvirtStartVmsOperator(
            task_id=START_TASK, trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, **common
        )
        report = OvirtFailoverReportOperator(
            task_id=REPORT_TASK,
            trigger_rule=TriggerRule.ALL_DONE,
            retries=1,
            alert_emails=list(cfg.alert_emails),
            smtp_conn_id=cfg.smtp_conn_id,
            **common,
        )
        validate >> preflight >> writable >> import_ >> templates
        [import_, templates] >> register
        [import_, register] >> start
        [validate, preflight, writable, import_, templates, register, start] >> report
    return dag
