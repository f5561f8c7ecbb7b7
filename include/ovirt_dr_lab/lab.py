"""``ovirt-dr-lab up|down|status|fault``: the whole lab on one machine, real Gluster geo-replication included.

``up`` is idempotent (run it again while up, or after ``down``) and records every change it makes outside the
lab dir in ``<lab>/state.json`` before making it; ``down`` undoes exactly that and stops only the processes
whose PIDs the lab recorded. See the README's "Lab" section for what is changed outside the project.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from ovirt_dr_lab.labparts import engines, gluster, sshd, system
from ovirt_dr_lab.labparts.common import (
    LabError,
    LabPaths,
    State,
    is_mounted,
    lab_lock,
    log,
    port_open,
    recorded_pid,
    spawn,
    stop_recorded,
    tail,
    wait_until,
)

SMTP_PORT = 8025
ENGINE_USER = "admin@internal"
ENGINE_PASSWORD = "lab-admin-pw"
FAULTS = ("faulty", "slow", "drop-ssh", "stop-slave")
SLOW_DIR = "lab-slow"


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (apt, glusterd, FUSE mounts, sshd)")


# --- env --------------------------------------------------------------------------------------------------


def lab_env(paths: LabPaths) -> dict[str, str]:
    """Every key of env.sh / env.json (contracts.md "Lab layout and addresses")."""
    host_key = sshd.host_key_line(paths)

    def ovirt(site: str) -> str:
        return json.dumps(
            {
                "conn_type": "ovirt",
                "host": engines.api_url(site),
                "login": ENGINE_USER,
                "password": ENGINE_PASSWORD,
                "extra": {"ca_file": str(engines.ca_file(paths, site))},
            }
        )

    ssh_conn = json.dumps(
        {
            "conn_type": "ssh",
            "host": "127.0.0.1",
            "port": sshd.LAB_SSH_PORT,
            "login": "root",
            "extra": {"key_file": str(sshd.client_key(paths)), "host_key": host_key, "look_for_keys": False},
        }
    )
    smtp_conn = json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": SMTP_PORT,
            "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com"},
        }
    )
    return {
        "AIRFLOW_CONN_OVIRT_PRIMARY": ovirt("primary"),
        "AIRFLOW_CONN_OVIRT_SECONDARY": ovirt("secondary"),
        "AIRFLOW_CONN_GLUSTER_PRIMARY": ssh_conn,
        "AIRFLOW_CONN_GLUSTER_SECONDARY": ssh_conn,
        "AIRFLOW_CONN_SMTP_LAB": smtp_conn,
        "LAB_DIR": str(paths.root),
        "LAB_MASTER_MOUNT": str(paths.master_mount),
        "LAB_SLAVE_MOUNT": str(paths.slave_mount),
        "LAB_MASTER_VOLUME": gluster.MASTER,
        "LAB_SLAVE_VOLUME": gluster.SLAVE,
        "LAB_SLAVE_HOST": gluster.SLAVE_HOST,
        "LAB_GLUSTER_HOST": system.hostname(),
        "LAB_MAILDIR": str(paths.mail),
        "LAB_PRIMARY_ENGINE_URL": engines.api_url("primary"),
        "LAB_SECONDARY_ENGINE_URL": engines.api_url("secondary"),
        "LAB_PRIMARY_CA": str(engines.ca_file(paths, "primary")),
        "LAB_SECONDARY_CA": str(engines.ca_file(paths, "secondary")),
        "LAB_SSH_PORT": str(sshd.LAB_SSH_PORT),
    }


def write_env(paths: LabPaths, env: dict[str, str]) -> None:
    paths.env_json.write_text(json.dumps(env, indent=2) + "\n")
    lines = ["# written by `ovirt-dr-lab up`; source it: . .lab/env.sh"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    paths.env_sh.write_text("\n".join(lines) + "\n")


# --- smtp -------------------------------------------------------------------------------------------------


def start_smtp(paths: LabPaths) -> bool:
    if recorded_pid(paths, "smtpsink") is not None and port_open(SMTP_PORT):
        return False
    if port_open(SMTP_PORT):
        raise LabError(
            f"127.0.0.1:{SMTP_PORT} is taken by a process the lab did not start; free it and retry"
        )
    paths.mail.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ovirt_dr_lab.labparts.smtpsink", "--port", str(SMTP_PORT)]
    spawn(paths, "smtpsink", [*argv, "--maildir", str(paths.mail)])
    try:
        wait_until(f"SMTP sink on 127.0.0.1:{SMTP_PORT}", lambda: port_open(SMTP_PORT), timeout=20)
    except LabError as exc:
        raise LabError(f"{exc}\nsmtpsink log:\n{tail(paths.log_file('smtpsink'))}") from None
    log(f"SMTP sink on 127.0.0.1:{SMTP_PORT}, mails in {paths.mail}")
    return True


# --- up ---------------------------------------------------------------------------------------------------


def up(paths: LabPaths, *, no_engines: bool = False) -> dict[str, float]:
    _require_root()
    timings: dict[str, float] = {}
    t_all = time.monotonic()

    def step(label: str, t0: float) -> None:
        timings[label] = round(time.monotonic() - t0, 1)

    for d in (paths.root, paths.pids, paths.logs, paths.mnt):
        d.mkdir(parents=True, exist_ok=True)
    state = State(paths)
    state.data.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    state.set("up_complete", False)

    t0 = time.monotonic()
    system.ensure_packages(state)
    step("packages", t0)

    t0 = time.monotonic()
    system.ensure_hostname_resolves(state)
    system.record_root_ssh(state)
    sshd.ensure_keys(paths)
    system.ensure_run_sshd(state)
    sshd.start(paths, "sshd-georep")
    sshd.start(paths, "sshd")
    step("sshd", t0)

    t0 = time.monotonic()
    gluster.ensure_glusterd(paths, state)
    if not (state.get("glusterd") or {}).get("started_by_lab", True):
        # A glusterd the lab did not start lacks GR_SSH_IDENTITY_KEY: let root's own key in instead.
        system.ensure_root_key(state, paths.ssh / "georep_authorized_keys")
    step("glusterd", t0)

    t0 = time.monotonic()
    for vol in (gluster.MASTER, gluster.SLAVE):
        gluster.ensure_volume(paths, state, vol)
    gluster.ensure_mount(paths, gluster.MASTER, paths.master_mount)
    gluster.ensure_mount(paths, gluster.SLAVE, paths.slave_mount)
    step("volumes+mounts", t0)

    t0 = time.monotonic()
    gluster.ensure_session(paths, state)
    gluster.repair_replication()  # what a failed failover/failback test may have left
    step("georep session", t0)

    t0 = time.monotonic()
    start_smtp(paths)
    step("smtp", t0)

    env = lab_env(paths)
    t0 = time.monotonic()
    state.set("no_engines", no_engines)
    if no_engines:
        log("engines NOT started (--no-engines)")
    else:
        for site in engines.SITES:
            engines.start(paths, site, env)
    step("engines", t0)

    # `up` means "everything healthy": switch off any fault left on (each switch-off is idempotent).
    for name, on in sorted((State(paths).get("faults") or {}).items()):
        if on:
            log(f"fault {name} was on: switching it off")
            log(fault(paths, name, False))
    state = State(paths)  # fault() saved its own copy

    write_env(paths, env)
    state.set("up_complete", True)
    timings["total"] = round(time.monotonic() - t_all, 1)
    return timings


def up_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ovirt-dr-lab up", description="Bring the whole lab up (idempotent)."
    )
    parser.add_argument(
        "--no-engines",
        action="store_true",
        help="do not start the two engine emulators (lab work without them)",
    )
    args = parser.parse_args(argv)
    paths = LabPaths.default()
    try:
        with lab_lock(paths):
            timings = up(paths, no_engines=args.no_engines)
    except LabError as exc:
        print(f"ovirt-dr-lab up: FAILED: {exc}", file=sys.stderr)
        return 1
    print(
        f"lab up in {timings['total']} s ({', '.join(f'{k} {v}' for k, v in timings.items() if k != 'total')})"
    )
    print(f"  gluster: {gluster.MASTER} on {paths.master_mount}, {gluster.SLAVE} on {paths.slave_mount}")
    print(f"  geo-rep: {gluster.MASTER} -> {gluster.SLAVE_URL} (xsync, ssh port {sshd.GEOREP_SSH_PORT})")
    print(f"  ssh:     root@127.0.0.1:{sshd.LAB_SSH_PORT} key {sshd.client_key(paths)}")
    print(f"  smtp:    127.0.0.1:{SMTP_PORT} -> {paths.mail}")
    if args.no_engines:
        print("  engines: not started (--no-engines)")
    else:
        print(f"  engines: {engines.api_url('primary')}  {engines.api_url('secondary')}")
    print(f"  env:     . {paths.env_sh}   (or {paths.env_json})")
    return 0


# --- down -------------------------------------------------------------------------------------------------


def down(paths: LabPaths, *, keep_rsync: bool = False) -> list[str]:
    """Undo ``up``; returns notes about what was restored or left behind."""
    _require_root()
    state = State(paths)
    notes: list[str] = []
    for site in engines.SITES:
        engines.stop(paths, site)
    stop_recorded(paths, "smtpsink")
    started_glusterd = (state.get("glusterd") or {}).get("started_by_lab")
    if shutil.which("gluster"):
        ours = recorded_pid(paths, "glusterd") is not None
        has_lab_volumes = bool(state.get("volumes")) or any(paths.bricks.glob("*/b"))
        if not gluster.glusterd_responds() and has_lab_volumes and not gluster.foreign_glusterd_pids(paths):
            # glusterd died (or the machine rebooted): start it again just to delete the lab's volumes.
            log("glusterd is not running: starting it to delete the lab's session and volumes")
            state.section("glusterd")
            gluster.ensure_glusterd(paths, state)
            started_glusterd = ours = True
        if gluster.glusterd_responds():
            faults = state.get("faults") or {}
            if faults.get("stop-slave"):  # a session whose slave volume is stopped does not delete cleanly
                gluster.gluster("volume", "start", gluster.SLAVE, "force", check=False)
            if faults.get("faulty") and recorded_pid(paths, "sshd-georep") is None:
                sshd.start(paths, "sshd-georep")
            gluster.delete_session(state)
            for mnt in (paths.master_mount, paths.slave_mount):
                gluster.umount(mnt)
            for vol in (gluster.MASTER, gluster.SLAVE):
                if vol in (state.get("volumes") or {}) or (paths.bricks / vol).exists():
                    gluster.delete_volume(paths, vol)
        for mnt in (paths.master_mount, paths.slave_mount):
            gluster.umount(mnt)
        if started_glusterd or ours:
            gluster.stop_glusterd(paths)
        elif (state.get("glusterd") or {}).get("started_by_lab") is False:
            notes.append("glusterd left running: it was running before the lab")
    for name in ("sshd", "sshd-georep"):
        sshd.stop(paths, name)
    notes += system.restore_root_ssh(state)
    system.restore_hosts(state)
    system.restore_run_sshd(state)
    notes += system.restore_packages(state, keep_rsync=keep_rsync)
    # Leftover check: any recorded process still alive is a failure of down.
    alive = [p.stem for p in paths.pids.glob("*.pid") if recorded_pid(paths, p.stem) is not None]
    if alive:
        notes.append(f"STILL RUNNING: {alive}")
    for mnt in (paths.master_mount, paths.slave_mount):
        if is_mounted(mnt):
            notes.append(f"STILL MOUNTED: {mnt}")
    lingering = gluster.gluster_children_of_lab(paths)
    if lingering:
        notes.append(f"gluster processes still serving the lab: {lingering}")
    mounts_inside = _mounts_under(paths.root)
    if mounts_inside:
        notes.append(f"STILL MOUNTED inside the lab dir (lab dir kept): {mounts_inside}")
    if not alive and not mounts_inside:
        for child in paths.root.iterdir() if paths.root.exists() else []:
            if child.name in ("logs", ".lock"):
                continue  # kept for post-mortems; small
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    return notes


def _mounts_under(root: Path) -> list[str]:
    """Mount points inside ``root`` (someone's mount under .lab must never be emptied by an rmtree)."""
    prefix = str(root.resolve()) + "/"
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 1 and (fields[1].replace("\\040", " ") + "/").startswith(prefix):
            found.append(fields[1])
    return found


def down_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ovirt-dr-lab down", description="Stop the lab and undo what up changed."
    )
    parser.add_argument(
        "--keep-rsync", action="store_true", help="leave rsync at the lab's 3.2.x instead of restoring it"
    )
    args = parser.parse_args(argv)
    paths = LabPaths.default()
    if not paths.root.exists():
        print("lab is not up (no lab dir)")
        return 0
    t0 = time.monotonic()
    try:
        with lab_lock(paths):
            notes = down(paths, keep_rsync=args.keep_rsync)
    except LabError as exc:
        print(f"ovirt-dr-lab down: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"lab down in {time.monotonic() - t0:.1f} s")
    for note in notes:
        print(f"  {note}")
    return 1 if any(n.startswith("STILL") for n in notes) else 0


# --- restart-engines --------------------------------------------------------------------------------------


def restart_engines(paths: LabPaths, sites: list[str]) -> list[str]:
    """Stop (by their recorded PIDs) and start the engine emulators again: new emulator code, same state.

    ``up`` restarts only what is unhealthy; after a change of the emulator's code the healthy engines
    must be restarted too. Each engine saves its state on SIGTERM and reloads it at start (upgrading an
    older layout from the site file), so imported domains, registrations and snapshots survive.
    """
    _require_root()
    state = State(paths)
    if state.get("no_engines"):
        raise LabError("the lab runs without engines (up --no-engines): nothing to restart")
    env = lab_env(paths)
    notes = []
    for site in sites:
        was = engines.stop(paths, site)
        engines.start(paths, site, env)
        notes.append(
            f"engine {site} {'restarted' if was else 'started (was not running)'} at {engines.api_url(site)}"
        )
    return notes


def restart_engines_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ovirt-dr-lab restart-engines",
        description="Restart the engine emulators (after a change of their code); their state is kept.",
    )
    parser.add_argument("sites", nargs="*", help=f"any of {', '.join(engines.SITES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sites) - set(engines.SITES))
    if unknown:
        parser.error(f"unknown site(s) {', '.join(unknown)}; choose from {', '.join(engines.SITES)}")
    paths = LabPaths.default()
    if not paths.state_file.exists():
        print("ovirt-dr-lab restart-engines: the lab is not up", file=sys.stderr)
        return 1
    try:
        with lab_lock(paths):
            notes = restart_engines(paths, list(args.sites) or list(engines.SITES))
    except LabError as exc:
        print(f"ovirt-dr-lab restart-engines: FAILED: {exc}", file=sys.stderr)
        return 1
    for note in notes:
        print(note)
    return 0


# --- status -----------------------------------------------------------------------------------------------


def status(paths: LabPaths) -> list[tuple[str, bool, str]]:
    """``(part, healthy, detail)`` for every part of the lab."""
    state = State(paths)
    rows: list[tuple[str, bool, str]] = []
    rsync = system.installed_version("rsync")
    rows.append(
        ("rsync 3.2.x", bool(rsync and rsync.startswith(system.RSYNC_SERIES)), rsync or "not installed")
    )
    responds = bool(shutil.which("gluster")) and gluster.glusterd_responds()
    ours = recorded_pid(paths, "glusterd")
    rows.append(
        ("glusterd", responds, f"pid {ours} (lab)" if ours else "not the lab's" if responds else "down")
    )
    for vol in (gluster.MASTER, gluster.SLAVE):
        st = gluster.volume_status(vol) if responds else None
        rows.append((f"volume {vol}", st == "Started", st or "missing"))
    for vol, mnt in ((gluster.MASTER, paths.master_mount), (gluster.SLAVE, paths.slave_mount)):
        alive = gluster.mount_alive(mnt)
        rows.append(
            (f"mount {vol}", alive, str(mnt) if alive else "dead" if is_mounted(mnt) else "not mounted")
        )
    if responds and gluster.session_exists():
        workers = gluster.session_worker_states()
        drift = gluster.session_config_drift()
        detail = f"{gluster.SLAVE_URL} workers {workers}" + (f"; config changed: {drift}" if drift else "")
        rows.append(("geo-rep session", "Faulty" not in workers and not drift, detail))
        flags = gluster.replication_drift()
        rows.append(
            (
                "replication flags",
                not flags,
                "; ".join(flags) or f"{gluster.SLAVE} read-only, no reverse session",
            )
        )
    else:
        rows.append(("geo-rep session", False, "missing"))
    for name in ("sshd", "sshd-georep"):
        port = sshd.LAB_SSH_PORT if name == "sshd" else sshd.GEOREP_SSH_PORT
        ok = sshd.healthy(paths, name)
        rows.append((name, ok, f"127.0.0.1:{port}" if ok else "down"))
    smtp_ok = recorded_pid(paths, "smtpsink") is not None and port_open(SMTP_PORT)
    rows.append(("smtp sink", smtp_ok, f"127.0.0.1:{SMTP_PORT}" if smtp_ok else "down"))
    if state.get("no_engines"):
        rows.append(("engines", True, "not started (up --no-engines)"))
    else:
        for site in engines.SITES:
            ok = engines.healthy(paths, site)
            rows.append((f"engine {site}", ok, engines.api_url(site) if ok else "down"))
    env_ok = paths.env_json.exists()
    rows.append(("env.json", env_ok, str(paths.env_json) if env_ok else "missing"))
    faults = {k: v for k, v in (state.get("faults") or {}).items() if v}
    rows.append(("faults", not faults, ", ".join(sorted(faults)) if faults else "none"))
    return rows


def status_main(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="ovirt-dr-lab status", description="Health of every lab part.").parse_args(
        argv
    )
    paths = LabPaths.default()
    rows = status(paths)
    width = max(len(r[0]) for r in rows)
    for part, ok, detail in rows:
        print(f"{'ok  ' if ok else 'FAIL'} {part:<{width}}  {detail}")
    return 0 if all(ok for _, ok, _ in rows) else 1


# --- faults -----------------------------------------------------------------------------------------------


def fault(paths: LabPaths, name: str, on: bool, *, size_mb: int = 256, bwlimit_kbps: int = 4096) -> str:
    _require_root()
    state = State(paths)
    faults = state.section("faults")
    if name == "drop-ssh":
        if on:
            sshd.stop(paths, "sshd")
        else:
            sshd.start(paths, "sshd")
        msg = f"lab sshd 127.0.0.1:{sshd.LAB_SSH_PORT} {'stopped' if on else 'running'}"
    elif name == "stop-slave":
        if on:
            gluster.gluster("volume", "stop", gluster.SLAVE, "force")
        else:
            gluster.gluster("volume", "start", gluster.SLAVE, "force")
            gluster.ensure_mount(paths, gluster.SLAVE, paths.slave_mount)
        msg = f"slave volume {gluster.SLAVE} {'stopped' if on else 'started'}"
    elif name == "faulty":
        msg = _fault_faulty(paths, state, on)
    elif name == "slow":
        msg = _fault_slow(paths, on, size_mb=size_mb, bwlimit_kbps=bwlimit_kbps)
    else:
        raise LabError(f"unknown fault {name!r}; one of {', '.join(FAULTS)}")
    faults[name] = on
    state.save()
    return msg


def _fault_faulty(paths: LabPaths, state: State, on: bool) -> str:
    """Leave the session started and Faulty: geo-replication's ssh to the slave host (its own sshd) is cut.

    A session that is *started* while the slave host is unreachable does not show Faulty: its monitor fails
    before the workers start and status reads Stopped. So, as in a real outage, the session is started (if it
    was not) while the slave is reachable, then the slave's sshd and its open connections go: the worker dies,
    the monitor restarts it, its ssh is refused, status shows Faulty. Airflow's sshd and the volumes stay up.
    ``off`` brings the sshd back, waits for Active and stops the session again if ``on`` started it.
    """
    port = sshd.GEOREP_SSH_PORT
    faulty = state.section("faulty")
    if on:
        running = bool(set(gluster.session_worker_states()) & {"Active", "Passive", "Faulty"})
        if not running:
            sshd.start(paths, "sshd-georep")
            gluster.georep("start", "force")
            faulty["started_session"] = True
            state.save()
            if not gluster.wait_for_state({"Active", "Passive"}, timeout=90):
                raise LabError("geo-rep session did not become Active within 90 s; cannot make it Faulty")
        sshd.stop(paths, "sshd-georep")
        seen = gluster.wait_for_state({"Faulty"}, timeout=90)
        return f"geo-rep ssh (127.0.0.1:{port}) down; session {'Faulty' if seen else 'NOT Faulty after 90 s'}"
    sshd.start(paths, "sshd-georep")
    msg = "geo-rep ssh back"
    if set(gluster.session_worker_states()) & {"Active", "Passive", "Faulty", "Initializing..."}:
        healthy = gluster.wait_for_state({"Active", "Passive"}, timeout=120)
        msg += f"; session {'Active' if healthy else 'still not Active after 120 s'}"
    if faulty.pop("started_session", False):
        gluster.georep("stop", "force", check=False)
        msg += "; session stopped again (the fault had started it)"
    state.save()
    return msg


def _fault_slow(paths: LabPaths, on: bool, *, size_mb: int, bwlimit_kbps: int) -> str:
    """Large new data on the master plus an rsync bandwidth limit: the next sync takes size/bandwidth seconds."""
    slow_dir = paths.master_mount / SLOW_DIR
    if on:
        slow_dir.mkdir(exist_ok=True)
        target = slow_dir / f"blob-{time.strftime('%Y%m%d-%H%M%S')}.bin"
        chunk = os.urandom(1 << 20)
        with open(target, "wb") as f:
            for i in range(size_mb):
                # vary each MiB so nothing compresses or deduplicates
                f.write(i.to_bytes(8, "little") + chunk[8:])
        # leading space: the gluster CLI would take a word starting with "--" as its own option
        gluster.georep("config", "rsync_options", f" --bwlimit={bwlimit_kbps}")
        return f"wrote {size_mb} MiB to {target}; rsync --bwlimit={bwlimit_kbps} KB/s"
    gluster.georep("config", "!rsync_options", check=False)
    if slow_dir.exists():
        shutil.rmtree(slow_dir, ignore_errors=True)
    return f"rsync limit removed, {slow_dir} deleted on the master (copies on the slave stay: xsync drops no files)"


def fault_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ovirt-dr-lab fault", description="Switch a lab fault on or off.")
    parser.add_argument("name", choices=FAULTS)
    parser.add_argument("switch", choices=("on", "off"))
    parser.add_argument(
        "--size-mb", type=int, default=256, help="slow: MiB of new data written to the master"
    )
    parser.add_argument("--bwlimit-kbps", type=int, default=4096, help="slow: rsync --bwlimit while on")
    args = parser.parse_args(argv)
    paths = LabPaths.default()
    if not paths.state_file.exists():
        print("ovirt-dr-lab fault: the lab is not up", file=sys.stderr)
        return 1
    try:
        with lab_lock(paths):
            on = args.switch == "on"
            msg = fault(paths, args.name, on, size_mb=args.size_mb, bwlimit_kbps=args.bwlimit_kbps)
        print(msg)
    except LabError as exc:
        print(f"ovirt-dr-lab fault: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0
