"""Events and jobs: what the engine records of every operation, and how an asynchronous one ends."""

from __future__ import annotations

import uuid
from typing import Any

from ovirt_dr_lab.engine.common import MAX_EVENTS, MAX_JOBS, now_iso
from ovirt_dr_lab.engine.state import EngineState


class JobsMixin(EngineState):
    """``add_event``, ``new_job``/``end_job`` and ``finish_job``, the one way an operation completes."""

    def add_event(
        self,
        description: str,
        code: int = 0,
        severity: str = "normal",
        origin: str = "oVirt",
        custom_id: int = -1,
        vm_id: str | None = None,
        sd_id: str | None = None,
        correlation_id: str | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            eid = self.s["next_event_id"]
            self.s["next_event_id"] = eid + 1
            ev = {
                "id": eid,
                "code": code,
                "description": description,
                "severity": severity,
                "origin": origin,
                "custom_id": custom_id,
                "time": now_iso(),
                "vm_id": vm_id,
                "sd_id": sd_id,
                "correlation_id": correlation_id,
            }
            self.s["events"].append(ev)
            if len(self.s["events"]) > MAX_EVENTS:
                del self.s["events"][: len(self.s["events"]) - MAX_EVENTS]
            self.save()
            return ev

    def new_job(self, description: str, correlation_id: str | None = None) -> dict[str, Any]:
        with self.lock:
            now = now_iso()
            job = {
                "id": str(uuid.uuid4()),
                "description": description,
                "status": "started",
                "start_time": now,
                "end_time": None,
                "last_updated": now,
                "correlation_id": correlation_id or str(uuid.uuid4())[:8],
                "steps": [
                    {
                        "id": str(uuid.uuid4()),
                        "description": "Executing",
                        "type": "executing",
                        "status": "started",
                        "start_time": now,
                        "end_time": None,
                        "number": 1,
                    }
                ],
            }
            self.s["jobs"][job["id"]] = job
            if len(self.s["jobs"]) > MAX_JOBS:
                for old in sorted(self.s["jobs"].values(), key=lambda j: j["start_time"])[
                    : len(self.s["jobs"]) - MAX_JOBS
                ]:
                    self.s["jobs"].pop(old["id"], None)
            self.save()
            return job

    def end_job(self, job: dict[str, Any], ok: bool) -> None:
        with self.lock:
            now = now_iso()
            job["status"] = "finished" if ok else "failed"
            job["end_time"] = now
            job["last_updated"] = now
            for step in job["steps"]:
                step["status"] = job["status"]
                step["end_time"] = now
            self.save()

    def job_event(
        self, job: dict[str, Any], text: str, code: int, vm_id: str | None = None, sd_id: str | None = None
    ) -> dict[str, Any]:
        """An event of a job's operation (initiated, completed), carrying the job's correlation id."""
        return self.add_event(text, code=code, vm_id=vm_id, sd_id=sd_id, correlation_id=job["correlation_id"])

    def finish_job(
        self,
        job: dict[str, Any] | None,
        done: tuple[str, int],
        failed: tuple[str, int] | None = None,
        *,
        error: str | None = None,
        vm_id: str | None = None,
        sd_id: str | None = None,
    ) -> None:
        """End an asynchronous operation: its job and its completion event, in that order.

        ``error`` None: the job finishes and ``done`` (text, code) is posted with the job's correlation
        id. Otherwise the job fails and ``failed`` (text, code) is posted as an error event, without the
        correlation id. ``job`` is None when the operation outlived its job (a merge retried after a
        restart): only the event is posted. Clients wait for the job, then read the event; ending the job
        first keeps that order.
        """
        if job is not None:
            self.end_job(job, error is None)
        if error is None:
            text, code = done
            if job is not None:
                self.job_event(job, text, code, vm_id=vm_id, sd_id=sd_id)
            else:
                self.add_event(text, code=code, vm_id=vm_id, sd_id=sd_id)
            return
        if failed is None:
            raise ValueError(f"job {job['id'] if job else '?'} failed ({error}) and has no failure event")
        text, code = failed
        self.add_event(text, code=code, severity="error", vm_id=vm_id, sd_id=sd_id)
