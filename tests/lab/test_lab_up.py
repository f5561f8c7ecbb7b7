"""The lab as ``ovirt-dr-lab up`` leaves it: every part healthy, env.json complete, SSH with a pinned host key,
the SMTP sink keeping mail, the engines answering. Runs against the real lab (``make test`` brings it up)."""

from __future__ import annotations

import base64
import email
import json
import shutil
import smtplib
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from email.message import EmailMessage
from pathlib import Path

import paramiko
import pytest

from ovirt_dr_lab.labenv import load_lab_env

pytestmark = pytest.mark.lab

CONTRACT_KEYS = {
    "AIRFLOW_CONN_OVIRT_PRIMARY",
    "AIRFLOW_CONN_OVIRT_SECONDARY",
    "AIRFLOW_CONN_GLUSTER_PRIMARY",
    "AIRFLOW_CONN_GLUSTER_SECONDARY",
    "AIRFLOW_CONN_SMTP_LAB",
    "LAB_DIR",
    "LAB_MASTER_MOUNT",
    "LAB_SLAVE_MOUNT",
    "LAB_MASTER_VOLUME",
    "LAB_SLAVE_VOLUME",
    "LAB_SLAVE_HOST",
    "LAB_GLUSTER_HOST",
    "LAB_MAILDIR",
    "LAB_PRIMARY_ENGINE_URL",
    "LAB_SECONDARY_ENGINE_URL",
    "LAB_PRIMARY_CA",
    "LAB_SECONDARY_CA",
    "LAB_SSH_PORT",
}


@pytest.fixture(scope="module")
def lab() -> dict[str, str]:
    return load_lab_env()


def lab_cli() -> list[str]:
    exe = Path(sys.executable).parent / "ovirt-dr-lab"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ovirt_dr_lab.cli"]


def test_status_reports_every_part_healthy() -> None:
    proc = subprocess.run([*lab_cli(), "status"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for part in (
        "glusterd",
        "volume gvmaster",
        "volume gvslave",
        "mount gvmaster",
        "geo-rep session",
        "sshd",
    ):
        assert part in proc.stdout


def test_env_json_is_complete_and_consistent(lab: dict[str, str]) -> None:
    assert set(lab) == CONTRACT_KEYS
    assert lab["LAB_MASTER_VOLUME"] == "gvmaster" and lab["LAB_SLAVE_VOLUME"] == "gvslave"
    assert lab["LAB_SLAVE_HOST"] == "127.0.0.1" and lab["LAB_SSH_PORT"] == "2222"
    assert lab["LAB_PRIMARY_ENGINE_URL"] == "https://127.0.0.1:18443/ovirt-engine/api"
    assert lab["LAB_SECONDARY_ENGINE_URL"] == "https://127.0.0.1:18444/ovirt-engine/api"
    lab_dir = Path(lab["LAB_DIR"])
    assert lab["LAB_PRIMARY_CA"] == str(lab_dir / "engine-primary" / "ca.pem")
    assert lab["LAB_SECONDARY_CA"] == str(lab_dir / "engine-secondary" / "ca.pem")
    for key in ("LAB_MASTER_MOUNT", "LAB_SLAVE_MOUNT", "LAB_MAILDIR"):
        assert Path(lab[key]).is_dir(), key
    for site in ("PRIMARY", "SECONDARY"):
        conn = json.loads(lab[f"AIRFLOW_CONN_OVIRT_{site}"])
        assert conn["conn_type"] == "ovirt" and conn["host"] == lab[f"LAB_{site}_ENGINE_URL"]
        assert conn["login"] == "admin@internal" and conn["password"] == "lab-admin-pw"
        assert conn["extra"]["ca_file"] == lab[f"LAB_{site}_CA"]
        ssh_conn = json.loads(lab[f"AIRFLOW_CONN_GLUSTER_{site}"])
        assert ssh_conn["conn_type"] == "ssh" and ssh_conn["host"] == "127.0.0.1" and ssh_conn["port"] == 2222
        assert ssh_conn["login"] == "root" and ssh_conn["extra"]["look_for_keys"] is False
        assert Path(ssh_conn["extra"]["key_file"]).is_file()
        assert ssh_conn["extra"]["host_key"].startswith("ssh-ed25519 AAAA")
    smtp = json.loads(lab["AIRFLOW_CONN_SMTP_LAB"])
    assert smtp["conn_type"] == "smtp" and smtp["host"] == "127.0.0.1" and smtp["port"] == 8025


def test_env_sh_exports_the_same_values(lab: dict[str, str]) -> None:
    env_sh = Path(lab["LAB_DIR"]) / "env.sh"
    script = f"set -e; . {env_sh}; python3 -c 'import json,os; print(json.dumps(dict(os.environ)))'"
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}
    )
    exported = json.loads(out.stdout)
    assert {k: exported.get(k) for k in lab} == lab


def _ssh_client(lab: dict[str, str], host_key: str) -> paramiko.SSHClient:
    conn = json.loads(lab["AIRFLOW_CONN_GLUSTER_PRIMARY"])
    key_type, key_b64 = host_key.split()
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.get_host_keys().add(
        f"[{conn['host']}]:{conn['port']}",
        key_type,
        paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64)),
    )
    client.connect(
        conn["host"],
        port=conn["port"],
        username=conn["login"],
        key_filename=conn["extra"]["key_file"],
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def test_ssh_with_pinned_host_key_and_fresh_home(
    lab: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    conn = json.loads(lab["AIRFLOW_CONN_GLUSTER_PRIMARY"])
    client = _ssh_client(lab, conn["extra"]["host_key"])
    try:
        _, stdout, stderr = client.exec_command("gluster --mode=script volume list", timeout=60)
        out = stdout.read().decode()
        assert stdout.channel.recv_exit_status() == 0, stderr.read().decode()
        assert {"gvmaster", "gvslave"} <= set(out.split())
    finally:
        client.close()
    assert not (tmp_path / ".ssh").exists(), "a pinned host key must not need or write known_hosts"


def test_ssh_rejects_a_wrong_pinned_host_key(
    lab: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    other = paramiko.Ed25519Key.from_private_key_file(str(_make_key(tmp_path)))
    with pytest.raises(paramiko.BadHostKeyException):
        _ssh_client(lab, f"{other.get_name()} {other.get_base64()}")


def _make_key(tmp_path: Path) -> Path:
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def test_airflow_ssh_hook_uses_the_lab_connection(
    lab: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection JSON works as Airflow reads it (AIRFLOW_CONN_* env), host key pinned, nothing written."""
    from airflow.providers.ssh.hooks.ssh import SSHHook

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_GLUSTER_PRIMARY", lab["AIRFLOW_CONN_GLUSTER_PRIMARY"])
    hook = SSHHook(ssh_conn_id="gluster_primary", cmd_timeout=60)
    with hook.get_conn() as client:
        rc, out, err = hook.exec_ssh_client_command(client, "hostname", get_pty=False, environment=None)
    assert rc == 0, err
    assert out.decode().strip() == lab["LAB_GLUSTER_HOST"]
    assert not (tmp_path / ".ssh" / "known_hosts").exists()


def test_smtp_sink_keeps_every_mail(lab: dict[str, str]) -> None:
    maildir = Path(lab["LAB_MAILDIR"])
    conn = json.loads(lab["AIRFLOW_CONN_SMTP_LAB"])
    subject = f"lab test {uuid.uuid4()}"
    msg = EmailMessage()
    msg["From"] = "airflow@example.com"
    msg["To"] = "ops@example.com"
    msg["Subject"] = subject
    msg.set_content("body of the lab test mail\n")
    with smtplib.SMTP(conn["host"], conn["port"], timeout=10) as smtp:
        smtp.send_message(msg)
    deadline = time.monotonic() + 10
    found = None
    while found is None and time.monotonic() < deadline:
        for path in maildir.glob("*.eml"):
            parsed = email.message_from_bytes(path.read_bytes())
            if parsed["Subject"] == subject:
                found = parsed
        time.sleep(0.1)
    assert found is not None, f"no .eml with subject {subject!r} in {maildir}"
    assert found["To"] == "ops@example.com"
    assert "body of the lab test mail" in found.get_payload()


@pytest.mark.parametrize("site", ["PRIMARY", "SECONDARY"])
def test_engine_answers_over_https_with_the_lab_ca(lab: dict[str, str], site: str) -> None:
    ca = Path(lab[f"LAB_{site}_CA"])
    assert ca.is_file(), f"{ca} missing: were the engines started (`ovirt-dr-lab up` without --no-engines)?"
    ctx = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(lab[f"LAB_{site}_ENGINE_URL"], context=ctx, timeout=10) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:  # 401 without credentials is the expected answer
        status = exc.code
    assert status in (200, 401), status


def test_gluster_cli_present() -> None:
    assert shutil.which("gluster") and shutil.which("rsync")
