"""Changes ``up`` makes outside the lab dir, each recorded in the state file first and undone by ``down``.

- apt packages (only missing ones, no recommends, service start-up suppressed while installing so that no
  system sshd or glusterd with a dirty environment appears) and the rsync 3.2.x pin (reference pitfall 1:
  rsync 3.5.0 makes geo-replication copy empty files);
- /etc/hosts: a ``127.0.0.1 <hostname>`` line only when the hostname does not resolve (bricks need it);
- root's ``~/.ssh``: geo-replication's ``create push-pem`` needs passwordless root ssh to the slave host and
  writes ``command=`` lines into root's authorized_keys (pitfall 12); ssh adds known_hosts lines.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from ovirt_dr_lab.labparts.common import LabError, State, log, run

PACKAGES: tuple[str, ...] = (
    "glusterfs-server",
    "openssh-server",
    "openssh-client",
    "rsync",
    "qemu-utils",
    "attr",
)
RSYNC_SERIES = "3.2."
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
HOSTS = Path("/etc/hosts")
HOSTS_MARK = "# ovirt-dr-lab"
ROOT_SSH = Path("/root/.ssh")
ROOT_KEY_NAMES = ("id_rsa", "id_ecdsa", "id_ed25519")
APT_ENV = {
    "DEBIAN_FRONTEND": "noninteractive",
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
APT_OPTS = ("-y", "-q", "-o", "DPkg::Lock::Timeout=600", "-o", "Dpkg::Options::=--force-confold")


# --- apt --------------------------------------------------------------------------------------------------


def installed_version(package: str) -> str | None:
    proc = run(["dpkg-query", "-W", "-f=${Status}\t${Version}", package], check=False)
    if proc.returncode != 0 or "install ok installed" not in proc.stdout:
        return None
    return proc.stdout.split("\t", 1)[1].strip() or None


def rsync_candidates() -> list[str]:
    """rsync versions apt can install, newest first (``apt-cache madison rsync``)."""
    proc = run(["apt-cache", "madison", "rsync"], check=False)
    versions = [line.split("|")[1].strip() for line in proc.stdout.splitlines() if line.count("|") >= 2]
    return list(dict.fromkeys(versions))


def pick_rsync(candidates: list[str]) -> str | None:
    return next((v for v in candidates if v.startswith(RSYNC_SERIES)), None)


def ensure_packages(state: State) -> None:
    """Install what is missing and pin rsync to 3.2.x; run ``apt-get update`` at most once, only if needed."""
    apt = state.section("apt")
    missing = [p for p in PACKAGES if installed_version(p) is None]
    rsync_now = installed_version("rsync")
    rsync_ok = rsync_now is not None and rsync_now.startswith(RSYNC_SERIES)
    if not missing and rsync_ok:
        return
    pin = pick_rsync(rsync_candidates())
    updated = False
    if pin is None or any(not _apt_knows(p) for p in missing):
        log("apt-get update (package lists lack what the lab needs)")
        run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=600"], timeout=600, env=APT_ENV)
        updated = True
        pin = pick_rsync(rsync_candidates())
    if pin is None:
        raise LabError("no rsync 3.2.x in `apt-cache madison rsync`: geo-replication needs it (pitfall 1)")
    if "rsync_before" not in apt:
        apt["rsync_before"] = rsync_now
    apt.setdefault("installed_by_lab", [])
    apt["installed_by_lab"] = sorted(set(apt["installed_by_lab"]) | set(missing))
    apt["rsync_pinned"] = pin
    apt["apt_updated"] = bool(apt.get("apt_updated")) or updated
    state.save()
    targets = [p for p in missing if p != "rsync"] + [f"rsync={pin}"]
    log(f"apt-get install {' '.join(targets)}")
    before = _all_versions()
    with _no_service_starts(state):
        run(
            ["apt-get", "install", *APT_OPTS, "--no-install-recommends", "--allow-downgrades", *targets],
            timeout=900,
            env=APT_ENV,
        )
    after = _all_versions()
    # Every package apt touched (dependencies included: openssh-server pulls openssh-client to its version).
    changes = apt.setdefault("changes", {})
    for pkg in sorted(set(before) | set(after)):
        if before.get(pkg) != after.get(pkg) and pkg not in changes:
            changes[pkg] = [before.get(pkg), after.get(pkg)]
    state.save()


def _all_versions() -> dict[str, str]:
    proc = run(["dpkg-query", "-W", "-f=${Package} ${Version} ${db:Status-Abbrev}\n"], check=False)
    out = {}
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2].startswith("ii"):
            out[fields[0]] = fields[1]
    return out


def _apt_knows(package: str) -> bool:
    proc = run(["apt-cache", "policy", package], check=False)
    return "Candidate:" in proc.stdout and "Candidate: (none)" not in proc.stdout


class _no_service_starts:
    """A temporary policy-rc.d that tells maintainer scripts not to start services (Debian's own mechanism).

    Without it, installing openssh-server would start a system sshd on port 22 and glusterfs-server a
    glusterd with apt's environment; the lab starts its own instances instead.
    """

    def __init__(self, state: State) -> None:
        self.state = state
        self.created = False

    def __enter__(self) -> None:
        if not POLICY_RC_D.exists():
            self.state.section("apt")["policy_rc_d_created"] = True
            self.state.save()
            POLICY_RC_D.write_text(
                "#!/bin/sh\n# ovirt-dr-lab: no service starts while it installs packages\nexit 101\n"
            )
            POLICY_RC_D.chmod(0o755)
            self.created = True

    def __exit__(self, *exc: object) -> None:
        if self.created:
            POLICY_RC_D.unlink(missing_ok=True)
            self.state.section("apt").pop("policy_rc_d_created", None)
            self.state.save()


def restore_packages(state: State, keep_rsync: bool = False) -> list[str]:
    """Put rsync back to the version it had before the lab (if apt still offers it). Returns notes."""
    notes: list[str] = []
    apt = state.get("apt") or {}
    if apt.get("policy_rc_d_created"):
        POLICY_RC_D.unlink(missing_ok=True)
    before = apt.get("rsync_before")
    now = installed_version("rsync")
    if before and now and before != now and not keep_rsync:
        if before in rsync_candidates():
            log(f"restoring rsync {before} (was {now} for the lab)")
            run(
                ["apt-get", "install", *APT_OPTS, "--allow-downgrades", f"rsync={before}"],
                timeout=600,
                env=APT_ENV,
            )
            notes.append(f"rsync restored to {before}")
        else:
            notes.append(f"rsync left at {now}: {before} is no longer offered by apt")
    elif before and now and before != now:
        notes.append(f"rsync left at {now} (--keep-rsync; was {before})")
    if apt.get("installed_by_lab"):
        notes.append("packages installed by the lab stay installed: " + " ".join(apt["installed_by_lab"]))
    changed = {pkg: v for pkg, v in (apt.get("changes") or {}).items() if pkg != "rsync" and v[0] is not None}
    if changed:
        notes.append(
            "package versions apt changed as dependencies, not undone: "
            + ", ".join(f"{pkg} {old} -> {new}" for pkg, (old, new) in sorted(changed.items()))
        )
    return notes


# --- /etc/hosts -------------------------------------------------------------------------------------------


def hostname() -> str:
    return socket.gethostname()


def ensure_hostname_resolves(state: State) -> None:
    """Gluster refuses 127.0.0.1 as a brick host, so bricks use the hostname, which must resolve locally."""
    name = hostname()
    try:
        socket.gethostbyname(name)
        return
    except OSError:
        pass
    line = f"127.0.0.1 {name} {HOSTS_MARK}"
    state.section("etc_hosts")["added_line"] = line
    state.save()
    with HOSTS.open("a") as f:  # in place: /etc/hosts may be a bind mount that cannot be replaced
        f.write(line + "\n")
    log(f"/etc/hosts: added '{line}'")


def restore_hosts(state: State) -> None:
    line = (state.get("etc_hosts") or {}).get("added_line")
    if not line:
        return
    _remove_lines(HOSTS, {line})


def _remove_lines(path: Path, lines: set[str]) -> None:
    try:
        current = path.read_text().splitlines()
    except FileNotFoundError:
        return
    kept = [x for x in current if x not in lines]
    if kept != current:
        with path.open("w") as f:  # in place, keeps owner, mode and bind mounts
            f.write("".join(x + "\n" for x in kept))


# --- root's ~/.ssh for geo-replication ---------------------------------------------------------------------


def _read_lines(path: Path) -> list[str] | None:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return None


def record_root_ssh(state: State) -> None:
    """Record root's authorized_keys and known_hosts as they are, before geo-replication touches them.

    push-pem appends gsyncd's ``command=`` keys to root's authorized_keys, and ssh (StrictHostKeyChecking=no in
    gverify.sh and gsyncd) appends to root's known_hosts. Only the first ``up`` records the "before" picture.
    """
    rs = state.section("root_ssh")
    if "recorded" not in rs:
        rs["recorded"] = True
        rs["dir_created"] = not ROOT_SSH.exists()
        rs["authorized_keys_before"] = _read_lines(ROOT_SSH / "authorized_keys")
        rs["known_hosts_before"] = _read_lines(ROOT_SSH / "known_hosts")
        rs["key_created"] = None
        state.save()


def ensure_root_key(state: State, authorized_file: Path) -> None:
    """Let root's default identity log in to the geo-rep sshd (only when glusterd is not the lab's own).

    A glusterd the lab starts gets ``GR_SSH_IDENTITY_KEY`` pointing at a lab key instead; a glusterd that was
    already running uses root's default identity, so make one if root has none, and authorize it in the lab's
    file (not root's authorized_keys).
    """
    rs = state.section("root_ssh")
    ROOT_SSH.mkdir(mode=0o700, exist_ok=True)
    key = next((ROOT_SSH / n for n in ROOT_KEY_NAMES if (ROOT_SSH / n).exists()), None)
    if key is None:
        key = ROOT_SSH / "id_ed25519"
        rs["key_created"] = str(key)
        state.save()
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@ovirt-dr-lab", "-f", str(key)])
        log(f"created root ssh key {key} (removed by down)")
    pub_line = Path(str(key) + ".pub").read_text().strip()
    lines = _read_lines(authorized_file) or []
    if pub_line not in lines:
        with authorized_file.open("a") as f:
            f.write(pub_line + "\n")


def restore_root_ssh(state: State) -> list[str]:
    """Remove what the lab (and geo-replication's push-pem, and ssh's known_hosts) added to root's ~/.ssh."""
    rs = state.get("root_ssh") or {}
    if not rs.get("recorded"):
        return []
    notes = []
    for name, key in (("authorized_keys", "authorized_keys_before"), ("known_hosts", "known_hosts_before")):
        path = ROOT_SSH / name
        before = rs.get(key)
        current = _read_lines(path)
        if current is None:
            continue
        if before is None:
            path.unlink()
            notes.append(f"removed {path} (the lab created it)")
            continue
        added = set(current) - set(before)
        if added:
            _remove_lines(path, added)
            notes.append(f"removed {len(added)} line(s) the lab added to {path}")
    created = rs.get("key_created")
    if created:
        for p in (Path(created), Path(created + ".pub")):
            p.unlink(missing_ok=True)
        notes.append(f"removed root key {created}")
    if rs.get("dir_created"):
        try:
            ROOT_SSH.rmdir()
        except OSError:
            pass
    return notes


def sanitize_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def ensure_run_sshd(state: State) -> None:
    """sshd refuses to start without its privilege separation dir /run/sshd (normally made by the init script)."""
    run_dir = Path("/run/sshd")
    if not run_dir.exists():
        state.section("misc")["run_sshd_created"] = True
        state.save()
        run_dir.mkdir(mode=0o755)


def restore_run_sshd(state: State) -> None:
    if (state.get("misc") or {}).get("run_sshd_created"):
        try:
            os.rmdir("/run/sshd")
        except OSError:
            pass
