"""The `ovirt` connection type is registered through the provider entry point, as the Airflow UI reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

BIN = Path(sys.executable).parent


def test_entry_point_points_at_provider_info():
    eps = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("ovirt_dr.")]
    assert len(eps) == 1
    info = eps[0].load()()
    (ct,) = [c for c in info["connection-types"] if c["connection-type"] == "ovirt"]
    assert ct["hook-class-name"] == "ovirt_dr.hooks.ovirt.OvirtHook"
    assert set(ct["conn-fields"]) == {"ca_file", "insecure"}
    assert {"schema", "port", "extra"} <= set(ct["ui-field-behaviour"]["hidden-fields"])


def test_providers_manager_lists_provider_and_hook():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    assert "ovirt-dr" in pm.providers
    hooks = pm.hooks
    assert "ovirt" in hooks
    assert hooks["ovirt"].hook_class_name == "ovirt_dr.hooks.ovirt.OvirtHook"
    assert hooks["ovirt"].hook_name == "oVirt Engine"
    # the connection form's custom fields come from the provider's conn-fields
    widgets = pm.connection_form_widgets
    assert any(k.endswith("ca_file") for k in widgets), sorted(widgets)[:20]


def test_airflow_cli_lists_provider():
    env = {**os.environ}
    out = subprocess.run(
        [str(BIN / "airflow"), "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    data = json.loads(out[out.index("[") :])
    assert any(p["package_name"] == "ovirt-dr" for p in data)
