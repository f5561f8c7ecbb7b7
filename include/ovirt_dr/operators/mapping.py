"""Operators of the ``dr_mapping`` DAG: generate a DR mapping file from the primary engine, validate one.

Both read the recovery side config (``recovery:`` of ``ovirt_dr.yaml``) when they run, never at parse time,
and reach the engines only through the Airflow connections it names. Nothing from the config is ever a
template: the run's choices (direction, output path, dry run) come from the DAG run's params, typed and
validated by the trigger form. A broken config or mapping fails the task at once (no retry: retrying
cannot fix a file), naming every problem; an engine that does not answer is retried.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from ovirt_dr.hooks.ovirt import OvirtError, OvirtHook
from ovirt_dr.mapping import Direction, MappingError, parse_mapping, sides
from ovirt_dr.mapping_generator import GENERATED_MARKER, generate_mapping, summary
from ovirt_dr.operators.base import HookClosingOperator
from ovirt_dr.recovery_config import Recovery, load_recovery
from ovirt_dr.validation import format_report, validate_mapping

if TYPE_CHECKING:
    from airflow.sdk import Context

DIRECTIONS = ("failover", "failback")
GENERATED_SUFFIX = ".generated.yml"


class MappingValidationFailed(AirflowFailException):
    """The mapping has problems: every one is in the message (and in the ``report`` XCom)."""


def default_output_path(rec: Recovery) -> Path:
    """Next to the configured mapping file, ``<name>.generated.yml``: never the mapping file itself."""
    mapping = rec.mapping_path or rec.config_path.parent / "disaster_recovery_vars.yml"
    return mapping.with_name(mapping.stem + GENERATED_SUFFIX)


def _config_problems(rec: Recovery, need_mapping: bool) -> list[str]:
    """Problems that stop the task: the whole list when the mapping is needed, else config/site ones."""
    if need_mapping:
        return list(rec.problems) if not rec.ok else []
    mapping_path = str(rec.mapping_path) if rec.mapping_path else None
    problems = [p for p in rec.problems if not (mapping_path and p.startswith(mapping_path + ":"))]
    if rec.config is None and not problems:
        problems.append(f"{rec.config_path}: no usable 'recovery:' section")
    return problems


class OvirtValidateMappingOperator(HookClosingOperator):
    """Check the DR mapping file against both engines and fail listing every problem (or succeed with counts).

    Returns (XCom ``return_value``) and pushes as XCom ``report`` the report's dict: ``ok``, ``errors``,
    ``warnings``, ``checked`` (counts per category). An unreachable source engine is not a failure: only
    the target side is checked then (what a real failover can check), and a warning says so.

    :param config_path: the ovirt-dr config (its ``recovery:`` section names the mapping file).
    :param direction: ``failover`` or ``failback``; ``None`` takes the run's ``direction`` param.
    :param domains: source-side storage domains to check (default: every mapped one).
    """

    hook_attrs = ("source_hook", "target_hook")
    template_fields = ()

    def __init__(
        self,
        *,
        config_path: str,
        direction: Direction | None = None,
        domains: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if direction is not None and direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        self.config_path = config_path
        self.direction = direction
        self.domains = list(domains) if domains is not None else None

    def _direction(self, context: Context) -> Direction:
        value = self.direction or (context.get("params") or {}).get("direction") or "failover"
        if value not in DIRECTIONS:
            raise AirflowFailException(f"direction must be one of {DIRECTIONS}, not {value!r}")
        return value  # type: ignore[return-value]

    def run(self, context: Context) -> dict[str, Any]:
        direction = self._direction(context)
        rec = load_recovery(self.config_path)
        source_side, target_side = sides(direction)
        if rec.config is None or rec.site(source_side) is None or rec.site(target_side) is None:
            self._fail(context, rec.problems or [f"{self.config_path}: no usable recovery config"], direction)
        timeout = max(1, int(rec.config.probe_timeout.total_seconds()))  # type: ignore[union-attr]
        self.target_hook = OvirtHook(ovirt_conn_id=rec.conn_id(target_side))
        try:
            self.target_hook.system.get()
        except OvirtError as e:
            raise AirflowFailException(f"the {target_side} engine's connection is unusable: {e}") from e
        except Exception as e:  # the target must answer to be validated: let Airflow retry
            raise OvirtError(f"the {target_side} (target) engine does not answer: {e}") from e
        self.source_hook = OvirtHook(ovirt_conn_id=rec.conn_id(source_side), timeout=timeout)
        source: OvirtHook | None = self.source_hook
        try:
            self.source_hook.system.get()
        except Exception as e:
            self.log.warning(
                "The %s (source) engine does not answer within %ss (%s): validating the %s side only",
                source_side,
                timeout,
                e,
                target_side,
            )
            source = None
        report = validate_mapping(
            rec, direction, source=source, target=self.target_hook, domains=self.domains
        )
        title = f"DR mapping {rec.mapping_path} ({direction}: {source_side} -> {target_side})"
        text = format_report(report, title)
        context["ti"].xcom_push(key="report", value=report.as_dict())
        if report.errors:
            self.log.error("%s", text)
            raise MappingValidationFailed(text)
        self.log.info("%s", text)
        return report.as_dict()

    def _fail(self, context: Context, problems: list[str], direction: str) -> None:
        report = {"ok": False, "errors": list(problems), "warnings": [], "checked": {}}
        context["ti"].xcom_push(key="report", value=report)
        text = f"DR mapping ({direction}): the recovery config cannot be used:\n" + "\n".join(
            f"  ERROR   {p}" for p in problems
        )
        self.log.error("%s", text)
        raise MappingValidationFailed(text)


class OvirtGenerateMappingOperator(HookClosingOperator):
    """Write a DR mapping file from the primary engine, in the Ansible role's format, to fill in and validate.

    The file goes to ``output_path`` (default: next to the configured mapping file, ``*.generated.yml``).
    It never overwrites the configured mapping file, nor any existing file that this operator did not
    generate. With ``dry_run`` nothing is written: the file is in the log and the XCom. Returns
    ``{"path", "written", "counts", "text"}``.

    :param config_path: the ovirt-dr config (primary site connection, sync pairs, mapping file location).
    :param output_path: where to write (relative: to the config's directory); ``None`` = the run's
        ``output_path`` param, else the default.
    :param dry_run: ``None`` = the run's ``dry_run`` param (default false).
    """

    hook_attrs = ("hook",)
    template_fields = ()

    def __init__(
        self,
        *,
        config_path: str,
        output_path: str | None = None,
        dry_run: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.config_path = config_path
        self.output_path = output_path
        self.dry_run = dry_run

    def run(self, context: Context) -> dict[str, Any]:
        params = context.get("params") or {}
        rec = load_recovery(self.config_path)
        problems = _config_problems(rec, need_mapping=False)
        if problems or rec.site("primary") is None:
            raise AirflowFailException(
                "DR mapping generate: the recovery config cannot be used:\n"
                + "\n".join(f"  ERROR   {p}" for p in problems or ["recovery: no primary site"])
            )
        for p in rec.problems:
            self.log.info("The configured mapping file has a problem (generate does not need it): %s", p)
        dry_run = self.dry_run if self.dry_run is not None else bool(params.get("dry_run", False))
        target = self._target(rec, self.output_path or params.get("output_path"))

        from ovirt_dr.inventory import build_inventory

        self.hook = OvirtHook(ovirt_conn_id=rec.conn_id("primary"))
        hook = self.hook
        kwargs = hook.connection_kwargs()
        inv = build_inventory(kwargs["url"], hook.mapping_inventory())
        recoverable = sorted(
            sd.name
            for sd in inv.domains.values()
            if inv.dc_of_domain(sd.id)
            and sd.type == "data"
            and sd.storage_type == "glusterfs"
            and not sd.hosted_engine
        )
        vm_ids = [vm.id for name in recoverable for vm in hook.vms_on_domain(name)]
        roles = [
            inv.role_ids.get(perm.role.id, perm.role.id)
            for perms in hook.vm_permissions_of(vm_ids).values()
            for perm in perms
            if perm.role is not None
        ]
        text = generate_mapping(
            inv, username=kwargs["username"], ca_file=kwargs.get("ca_file"), pairs=rec.pairs, used_roles=roles
        )
        try:
            parse_mapping(text, target)  # our own output must load: a bug here must not reach a user
        except MappingError as e:
            raise OvirtError(f"the generated mapping does not load (a bug of ovirt-dr): {e}") from e
        counts = summary(text)
        self.log.info(
            "Generated DR mapping from %s (%s): %s\n%s",
            inv.url,
            ", ".join(f"{k} {v}" for k, v in counts.items()),
            "dry run, nothing written" if dry_run else f"writing {target}",
            text,
        )
        if not dry_run:
            _write_atomically(target, text)
            self.log.info(
                "Wrote %s (%d bytes): fill in the secondary values, then run action=validate",
                target,
                len(text),
            )
        return {"path": str(target), "written": not dry_run, "counts": counts, "text": text}

    def _target(self, rec: Recovery, wanted: str | None) -> Path:
        """The output path, refused when it is the mapping file or a file this operator did not write."""
        path = Path(os.path.expanduser(wanted)) if wanted else default_output_path(rec)
        if not path.is_absolute():
            path = rec.config_path.parent / path
        path = path.resolve()
        if path.suffix not in (".yml", ".yaml"):
            raise AirflowFailException(f"output_path {path}: must end in .yml or .yaml")
        if rec.mapping_path is not None and path == rec.mapping_path.resolve():
            raise AirflowFailException(
                f"output_path {path} is the configured mapping file: generate never overwrites it "
                f"(default: {default_output_path(rec)})"
            )
        if path.exists():
            try:
                head = path.read_text(encoding="utf-8", errors="replace")[:600]
            except OSError as e:
                raise AirflowFailException(f"output_path {path}: cannot read the existing file: {e}") from e
            if GENERATED_MARKER not in head:
                raise AirflowFailException(
                    f"output_path {path} exists and was not written by dr_mapping generate: not overwritten"
                )
        if not path.parent.is_dir():
            raise AirflowFailException(f"output_path {path}: directory {path.parent} does not exist")
        return path


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
