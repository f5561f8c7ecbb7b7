"""The lab after a failback test that failed half-way: what ``up`` repairs (and ``down`` removes).

A failback creates the reverse session ``gvslave -> 127.0.0.1::gvmaster`` with gluster's ``push-pem``
(which copies a key file into the geo-replication dir and may add ``command=`` lines to root's
authorized_keys), makes the slave writable and the master read-only. This test leaves exactly that behind,
as a killed test would, then runs what ``ovirt-dr-lab up`` runs (``repair_replication``; ``down`` deletes
the session and the key copies with the same ``delete_reverse_session``) and checks that the machine is as
before: no reverse session, no key copy, root's authorized_keys lines as they were, the flags back, and
``ovirt-dr-lab status`` healthy again.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ovirt_dr_lab.recovery_e2e import (
    REPO,
    gluster,
    put_options_back,
    session_exists,
    volume_options,
    wait_for,
)

pytestmark = pytest.mark.lab

REVERSE = ["gvslave", "127.0.0.1::gvmaster"]
GEOREP_DIR = Path("/var/lib/glusterd/geo-replication")
AUTHORIZED = Path("/root/.ssh/authorized_keys")


def status() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "ovirt-dr-lab"), "status"], capture_output=True, text=True, timeout=120
    )


def test_up_repairs_what_a_failed_failback_leaves() -> None:
    from ovirt_dr_lab.labparts.gluster import repair_replication, replication_drift

    assert not session_exists(REVERSE), "a reverse session is already there"
    assert status().returncode == 0, status().stdout
    options = {v: volume_options(v) for v in ("gvmaster", "gvslave")}
    keys_before = set(AUTHORIZED.read_text().splitlines()) if AUTHORIZED.exists() else set()
    # a key copy an earlier failback left (gluster's delete keeps it) is not part of the lab: down removes it
    files_before = sorted(p.name for p in GEOREP_DIR.iterdir() if not p.name.startswith("gvslave_gvmaster_"))
    try:
        gluster("volume", "set", "gvslave", "features.read-only", "off")
        gluster("volume", "geo-replication", *REVERSE, "create", "ssh-port", "2223", "push-pem", "force")
        gluster("volume", "set", "gvmaster", "features.read-only", "on")
        assert session_exists(REVERSE)
        # push-pem's hook runs after create returns: its key copy and read-only flag come a moment later
        wait_for(
            lambda: (GEOREP_DIR / "gvslave_gvmaster_common_secret.pem.pub").exists(),
            60,
            "push-pem's key copy",
            0.5,
        )
        drift = replication_drift()
        assert len(drift) == 3, drift
        broken = status()
        assert broken.returncode != 0 and "FAIL replication flags" in broken.stdout

        done = repair_replication()
        assert done == ["reverse session deleted", "gvslave read-only again", "gvmaster writable again"]
    finally:
        repair_replication()  # whatever failed above: the lab must not stay broken
        put_options_back(options)
    assert not session_exists(REVERSE)
    assert sorted(p.name for p in GEOREP_DIR.iterdir()) == files_before
    # push-pem's lines are this node's own keys, which the forward session's push-pem already added
    # (add_secret_pub adds a line only if it is not there); down removes every line up's first run did not find
    assert (set(AUTHORIZED.read_text().splitlines()) if AUTHORIZED.exists() else set()) == keys_before
    assert replication_drift() == []
    assert {v: volume_options(v) for v in ("gvmaster", "gvslave")} == options
    assert status().returncode == 0, status().stdout
