"""``ovirt-dr-lab``: one entry point for the lab.

Sub-commands are dispatched lazily so that ``ovirt-dr-lab engine`` does not import the Gluster lab and
vice versa; each part owns its own module:

- ``engine``  serve one emulated oVirt engine (``ovirt_dr_lab.engine.cli``)
- ``gen-site`` write a site YAML with N VMs (``ovirt_dr_lab.engine.cli``)
- ``up`` / ``down`` / ``status`` / ``fault`` / ``restart-engines``: the whole lab (``ovirt_dr_lab.lab``)
- ``demo``  the product's main job: lab + a real sync cycle under Airflow (``ovirt_dr_lab.demo``)
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "engine": ("ovirt_dr_lab.engine.cli", "main"),
    "gen-site": ("ovirt_dr_lab.engine.cli", "gen_site_main"),
    "up": ("ovirt_dr_lab.lab", "up_main"),
    "down": ("ovirt_dr_lab.lab", "down_main"),
    "status": ("ovirt_dr_lab.lab", "status_main"),
    "fault": ("ovirt_dr_lab.lab", "fault_main"),
    "restart-engines": ("ovirt_dr_lab.lab", "restart_engines_main"),
    "demo": ("ovirt_dr_lab.demo", "main"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        print("usage: ovirt-dr-lab {" + ",".join(COMMANDS) + "} [options]", file=sys.stderr)
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    module, func = COMMANDS[argv[0]]
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
