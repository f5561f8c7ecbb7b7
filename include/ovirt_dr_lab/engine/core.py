"""The emulated engine, independent of HTTP: :class:`Engine` puts its parts together on one state.

Each part is a mixin on :class:`ovirt_dr_lab.engine.state.EngineState` (the JSON inventory, its lock,
persistence and lookups), in its own module by job:

- ``state``: the inventory built from the site file (or upgraded from an older state.json), persisted,
  looked up; each site domain's :class:`DomainStorage` and the reconciliation with the files at start.
- ``jobs``: events and jobs; ``finish_job`` is how every asynchronous operation ends.
- ``vms``: VM power with status transitions, freeze/thaw log, removal, the guest writer.
- ``snapshots``: snapshot creation (real qcow2 overlays) and live merge.
- ``ovfstore``: OVF descriptors of the inventory, OVF_STORE updates (on request and periodic), the
  unregistered VMs/templates read from a domain's OVF_STORE.
- ``domains``: storage domain import/create/attach/activate/deactivate/detach/remove (uses ``ovfstore``).
- ``registration``: registering VMs and templates with the DR mappings.
- ``common`` (faults, constants, ``now_iso``) and ``scheduler`` (latencies as timers) serve them all.

Everything that touches disks goes through :class:`ovirt_dr_lab.engine.storage.DomainStorage` (real qcow2
via ``qemu-img``). Asynchronous behaviour runs on the :class:`Scheduler`. Serialization: one re-entrant
lock guards the state dicts (held only for bookkeeping, never across ``qemu-img``); per-image locks
(shared with DomainStorage) serialize guest writes, snapshot creation and merges of one disk, so every
guest write lands wholly before or wholly after a snapshot.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
from pathlib import Path
from typing import Any

from ovirt_dr_lab.engine.common import DEFAULT_LATENCY, EngineFault
from ovirt_dr_lab.engine.domains import DomainsMixin
from ovirt_dr_lab.engine.registration import RegistrationMixin
from ovirt_dr_lab.engine.scheduler import Scheduler
from ovirt_dr_lab.engine.site import load_site
from ovirt_dr_lab.engine.snapshots import SnapshotsMixin
from ovirt_dr_lab.engine.storage import DomainStorage, StorageError
from ovirt_dr_lab.engine.vms import VmsMixin


class Engine(DomainsMixin, RegistrationMixin, SnapshotsMixin, VmsMixin):
    """One emulated oVirt engine: its parts (see the module docstring) on one state, plus the lab controls."""

    def __init__(self, site: dict[str, Any] | Path | str, state_dir: Path) -> None:
        self.site = load_site(site)
        self.site_name = str(self.site.get("name", "site"))
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_file = self.state_dir / "state.json"
        self.lock = threading.RLock()
        self._dirty = threading.Event()
        self._closing = threading.Event()
        self.latency: dict[str, float] = dict(DEFAULT_LATENCY)
        self.latency.update({k: float(v) for k, v in (self.site.get("latency") or {}).items()})
        self.ovf_interval = float(self.site.get("ovf_update_interval_s", 3600))
        self.token_ttl = float(self.site.get("token_ttl_s", 3600))
        self.users = {u["username"]: u for u in self.site.get("users", [])}
        self.gluster_mounts: dict[str, str] = dict(self.site.get("gluster_mounts") or {})
        self.counters: dict[str, int] = {}
        self.freeze_log: list[dict[str, Any]] = []
        self.write_log: list[dict[str, Any]] = []
        self._write_seq = itertools.count(1)
        self._writer_stop: threading.Event | None = None
        self._writer_thread: threading.Thread | None = None
        self.writer_errors: list[str] = []
        self.sched = Scheduler(workers=int(self.site.get("workers", 8)))
        self._storages: dict[str, DomainStorage] = {}
        if self.state_file.exists():
            self.s = json.loads(self.state_file.read_text())
            self._upgrade_state()
        else:
            self.s = self._state_from_site()
        self._reconcile_storage()
        self._settle_snapshots()
        self.save(now=True)
        self._saver = threading.Thread(target=self._save_loop, name="engine-saver", daemon=True)
        self._saver.start()
        self._ovf_timer = threading.Thread(target=self._ovf_loop, name="engine-ovf-updater", daemon=True)
        self._ovf_timer.start()

    def close(self) -> None:
        self.stop_writer()
        self._closing.set()
        self.sched.stop()
        self._saver.join(timeout=5)
        self.save(now=True)

    # ---- lab helpers -----------------------------------------------------------------------------
    def disk_chain(self, disk_id: str) -> list[str]:
        disk = self.get("disks", disk_id)
        if disk.get("storage_type") == "lun":
            raise EngineFault(409, f"disk {disk['alias']} is a direct LUN disk: it has no volume chain")
        try:
            return self.storage(disk["sd_id"]).chain(disk_id)
        except StorageError as exc:
            raise EngineFault(409, str(exc)) from exc

    def initial_content(self, disk_id: str) -> dict[str, Any]:
        disk = self.get("disks", disk_id)
        return {
            "disk_id": disk_id,
            "seed": disk.get("seed"),
            "base_volume_id": disk.get("base"),
            "size": disk["size"],
        }

    def set_latency(self, values: dict[str, float]) -> dict[str, float]:
        for key, val in values.items():
            self.latency[str(key)] = float(val)
        return dict(self.latency)

    def state_copy(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.s)
