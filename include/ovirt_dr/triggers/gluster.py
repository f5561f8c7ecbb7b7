"""GeoRepCheckpointTrigger: wait for a geo-replication checkpoint in the triggerer, holding no worker slot.

It polls ``status detail --xml`` over SSH with the SSH provider's async hook, logs progress at every poll
(entry/data/meta pending and last synced per worker), and finishes when every Active worker reports
``checkpoint_completed=Yes`` for *this* checkpoint's time. A session Faulty for longer than the grace
period, or the overall timeout, ends it with an error event instead.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from ovirt_dr.gluster import (
    GeoRepSession,
    SessionNotFound,
    build_georep_cmd,
    classify_error,
    parse_georep_status,
)
from ovirt_dr.hooks.ssh_pinning import HostKeyNotPinned


class GeoRepCheckpointTrigger(BaseTrigger):
    """Poll a geo-rep session until the checkpoint ``checkpoint_label`` is completed.

    :param ssh_conn_id: SSH connection to a master Gluster node.
    :param master_volume, slave_host, slave_volume, slave_user: the session.
    :param checkpoint_label: node-local checkpoint time, as ``status detail`` shows it.
    :param timeout_at: epoch seconds after which the wait fails.
    :param faulty_grace_s: how long the session may stay Faulty before the wait fails.
    :param poll_interval_s: seconds between polls.
    """

    def __init__(
        self,
        *,
        ssh_conn_id: str,
        master_volume: str,
        slave_host: str,
        slave_volume: str,
        slave_user: str,
        checkpoint_label: str,
        timeout_at: float,
        faulty_grace_s: float,
        poll_interval_s: float,
    ) -> None:
        super().__init__()
        self.ssh_conn_id = ssh_conn_id
        self.master_volume = master_volume
        self.slave_host = slave_host
        self.slave_volume = slave_volume
        self.slave_user = slave_user
        self.checkpoint_label = checkpoint_label
        self.timeout_at = timeout_at
        self.faulty_grace_s = faulty_grace_s
        self.poll_interval_s = poll_interval_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ssh_conn_id": self.ssh_conn_id,
                "master_volume": self.master_volume,
                "slave_host": self.slave_host,
                "slave_volume": self.slave_volume,
                "slave_user": self.slave_user,
                "checkpoint_label": self.checkpoint_label,
                "timeout_at": self.timeout_at,
                "faulty_grace_s": self.faulty_grace_s,
                "poll_interval_s": self.poll_interval_s,
            },
        )

    @property
    def session(self) -> GeoRepSession:
        return GeoRepSession(self.master_volume, self.slave_host, self.slave_volume, self.slave_user)

    async def fetch_status_xml(self) -> str:
        """One ``status detail --xml`` over SSH (separate so tests can drive the loop without SSH)."""
        from airflow.providers.common.compat.connection import get_async_connection
        from airflow.providers.ssh.hooks.ssh import SSHHookAsync

        from ovirt_dr.hooks.ssh_pinning import check_host_key_pinning

        # the same rule as GlusterGeoRepHook: the node's host key must be pinned (or knowingly not)
        conn = await get_async_connection(self.ssh_conn_id)
        check_host_key_pinning(self.ssh_conn_id, conn.extra_dejson, self.log)
        argv = build_georep_cmd(self.session, "status", "detail", xml=True)
        rc, out, err = await SSHHookAsync(ssh_conn_id=self.ssh_conn_id).run_command(
            shlex.join(argv), timeout=120
        )
        if rc != 0:
            raise classify_error(rc, out, err, argv)
        return out

    async def run(self) -> AsyncIterator[TriggerEvent]:
        faulty_since: float | None = None
        polls = 0
        errors_in_row = 0
        while True:
            polls += 1
            try:
                status = parse_georep_status(await self.fetch_status_xml())
                errors_in_row = 0
            except (SessionNotFound, HostKeyNotPinned) as e:  # nothing will ever complete: say so at once
                yield TriggerEvent({"status": "error", "message": str(e)})
                return
            except Exception as e:  # SSH blips and a busy glusterd happen: give up only when they persist
                errors_in_row += 1
                self.log.warning("poll %d: status failed (%d in a row): %s", polls, errors_in_row, e)
                if errors_in_row >= 5:
                    yield TriggerEvent({"status": "error", "message": f"geo-rep status failed 5 times: {e}"})
                    return
                await asyncio.sleep(self.poll_interval_s)
                continue
            self.log.info(
                "poll %d: checkpoint %s: %s", polls, self.checkpoint_label, status.progress_summary()
            )
            if status.checkpoint_completed_for(self.checkpoint_label):
                done = [w.checkpoint_completion_time for w in status.active_workers]
                yield TriggerEvent(
                    {
                        "status": "success",
                        "checkpoint_label": self.checkpoint_label,
                        "completed_at": max(d for d in done if d).isoformat() if any(done) else None,
                        "polls": polls,
                    }
                )
                return
            now = time.time()
            # Faulty, or not running at all: a session started while its slave is unreachable reads
            # "Stopped" (not Faulty) and never moves; either way nothing will complete.
            if status.faulty_workers or not status.is_running:
                faulty_since = faulty_since or now
                if now - faulty_since > self.faulty_grace_s:
                    bad = status.faulty_workers or status.workers
                    nodes = [f"{w.primary_node}:{w.primary_brick} {w.status}" for w in bad]
                    yield TriggerEvent(
                        {
                            "status": "error",
                            "message": f"session Faulty or not running for more than {self.faulty_grace_s:.0f}s: "
                            f"{nodes}",
                        }
                    )
                    return
            else:
                faulty_since = None
            if now > self.timeout_at:
                yield TriggerEvent(
                    {
                        "status": "error",
                        "message": f"checkpoint {self.checkpoint_label} not completed by the timeout; "
                        f"last status: {status.progress_summary()}",
                    }
                )
                return
            await asyncio.sleep(self.poll_interval_s)
