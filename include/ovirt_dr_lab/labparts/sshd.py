"""Two sshd instances the lab owns, each with its own config, host key and PID file in the lab dir.

- ``sshd`` on 127.0.0.1:2222: what Airflow's SSH connections use (host key pinned in the connection, the lab's
  client key, AuthorizedKeysFile in ``<lab>/ssh``). ``fault drop-ssh`` stops only this one.
- ``sshd-georep`` on 127.0.0.1:2223: what geo-replication uses to reach the slave host (the session is created
  with ``ssh-port 2223``). It reads root's authorized_keys, because ``create push-pem`` puts gsyncd's
  ``command=`` keys there, plus a lab file with the key glusterd's gverify/push-pem scripts log in with. Keeping
  it apart means no system sshd is started or reconfigured, and dropping Airflow's SSH does not break geo-rep.
"""

from __future__ import annotations

from pathlib import Path

from ovirt_dr_lab.labparts.common import (
    LabError,
    LabPaths,
    log,
    port_open,
    recorded_pid,
    run,
    spawn,
    stop_recorded,
    tail,
    wait_until,
)

LAB_SSH_PORT = 2222
GEOREP_SSH_PORT = 2223
SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def host_key(paths: LabPaths) -> Path:
    return paths.ssh / "ssh_host_ed25519_key"


def client_key(paths: LabPaths) -> Path:
    """The key Airflow (and the tests) log in with: ``key_file`` of the gluster SSH connections."""
    return paths.ssh / "id_ed25519"


def georep_key(paths: LabPaths) -> Path:
    """The key glusterd's gverify.sh and push-pem hook use (``GR_SSH_IDENTITY_KEY``), instead of one of root's."""
    return paths.ssh / "georep_id_ed25519"


def host_key_line(paths: LabPaths) -> str:
    """``ssh-ed25519 AAAA...``: the form the SSH provider's ``host_key`` extra takes."""
    fields = Path(str(host_key(paths)) + ".pub").read_text().split()
    return f"{fields[0]} {fields[1]}"


def ensure_keys(paths: LabPaths) -> None:
    paths.ssh.mkdir(parents=True, exist_ok=True)
    paths.ssh.chmod(0o700)
    for key, comment in (
        (host_key(paths), "ovirt-dr-lab host"),
        (client_key(paths), "ovirt-dr-lab client"),
        (georep_key(paths), "ovirt-dr-lab georep"),
    ):
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
    (paths.ssh / "authorized_keys").write_text(Path(str(client_key(paths)) + ".pub").read_text())
    (paths.ssh / "georep_authorized_keys").write_text(Path(str(georep_key(paths)) + ".pub").read_text())
    for f in ("authorized_keys", "georep_authorized_keys"):
        (paths.ssh / f).chmod(0o600)


def _config(paths: LabPaths, name: str, port: int, authorized: list[str]) -> Path:
    conf = paths.ssh / f"{name}_config"
    conf.write_text(
        "\n".join(
            [
                f"# written by ovirt-dr-lab up ({name})",
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key(paths)}",
                f"PidFile {paths.ssh / (name + '.pid')}",
                "AuthorizedKeysFile " + " ".join(authorized),
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "UsePAM no",
                # The lab dir lives in a work tree whose modes sshd does not need to police.
                "StrictModes no",
                "PrintMotd no",
                "AcceptEnv LANG LC_*",
                f"Subsystem sftp {SFTP_SERVER}",
                "LogLevel INFO",
                "",
            ]
        )
    )
    return conf


def start(paths: LabPaths, name: str) -> bool:
    """Start ``sshd`` (2222) or ``sshd-georep`` (2223) unless it already runs. Returns True if it started it."""
    port = LAB_SSH_PORT if name == "sshd" else GEOREP_SSH_PORT
    if recorded_pid(paths, name) is not None and port_open(port):
        return False
    if port_open(port):
        raise LabError(f"127.0.0.1:{port} is taken by a process the lab did not start; free it and retry")
    if name == "sshd":
        authorized = [str(paths.ssh / "authorized_keys")]
    else:
        authorized = ["/root/.ssh/authorized_keys", str(paths.ssh / "georep_authorized_keys")]
    conf = _config(paths, name, port, authorized)
    run([SSHD, "-t", "-f", str(conf)])
    # -D: stay in the foreground so the PID the lab records is sshd's own; -e: log to the lab log file.
    spawn(paths, name, [SSHD, "-D", "-e", "-f", str(conf)])
    try:
        wait_until(f"{name} on 127.0.0.1:{port}", lambda: port_open(port), timeout=15)
    except LabError as exc:
        raise LabError(f"{exc}\n{name} log:\n{tail(paths.log_file(name))}") from None
    log(f"{name} listening on 127.0.0.1:{port}")
    return True


def stop(paths: LabPaths, name: str) -> bool:
    """Stop the listener and its open connections (a dropped node drops its sessions too)."""
    return stop_recorded(paths, name, with_descendants=True)


def healthy(paths: LabPaths, name: str) -> bool:
    port = LAB_SSH_PORT if name == "sshd" else GEOREP_SSH_PORT
    return recorded_pid(paths, name) is not None and port_open(port)
