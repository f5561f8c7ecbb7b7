"""Provider metadata, read by Airflow through the ``apache_airflow_provider`` entry point.

Registering the ``ovirt`` connection type here (not in a plugin) is what makes the Airflow UI offer an
"oVirt Engine" connection with its own fields: Airflow 3 discovers connection types only from providers.
"""

from __future__ import annotations

from typing import Any

from ovirt_dr import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "ovirt-dr",
        "name": "oVirt DR",
        "description": "Disaster recovery for oVirt / OLVM on GlusterFS: sync and recovery pipelines.",
        "versions": [__version__],
        "connection-types": [
            {
                "hook-class-name": "ovirt_dr.hooks.ovirt.OvirtHook",
                "connection-type": "ovirt",
                "hook-name": "oVirt Engine",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {"host": "API URL", "login": "Username"},
                    "placeholders": {
                        "host": "https://engine.example.com/ovirt-engine/api",
                        "login": "admin@internal",
                    },
                },
                "conn-fields": {
                    "ca_file": {
                        "label": "CA file",
                        "schema": {"type": ["string", "null"]},
                        "description": "Path of the engine's CA certificate (PEM) on the workers.",
                    },
                    "insecure": {
                        "label": "Insecure (skip TLS verification)",
                        "schema": {"type": ["boolean", "null"]},
                        "description": "Never in production: disables certificate and host name checks.",
                    },
                },
            }
        ],
    }
