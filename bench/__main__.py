"""Benchmarks: ``make bench`` (or ``python -m bench [P1 P2 P3 P5 P6]``) prints one table.

- P1  snapshot window for 50 VMs at 1 s emulated snapshot latency: the bounded concurrent pool vs the
      same snapshots one after another (OvirtSnapshotVmsOperator against the engine emulator, real SDK).
- P2  engine requests per sync of N VMs (the engine-side steps: preflight, OVF update, snapshots, merge,
      event), read from the emulator's per-endpoint counter.
- P3  parse time of the DAG file for 1,000 pairs: full, and with the parsing context of one DAG (a task run).
- P5  failover RTO for 100 VMs (register 0.5 s, start 0.5 s emulated): the dr_failover steps (import,
      templates, VMs registered in 4 parallel shards of 10 requests, start in tiers) vs the same steps one
      after another (1 shard of 1 request, one VM per start tier), the failover operators against two
      in-process engines (the second imports the first's domain with its OVF_STORE). Airflow's own task
      start-up (~5-9 s per task on 2 cores) is not in these numbers.
- P7  the real dag-processor's parse (``_parse_file``) of the sync DAG file and its check file for 500
      and ``BENCH_P7_PAIRS`` (default 20,000) pairs: one file (at most MAX_PAIRS_PER_FILE built, the rest
      named), and one shard of the same pairs sharded ~400 per file.
- P6  worker-held seconds while a checkpoint wait lasts ``BENCH_P6_WAIT`` seconds (default 600): the
      deferrable sensor's execute + execute_complete; the wait itself runs in the trigger.

Nothing here is asserted: these are measurements, printed with what was measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "gluster"
ROWS: list[tuple[str, str, str]] = []


def row(bench: str, what: str, value: str) -> None:
    ROWS.append((bench, what, value))
    print(f"  {bench:4} {what:58} {value}", flush=True)


class Engine:
    """An in-process engine emulator on a tmp dir with a generated site, and an Airflow connection to it."""

    def __init__(self, vms: int, latency: dict[str, float]) -> None:
        from ovirt_dr_lab.engine.server import EngineServer
        from ovirt_dr_lab.engine.site import generate_site

        self.tmp = Path(tempfile.mkdtemp(prefix="ovirt-dr-bench-"))
        for name in ("gvmaster", "gvslave"):
            (self.tmp / name).mkdir()
        os.environ.update(
            {
                "LAB_MASTER_MOUNT": str(self.tmp / "gvmaster"),
                "LAB_SLAVE_MOUNT": str(self.tmp / "gvslave"),
                "LAB_GLUSTER_HOST": "gluster.lab",
            }
        )
        site = generate_site(vms, disk_size_mib=16)
        site["latency"] = latency
        self.server = EngineServer(site, self.tmp / "state").start()
        os.environ["AIRFLOW_CONN_OVIRT_BENCH"] = json.dumps(
            {
                "conn_type": "ovirt",
                "host": self.server.url,
                "login": "admin@internal",
                "password": "lab-admin-pw",
                "extra": {"ca_file": str(self.server.ca_file)},
            }
        )

    def close(self) -> None:
        import shutil

        self.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def op(cls: Any, **kw: Any) -> Any:
    from airflow.sdk import DAG

    with DAG("dr_sync__data_gluster__bench", schedule=None):
        return cls(task_id=cls.__name__, ovirt_conn_id="ovirt_bench", **kw)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def p1() -> None:
    from ovirt_dr.operators.ovirt import (
        OvirtMergeSnapshotsOperator,
        OvirtSnapshotVmsOperator,
        OvirtSyncPreflightOperator,
    )

    eng = Engine(50, {"snapshot": 1.0, "merge": 0.1})
    try:
        sd = op(OvirtSyncPreflightOperator, storage_domain="data_gluster", master_volume="gvmaster").execute(
            {"run_id": "p1"}
        )["sd_id"]
        for label, conc in (
            ("bounded pool of 50", 50),
            ("bounded pool of 8 (default)", 8),
            ("one after another", 1),
        ):
            secs, out = timed(
                lambda c=conc: op(
                    OvirtSnapshotVmsOperator,
                    storage_domain="data_gluster",
                    sd_id=sd,
                    concurrency=c,
                    poll_s=0.2,
                ).execute({"run_id": f"p1-{c}"})
            )
            row("P1", f"snapshot 50 VMs at 1 s latency, {label}", f"{secs:7.1f} s ({len(out['vms'])} VMs)")
            op(OvirtMergeSnapshotsOperator, storage_domain="data_gluster", poll_s=0.2).execute(
                {"run_id": "p1"}
            )
    finally:
        eng.close()


def p2() -> None:
    from ovirt_dr.hooks.ovirt import OvirtHook
    from ovirt_dr.operators.ovirt import (
        OvirtMergeSnapshotsOperator,
        OvirtSnapshotVmsOperator,
        OvirtSyncPreflightOperator,
        OvirtUpdateOvfStoreOperator,
    )

    for n in (6, 50, 100):
        eng = Engine(n, {"snapshot": 0.2, "merge": 0.2, "ovf_update": 0.2})
        try:
            eng.server.lab.reset_counters()
            ctx = {"run_id": "p2"}
            sd = op(
                OvirtSyncPreflightOperator, storage_domain="data_gluster", master_volume="gvmaster"
            ).execute(ctx)["sd_id"]
            op(OvirtUpdateOvfStoreOperator, sd_id=sd, poll_s=0.5).execute(ctx)
            op(OvirtSnapshotVmsOperator, storage_domain="data_gluster", sd_id=sd, poll_s=0.5).execute(ctx)
            op(OvirtMergeSnapshotsOperator, storage_domain="data_gluster", poll_s=0.5).execute(ctx)
            with OvirtHook("ovirt_bench") as hook:
                hook.add_event(description="bench", severity="normal", custom_id=1, sd_id=sd)
            counts = eng.server.lab.counters()
            total = sum(v for k, v in counts.items() if "/sso/" not in k)
            sso = sum(v for k, v in counts.items() if "/sso/" in k)
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
            row(
                "P2",
                f"engine requests, one sync of {n} VMs (poll 0.5 s)",
                f"{total:7d} ({total / n:.1f}/VM; +{sso} SSO) top: {top}",
            )
        finally:
            eng.close()


def p3() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ovirt-dr-bench-p3-"))
    base = {
        "site": "primary",
        "master_volume": "gvmaster",
        "gluster_ssh_conn_id": "g",
        "slave_host": "dr.example.com",
        "slave_volume": "gvslave",
        "slave_ssh_conn_id": "s",
        "alert_emails": ["ops@example.com"],
    }
    pairs = [
        # one slave volume per pair: two pairs writing one slave volume are refused (issue 10)
        {
            **base,
            "storage_domain": f"dom{i:04d}",
            "target": "dr",
            "master_volume": f"gv{i % 50}",
            "slave_volume": f"gvs{i}",
        }
        for i in range(1000)
    ]
    cfg = tmp / "ovirt_dr.yaml"
    cfg.write_text(yaml.safe_dump({"sites": {"primary": {"ovirt_conn_id": "ovirt"}}, "pairs": pairs}))
    code = (
        "import time; t=time.perf_counter(); from airflow.dag_processing.dagbag import DagBag; "
        f"b=DagBag(dag_folder={str(REPO / 'dags')!r}); "
        "print(time.perf_counter()-t, len(b.dags), len(b.import_errors))"
    )
    for label, extra in (
        ("full (1,000 DAGs)", {}),
        ("parsing context of one DAG", {"_AIRFLOW_PARSING_CONTEXT_DAG_ID": "dr_sync__dom0500__dr"}),
    ):
        env = {
            **os.environ,
            "OVIRT_DR_CONFIG": str(cfg),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_HOME": str(tmp / "af"),
            **extra,
        }
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        secs, ndags, nerr = float(out[-3]), out[-2], out[-1]
        row("P3", f"DagBag of dags/ for 1,000 pairs, {label}", f"{secs:7.2f} s ({ndags} DAGs, {nerr} errors)")


_P7_CODE = """
import json, sys, time
from pathlib import Path
import structlog
from airflow.dag_processing.processor import DagFileParseRequest, _parse_file
dags = Path(sys.argv[1])
out = {}
for name in sys.argv[2:]:
    t = time.perf_counter()
    r = _parse_file(DagFileParseRequest(file=str(dags / name), bundle_path=dags, bundle_name="b"), structlog.get_logger())
    errs = r.import_errors or {}
    out[name] = {"s": time.perf_counter() - t, "dags": len(r.serialized_dags),
                 "errors": {k: v.strip().splitlines()[-1][:160] for k, v in errs.items()},
                 "not_built": sum(v.count("  - pairs[") for v in errs.values())}
print(json.dumps(out))
"""


def p7() -> None:
    """The real dag-processor (``_parse_file``: import under ``dagbag_import_timeout``, then serialization)."""
    tmp = Path(tempfile.mkdtemp(prefix="ovirt-dr-bench-p7-"))
    n = int(os.environ.get("BENCH_P7_PAIRS", "20000"))
    pairs = [
        {
            "storage_domain": f"dom{i:05d}",
            "target": "dr",
            "site": "primary",
            "master_volume": f"gv{i}",
            "gluster_ssh_conn_id": "g",
            "slave_host": "dr.example.com",
            "slave_volume": f"gvs{i}",
            "slave_ssh_conn_id": "s",
            "alert_emails": ["ops@example.com"],
        }
        for i in range(n)
    ]
    load = os.getloadavg()[0]
    for count, label in ((500, "500 pairs"), (n, f"{n:,} pairs")):
        cfg = tmp / f"c{count}.yaml"
        cfg.write_text(
            yaml.safe_dump({"sites": {"primary": {"ovirt_conn_id": "ovirt"}}, "pairs": pairs[:count]})
        )
        shards = 1 if count <= 500 else -(-count // 400)  # README: n >= pairs / 400
        layouts = [(1, "")] if shards == 1 else [(1, ""), (shards, f"_1_of_{shards}")]
        for nshards, suffix in layouts:
            dags = tmp / f"dags{count}_{nshards}"
            dags.mkdir()
            files = [f"dr_sync{suffix}.py", f"dr_sync_config_check{suffix}.py"]
            for src, dst in zip(("dr_sync.py", "dr_sync_config_check.py"), files, strict=True):
                (dags / dst).write_text((REPO / "dags" / src).read_text())
            if nshards > 1:  # the other shards' files exist, as in a deployment (not parsed here)
                for k in range(2, nshards + 1):
                    for src in ("dr_sync", "dr_sync_config_check"):
                        (dags / f"{src}_{k}_of_{nshards}.py").write_text(
                            (REPO / "dags" / f"{src}.py").read_text()
                        )
            env = {
                **os.environ,
                "OVIRT_DR_CONFIG": str(cfg),
                "AIRFLOW_HOME": str(tmp / "af"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            }
            res = subprocess.run(
                [sys.executable, "-c", _P7_CODE, str(dags), *files],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            out = json.loads(res.stdout.strip().splitlines()[-1])
            where = "one DAG file" if nshards == 1 else f"shard 1 of {nshards}"
            d, c = out[files[0]], out[files[1]]
            row(
                "P7",
                f"{label}, {where}: DAG file (import+serialize)",
                f"{d['s']:7.2f} s ({d['dags']} DAGs, import errors: {len(d['errors'])})",
            )
            row(
                "P7",
                f"{label}, {where}: check file (import)",
                f"{c['s']:7.2f} s ({c['not_built']} pairs named not built)",
            )
    row("P7", "load average (1 min) when started", f"{load:7.2f}")


def p6() -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from ovirt_dr.gluster import GeoRepSession
    from ovirt_dr.hooks.node import CommandResult, GlusterNodeHook
    from ovirt_dr.sensors.gluster import GlusterGeoRepCheckpointSensor
    from ovirt_dr.triggers.gluster import GeoRepCheckpointTrigger

    wait = float(os.environ.get("BENCH_P6_WAIT", "600"))
    done = (FIXTURES / "status-detail-checkpoint-completed.xml").read_text()
    pending = (FIXTURES / "status-detail-syncing-changelog.xml").read_text()
    label = "2026-11-21 14:55:49"
    sensor = GlusterGeoRepCheckpointSensor(
        task_id="wait",
        ssh_conn_id="x",
        session=GeoRepSession("gvmaster", "127.0.0.1", "gvslave"),
        checkpoint={"epoch": 1, "label": label},
    )
    t = time.perf_counter()
    try:
        sensor.execute({})
        raise RuntimeError("the sensor did not defer")
    except TaskDeferred as deferred:
        held = time.perf_counter() - t
        trigger: GeoRepCheckpointTrigger = deferred.trigger
    trigger.poll_interval_s = 30.0
    started = time.monotonic()

    async def status_command(_node: Any, argv: Any, timeout: Any = None) -> CommandResult:
        # the node's answer to the status command, through the trigger's real hook (no SSH in P6)
        return CommandResult(0, done if time.monotonic() - started >= wait else pending, "")

    GlusterNodeHook.async_run = status_command  # type: ignore[method-assign]

    async def drive() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        return {}

    payload = asyncio.run(drive())
    waited = time.monotonic() - started
    t = time.perf_counter()
    sensor.execute_complete({}, payload)
    held += time.perf_counter() - t
    row(
        "P6",
        f"worker-held seconds for a {waited:.0f} s checkpoint wait",
        f"{held:7.3f} s ({payload.get('polls')} polls in the triggerer)",
    )


def _p5_failover(dr: Any, label: str) -> float:
    """One failover through the operators; returns the RTO (start of the steps -> last VM up)."""
    import threading

    from ovirt_dr.failover import flatten
    from ovirt_dr.operators.recovery_base import IMPORT_TASK, START_TASK, TEMPLATES_TASK, VMS_TASK
    from ovirt_dr.operators.recovery_ovirt import (
        OvirtImportDomainsOperator,
        OvirtRegisterTemplatesOperator,
        OvirtRegisterVmsOperator,
        OvirtStartVmsOperator,
    )
    from ovirt_dr_lab.inprocess_dr import FakeRun

    params = {"dry_run": False, "force": False, "start_vms": True, "domains": []}
    run = FakeRun(params)
    t0 = time.perf_counter()
    run.xcoms[("preflight", "return_value", -1)] = dr.plan(params)
    run.states["preflight"] = "success"
    t_plan = time.perf_counter()
    shards = run.execute(dr.operator(OvirtImportDomainsOperator, IMPORT_TASK, poll_s=0.2))
    t_import = time.perf_counter()
    run.execute(dr.operator(OvirtRegisterTemplatesOperator, TEMPLATES_TASK))
    errors: list[BaseException] = []

    def shard(i: int, items: list[dict[str, Any]]) -> None:
        try:  # each mapped task instance is its own process with its own engine session in Airflow
            run.execute(dr.operator(OvirtRegisterVmsOperator, VMS_TASK, shard=items), map_index=i)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=shard, args=(i, s)) for i, s in enumerate(shards)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    t_reg = time.perf_counter()
    out = run.execute(dr.operator(OvirtStartVmsOperator, START_TASK, poll_s=0.2))
    t_end = time.perf_counter()
    up = [o for o in flatten(out) if o["result"] == "done"]
    registered = len(flatten([run.xcoms[k] for k in run.xcoms if k[0] == VMS_TASK and k[1] == "outcomes"]))
    row(
        "P5",
        f"failover of 100 VMs, {label}",
        f"{t_end - t0:7.1f} s RTO ({registered} registered, {len(up)} up; plan {t_plan - t0:.1f} s, "
        f"import {t_import - t_plan:.1f} s, register {t_reg - t_import:.1f} s, start {t_end - t_reg:.1f} s)",
    )
    return t_end - t0


def p5() -> None:
    from ovirt_dr_lab.inprocess_dr import InProcessDr

    n = 100
    names = [f"vm{i:03d}" for i in range(1, n + 1)]
    dr = InProcessDr(
        vms=n,
        latency={"register": 0.5, "start": 0.5, "attach": 0.6, "activate": 0.3, "ovf_update": 0.2},
        recovery={
            "register_shards": 4,
            "register_concurrency": 10,
            "start_tiers": [names[:10], names[10:40]],
        },
    ).start()
    try:
        fast = _p5_failover(dr, "4 shards x 10 in flight, 3 start tiers")
        dr.new_secondary()
        dr.set_recovery(register_shards=1, register_concurrency=1, start_tiers=[[v] for v in names])
        slow = _p5_failover(dr, "one after another (1 x 1, a tier per VM)")
        row("P5", "speed-up of the parallel failover", f"{slow / fast:7.1f} x")
    finally:
        dr.close()


BENCHES = {"P1": p1, "P2": p2, "P3": p3, "P5": p5, "P6": p6, "P7": p7}


def main(argv: list[str]) -> int:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="ovirt-dr-bench-af-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    wanted = [a.upper() for a in argv] or list(BENCHES)
    print(f"  {'':4} {'measured':58} result")
    for name in wanted:
        BENCHES[name]()
    print("\n| bench | measured | result |\n|---|---|---|")
    for b, what, value in ROWS:
        print(f"| {b} | {what} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
