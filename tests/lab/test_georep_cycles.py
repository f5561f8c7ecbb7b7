"""Real geo-replication cycles on the lab, exactly as the sync pipeline runs them, with plain ``gluster`` commands.

Each cycle: new data (and a change inside an existing multi-shard file) on the master mount, ``config checkpoint
now``, a touch of the master root (reference pitfall 4), ``start``, wait until the checkpoint *of that time* is
completed on every Active worker, ``stop``, then every file on the slave mount must hash like the master's. The
second and third cycles are the normal case (the schedule repeats all day); pitfall 2 is why the lab runs xsync.
The XML is parsed here with ElementTree, independently of the product's parser.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ovirt_dr_lab.labenv import load_lab_env

pytestmark = pytest.mark.lab

CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
MIB = 1 << 20
SHARD = 64 * MIB  # gluster's default features.shard-block-size
CHECKPOINT_TIMEOUT = 240.0
FAULTY_GRACE = 60.0


def gluster(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["gluster", "--mode=script", *args], capture_output=True, text=True, env=CLEAN_ENV, timeout=120
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"gluster {' '.join(args)}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def pattern(seed: int, size: int) -> bytes:
    """Deterministic, incompressible-enough content: a different 1 MiB block per seed, varied per MiB."""
    block = hashlib.sha256(str(seed).encode()).digest() * (MIB // 32)
    out = bytearray()
    for i in range(0, size, MIB):
        out += (i // MIB).to_bytes(8, "little") + block[8 : min(MIB, size - i)]
    return bytes(out[:size])


def sha256_tree(root: Path) -> dict[str, str]:
    result = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(4 * MIB), b""):
                    h.update(chunk)
            result[str(path.relative_to(root))] = h.hexdigest()
    return result


class Session:
    def __init__(self, master: str, slave: str) -> None:
        self.master, self.slave = master, slave

    def cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return gluster("volume", "geo-replication", self.master, self.slave, *args, check=check)

    def set_checkpoint(self) -> str:
        """Set a checkpoint; return its label as ``status`` prints it (node-local '%Y-%m-%d %H:%M:%S')."""
        self.cmd("config", "checkpoint", "now")
        epoch = int(self.cmd("config", "checkpoint").stdout.strip())
        return subprocess.run(
            ["date", "-d", f"@{epoch}", "+%Y-%m-%d %H:%M:%S"], capture_output=True, text=True, check=True
        ).stdout.strip()

    def workers(self) -> list[dict[str, str]]:
        root = ET.fromstring(self.cmd("status", "detail", "--xml").stdout)
        return [{child.tag: (child.text or "").strip() for child in pair} for pair in root.iter("pair")]

    def start(self) -> None:
        proc = self.cmd("start", check=False)
        assert proc.returncode == 0 or "already started" in proc.stderr + proc.stdout, proc

    def stop(self) -> None:
        self.cmd("stop")

    def wait_checkpoint(self, label: str) -> tuple[float, list[dict[str, str]]]:
        t0 = time.monotonic()
        faulty_since: float | None = None
        workers: list[dict[str, str]] = []
        while time.monotonic() - t0 < CHECKPOINT_TIMEOUT:
            workers = self.workers()
            active = [w for w in workers if w.get("status") == "Active"]
            if active and all(
                w.get("checkpoint_completed") == "Yes" and w.get("checkpoint_time") == label for w in active
            ):
                return time.monotonic() - t0, workers
            if any(w.get("status") == "Faulty" for w in workers):
                faulty_since = faulty_since or time.monotonic()
                assert time.monotonic() - faulty_since < FAULTY_GRACE, f"session Faulty: {workers}"
            else:
                faulty_since = None
            time.sleep(1)
        raise AssertionError(f"checkpoint {label} not completed in {CHECKPOINT_TIMEOUT:.0f} s: {workers}")


@pytest.fixture(scope="module")
def lab() -> dict[str, str]:
    return load_lab_env()


def test_three_cycles_replicate_identical_data(lab: dict[str, str]) -> None:
    master_mount, slave_mount = Path(lab["LAB_MASTER_MOUNT"]), Path(lab["LAB_SLAVE_MOUNT"])
    session = Session(lab["LAB_MASTER_VOLUME"], f"{lab['LAB_SLAVE_HOST']}::{lab['LAB_SLAVE_VOLUME']}")
    assert (
        gluster(
            "volume", "geo-replication", session.master, session.slave, "config", "change_detector"
        ).stdout.strip()
        == "xsync"
    )
    session.stop()  # a DR run finds the session stopped: the previous run stopped it
    run_dir = f"cycles-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    src, dst = master_mount / run_dir, slave_mount / run_dir
    src.mkdir()
    big = (
        src / "base.img"
    )  # spans two shards, changed in place by later cycles (as a merge changes a base volume)
    timings = []
    for cycle in (1, 2, 3):
        t0 = time.monotonic()
        if cycle == 1:
            big.write_bytes(pattern(0, SHARD + 8 * MIB))
        else:
            with open(big, "r+b") as f:  # rewrite 1 MiB in the second shard and 1 MiB in the first
                f.seek(SHARD + cycle * MIB)
                f.write(pattern(100 + cycle, MIB))
                f.seek(cycle * MIB)
                f.write(pattern(200 + cycle, MIB))
        (src / f"cycle{cycle}").mkdir()
        (src / f"cycle{cycle}" / "overlay.qcow2").write_bytes(pattern(cycle, 8 * MIB + 12345))
        (src / f"cycle{cycle}" / "overlay.qcow2.meta").write_text(f"CYCLE={cycle}\nEOF\n")
        expected = sha256_tree(src)

        label = session.set_checkpoint()
        os.utime(master_mount)  # pitfall 4: a change after the checkpoint lets it complete
        session.start()
        waited, workers = session.wait_checkpoint(label)
        session.stop()

        assert all(w["checkpoint_time"] == label for w in workers if w.get("status") == "Active")
        got = sha256_tree(dst)
        assert got == expected, f"cycle {cycle}: slave differs: missing {set(expected) - set(got)}, " + str(
            [k for k in expected if got.get(k) != expected[k]]
        )
        timings.append((cycle, round(waited, 1), round(time.monotonic() - t0, 1)))
    print(f"\ncycles (cycle, wait for checkpoint s, whole cycle s): {timings}")
