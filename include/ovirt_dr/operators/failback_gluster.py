"""Failback steps on Gluster: the reverse session (create, delete) and the forward replication re-established.

Commands run over SSH on the nodes the sync pairs name (the reverse session is driven from the pair's
slave node, its slave is cleaned through the pair's master node), built from validated names only
(``ovirt_dr.gluster.build_georep_cmd``); the session options come from ``recovery.reverse_session``,
validated there and again by the builder, never rendered. Each step reads the state first and does only
what is missing; a dry run reads and says what it would run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ovirt_dr.failback import parse_session_config, settings_to_apply
from ovirt_dr.gluster import GeoRepSession, SessionNotFound, build_georep_cmd, build_volume_set_cmd
from ovirt_dr.operators.recovery_base import RecoveryError, RecoveryOperator
from ovirt_dr.operators.recovery_gluster import READ_ONLY

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ovirt_dr.hooks.gluster import GlusterGeoRepHook

#: ``gluster system:: execute gsec_create``: the node's geo-replication keys (kept when they exist)
GSEC_CREATE = ["gluster", "--mode=script", "system::", "execute", "gsec_create"]
#: every session of the node's cluster, by master volume
ALL_SESSIONS = ["gluster", "--mode=script", "volume", "geo-replication", "status", "--xml"]
#: what ``create`` switches on for the session's master volume. ``changelog.changelog`` (every write then
#: journaled) is put back when the reverse session goes; ``geo-replication.indexing`` and
#: ``geo-replication.ignore-pid-check`` are protected by Gluster (a reset needs ``force``) and stay.
CHANGELOG = "changelog.changelog"


def master_volumes_with_sessions(hook: GlusterGeoRepHook) -> set[str]:
    """The volumes that are the master of some geo-replication session of this cluster."""
    import xml.etree.ElementTree as ET

    text = hook.run(ALL_SESSIONS, check=False).stdout
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return set()
    return {(v.findtext("name") or "") for v in root.iter("volume") if v.find("sessions") is not None}


def build_option_reset_cmd(volume: str, option: str) -> list[str]:
    """``gluster volume reset VOLUME changelog.changelog``: the one option the failback puts back."""
    from ovirt_dr.gluster.names import validate_volume_name

    if option != CHANGELOG:
        raise ValueError(f"volume option {option!r} is not one the failback resets")
    return ["gluster", "--mode=script", "volume", "reset", validate_volume_name(volume), option]


def _session(ends: dict[str, Any]) -> GeoRepSession:
    return GeoRepSession(ends["master_volume"], ends["slave_host"], ends["slave_volume"], ends["slave_user"])


def _cmd(argv: list[str]) -> str:
    return " ".join(argv)


def _exists(hook: GlusterGeoRepHook, session: GeoRepSession) -> tuple[bool, Any]:
    try:
        return True, hook.status(session)
    except SessionNotFound as e:
        return False, e


def _ensure_read_only(hook: GlusterGeoRepHook, volume: str, value: str, dry_run: bool, via: str) -> str:
    (info,) = hook.volume_info(volume)
    before = info.options.get(READ_ONLY, "off")
    if before == value:
        return f"{READ_ONLY} already {value}"
    argv = build_volume_set_cmd(volume, READ_ONLY, value)
    if dry_run:
        return f"{READ_ONLY} {before}: would run '{_cmd(argv)}' via {via}"
    hook.run(argv)
    (after,) = hook.volume_info(volume)
    now = after.options.get(READ_ONLY, "off")
    if now != value:
        raise RecoveryError(f"{volume}: {READ_ONLY} is {now!r} after setting it {value}")
    return f"{READ_ONLY} {before} -> {value}"


def _create(
    hook: GlusterGeoRepHook, session: GeoRepSession, ssh_port: str | None, dry_run: bool, log: Any
) -> str:
    argv = build_georep_cmd(
        session, "create", *(["ssh-port", ssh_port] if ssh_port else []), "push-pem", "force"
    )
    if dry_run:
        return f"would run '{_cmd(GSEC_CREATE)}' and '{_cmd(argv)}'"
    hook.run(GSEC_CREATE, timeout=300)
    log.info("Creating geo-replication %s (push-pem force: the slave volume holds the old data)", session)
    hook.run(argv, timeout=300)
    return "created (push-pem force)"


def _apply_settings(
    hook: GlusterGeoRepHook, session: GeoRepSession, wanted: dict[str, str], dry_run: bool, exists: bool
) -> list[str]:
    current = parse_session_config(hook.run(build_georep_cmd(session, "config")).stdout) if exists else {}
    todo = settings_to_apply(current, wanted)
    out = []
    for key, value in todo:
        argv = build_georep_cmd(session, "config", key, value)
        if dry_run:
            out.append(f"would set {key} {value} (now {current.get(key) or 'unset'})")
            continue
        hook.run(argv)
        out.append(f"{key} {current.get(key) or 'unset'} -> {value}")
    if not dry_run and todo:
        after = parse_session_config(hook.run(build_georep_cmd(session, "config")).stdout)
        left = settings_to_apply(after, wanted)
        if left:
            raise RecoveryError(f"geo-replication {session}: options still not as configured: {left}")
    return out


class _FailbackGlusterOperator(RecoveryOperator):
    """The failback plan's domains (the preflight's XCom); the phase decides what is still to do."""

    def domains(self, context: Context) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        plan = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        if not isinstance(plan, dict) or "domains" not in plan:
            raise RecoveryError(f"no failback plan from task {self.plan_task_id!r} (did it succeed?)")
        return plan, list(plan["domains"])


class GlusterCreateReverseSessionOperator(_FailbackGlusterOperator):
    """Create and configure the reverse session (the secondary's volume -> the primary's), per domain.

    First the forward session is made sure to be stopped (two sessions writing each other's master would
    fight); then, on the reverse master node: ``gsec_create`` and ``create [ssh-port N] push-pem force`` if
    the session does not exist (force: the primary volume holds the old data), the configured options
    (``recovery.reverse_session``), read back; the primary volume ``features.read-only on`` (nothing but
    geo-replication may write it now). Nothing to do in a resumed run past the final cycle.
    """

    def run(self, context: Context) -> list[dict[str, Any]]:
        plan, domains = self.domains(context)
        dry_run = bool(plan.get("dry_run"))
        if plan.get("phase") != "sync":
            self.log.info(
                "Phase %s: the reverse cycles are done; no reverse session to create", plan.get("phase")
            )
            return []
        results = []
        for d in domains:
            ends, fwd = d["reverse"], d["forward"]
            session = _session(ends)
            forward = _session(fwd)
            out: dict[str, Any] = {"domain": d["source_name"], "session": str(session)}
            primary_node = self.gluster.get(fwd["master_ssh_conn_id"])
            try:
                running = primary_node.status(forward).is_running
            except SessionNotFound:
                running = False
            if running:
                if dry_run:
                    out["forward"] = f"{forward} is running: would stop it (force)"
                else:
                    primary_node.stop(forward, force=True)
                    out["forward"] = f"{forward} was running: stopped"
            else:
                out["forward"] = f"{forward} not running"
            master = self.gluster.get(ends["master_ssh_conn_id"])
            exists, status = _exists(master, session)
            if not exists:  # what create switches on, so that the session's deletion can put it back
                (info,) = master.volume_info(ends["master_volume"])
                out["master_options_before"] = {CHANGELOG: info.options.get(CHANGELOG)}
            ssh_port = d.get("settings", {}).get("ssh_port")
            out["create"] = (
                "exists already" if exists else _create(master, session, ssh_port, dry_run, self.log)
            )
            if exists and status.faulty_workers:
                raise RecoveryError(f"geo-replication {session} is Faulty: see the gsyncd log on its nodes")
            out["options"] = _apply_settings(
                master, session, dict(d.get("settings") or {}), dry_run, exists or not dry_run
            )
            slave = self.gluster.get(ends["slave_ssh_conn_id"])
            out["read_only"] = _ensure_read_only(
                slave, ends["slave_volume"], "on", dry_run, ends["slave_ssh_conn_id"]
            )
            results.append(out)
        self.log_lines(
            "Reverse sessions" + (" (dry run):" if dry_run else ":"),
            [
                f"{r['session']}: {r['create']}; {r['forward']}; options {r['options'] or 'as configured'}; {r['read_only']}"
                for r in results
            ],
        )
        return results


class GlusterDeleteReverseSessionOperator(_FailbackGlusterOperator):
    """Delete the reverse session once the final cycle is audited: ``stop force``, ``delete
    reset-sync-time`` (its sync time marks on the secondary's bricks go too). Idempotent.

    When this run created the session (``create_task_id``'s XCom) and the secondary's volume had no
    changelog before, and it is the master of no other session now, its ``changelog.changelog`` is reset:
    a slave does not need every write journaled.
    """

    def __init__(self, *, create_task_id: str = "create_reverse_session", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.create_task_id = create_task_id

    def run(self, context: Context) -> list[dict[str, Any]]:
        plan, domains = self.domains(context)
        dry_run = bool(plan.get("dry_run"))
        created = {
            r.get("domain"): r
            for r in context["ti"].xcom_pull(task_ids=self.create_task_id) or []
            if isinstance(r, dict)
        }
        results = []
        for d in domains:
            ends = d["reverse"]
            session = _session(ends)
            master = self.gluster.get(ends["master_ssh_conn_id"])
            exists, status = _exists(master, session)
            stop = build_georep_cmd(session, "stop", "force")
            delete = build_georep_cmd(session, "delete", "reset-sync-time")
            if not exists:
                what = "no session (deleted already)"
            elif dry_run:
                what = f"would run '{_cmd(stop)}' and '{_cmd(delete)}'"
            else:
                master.run(stop, check=False)
                master.run(delete, timeout=300)
                exists, _ = _exists(master, session)
                if exists:
                    raise RecoveryError(f"geo-replication {session} still exists after delete")
                what = "stopped and deleted"
            before = (created.get(d["source_name"]) or {}).get("master_options_before") or {}
            if CHANGELOG in before and before[CHANGELOG] != "on" and (dry_run or not exists):
                what += "; " + self._changelog_back(master, ends["master_volume"], dry_run)
            results.append({"domain": d["source_name"], "session": str(session), "result": what})
        self.log_lines(
            "Reverse sessions" + (" (dry run):" if dry_run else ":"),
            [f"{r['session']}: {r['result']}" for r in results],
        )
        return results

    @staticmethod
    def _changelog_back(hook: GlusterGeoRepHook, volume: str, dry_run: bool) -> str:
        (info,) = hook.volume_info(volume)
        if info.options.get(CHANGELOG) != "on":
            return f"{CHANGELOG} not on"
        if volume in master_volumes_with_sessions(hook):
            return f"{CHANGELOG} kept: {volume} is the master of another session"
        argv = build_option_reset_cmd(volume, CHANGELOG)
        if dry_run:
            return f"would run '{_cmd(argv)}'"
        hook.run(argv)
        return f"{CHANGELOG} reset (it was not on before the reverse session)"


class GlusterReestablishReplicationOperator(_FailbackGlusterOperator):
    """Make primary -> secondary replication what it was before the failover, per pair.

    The secondary's volume ``features.read-only on`` again (geo-replication's own client still writes it);
    the forward session exists (created with ``push-pem force`` and the configured options if it does not)
    and is not Faulty. It is left stopped, as the sync pipeline leaves it between runs: the pair's next run
    starts it with its checkpoint. Runs after the secondary's cleanup (its engine must not write the volume
    any more).
    """

    def run(self, context: Context) -> list[dict[str, Any]]:
        plan, domains = self.domains(context)
        dry_run = bool(plan.get("dry_run"))
        results = []
        seen = set()
        for d in domains:
            fwd = d["forward"]
            if fwd["session"] in seen:
                continue
            seen.add(fwd["session"])
            session = _session(fwd)
            out: dict[str, Any] = {"session": str(session)}
            slave = self.gluster.get(fwd["slave_ssh_conn_id"])
            out["read_only"] = _ensure_read_only(
                slave, fwd["slave_volume"], "on", dry_run, fwd["slave_ssh_conn_id"]
            )
            master = self.gluster.get(fwd["master_ssh_conn_id"])
            exists, status = _exists(master, session)
            if not exists:
                out["session_state"] = _create(
                    master, session, (d.get("settings") or {}).get("ssh_port"), dry_run, self.log
                )
                out["options"] = _apply_settings(
                    master, session, dict(d.get("settings") or {}), dry_run, not dry_run
                )
            else:
                if status.faulty_workers:
                    raise RecoveryError(
                        f"geo-replication {session} is Faulty: see the gsyncd log on its nodes"
                    )
                workers = ", ".join(sorted({w.status or "?" for w in status.workers})) or "no workers"
                out["session_state"] = f"exists ({workers})"
            results.append(out)
        self.log_lines(
            "Primary -> secondary replication" + (" (dry run):" if dry_run else ":"),
            [f"{r['session']}: {r['session_state']}; slave {r['read_only']}" for r in results],
        )
        return results


__all__ = [
    "GlusterCreateReverseSessionOperator",
    "GlusterDeleteReverseSessionOperator",
    "GlusterReestablishReplicationOperator",
]
