"""Factory of the ``dr_mapping`` DAG: generate or validate the DR mapping file, by hand, from a trigger form.

The DAG always loads, whatever the state of the config or the mapping file (in an emergency an admin must
see it): parsing reads two local files and nothing else, and a broken config shows in the DAG's docs and
fails the task naming every problem. The form's ``action`` picks the task (the other one is skipped).
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param, task

from ovirt_dr.recovery_config import RECOVERY_TAGS, load_recovery

DAG_ID = "dr_mapping"


def _doc_md(config_path: Path, mapping: str, problems: list[str]) -> str:
    broken = ""
    if problems:
        broken = "\n**The recovery config has problems (the run fails naming them):**\n\n" + "\n".join(
            f"- `{p}`" for p in problems[:20]
        )
    return (
        textwrap.dedent(
            f"""\
            ### DR mapping file: generate, validate

            The mapping file is the oVirt Ansible `disaster_recovery` role's `disaster_recovery_vars.yml`,
            read as it is (`{mapping}`, named by `recovery.mapping_file` of `{config_path}`).

            - **validate** (default) checks it against both engines and lists *every* problem at once: each
              mapped cluster, affinity group/label, aaa domain, role, vNIC profile (name and id) and LUN on its
              site, cluster versions, storage domains (type, address, path, data center with an up host, not
              already there, never hosted-engine/export), the sync pair of each GlusterFS domain, snapshots in
              preview and every cluster/profile/LUN the VMs on the mapped domains use. The task fails listing
              them (log, XCom `report`, error message); it succeeds with the counts. With the source engine
              down (a real failover), only the target side is checked and a warning says so.
            - **generate** writes a mapping from the primary engine (`output_path`, default
              `*.generated.yml` next to the mapping file; never the mapping file itself), with the secondary
              values to fill in, except the replica's address and path, taken from the sync pair.
              `dry_run` only shows the file (log and XCom).

            No password is read from or written to the file: the engines are the Airflow connections of the
            config's `sites:`.
            """
        )
        + broken
    )


def build_mapping_dag(config_path: str | Path) -> DAG:
    """The ``dr_mapping`` DAG for the config at ``config_path`` (built even when the config is broken)."""
    from ovirt_dr.operators.mapping import (
        OvirtGenerateMappingOperator,
        OvirtValidateMappingOperator,
        default_output_path,
    )

    config_path = Path(config_path)
    rec = load_recovery(config_path)
    cfg = rec.config
    owner = cfg.owner if cfg is not None else "ovirt-dr"
    retries = max(2, cfg.retries) if cfg is not None else 3
    mapping = str(rec.mapping_path or "(unknown: no usable recovery config)")
    dag = DAG(
        dag_id=DAG_ID,
        schedule=None,
        catchup=False,
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        max_active_runs=4,
        tags=[*RECOVERY_TAGS, "mapping"],
        description="Generate or validate the DR mapping file (Ansible disaster_recovery format)",
        doc_md=_doc_md(config_path, mapping, rec.problems),
        default_args={
            "owner": owner,
            "retries": retries,
            "retry_delay": timedelta(seconds=20),
        },
        params={
            "action": Param(
                "validate",
                type="string",
                enum=["validate", "generate"],
                title="Action",
                description="validate the mapping file against both engines, or generate one from the primary",
            ),
            "direction": Param(
                "failover",
                type="string",
                enum=["failover", "failback"],
                title="Direction (validate)",
                description="failover: primary -> secondary; failback: secondary -> primary",
            ),
            "output_path": Param(
                str(default_output_path(rec)),
                type="string",
                minLength=1,
                pattern=r"\.ya?ml$",
                title="Output file (generate)",
                description="where generate writes (never the configured mapping file); relative to the config",
            ),
            "dry_run": Param(
                False,
                type="boolean",
                title="Dry run (generate)",
                description="only show the generated file in the log and XCom, write nothing",
            ),
        },
    )
    with dag:

        @task.branch(task_id="choose_action")
        def choose_action(**context: object) -> str:
            """Run the task the form's ``action`` names; the other one is skipped."""
            params = context.get("params") or {}
            return "generate" if params.get("action") == "generate" else "validate"  # type: ignore[union-attr]

        generate = OvirtGenerateMappingOperator(task_id="generate", config_path=str(config_path))
        validate = OvirtValidateMappingOperator(task_id="validate", config_path=str(config_path))
        choose_action() >> [generate, validate]
    return dag
