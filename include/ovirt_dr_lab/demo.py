"""``ovirt-dr-lab demo`` (``make demo``): the product's main job, end to end, on the lab.

Brings the lab up, starts the real Airflow (scheduler, triggerer, dag-processor, API server; SQLite,
LocalExecutor), unpauses and triggers the lab pair's sync DAG while the guest writer writes into the
running VMs, waits for the run and prints its outcome: every task's state, the recovery point, the bytes
verified on the replica and the time taken. Airflow is left running so the run can be inspected in the
UI; ``make down`` (``ovirt-dr-lab demo --stop``, then ``ovirt-dr-lab down``) stops it all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ovirt_dr_lab.airflow_runner import REPO, AirflowStandalone

LAB_DAG_ID = "dr_sync__data_gluster__lab_dr"
LAB_POOL = "ovirt_dr_georep__gvmaster"


def lab_dir() -> Path:
    return Path(os.environ.get("OVIRT_DR_LAB_DIR", REPO / ".lab"))


def airflow_for_lab(env: dict[str, str], config: Path | None = None, port: int = 28080) -> AirflowStandalone:
    """The lab's Airflow: connections from the lab's env, the sync config from ``dags/ovirt_dr.yaml``."""
    extra = {k: v for k, v in env.items() if k.startswith("AIRFLOW_CONN_")}
    extra["OVIRT_DR_CONFIG"] = str(config or REPO / "dags" / "ovirt_dr.yaml")
    return AirflowStandalone(home=lab_dir() / "airflow", env=extra, port=port)


def engine_connection(env: dict[str, str], site: str = "PRIMARY") -> Any:
    """An ovirtsdk4 connection to a lab engine, from the lab's connection definition."""
    import ovirtsdk4

    conn = json.loads(env[f"AIRFLOW_CONN_OVIRT_{site}"])
    return ovirtsdk4.Connection(
        url=conn["host"], username=conn["login"], password=conn["password"], ca_file=conn["extra"]["ca_file"]
    )


def lab_client(env: dict[str, str], site: str = "PRIMARY") -> Any:
    """The lab-only side of a lab engine: guest writer, freeze log, counters, latency, faults."""
    from ovirt_dr_lab.engine.client import LabEngineClient

    return LabEngineClient(env[f"LAB_{site}_ENGINE_URL"], env[f"LAB_{site}_CA"])


def _print_states(states: dict[str, str | None]) -> None:
    done = sum(1 for s in states.values() if s in ("success", "failed", "upstream_failed", "skipped"))
    running = [t for t, s in states.items() if s in ("running", "deferred", "queued", "up_for_retry")]
    print(
        f"  [{time.strftime('%H:%M:%S')}] {done}/{len(states)} done; now: {', '.join(running) or '-'}",
        flush=True,
    )


def print_outcome(af: AirflowStandalone, dag_id: str, run: dict[str, Any], seconds: float) -> None:
    run_id = run["dag_run_id"]
    tis = sorted(af.task_instances(dag_id, run_id), key=lambda t: t.get("start_date") or "9")
    print(f"\nDAG run {run_id}: {run['state'].upper()} in {seconds:.0f}s\n")
    print(f"  {'task':24} {'state':16} {'try':>3} {'seconds':>8}")
    for t in tis:
        dur = t.get("duration")
        print(f"  {t['task_id']:24} {str(t['state']):16} {t.get('try_number', 0):>3} {dur or 0:>8.1f}")
    audit = af.xcom(dag_id, run_id, "audit_replica") or {}
    merge = af.xcom(dag_id, run_id, "merge_snapshots") or {}
    snaps = af.xcom(dag_id, run_id, "snapshot_vms") or {}
    print()
    print(f"  recovery point       : {audit.get('recovery_point', '-')}")
    print(
        f"  VMs / disks frozen   : {len(snaps.get('vms', []))} / {sum(len(v['disks']) for v in snaps.get('vms', []))}"
    )
    print(
        f"  volumes verified     : {audit.get('volumes', '-')} ({audit.get('mode', '-')}), qemu-img checked: {audit.get('qemu_checked', '-')}"
    )
    print(f"  bytes verified       : {audit.get('bytes_checked', '-')}")
    print(f"  snapshots merged     : {len(merge.get('merged', []))}")


def run_demo(timeout: float) -> int:
    from ovirt_dr_lab.lab import up_main
    from ovirt_dr_lab.labenv import load_lab_env

    t0 = time.monotonic()
    print("== 1/4 lab: Gluster geo-replication, sshd, engine emulators, SMTP sink", flush=True)
    if up_main([]) != 0:
        print("ovirt-dr-lab up failed", file=sys.stderr)
        return 1
    env = load_lab_env()

    print("== 2/4 Airflow standalone (scheduler, triggerer, dag-processor, API server)", flush=True)
    af = airflow_for_lab(env)
    af.start()
    af.ensure_pool(LAB_POOL, 1, "one geo-rep session driver at a time on gvmaster")
    af.wait_dag(LAB_DAG_ID)

    print("== 3/4 sync run of data_gluster -> gvslave while the guest writer writes", flush=True)
    conn = engine_connection(env)
    try:
        vm_ids = [vm.id for vm in conn.system_service().vms_service().list(search="status=up")]
    finally:
        conn.close()
    lab = lab_client(env)
    lab.start_writer(vm_ids, 1.0, 65536)
    try:
        af.unpause(LAB_DAG_ID)
        run_id = af.first_run(LAB_DAG_ID)
        print(f"  run {run_id}", flush=True)
        started = time.monotonic()
        run = af.wait_run(LAB_DAG_ID, run_id, timeout, progress=_print_states)
        seconds = time.monotonic() - started
    finally:
        lab.stop_writer()
        writes = lab.writes()
    print("== 4/4 outcome", flush=True)
    print_outcome(af, LAB_DAG_ID, run, seconds)
    print(f"  guest writes meanwhile: {len(writes)}")
    print(f"\nAirflow UI: {af.url}  (user admin, password {af.admin_password()})")
    print(f"Total {time.monotonic() - t0:.0f}s. Stop everything with: make down")
    return 0 if run["state"] == "success" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ovirt-dr-lab demo", description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the run")
    parser.add_argument("--stop", action="store_true", help="stop the demo's Airflow and exit")
    args = parser.parse_args(argv)
    if args.stop:
        AirflowStandalone(home=lab_dir() / "airflow").stop()
        return 0
    return run_demo(args.timeout)
