"""``ovirt-dr-lab engine`` (serve one emulated engine) and ``ovirt-dr-lab gen-site`` (a site with N VMs).

The engine prints ``API_URL=...`` and ``CA_FILE=...`` on stdout once it listens, so a supervisor (the lab)
can wait for those lines instead of polling the port, then serves until SIGTERM or SIGINT and saves its
state on the way out.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

import yaml


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ovirt-dr-lab engine", description="Serve one emulated oVirt engine."
    )
    parser.add_argument("--site", required=True, type=Path, help="site YAML (inventory)")
    parser.add_argument("--port", type=int, default=0, help="HTTPS port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state-dir", required=True, type=Path, help="state, CA and certificate live here")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from ovirt_dr_lab.engine.server import EngineServer

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = EngineServer(args.site, args.state_dir, port=args.port, host=args.host).start()
    try:
        print(f"API_URL={server.url}", flush=True)
        print(f"CA_FILE={server.ca_file}", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
    return 0


def gen_site_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ovirt-dr-lab gen-site", description="Write a primary-like site YAML with N VMs (benchmarks)."
    )
    parser.add_argument("--vms", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--disks-per-vm", type=int, default=1)
    parser.add_argument("--disk-size-mib", type=int, default=64)
    parser.add_argument("--name", default="primary")
    args = parser.parse_args(argv)
    if args.vms < 1 or args.disks_per_vm < 1 or args.disk_size_mib < 1:
        parser.error("--vms, --disks-per-vm and --disk-size-mib must be positive")

    from ovirt_dr_lab.engine.site import generate_site

    site = generate_site(args.vms, args.disks_per_vm, args.disk_size_mib, args.name)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(yaml.safe_dump(site, sort_keys=False))
    print(f"wrote {args.out} with {args.vms} VMs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
