"""Pure Gluster code of the product: name validation, command building, output parsing, typed errors.

No I/O here: the hooks (``ovirt_dr.hooks.gluster`` on ``ovirt_dr.hooks.node``) send what is built here
(``build_georep_cmd`` + ``shlex.join``) and read it back (``parse_georep_status``), in a worker and in the
triggerer alike; ``checkpoint`` holds the checkpoint and the wait's verdict.
"""

from __future__ import annotations

from ovirt_dr.gluster.commands import (
    GeoRepSession,
    build_georep_cmd,
    build_volume_cmd,
    build_volume_set_cmd,
)
from ovirt_dr.gluster.errors import (
    AlreadyStarted,
    CommandTimeout,
    GlusterBusy,
    GlusterCommandError,
    GlusterOutputError,
    NotStarted,
    SessionNotFound,
    classify_error,
    xml_op_error,
)
from ovirt_dr.gluster.names import (
    validate_host,
    validate_remote_path,
    validate_user,
    validate_volume_name,
)
from ovirt_dr.gluster.status import (
    TIME_FORMAT,
    GeoRepStatus,
    GeoRepWorker,
    VolumeInfo,
    format_time,
    parse_georep_status,
    parse_time,
    parse_volume_info,
)

__all__ = [
    "TIME_FORMAT",
    "AlreadyStarted",
    "CommandTimeout",
    "GeoRepSession",
    "GeoRepStatus",
    "GeoRepWorker",
    "GlusterBusy",
    "GlusterCommandError",
    "GlusterOutputError",
    "NotStarted",
    "SessionNotFound",
    "VolumeInfo",
    "build_georep_cmd",
    "build_volume_cmd",
    "build_volume_set_cmd",
    "classify_error",
    "format_time",
    "parse_georep_status",
    "parse_time",
    "parse_volume_info",
    "validate_host",
    "validate_remote_path",
    "validate_user",
    "validate_volume_name",
    "xml_op_error",
]
