"""Test helpers for code that drives an in-process emulated engine with the real ovirtsdk4.

Used by the engine conformance suite and available to any product test that starts an
:class:`~ovirt_dr_lab.engine.server.EngineServer` (``site_dict`` loads a shipped site with fast latencies).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ovirtsdk4
import yaml

from ovirt_dr_lab.engine.server import EngineServer
from ovirt_dr_lab.engine.site import SITES_DIR

FAST_LATENCY = {
    "snapshot": 0.2,
    "merge": 0.3,
    "ovf_update": 0.1,
    "register": 0.1,
    "start": 0.3,
    "stop": 0.1,
    "attach": 0.3,
    "activate": 0.1,
    "deactivate": 0.1,
}
PASSWORD = "lab-admin-pw"
USER = "admin@internal"


def site_dict(name: str, **overrides: Any) -> dict[str, Any]:
    """A shipped site file as a dict, with fast latencies (the YAML itself stays what the lab uses)."""
    site = yaml.safe_load((SITES_DIR / f"{name}.yaml").read_text())
    site["latency"] = dict(FAST_LATENCY)
    site.update(overrides)
    return site


def connect(server: EngineServer, **kw: Any) -> ovirtsdk4.Connection:
    args = {"url": server.url, "username": USER, "password": PASSWORD, "ca_file": str(server.ca_file)}
    args.update(kw)
    return ovirtsdk4.Connection(**args)


def wait_for(
    predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
