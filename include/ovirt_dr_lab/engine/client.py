"""LabEngineClient: the lab-only controls of an emulated engine (never part of the oVirt API).

JSON over HTTPS under ``/ovirt-engine/lab/``, no authentication (the SDK never calls these). Tests and
the lab CLI use it to inject latency and faults, read request counters, write known data into running
VMs and read back what was written when, and inspect the real volume chains.

Counter keys are ``"METHOD /path-template"`` with every id written ``{id}``, relative to
``/ovirt-engine/api`` (``"POST /vms/{id}/snapshots"``, ``"GET /storagedomains"``); SSO calls keep their full
path (``"POST /ovirt-engine/sso/oauth/token"``).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any


class LabEngineError(RuntimeError):
    """A lab endpoint refused the request (status and the engine's message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class LabEngineClient:
    """Lab controls of one engine.

    :param base_url: ``https://host:port`` of the engine (an API URL ending in ``/ovirt-engine/api`` is
        accepted too).
    :param ca_file: the engine's CA certificate.
    """

    def __init__(self, base_url: str, ca_file: str, timeout: float = 120.0) -> None:
        base = base_url.rstrip("/")
        for suffix in ("/ovirt-engine/api", "/ovirt-engine"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        self.base = base + "/ovirt-engine/lab"
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            try:
                message = json.loads(text).get("error", text)
            except ValueError:
                message = text
            raise LabEngineError(exc.code, message) from None
        return json.loads(raw) if raw else None

    # ---- counters ------------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        return self._call("GET", "/counters")

    def reset_counters(self) -> None:
        self._call("POST", "/counters/reset")

    # ---- freeze / guest writes -----------------------------------------------------------------
    def freeze_log(self) -> list[dict[str, Any]]:
        """``[{"time", "vm_id", "vm_name", "action": "freeze"|"thaw"}]`` in call order."""
        return self._call("GET", "/freeze_log")

    def write(self, vm_id: str, disk_id: str, offset: int, length: int, pattern: int) -> dict[str, Any]:
        """Write ``length`` bytes of ``pattern`` at ``offset`` into the disk's active volume (VM must be up)."""
        return self._call(
            "POST",
            "/write",
            {"vm_id": vm_id, "disk_id": disk_id, "offset": offset, "length": length, "pattern": pattern},
        )

    def start_writer(self, vm_ids: list[str], interval_s: float = 0.5, block_size: int = 65536) -> None:
        """A background writer: every ``interval_s`` one block into each disk of each VM (logged)."""
        self._call(
            "POST",
            "/writer/start",
            {"vm_ids": list(vm_ids), "interval_s": interval_s, "block_size": block_size},
        )

    def stop_writer(self) -> dict[str, Any]:
        return self._call("POST", "/writer/stop")

    def writes(self) -> list[dict[str, Any]]:
        """``[{"seq","time","vm_id","disk_id","volume_id","offset","length","pattern"}]`` oldest first."""
        return self._call("GET", "/writes")

    # ---- latency / faults / outage ---------------------------------------------------------------
    def set_latency(self, latency: dict[str, float]) -> dict[str, float]:
        """Seconds per operation: snapshot, merge, ovf_update, register, start (also stop, attach, ...)."""
        return self._call("POST", "/latency", latency)

    def latency(self) -> dict[str, float]:
        return self._call("GET", "/latency")

    def inject_fault(
        self,
        method: str,
        path_regex: str,
        status: int | None = None,
        hang_s: float | None = None,
        count: int = 1,
    ) -> None:
        """The next ``count`` requests whose path matches ``path_regex`` (``re.search`` on the full path,
        e.g. ``/snapshots$``) hang ``hang_s`` seconds and/or answer ``status`` (with a ``<fault>``;
        ``"*"`` as method matches any)."""
        self._call(
            "POST",
            "/faults",
            {"method": method, "path_regex": path_regex, "status": status, "hang_s": hang_s, "count": count},
        )

    def clear_faults(self) -> None:
        self._call("POST", "/faults/clear")

    def engine_down(self, seconds: float) -> None:
        """The engine refuses connections (and drops requests on open ones) for ``seconds``.

        The lab endpoints go down with it (they share the port); call again after ``seconds``.
        """
        self._call("POST", "/engine_down", {"seconds": seconds})

    def expire_tokens(self) -> int:
        """Invalidate every SSO token: the SDK's next call gets 401 and logs in again."""
        return int(self._call("POST", "/tokens/expire")["expired"])

    # ---- storage -------------------------------------------------------------------------------
    def disk_chain(self, disk_id: str) -> list[str]:
        """Volume ids base..leaf as the files say (``.meta`` PUUIDs)."""
        return self._call("GET", f"/disks/{disk_id}/chain")

    def initial_content(self, disk_id: str) -> dict[str, Any]:
        """``{"disk_id", "seed", "base_volume_id", "size"}``: the disk was created with
        ``storage.seed_writes(seed, size)`` applied (``storage.expected_content`` computes the bytes)."""
        return self._call("GET", f"/disks/{disk_id}/initial_content")

    # ---- misc ----------------------------------------------------------------------------------
    def set_vm_status(self, vm_id: str, status: str) -> None:
        """Force a VM status (e.g. ``down``) without the power transitions."""
        self._call("POST", f"/vms/{vm_id}/status", {"status": status})

    def set_snapshot_status(self, vm_id: str, snapshot_id: str, status: str) -> None:
        """``in_preview`` puts a snapshot into preview (as the engine's Preview leaves it), ``ok`` ends it."""
        self._call("POST", f"/vms/{vm_id}/snapshots/{snapshot_id}/status", {"status": status})

    def set_host_status(self, host_id: str, status: str) -> None:
        """A host's status (``up``, ``maintenance``, ``non_responsive``...): what import and start need."""
        self._call("POST", f"/hosts/{host_id}/status", {"status": status})

    def state(self) -> dict[str, Any]:
        """The engine's whole inventory (debugging)."""
        return self._call("GET", "/state")
