"""Factory of the sync DAGs: one DAG per (storage domain, geo-replication target) pair of the config.

A DAG file calls ``build_sync_dags(config_path, globals())`` and nothing else. Pairs are built in sorted
order; with a parsing context (a task run) only that task's DAG is built.

A bad pair does not stop the others. Its error is raised by a second, DAG-less file
(``dags/dr_sync_config_check.py`` calling ``check_sync_config``), so Airflow shows it as that file's
import error, naming the pair and the field, while this file builds every good pair. (An import error on
the file that defines the DAGs would not do: Airflow's dag-processor marks every DAG of a file with an
import error as stale, which would stop all pairs.) ``OVIRT_DR_STRICT=1`` makes the DAG file itself fail
instead, for CI of a config repository.

Every pair's DAG is built under a guard that makes every check the dag-processor makes next (the DagBag's
``validate()`` and cycle check, cluster policies, serialization): whatever fails becomes that pair's named
error, reported by the check file, and the pair is left out, never the file's import error.

One DAG file builds at most ``MAX_PAIRS_PER_FILE`` pairs (an import must finish within Airflow's
``dagbag_import_timeout``; ``bench`` P7 measures it). More pairs are sharded over several DAG files by file
name: ``dr_sync_<k>_of_<n>.py`` builds the pairs whose DAG id hashes to shard ``k`` of ``n``, and
``dr_sync_config_check_<k>_of_<n>.py`` reports that shard's errors. Pairs over the limit of their file are
named errors, never silently missing.

Nothing from the config is rendered as a Jinja template: operator template fields receive config values
wrapped in ``literal()``, and the mails are ``ovirt_dr.notifications.PairMailNotifier``.
"""

from __future__ import annotations

import hashlib
import os
import re
import textwrap
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, TriggerRule, get_parsing_context, literal

from ovirt_dr.config import (
    STRICT_ENV,
    PairConfig,
    PairError,
    SiteConfig,
    SyncConfig,
    load_sync_config,
)
from ovirt_dr.gluster import GeoRepSession

SYNC_TAGS = ["ovirt-dr", "sync"]
#: Pairs one DAG file builds at most. Measured (``python -m bench P7``, 2 cores): 500 pairs import in
#: ~6 s and the dag-processor is done with the file in ~9 s: a fifth of the 30 s import timeout and of the
#: 50 s processor timeout, room for a loaded machine. More pairs: shard them over several DAG files
#: (README "Configuration").
MAX_PAIRS_PER_FILE = 500
MAX_PAIRS_ENV = "OVIRT_DR_MAX_PAIRS_PER_FILE"
_SHARD_FILE = re.compile(r"dr_sync(?:_config_check)?_([0-9]{1,4})_of_([0-9]{1,4})\.py", re.ASCII)


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
    from ovirt_dr.deadlines import rpo_deadline_alerts
    from ovirt_dr.notifications import PairMailNotifier

    # Measured from the pair's newest recovery point, mail built from values (see ovirt_dr.deadlines).
    deadline = rpo_deadline_alerts(pair)
    # Recipients and connection are plain values, the subject and body fixed text: the config reaches the
    # mail only as `pair` data (ovirt_dr.notifications), never as template source.
    failure = PairMailNotifier(
        to=list(pair.alert_emails),
        smtp_conn_id=pair.smtp_conn_id,
        pair={
            "storage_domain": pair.storage_domain,
            "target": pair.target,
            "slave": f"{pair.slave_host}::{pair.slave_volume}",
        },
        subject="[ovirt-dr] DR sync FAILED: {{ pair.storage_domain }} -> {{ pair.target }} ({{ dag_run.run_id }})",
        html_content="<p>DR sync of <b>{{ pair.storage_domain | e }}</b> to <b>{{ pair.slave | e }}</b> failed: "
        "{{ reason | e }}.</p><p>Run {{ dag_run.run_id | e }}. Open the run in Airflow for the failed step's "
        "log; DR snapshots were merged by the run's merge step.</p>",
    )
    return deadline, failure


@dataclass(frozen=True)
class SyncEndpoints:
    """Where one sync cycle runs: the engine and its domain, the geo-rep session, the nodes, the pool.

    A pair's own cycle (:func:`pair_endpoints`) goes primary -> secondary; the failback runs the same cycle
    the other way (secondary engine and volume -> primary volume) with its own endpoints.
    """

    ovirt_conn_id: str
    storage_domain: str
    master_volume: str
    master_ssh_conn_id: str
    slave_host: str
    slave_volume: str
    slave_user: str
    slave_ssh_conn_id: str
    mount_root: str
    pool: str

    @property
    def session(self) -> GeoRepSession:
        """The geo-replication session the cycle drives (what every Gluster operator and the sensor get)."""
        return GeoRepSession(self.master_volume, self.slave_host, self.slave_volume, self.slave_user)


def pair_endpoints(pair: PairConfig, site: SiteConfig) -> SyncEndpoints:
    return SyncEndpoints(
        ovirt_conn_id=site.ovirt_conn_id,
        storage_domain=pair.storage_domain,
        master_volume=pair.master_volume,
        master_ssh_conn_id=pair.gluster_ssh_conn_id,
        slave_host=pair.slave_host,
        slave_volume=pair.slave_volume,
        slave_user=pair.slave_user,
        slave_ssh_conn_id=pair.slave_ssh_conn_id,
        mount_root=pair.mount_root,
        pool=pool_name(pair),
    )


@dataclass(frozen=True)
class SyncCycle:
    """The tasks of one sync cycle, for wiring: it starts at ``first`` and is done when ``audit`` and
    ``merge`` are (the merge runs whatever failed before it)."""

    first: list[Any]
    preflight: Any
    audit: Any
    merge: Any


def add_sync_cycle(
    pair: PairConfig,
    ends: SyncEndpoints,
    *,
    outlets: list[Asset] | None = None,
    snapshot_label: str | None = None,
    gate: Any = None,
    always: TriggerRule = TriggerRule.ALL_DONE,
    checkpoint_timeout: timedelta | None = None,
    poll_interval: timedelta | None = None,
    faulty_grace: timedelta | None = None,
    deferrable: bool = True,
) -> SyncCycle:
    """One sync cycle's tasks (DESIGN.md "One sync run", steps 1-9) in the current DAG or task group.

    ``pair`` gives the VM-side settings (consistency groups, exclusions, concurrency, timeouts, audit);
    ``ends`` where it runs. ``snapshot_label`` tells this cycle's snapshots from another cycle's of the same
    run (the failback runs several). With a ``gate`` task, it runs first and the always-run steps (stop,
    merge) also wait for it with ``always``: a skipped gate (a dry run) then skips the whole cycle.
    ``deferrable=False`` waits for the checkpoint in the worker (a one-off run that may hold a slot).
    """
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
        OvirtUpdateOvfStoreOperator,
    )
    from ovirt_dr.sensors.gluster import GlusterGeoRepCheckpointSensor

    session = ends.session
    gluster = {"session": session, "mount_root": ends.mount_root}
    # Config values given to template fields (the oVirt operators template their connection id, domain,
    # volume and label) are literals: Jinja never renders them, whatever they hold.
    conn_id = literal(ends.ovirt_conn_id)
    preflight = OvirtSyncPreflightOperator(
        task_id="preflight_engine",
        ovirt_conn_id=conn_id,
        storage_domain=literal(ends.storage_domain),
        master_volume=literal(ends.master_volume),
        merge_timeout_s=pair.merge_timeout.total_seconds(),
        multiple_outputs=True,
    )
    preflight_georep = GlusterGeoRepPreflightOperator(
        task_id="preflight_georep",
        ssh_conn_id=ends.master_ssh_conn_id,
        slave_ssh_conn_id=ends.slave_ssh_conn_id,
        **gluster,
    )
    ovf = OvirtUpdateOvfStoreOperator(
        task_id="update_ovf_store",
        ovirt_conn_id=conn_id,
        sd_id=preflight.output["sd_id"],
        timeout_s=pair.ovf_timeout.total_seconds(),
    )
    snapshot = OvirtSnapshotVmsOperator(
        task_id="snapshot_vms",
        ovirt_conn_id=conn_id,
        storage_domain=literal(ends.storage_domain),
        sd_id=preflight.output["sd_id"],
        consistency_groups=pair.consistency_groups,
        exclude_vms=pair.exclude_vms,
        concurrency=pair.snapshot_concurrency,
        timeout_s=pair.snapshot_timeout.total_seconds(),
        execution_timeout=pair.snapshot_timeout * 2,
        description_label=snapshot_label,
    )
    checkpoint = GlusterGeoRepCheckpointOperator(
        task_id="checkpoint_and_start",
        ssh_conn_id=ends.master_ssh_conn_id,
        slave_ssh_conn_id=ends.slave_ssh_conn_id,
        pool=ends.pool,
        **gluster,
    )
    wait = GlusterGeoRepCheckpointSensor(
        task_id="wait_for_checkpoint",
        ssh_conn_id=ends.master_ssh_conn_id,
        checkpoint=checkpoint.output,
        checkpoint_timeout=checkpoint_timeout or pair.checkpoint_timeout,
        faulty_grace=faulty_grace or pair.faulty_grace,
        poll_interval=poll_interval or pair.poll_interval,
        pool=ends.pool,
        retries=0,
        session=session,
        deferrable=deferrable,
    )
    stop = GlusterGeoRepStopOperator(
        task_id="stop_georep",
        ssh_conn_id=ends.master_ssh_conn_id,
        trigger_rule=always,
        pool=ends.pool,
        **gluster,
    )
    cleanup = GlusterReplicaCleanupOperator(
        task_id="cleanup_replica",
        ssh_conn_id=ends.slave_ssh_conn_id,
        sd_id=preflight.output["sd_id"],
        snapshots=snapshot.output,
        **gluster,
    )
    audit = GlusterReplicaAuditOperator(
        task_id="audit_replica",
        ssh_conn_id=ends.slave_ssh_conn_id,
        master_ssh_conn_id=ends.master_ssh_conn_id,
        sd_id=preflight.output["sd_id"],
        snapshots=snapshot.output,
        checkpoint=checkpoint.output,
        audit_mode=pair.audit.mode,
        sample_blocks=pair.audit.sample_blocks,
        block_size=pair.audit.block_size_kib * 1024,
        outlets=list(outlets or []),
        **gluster,
    )
    merge = OvirtMergeSnapshotsOperator(
        task_id="merge_snapshots",
        ovirt_conn_id=conn_id,
        storage_domain=literal(ends.storage_domain),
        timeout_s=pair.merge_timeout.total_seconds(),
        trigger_rule=always,
    )
    [preflight, preflight_georep] >> ovf >> snapshot >> checkpoint >> wait >> stop >> cleanup >> audit
    audit >> merge
    snapshot >> merge
    if gate is not None:
        gate >> [preflight, preflight_georep]
        gate >> [stop, merge]
    return SyncCycle(first=[preflight, preflight_georep], preflight=preflight, audit=audit, merge=merge)


def build_sync_dag(pair: PairConfig, site: SiteConfig) -> DAG:
    """One pair's DAG (see DESIGN.md "One sync run")."""
    from ovirt_dr.operators.ovirt import OvirtSyncReportOperator

    deadline, failure = _callbacks(pair)
    dag = DAG(
        dag_id=pair.dag_id,
        # Registered only through the DAG file's globals: a DAG whose build or check failed half-way must
        # not reach the DagBag through the context manager's auto-registration.
        auto_register=False,
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
        cycle = add_sync_cycle(pair, pair_endpoints(pair, site), outlets=[recovery_point_asset(pair)])
        report = OvirtSyncReportOperator(
            task_id="report",
            ovirt_conn_id=literal(site.ovirt_conn_id),
            sd_id="{{ ti.xcom_pull(task_ids='preflight_engine', key='sd_id') or '' }}",
            pair_label=literal(pair.label),
            trigger_rule=TriggerRule.ALL_DONE,
            retries=1,
        )
        cycle.merge >> report
    return dag


@dataclass(frozen=True)
class Shard:
    """Which pairs one DAG file builds: ``index`` of ``count`` (1 of 1 for ``dr_sync.py``)."""

    index: int = 1
    count: int = 1

    def holds(self, pair: PairConfig) -> bool:
        """Stable under added pairs: a pair's shard depends only on its DAG id (and ``count``)."""
        if self.count == 1:
            return True
        digest = hashlib.blake2b(pair.dag_id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count + 1 == self.index

    @property
    def suffix(self) -> str:
        return "" if self.count == 1 else f"_{self.index}_of_{self.count}"


def shard_of(file: str | Path | None) -> Shard:
    """The shard a DAG or check file stands for, from its name (``dr_sync_3_of_20.py``: 3 of 20)."""
    m = _SHARD_FILE.fullmatch(Path(file).name) if file else None
    if not m:
        return Shard()
    index, count = int(m.group(1)), int(m.group(2))
    if not 1 <= index <= count:
        raise ValueError(f"{file}: shard {index} of {count} does not exist (1 <= k <= n)")
    return Shard(index, count)


def max_pairs_per_file() -> int:
    """``MAX_PAIRS_PER_FILE``, or ``$OVIRT_DR_MAX_PAIRS_PER_FILE`` for a faster machine or longer timeouts."""
    raw = os.environ.get(MAX_PAIRS_ENV)
    if raw is None:
        return MAX_PAIRS_PER_FILE
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise ValueError(f"${MAX_PAIRS_ENV}={raw!r}: a whole number from 1 to 100000")
    return int(raw)


def check_dag(dag: DAG) -> None:
    """Everything the dag-processor does with a DAG after importing the file, minus storing it.

    The DagBag's ``bag_dag`` (``dag.validate()``: the timetable; the cycle check; the cluster policies)
    and the processor's serialization (``DagSerialization.to_dict``): an exception in any of them would
    be an import error of the whole DAG file there, so it is raised here, for one pair.
    """
    from airflow.serialization.serialized_objects import DagSerialization

    dag.validate()
    dag.check_cycle()
    try:
        from airflow import settings
        from airflow.exceptions import AirflowClusterPolicySkipDag
    except ImportError:  # a worker without airflow-core: no policies to apply
        settings = None
    if settings is not None:
        try:
            settings.dag_policy(dag)
            for task in dag.tasks:
                settings.task_policy(task)
        except AirflowClusterPolicySkipDag:
            pass  # the DagBag skips it the same way; not an error of the pair
    DagSerialization.to_dict(dag)


@dataclass
class BuildResult:
    """One DAG file's (or check file's) share of the config: the DAGs built and the pairs that were not."""

    config: SyncConfig
    shard: Shard
    dags: list[DAG]
    errors: list[PairError]


def build_pairs(config: SyncConfig, shard: Shard = Shard(), wanted: str | None = None) -> BuildResult:
    """Build (under the guard) the pairs of ``shard``, at most ``max_pairs_per_file()``, sorted by DAG id.

    With ``wanted`` (a parsing context's DAG id), only that pair is built. Every failure is a ``PairError``
    naming the pair; nothing is raised.
    """
    limit = max_pairs_per_file()
    mine = [p for p in config.pairs if shard.holds(p)]
    errors: list[PairError] = []
    for pair in mine[limit:]:
        errors.append(
            PairError(
                config.index_of(pair),
                pair.label,
                [
                    f"not built: this DAG file{f' (shard {shard.index} of {shard.count})' if shard.count > 1 else ''}"
                    f" already holds {limit} pairs (MAX_PAIRS_PER_FILE, ${MAX_PAIRS_ENV}): shard the pairs over "
                    "more DAG files (README 'Configuration')"
                ],
            )
        )
    dags: list[DAG] = []
    for pair in mine[:limit]:
        if wanted and wanted != pair.dag_id:
            continue
        try:
            dag = build_sync_dag(pair, config.site_of(pair))
            check_dag(dag)
        except Exception as e:  # the guard: one pair's failure is that pair's error, not the file's
            message = " ".join(f"{type(e).__name__}: {e}".split())[:2000]
            errors.append(
                PairError(config.index_of(pair), pair.label, [f"its DAG could not be built: {message}"])
            )
            continue
        dags.append(dag)
    return BuildResult(config=config, shard=shard, dags=dags, errors=errors)


def _strict() -> bool:
    return os.environ.get(STRICT_ENV, "").lower() in ("1", "true", "yes")


def build_sync_dags(config_path: str | Path, namespace: dict[str, Any]) -> list[DAG]:
    """Build this DAG file's pairs into ``namespace`` (the DAG file's globals); return them.

    The shard comes from the file's name (``namespace["__file__"]``). With a parsing context naming one DAG
    (a task about to run), only that DAG is built, which keeps task start-up fast with hundreds of pairs.
    A bad pair is left out (the check file names it); ``OVIRT_DR_STRICT=1`` makes any problem fail here.
    """
    config = load_sync_config(config_path)
    shard = shard_of(namespace.get("__file__"))
    if _strict() and (config.errors or config.problems):
        raise ValueError("; ".join(str(e) for e in config.all_errors))
    result = build_pairs(config, shard, get_parsing_context().dag_id)
    if _strict() and result.errors:
        raise ValueError("; ".join(str(e) for e in result.errors))
    for dag in result.dags:
        namespace[dag.dag_id] = dag
    return result.dags


class SyncConfigError(ValueError):
    """The config's problems and bad pairs, one line each, naming the pair and the field (or the line)."""


def _deployment_problems(check_file: Path, shard: Shard) -> list[str]:
    """DAG files missing or mixed: pairs that no file builds, or that two files build."""
    folder = check_file.parent
    shards = sorted(
        {shard_of(p.name) for p in folder.glob("dr_sync*_of_*.py") if _SHARD_FILE.fullmatch(p.name)},
        key=lambda s: (s.count, s.index),
    )
    out = []
    counts = {s.count for s in shards}
    if shard.count == 1:
        if shards:
            out.append(
                f"{folder}: sharded DAG files ({', '.join(f'dr_sync{s.suffix}.py' for s in shards)}) next to "
                "the unsharded dr_sync.py and dr_sync_config_check.py: every pair would be built twice"
            )
        return out
    if (folder / "dr_sync.py").exists():
        out.append(f"{folder}: dr_sync.py next to sharded DAG files: every pair would be built twice")
    if len(counts) > 1:
        out.append(f"{folder}: DAG files of different shard counts ({sorted(counts)}): use one n")
    if shard.index == 1:
        missing = [
            k for k in range(1, shard.count + 1) if not (folder / f"dr_sync_{k}_of_{shard.count}.py").exists()
        ]
        if missing:
            out.append(
                f"{folder}: DAG files dr_sync_<k>_of_{shard.count}.py missing for k = {missing}: "
                "their pairs are not built"
            )
        unchecked = [
            k
            for k in range(1, shard.count + 1)
            if not (folder / f"dr_sync_config_check_{k}_of_{shard.count}.py").exists()
        ]
        if unchecked:
            out.append(
                f"{folder}: check files dr_sync_config_check_<k>_of_{shard.count}.py missing for k = "
                f"{unchecked}: those shards' errors are not shown"
            )
    return out


def check_sync_config(config_path: str | Path, check_file: str | Path | None = None) -> None:
    """Raise ``SyncConfigError`` listing every problem of the config; silent when everything builds.

    It builds (under the same guard) exactly what the DAG file of its shard builds, so a pair that fails
    there is named here. The file-level problems and the pairs that fail validation are reported by the
    first shard's check file only (once).
    """
    config = load_sync_config(config_path)
    shard = shard_of(check_file)
    result = build_pairs(config, shard)
    lines = [str(e) for e in (config.problems if shard.index == 1 else [])]
    if check_file is not None:
        lines += _deployment_problems(Path(check_file), shard)
    errors = [*(config.errors if shard.index == 1 else []), *result.errors]
    lines += [str(e) for e in sorted(errors, key=lambda e: e.index)]
    if lines:
        body = "\n".join(f"  - {line}" for line in lines)
        where = f" (shard {shard.index} of {shard.count})" if shard.count > 1 else ""
        raise SyncConfigError(
            f"ovirt-dr config {config.path}{where}: {len(errors)} pair(s) not built, "
            f"{len(lines) - len(errors)} other problem(s):\n{body}"
        )
