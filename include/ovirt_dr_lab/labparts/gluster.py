"""glusterd, the master and slave volumes, their FUSE mounts and the geo-replication session.

Everything follows ../shared/reference/gluster-lab.md: glusterd with a clean environment (pitfall 5), bricks on
the hostname (127.0.0.1 is refused), ``force`` for bricks on the root fs, sharding on, ``change_detector
xsync`` (pitfall 2: changelog mode stops seeing changes after a stop/start on this machine type).
"""

from __future__ import annotations

import os
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from ovirt_dr_lab.labparts import sshd
from ovirt_dr_lab.labparts.common import (
    CLEAN_ENV,
    LabError,
    LabPaths,
    State,
    gluster,
    is_mounted,
    log,
    proc_cmdline,
    proc_start_time,
    record_process,
    recorded_pid,
    run,
    stop_recorded,
    wait_until,
)
from ovirt_dr_lab.labparts.system import hostname

MASTER = "gvmaster"
SLAVE = "gvslave"
SLAVE_HOST = "127.0.0.1"
SLAVE_URL = f"{SLAVE_HOST}::{SLAVE}"
GLUSTERD = "/usr/sbin/glusterd"
GEOREP_DIR = Path("/var/lib/glusterd/geo-replication")
PEM_FILES = ("secret.pem", "secret.pem.pub", "tar_ssh.pem", "tar_ssh.pem.pub", "common_secret.pem.pub")
#: Session config for fast, dependable cycles: xsync (pitfall 2). sync-jobs 1 keeps 2 cores free for the rest.
GEOREP_CONFIG: tuple[tuple[str, str], ...] = (
    ("change_detector", "xsync"),
    ("sync_jobs", "1"),
    # `create ssh-port N` is used by gverify/push-pem only; gsyncd reads its own ssh_port (default 22).
    ("ssh_port", str(sshd.GEOREP_SSH_PORT)),
)


#: The session ``dr_failback`` creates (secondary volume -> primary volume, on the mapping's primary address).
REVERSE_URL = f"{SLAVE_HOST}::{MASTER}"


def georep(*args: str, check: bool = True, timeout: float = 120):
    return gluster("volume", "geo-replication", MASTER, SLAVE_URL, *args, check=check, timeout=timeout)


def reverse_georep(*args: str, check: bool = True, timeout: float = 120):
    return gluster("volume", "geo-replication", SLAVE, REVERSE_URL, *args, check=check, timeout=timeout)


# --- glusterd ---------------------------------------------------------------------------------------------


def foreign_glusterd_pids(paths: LabPaths) -> list[int]:
    """glusterd processes the lab did not start (read-only scan of /proc; the lab never signals these)."""
    ours = recorded_pid(paths, "glusterd")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        # A zombie glusterd (stopped by an earlier down, not reaped: PID 1 here does not reap) does not count.
        if comm == "glusterd" and int(entry.name) != ours and proc_start_time(int(entry.name)) is not None:
            found.append(int(entry.name))
    return found


def glusterd_responds() -> bool:
    return gluster("pool", "list", check=False, timeout=20).returncode == 0


def ensure_glusterd(paths: LabPaths, state: State) -> None:
    gs = state.section("glusterd")
    if recorded_pid(paths, "glusterd") is not None:
        wait_until("glusterd to answer", glusterd_responds, timeout=30, interval=0.5)
        return
    foreign = foreign_glusterd_pids(paths)
    if foreign:
        gs["started_by_lab"] = False
        gs["foreign_pids"] = foreign
        state.save()
        log(
            f"glusterd already running (pid {foreign}, not started by the lab): using it, down leaves it running"
        )
        wait_until("glusterd to answer", glusterd_responds, timeout=30, interval=0.5)
        return
    run_dir = paths.root / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    raw_pid = run_dir / "glusterd.pid"
    raw_pid.unlink(missing_ok=True)
    env = dict(CLEAN_ENV)
    # gverify.sh and the push-pem hook log in to the slave host with this key instead of one of root's own.
    env["GR_SSH_IDENTITY_KEY"] = str(sshd.georep_key(paths))
    gs["started_by_lab"] = True
    state.save()
    run([GLUSTERD, "-p", str(raw_pid)], env=env, timeout=60)  # daemonizes once it listens
    wait_until("glusterd pid file", raw_pid.exists, timeout=20)
    pid = int(raw_pid.read_text().split()[0])
    record_process(paths, "glusterd", pid)
    wait_until("glusterd to answer", glusterd_responds, timeout=30, interval=0.3)
    log(f"glusterd started (pid {pid}, clean environment)")


def stop_glusterd(paths: LabPaths) -> bool:
    return stop_recorded(paths, "glusterd", timeout=20)


# --- volumes ----------------------------------------------------------------------------------------------


def volume_status(volume: str) -> str | None:
    """``Started``/``Stopped``/``Created`` from ``volume info --xml``, None if the volume does not exist."""
    proc = gluster("volume", "info", volume, "--xml", check=False)
    if proc.returncode != 0:
        return None
    try:
        root = ET.fromstring(proc.stdout)
    except ET.ParseError:
        return None
    node = root.find(".//volume/statusStr")
    return node.text if node is not None else None


def brick_dir(paths: LabPaths, volume: str) -> Path:
    return paths.bricks / volume / "b"


VM_STORE_OPTIONS = (
    ("performance.quick-read", "off"),
    ("performance.read-ahead", "off"),
    ("performance.io-cache", "off"),
    ("performance.open-behind", "off"),
    ("performance.strict-o-direct", "on"),
    ("network.remote-dio", "disable"),
    ("cluster.eager-lock", "enable"),
    ("performance.client-io-threads", "on"),
    ("client.event-threads", "4"),
    ("server.event-threads", "4"),
    ("network.ping-timeout", "300"),
)


def ensure_volume(paths: LabPaths, state: State, volume: str) -> None:
    status = volume_status(volume)
    if status is None:
        brick = brick_dir(paths, volume)
        if brick.exists():  # left by an interrupted run: its volume-id xattr would make create fail
            shutil.rmtree(brick.parent)
        brick.mkdir(parents=True)
        state.section("volumes")[volume] = "created"
        state.save()
        gluster("volume", "create", volume, f"{hostname()}:{brick}", "force")
        gluster("volume", "set", volume, "features.shard", "on")
        # oVirt's profile for VM stores (Gluster's "virt" group, whose replicate-only options a one-brick
        # volume refuses) plus open-behind off. With Gluster's defaults the FUSE client deadlocked here
        # (both event threads on a futex) under concurrent qemu-img/qemu-io on sharded images, for good.
        # A silent peer on loopback is a starved one, never a lost network: hence the long ping timeout.
        for key, value in VM_STORE_OPTIONS:
            gluster("volume", "set", volume, key, value)
        log(f"volume {volume} created (brick {brick}, sharding on, VM-store options)")
        status = "Created"
    if status != "Started":
        gluster("volume", "start", volume, "force")
        log(f"volume {volume} started")


def delete_volume(paths: LabPaths, volume: str) -> None:
    if volume_status(volume) is not None:
        gluster("volume", "stop", volume, "force", check=False, timeout=120)
        gluster("volume", "delete", volume, timeout=120)
        log(f"volume {volume} deleted")
    shutil.rmtree(paths.bricks / volume, ignore_errors=True)


# --- mounts -----------------------------------------------------------------------------------------------


def mount_alive(path: Path) -> bool:
    if not is_mounted(path):
        return False
    try:
        os.statvfs(path)
        return True
    except OSError:  # ENOTCONN: the FUSE client died or its volume went away
        return False


def ensure_mount(paths: LabPaths, volume: str, path: Path) -> None:
    if mount_alive(path):
        return
    if is_mounted(path):
        run(["umount", "-l", str(path)], check=False)
    path.mkdir(parents=True, exist_ok=True)
    run(["mount", "-t", "glusterfs", f"{hostname()}:/{volume}", str(path)], env=CLEAN_ENV, timeout=60)
    wait_until(f"FUSE mount {path}", lambda: mount_alive(path), timeout=20)
    log(f"mounted {volume} on {path}")


def umount(path: Path) -> None:
    if not is_mounted(path):
        return
    if run(["umount", str(path)], check=False, timeout=60).returncode != 0:
        run(["umount", "-l", str(path)], check=False)
    log(f"unmounted {path}")


# --- geo-replication --------------------------------------------------------------------------------------


def session_exists() -> bool:
    return georep("status", check=False).returncode == 0


def session_status_xml() -> ET.Element | None:
    proc = georep("status", "detail", "--xml", check=False)
    if proc.returncode != 0:
        return None
    try:
        return ET.fromstring(proc.stdout)
    except ET.ParseError:
        return None


def session_worker_states() -> list[str]:
    """``status`` of each brick worker (Created/Active/Passive/Stopped/Faulty/Initializing...)."""
    root = session_status_xml()
    if root is None:
        return []
    return [n.text or "" for n in root.iter("status")]


def ensure_session(paths: LabPaths, state: State) -> None:
    if not session_exists():
        pems = state.section("georep").setdefault(
            "pem_files_before", [n for n in PEM_FILES if (GEOREP_DIR / n).exists()]
        )
        del pems
        state.section("georep")["created_by_lab"] = True
        state.save()
        t0 = time.monotonic()
        gluster("system::", "execute", "gsec_create")
        georep("create", "ssh-port", str(sshd.GEOREP_SSH_PORT), "push-pem", "force", timeout=180)
        log(f"geo-replication session {MASTER} -> {SLAVE_URL} created ({time.monotonic() - t0:.1f} s)")
    current = dict(
        line.split(":", 1) for line in georep("config", check=False).stdout.splitlines() if ":" in line
    )
    for key, value in GEOREP_CONFIG:
        if current.get(key, "").strip() != value:
            georep("config", key, value)


def session_config_drift() -> list[str]:
    """``key=value (want X)`` for every lab setting of the session that someone changed since ``up``."""
    current = dict(
        (k.strip(), v.strip())
        for k, v in (
            line.split(":", 1) for line in georep("config", check=False).stdout.splitlines() if ":" in line
        )
    )
    return [f"{k}={current.get(k)} (want {v})" for k, v in GEOREP_CONFIG if current.get(k) != v]


def georep_stop() -> None:
    georep("stop", "force", check=False)


def reverse_session_exists() -> bool:
    return reverse_georep("status", check=False).returncode == 0


def delete_reverse_session() -> bool:
    """Delete the failback's reverse session (a failed test may leave it), and the copies of its public key
    that push-pem left in the geo-replication dir. Returns whether there was one."""
    found = reverse_session_exists()
    if found:
        reverse_georep("stop", "force", check=False)
        reverse_georep("delete", "reset-sync-time", check=False, timeout=120)
        log(f"reverse geo-replication session {SLAVE} -> {REVERSE_URL} deleted")
    for leftover in GEOREP_DIR.glob(f"{SLAVE}_{MASTER}_*"):
        if leftover.is_file():
            leftover.unlink()
    return found


def read_only(volume: str) -> str | None:
    """``features.read-only`` of a volume as ``volume info`` shows it (None: not set)."""
    proc = gluster("volume", "info", volume, "--xml", check=False)
    try:
        root = ET.fromstring(proc.stdout)
    except ET.ParseError:
        return None
    for opt in root.iter("option"):
        if opt.findtext("name") == "features.read-only":
            return opt.findtext("value")
    return None


def replication_drift() -> list[str]:
    """What a failed recovery test may leave: the reverse session, a writable slave, a read-only master."""
    out = []
    if reverse_session_exists():
        out.append(f"reverse session {SLAVE} -> {REVERSE_URL} exists")
    if read_only(SLAVE) != "on":
        out.append(f"{SLAVE} is writable (features.read-only {read_only(SLAVE)})")
    if read_only(MASTER) == "on":
        out.append(f"{MASTER} is read-only")
    return out


def repair_replication() -> list[str]:
    """``up`` after a failed failover/failback test: reverse session gone, slave read-only, master writable."""
    done = []
    if delete_reverse_session():
        done.append("reverse session deleted")
    if read_only(SLAVE) != "on":
        gluster("volume", "set", SLAVE, "features.read-only", "on")
        done.append(f"{SLAVE} read-only again")
    if read_only(MASTER) == "on":
        gluster("volume", "set", MASTER, "features.read-only", "off")
        done.append(f"{MASTER} writable again")
    for what in done:
        log(f"repaired: {what}")
    return done


def delete_session(state: State) -> None:
    delete_reverse_session()
    if session_exists():
        georep("stop", "force", check=False)
        georep("delete", "reset-sync-time", check=False, timeout=120)
        log("geo-replication session deleted")
    before = set((state.get("georep") or {}).get("pem_files_before", PEM_FILES))
    if (state.get("georep") or {}).get("created_by_lab"):
        for name in PEM_FILES:
            if name not in before:
                (GEOREP_DIR / name).unlink(missing_ok=True)
        # push-pem's copies of the session's public key, named <master>_<slave>_common_secret.pem.pub
        for leftover in GEOREP_DIR.glob(f"{MASTER}_{SLAVE}_*"):
            if leftover.is_file():
                leftover.unlink()


def gluster_children_of_lab(paths: LabPaths) -> list[tuple[int, str]]:
    """Gluster processes (bricks, FUSE clients, gsyncd) serving the lab's volumes, for status and down's report."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        cmd = proc_cmdline(int(entry.name))
        if ("glusterfs" in cmd or "gsyncd" in cmd) and (str(paths.root) in cmd or f"{MASTER}" in cmd):
            found.append((int(entry.name), cmd[:200]))
    return found


def wait_for_state(states: set[str], timeout: float) -> bool:
    try:
        wait_until(
            f"geo-rep status in {states}", lambda: bool(set(session_worker_states()) & states), timeout, 1.0
        )
        return True
    except LabError:
        return False
