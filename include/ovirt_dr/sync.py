"""Factory of the sync DAGs: one DAG per (storage domain, geo-replication target) pair of the config.

A DAG file calls ``build_sync_dags(config_path, globals())`` and nothing else. Pairs are built in sorted
order; with a parsing context (a task run) only that task's DAG is built.

A bad pair does not stop the others. Its error is raised by a second, DAG-less file
(``dags/dr_sync_config_check.py`` calling ``check_sync_config``), so Airflow shows it as that file's
import error, naming the pair and the field, while this file builds every good pair. (An import error on
the file that defines the DAGs would not do: Airflow's dag-processor marks every DAG of a file with an
import error as stale, which would stop all pairs.) ``OVIRT_DR_STRICT=1`` makes the DAG file itself fail
instead, for CI of a config repository.
"""

from __future__ import annotations

import os
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, TriggerRule, get_parsing_context

from ovirt_dr.config import STRICT_ENV, PairConfig, SiteConfig, load_sync_config

SYNC_TAGS = ["ovirt-dr", "sync"]


def recovery_point_asset(pair: PairConfig) -> Asset:
    """The asset whose events carry a pair's recovery points (read by the dashboard and the failover)."""
    return Asset(
        name=f"ovirt_dr_recovery_point__{pair.storage_domain}__{pair.target}",
        uri=f"ovirt-dr://{pair.storage_domain}/{pair.target}",
        group="ovirt-dr",
    )


def pool_name(pair: PairConfig) -> str:
    """One pool slot per master volume: two pairs never drive the same geo-rep session at once."""
    return f"ovirt_dr_georep__{pair.master_volume}"


def _doc_md(pair: PairConfig, site: SiteConfig) -> str:
    groups = "; ".join(" → ".join(g) for g in pair.consistency_groups) or "none"
    return textwrap.dedent(
        f"""\
        ### DR sync of `{pair.storage_domain}` → `{pair.slave_host}::{pair.slave_volume}` ({pair.target})

        Each run leaves a crash-consistent, importable copy of every VM disk of storage domain
        **{pair.storage_domain}** on the secondary Gluster volume **{pair.slave_volume}**, and records the
        recovery point (the geo-replication checkpoint time).

        | | |
        |---|---|
        | engine connection | `{site.ovirt_conn_id}` |
        | master volume / node | `{pair.master_volume}` via `{pair.gluster_ssh_conn_id}` |
        | slave | `{pair.slave_user}@{pair.slave_host}::{pair.slave_volume}` via `{pair.slave_ssh_conn_id}` |
        | schedule / RPO | `{pair.schedule}` / {pair.rpo} (deadline alert mails {", ".join(pair.alert_emails) or "nobody"}) |
        | consistency groups | {groups} |
        | excluded VMs | {", ".join(pair.exclude_vms) or "none"} |
        | audit | {pair.audit.mode} |

        Steps: preflight (engine, geo-rep) → OVF_STORE update → snapshots (groups frozen in order) →
        checkpoint + start → deferrable wait → stop → replica overlay cleanup → replica audit →
        merge (always) → oVirt event (fails the run if any step failed).
        """
    )


def _callbacks(pair: PairConfig) -> tuple[Any, Any]:
    """(deadline alert, failure notifier) mailing the pair's recipients, or (None, None) without any."""
    if not pair.alert_emails:
        return None, None
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    from ovirt_dr.deadlines import rpo_deadline_alerts

    # Measured from the pair's newest recovery point, mail built from values (see ovirt_dr.deadlines).
    deadline = rpo_deadline_alerts(pair)
    failure = SmtpNotifier(
        to=pair.alert_emails,
        smtp_conn_id=pair.smtp_conn_id,
        subject=f"[ovirt-dr] DR sync FAILED: {pair.storage_domain} -> {pair.target} ({{{{ dag_run.run_id }}}})",
        html_content=f"<p>DR sync of <b>{pair.storage_domain}</b> to <b>{pair.slave_host}::{pair.slave_volume}</b>"
        " failed: {{ reason }}.</p><p>Run {{ dag_run.run_id }}. Open the run in Airflow for the failed step's log; "
        "DR snapshots were merged by the run's merge step.</p>",
    )
    return deadline, failure


def build_sync_dag(pair: PairConfig, site: SiteConfig) -> DAG:
    """One pair's DAG (see DESIGN.md "One sync run")."""
    from ovirt_dr.operators.gluster import (
        GlusterGeoRepCheckpointOperator,
        GlusterGeoRepPreflightOperator,
        GlusterGeoRepStopOperator,
        GlusterReplicaAuditOperator,
        GlusterReplicaCleanupOperator,
    )
    from ovirt_dr.operators.ovirt import (
        OvirtMergeSnapshotsOperator,
        OvirtSnapshotVmsOperator,
        OvirtSyncPreflightOperator,
        OvirtSyncReportOperator,
        OvirtUpdateOvfStoreOperator,
    )
    from ovirt_dr.sensors.gluster import GlusterGeoRepCheckpointSensor

    deadline, failure = _callbacks(pair)
    session = {
        "master_volume": pair.master_volume,
        "slave_host": pair.slave_host,
        "slave_volume": pair.slave_volume,
        "slave_user": pair.slave_user,
    }
    gluster = {**session, "mount_root": pair.mount_root}
    pool = pool_name(pair)
    dag = DAG(
        dag_id=pair.dag_id,
        schedule=pair.schedule,
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=[*SYNC_TAGS, f"domain:{pair.storage_domain}", f"target:{pair.target}", *pair.tags],
        doc_md=_doc_md(pair, site),
        description=f"DR sync {pair.label}",
        default_args={
            "owner": pair.owner,
            "retries": pair.retries,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=10),
        },
        deadline=deadline,
        on_failure_callback=failure,
    )
    with dag:
        preflight = OvirtSyncPreflightOperator(
            task_id="preflight_engine",
            ovirt_conn_id=site.ovirt_conn_id,
            storage_domain=pair.storage_domain,
            master_volume=pair.master_volume,
            merge_timeout_s=pair.merge_timeout.total_seconds(),
            multiple_outputs=True,
        )
        preflight_georep = GlusterGeoRepPreflightOperator(
            task_id="preflight_georep", ssh_conn_id=pair.gluster_ssh_conn_id, **gluster
        )
        ovf = OvirtUpdateOvfStoreOperator(
            task_id="update_ovf_store",
            ovirt_conn_id=site.ovirt_conn_id,
            sd_id=preflight.output["sd_id"],
            timeout_s=pair.ovf_timeout.total_seconds(),
        )
        snapshot = OvirtSnapshotVmsOperator(
            task_id="snapshot_vms",
            ovirt_conn_id=site.ovirt_conn_id,
            storage_domain=pair.storage_domain,
            sd_id=preflight.output["sd_id"],
            consistency_groups=pair.consistency_groups,
            exclude_vms=pair.exclude_vms,
            concurrency=pair.snapshot_concurrency,
            timeout_s=pair.snapshot_timeout.total_seconds(),
            execution_timeout=pair.snapshot_timeout * 2,
        )
        checkpoint = GlusterGeoRepCheckpointOperator(
            task_id="checkpoint_and_start", ssh_conn_id=pair.gluster_ssh_conn_id, pool=pool, **gluster
        )
        wait = GlusterGeoRepCheckpointSensor(
            task_id="wait_for_checkpoint",
            ssh_conn_id=pair.gluster_ssh_conn_id,
            checkpoint=checkpoint.output,
            checkpoint_timeout=pair.checkpoint_timeout,
            faulty_grace=pair.faulty_grace,
            poll_interval=pair.poll_interval,
            pool=pool,
            retries=0,
            **session,
        )
        stop = GlusterGeoRepStopOperator(
            task_id="stop_georep",
            ssh_conn_id=pair.gluster_ssh_conn_id,
            trigger_rule=TriggerRule.ALL_DONE,
            pool=pool,
            **gluster,
        )
        cleanup = GlusterReplicaCleanupOperator(
            task_id="cleanup_replica",
            ssh_conn_id=pair.slave_ssh_conn_id,
            sd_id=preflight.output["sd_id"],
            snapshots=snapshot.output,
            **gluster,
        )
        audit = GlusterReplicaAuditOperator(
            task_id="audit_replica",
            ssh_conn_id=pair.slave_ssh_conn_id,
            master_ssh_conn_id=pair.gluster_ssh_conn_id,
            sd_id=preflight.output["sd_id"],
            snapshots=snapshot.output,
            checkpoint=checkpoint.output,
            audit_mode=pair.audit.mode,
            sample_blocks=pair.audit.sample_blocks,
            block_size=pair.audit.block_size_kib * 1024,
            outlets=[recovery_point_asset(pair)],
            **gluster,
        )
        merge = OvirtMergeSnapshotsOperator(
            task_id="merge_snapshots",
            ovirt_conn_id=site.ovirt_conn_id,
            storage_domain=pair.storage_domain,
            timeout_s=pair.merge_timeout.total_seconds(),
            trigger_rule=TriggerRule.ALL_DONE,
        )
        report = OvirtSyncReportOperator(
            task_id="report",
            ovirt_conn_id=site.ovirt_conn_id,
            sd_id="{{ ti.xcom_pull(task_ids='preflight_engine', key='sd_id') or '' }}",
            pair_label=pair.label,
            trigger_rule=TriggerRule.ALL_DONE,
            retries=1,
        )
        [preflight, preflight_georep] >> ovf >> snapshot >> checkpoint >> wait >> stop >> cleanup >> audit
        audit >> merge >> report
        snapshot >> merge
    return dag


def build_sync_dags(config_path: str | Path, namespace: dict[str, Any]) -> list[DAG]:
    """Build every pair's DAG into ``namespace`` (the DAG file's globals); return them.

    With a parsing context naming one DAG (a task about to run), only that DAG is built, which keeps task
    start-up fast with hundreds of pairs.
    """
    config = load_sync_config(config_path)
    strict = os.environ.get(STRICT_ENV, "").lower() in ("1", "true", "yes")
    if config.errors and strict:
        raise ValueError("; ".join(str(e) for e in config.errors))
    wanted = get_parsing_context().dag_id
    dags = []
    for pair in config.pairs:
        if wanted and wanted != pair.dag_id:
            continue
        dag = build_sync_dag(pair, config.site_of(pair))
        namespace[pair.dag_id] = dag
        dags.append(dag)
    return dags


class SyncConfigError(ValueError):
    """The config's bad pairs, one line each, naming the pair and the field."""


def check_sync_config(config_path: str | Path) -> None:
    """Raise ``SyncConfigError`` listing every bad pair; silent when all pairs are good."""
    config = load_sync_config(config_path)
    if config.errors:
        lines = "\n".join(f"  - {e}" for e in config.errors)
        raise SyncConfigError(
            f"ovirt-dr config {config.path}: {len(config.errors)} pair(s) not built:\n{lines}"
        )
