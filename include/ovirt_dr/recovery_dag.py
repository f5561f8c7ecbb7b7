"""What every recovery DAG factory shares: the DAG's frame, its form's common fields, its inlets.

``dr_failover``, ``dr_drill``, ``dr_cleanup_primary`` and ``dr_failback`` are manual, one run at a time,
built even when the config is broken (the description then says so and the first task names every
problem), with the recovery config's owner and retries. Writing that frame once keeps the four alike:
an admin who knows one form knows them all.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from ovirt_dr.recovery_config import RECOVERY_TAGS, Recovery, RecoveryConfig, load_recovery


def load_for_dag(config_path: str) -> tuple[Recovery, RecoveryConfig]:
    """The recovery config as the DAG file sees it, and a stand-in config when it cannot be used (the DAG
    is still built, with the defaults' retries and owner)."""
    rec = load_recovery(config_path)
    return rec, rec.config or RecoveryConfig(mapping_file="(not configured)")


def recovery_dag(
    *, dag_id: str, tag: str, rec: Recovery, cfg: RecoveryConfig, doc_md: str, description: str, params: dict
) -> DAG:
    """A manual recovery DAG (no schedule, ``max_active_runs=1``: two runs of one recovery would fight over
    the same domains; other recovery DAGs are kept out by each first task)."""
    return DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=[*RECOVERY_TAGS, tag],
        doc_md=doc_md,
        description=description
        + (f" -- CONFIG BROKEN: {len(rec.problems)} problem(s)" if rec.problems else ""),
        params=params,
        default_args={
            "owner": cfg.owner,
            "retries": cfg.retries,
            "retry_delay": cfg.retry_delay,
            "retry_exponential_backoff": False,
        },
    )


def domains_param(names: list[str], description: str) -> Param:
    """The form's ``domains``: a subset of the mapped names (a pick list when the config is usable)."""
    items: dict[str, Any] = {"type": "string"}
    extra: dict[str, Any] = {}
    if names:
        items["enum"] = names
        extra["examples"] = names
    return Param(
        [],
        type="array",
        items=items,
        uniqueItems=True,
        title="Storage domains",
        description_md=description,
        **extra,
    )


def dry_run_param(what: str) -> Param:
    """The form's ``dry_run``, on by default: a recovery is first run to see what it would do."""
    return Param(
        True,
        type="boolean",
        title="Dry run",
        description_md=f"Change nothing anywhere; print what a real {what} would do. Untick for the real run.",
    )


def problems_md(rec: Recovery) -> str:
    """The doc's paragraph listing what makes the config unusable (empty when usable)."""
    if not rec.problems:
        return ""
    problems = "\n".join(f"- {p}" for p in rec.problems)
    return f"\n**The recovery config cannot be used now** (the first task fails):\n\n{problems}\n"


def domain_rows(rec: Recovery, name_suffix: str = "") -> str:
    """The doc's table body: one row per mapped domain (primary name, secondary name + ``name_suffix`` and
    data center, replica path, the sync pair that keeps it), or a row pointing at the problems."""
    rows = []
    for link in rec.links("failover") if rec.mapping is not None else []:
        s, pair = link.storage, link.pair
        via = f"replica of sync pair `{pair.dag_id}`" if pair else "**no sync pair replicates it**"
        rows.append(
            f"| `{s.dr_primary_name}` | `{s.dr_secondary_name}{name_suffix}` in `{s.dr_secondary_dc_name}` | "
            f"`{s.dr_secondary_address}:{s.dr_secondary_path}` | {via} |"
        )
    return "\n".join(rows) or "| (none: see the problems below) | | | |"


def recovery_point_assets(rec: Recovery) -> list[Any]:
    """The recovery-point asset of each sync pair behind the mapped domains, once each: the preflight's
    inlets, from which it reads each domain's newest recovery point."""
    from ovirt_dr.sync import recovery_point_asset

    assets: list[Any] = []
    if rec.ok:
        seen: set[str] = set()
        for link in rec.links("failover"):
            if link.pair is not None and link.pair.dag_id not in seen:
                seen.add(link.pair.dag_id)
                assets.append(recovery_point_asset(link.pair))
    return assets


__all__ = [
    "domain_rows",
    "domains_param",
    "dry_run_param",
    "load_for_dag",
    "problems_md",
    "recovery_dag",
    "recovery_point_assets",
]
