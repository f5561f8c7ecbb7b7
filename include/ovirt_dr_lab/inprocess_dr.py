"""Drive the failover operators outside Airflow against two in-process emulated engines (bench P5, tests).

:class:`InProcessDr` starts a primary-like engine (a generated site, its domain on a tmp dir, OVF_STORE
written through the real SDK) and a secondary engine whose Gluster mount of the slave volume is that same
directory, writes an ovirt-dr config and a DR mapping file naming them, and exports the Airflow
connections as ``AIRFLOW_CONN_*``. :class:`FakeRun` is the little of an Airflow run the operators use
(``ti.xcom_push/xcom_pull/get_task_states/get_dr_count``, ``params``, ``dag_run.start_date``), so a step's operator runs
exactly as the worker would run it, minus Airflow's task start-up.

The plan is built from the domain's files with the product's own functions (``parse_entity_ovf``,
``build_plan``); in Airflow the preflight reads the same OVF_STORE over SSH on the slave node.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ovirt_dr_lab.engine.server import EngineServer
from ovirt_dr_lab.engine.site import SITES_DIR, generate_site
from ovirt_dr_lab.engine.testing import FAST_LATENCY, PASSWORD, USER, connect, wait_for

DAG_ID = "dr_failover"
SD_NAME = "data_gluster"


@dataclass
class FakeTI:
    """The task instance API the failover operators call, backed by one dict of XComs of the run."""

    run: FakeRun
    task_id: str
    map_index: int = -1

    def xcom_push(self, key: str, value: Any) -> None:
        self.run.xcoms[(self.task_id, key, self.map_index)] = json.loads(json.dumps(value, default=str))

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        found = [
            v
            for (t, k, _m), v in sorted(self.run.xcoms.items(), key=lambda kv: kv[0][2])
            if t == task_ids and k == key
        ]
        if not found:
            return None
        return found[0] if len(found) == 1 else found

    def get_task_states(self, dag_id: str, run_ids: list[str], **_: Any) -> dict[str, dict[str, str]]:
        return {self.run.run_id: dict(self.run.states)}

    def get_dr_count(self, dag_id: str, states: list[str] | None = None, **_: Any) -> int:
        """Runs of another DAG in ``states`` (``FakeRun.other_runs``: dag id -> [state, ...])."""
        return sum(1 for s in self.run.other_runs.get(dag_id, []) if states is None or s in states)


@dataclass
class _DagRun:
    start_date: datetime


@dataclass
class FakeRun:
    """One failover run's shared state: XComs, task states, form values, start time."""

    params: dict[str, Any]
    run_id: str = "manual__inprocess"
    xcoms: dict[tuple[str, str, int], Any] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    start: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: other DAGs' runs by state, for the recovery DAGs' "nothing else runs" check
    other_runs: dict[str, list[str]] = field(default_factory=dict)

    def context(self, task_id: str, map_index: int = -1) -> dict[str, Any]:
        return {
            "ti": FakeTI(self, task_id, map_index),
            "params": dict(self.params),
            "run_id": self.run_id,
            "dag_run": _DagRun(self.start),
            "inlet_events": {},
        }

    def execute(self, operator: Any, map_index: int = -1) -> Any:
        """Run one operator as its task would; record its state and return value like Airflow does."""
        name = operator.task_id if map_index < 0 else f"{operator.task_id}_{map_index}"
        ctx = self.context(operator.task_id, map_index)
        try:
            result = operator.execute(ctx)
        except Exception as e:
            from airflow.sdk.exceptions import AirflowSkipException

            self.states[name] = "skipped" if isinstance(e, AirflowSkipException) else "failed"
            raise
        self.states[name] = "success"
        if result is not None:
            ctx["ti"].xcom_push("return_value", result)
        return result


def mapping_doc(address: str) -> dict[str, Any]:
    """The lab's DR mapping (dags/disaster_recovery_vars.yml) with the in-process Gluster host."""
    doc = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "dags" / "disaster_recovery_vars.yml").read_text()
    )
    for s in doc["dr_import_storages"]:
        s["dr_primary_address"] = address
        s["dr_secondary_address"] = address
    return doc


class InProcessDr:
    """Two in-process engines, a domain of ``vms`` VMs with its OVF_STORE written, config and mapping.

    :param vms: None = the shipped primary site (6 VMs, a template, HA vm01); N = a generated site of N VMs.
    :param latency: per-operation latency of both engines (``register``, ``start``, ...).
    :param recovery: overrides of the config's ``recovery:`` section.
    """

    def __init__(
        self,
        vms: int | None = None,
        latency: dict[str, float] | None = None,
        recovery: dict[str, Any] | None = None,
        root: Path | None = None,
    ) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="ovirt-dr-inprocess-"))
        self.vms = vms
        self.latency = {**FAST_LATENCY, **(latency or {})}
        self.recovery_overrides = dict(recovery or {})
        self.primary: EngineServer | None = None
        self.secondary: EngineServer | None = None
        self._secondaries = 0

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> InProcessDr:
        master = self.root / "gvmaster"
        master.mkdir(parents=True, exist_ok=True)
        os.environ.update(
            {
                "LAB_MASTER_MOUNT": str(master),
                "LAB_SLAVE_MOUNT": str(master),
                "LAB_GLUSTER_HOST": "gluster.lab",
            }
        )
        if self.vms is None:
            site = yaml.safe_load((SITES_DIR / "primary.yaml").read_text())
        else:
            site = generate_site(self.vms, disk_size_mib=16)
        site["latency"] = dict(self.latency)
        self.primary = EngineServer(site, self.root / "state-primary").start()
        with connect(self.primary) as conn:
            system = conn.system_service()
            (sd,) = [s for s in system.storage_domains_service().list() if s.name == SD_NAME]
            events = system.events_service()
            last = int(events.list(max=1)[0].id)
            system.storage_domains_service().storage_domain_service(sd.id).update_ovf_store()
            wait_for(
                lambda: any(e.code == 199 for e in events.list(from_=last)), 60, what="OVF_STORE written"
            )
            self.sd_id = sd.id
        self.new_secondary()
        self._write_config()
        return self

    def new_secondary(self) -> EngineServer:
        """A fresh secondary engine (own state dir): a second failover starts from an empty site."""
        if self.secondary is not None:
            self.secondary.stop()
        self._secondaries += 1
        site = yaml.safe_load((SITES_DIR / "secondary.yaml").read_text())
        site["latency"] = dict(self.latency)
        self.secondary = EngineServer(site, self.root / f"state-secondary-{self._secondaries}").start()
        self._export_connections()
        return self.secondary

    def _export_connections(self) -> None:
        for side, server in (("PRIMARY", self.primary), ("SECONDARY", self.secondary)):
            assert server is not None
            os.environ[f"AIRFLOW_CONN_OVIRT_IP_{side}"] = json.dumps(
                {
                    "conn_type": "ovirt",
                    "host": server.url,
                    "login": USER,
                    "password": PASSWORD,
                    "extra": {"ca_file": str(server.ca_file)},
                }
            )

    def _write_config(self) -> None:
        self.mapping_path = self.root / "disaster_recovery_vars.yml"
        self.mapping_path.write_text(yaml.safe_dump(mapping_doc("gluster.lab"), sort_keys=False))
        recovery = {
            "mapping_file": str(self.mapping_path),
            "primary_site": "primary",
            "secondary_site": "secondary",
            "lease_wait": "0s",
            "probe_timeout": "5s",
            "poll_interval": "1s",
            **self.recovery_overrides,
        }
        doc = {
            "sites": {
                "primary": {"ovirt_conn_id": "ovirt_ip_primary"},
                "secondary": {"ovirt_conn_id": "ovirt_ip_secondary"},
            },
            "recovery": recovery,
            "pairs": [
                {
                    "storage_domain": SD_NAME,
                    "target": "ip_dr",
                    "site": "primary",
                    "master_volume": "gvmaster",
                    "gluster_ssh_conn_id": "gluster_ip_primary",
                    "slave_host": "gluster.lab",
                    "slave_volume": "gvslave",
                    "slave_ssh_conn_id": "gluster_ip_secondary",
                    "schedule": None,
                }
            ],
        }
        self.config_path = self.root / "ovirt_dr.yaml"
        self.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def set_recovery(self, **values: Any) -> None:
        self.recovery_overrides.update(values)
        self._write_config()

    def close(self) -> None:
        for server in (self.secondary, self.primary):
            if server is not None:
                server.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- the plan, as the preflight builds it --------------------------------------------------------------
    def plan(self, params: dict[str, Any]) -> dict[str, Any]:
        from ovirt_dr.failover import PlanError, build_plan, parse_entity_ovf, plan_domain
        from ovirt_dr.recovery_config import load_recovery
        from ovirt_dr_lab.engine.storage import DomainStorage

        rec = load_recovery(self.config_path)
        assert rec.ok and rec.config is not None, rec.problems
        store = DomainStorage(
            self.root / "gvmaster", self.sd_id, SD_NAME, "gluster.lab:/gvmaster"
        ).read_ovf_store_full()
        entities, unreadable = [], {}
        for eid, xml in store["ovfs"].items():
            try:
                entities.append(parse_entity_ovf(xml))
            except PlanError as e:
                unreadable[eid] = str(e)
        domains = [plan_domain(link.storage) for link in rec.links("failover")]
        inv = {
            SD_NAME: {
                "sd_id": self.sd_id,
                "entities": entities,
                "vm_status": store["vm_status"],
                "unreadable": unreadable,
            }
        }
        cfg = rec.config
        return build_plan(
            domains,
            inv,
            register_shards=cfg.register_shards,
            start_tiers=cfg.start_tiers,
            start_only_running=cfg.start_only_running,
            params=params,
            guard={"proceed": True, "forced": False, "wait_s": 0, "reason": "in-process: no source probe"},
            target={"conn_id": rec.conn_id("secondary"), "host": "host2"},
        )

    def operator(self, cls: type, task_id: str, **kwargs: Any) -> Any:
        """One failover operator, built inside a DAG as the factory builds it."""
        from airflow.sdk import DAG

        with DAG(DAG_ID, schedule=None):
            return cls(task_id=task_id, config_path=str(self.config_path), **kwargs)
