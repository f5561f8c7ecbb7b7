"""Helpers of the recovery end-to-end tests (failover, failback) on the real lab.

Gluster state as the tests compare it (read with the ``gluster`` CLI, independently of the product), the
replica's files as the bricks hold them, a disk as a guest sees it, an engine's state minus what reading it
changes, task processes, mails, and the teardown that gives the secondary back after a failover. In the
lab package (like ``engine.testing``) so the e2e modules share them instead of copying them.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20
SHARD = 64 * MIB  # the lab volumes' features.shard-block-size
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
SESSION = ["gvmaster", "127.0.0.1::gvslave"]
#: the failback's reverse session (the mapping's dr_primary_address is 127.0.0.1)
REVERSE_SESSION = ["gvslave", "127.0.0.1::gvmaster"]


def e2e_config(
    path: Path, recovery: dict[str, Any] | None = None, pair: dict[str, Any] | None = None
) -> Path:
    """The recovery e2e tests' ovirt-dr config: the lab's sites, pair and mapping file; ``recovery`` and
    ``pair`` override keys of the ``recovery:`` section and of the pair."""
    doc = {
        "sites": {
            "primary": {"ovirt_conn_id": "ovirt_primary"},
            "secondary": {"ovirt_conn_id": "ovirt_secondary"},
        },
        "recovery": {
            "mapping_file": str(REPO / "dags" / "disaster_recovery_vars.yml"),
            "primary_site": "primary",
            "secondary_site": "secondary",
            "start_tiers": [["vm02"], ["vm03", "vm04"]],
            "register_shards": 2,
            "register_concurrency": 2,
            "lease_wait": "5s",
            "probe_timeout": "3s",
            "retry_delay": "2s",
            "poll_interval": "1s",
            "tier_timeout": "2m",
            "import_timeout": "3m",
            "retries": 2,
            "alert_emails": ["dr-admins@example.com"],
            "smtp_conn_id": "smtp_lab",
        },
        "pairs": [
            {
                "storage_domain": "data_gluster",
                "target": "lab_dr",
                "site": "primary",
                "master_volume": "gvmaster",
                "gluster_ssh_conn_id": "gluster_primary",
                "slave_host": "127.0.0.1",
                "slave_volume": "gvslave",
                "slave_ssh_conn_id": "gluster_secondary",
                "schedule": None,
                "rpo": "4h",
                "checkpoint_timeout": "10m",
                "poll_interval": "3s",
                "alert_emails": ["dr-admins@example.com"],
                "smtp_conn_id": "smtp_lab",
            }
        ],
    }
    doc["recovery"].update(recovery or {})
    doc["pairs"][0].update(pair or {})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def gluster(*args: str) -> str:
    proc = subprocess.run(
        ["gluster", "--mode=script", *args], capture_output=True, text=True, env=CLEAN_ENV, timeout=120
    )
    assert proc.returncode == 0, f"gluster {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def volume_options(volume: str) -> dict[str, str | None]:
    info = ET.fromstring(gluster("volume", "info", volume, "--xml"))
    return {o.findtext("name") or "": o.findtext("value") for o in info.iter("option")}


def session_exists(session: list[str]) -> bool:
    proc = subprocess.run(
        ["gluster", "--mode=script", "volume", "geo-replication", *session, "status"],
        capture_output=True,
        text=True,
        env=CLEAN_ENV,
        timeout=120,
    )
    return proc.returncode == 0


def gluster_state() -> dict[str, Any]:
    """What a recovery may change on Gluster: the slave's and the master's read-only option, each forward
    geo-rep worker's status, whether the failback's reverse session exists (and its workers)."""
    status = ET.fromstring(gluster("volume", "geo-replication", *SESSION, "status", "--xml"))
    workers = sorted(
        (w.findtext("primary_brick") or w.findtext("master_brick") or "", w.findtext("status") or "")
        for w in status.iter("pair")
    )
    reverse = None
    if session_exists(REVERSE_SESSION):
        rstatus = ET.fromstring(gluster("volume", "geo-replication", *REVERSE_SESSION, "status", "--xml"))
        reverse = sorted(w.findtext("status") or "" for w in rstatus.iter("pair"))
    return {
        "read_only": volume_options("gvslave").get("features.read-only"),
        "master_read_only": volume_options("gvmaster").get("features.read-only"),
        "workers": workers,
        "reverse_session": reverse,
    }


def brick(volume: str = "gvslave") -> Path:
    info = ET.fromstring(gluster("volume", "info", volume, "--xml"))
    (found,) = [b.text.split(":", 1)[1] for b in info.iter("brick") if b.text]
    return Path(found)


def slave_brick() -> Path:
    return brick("gvslave")


def replica_tree(sd_id: str, volume: str = "gvslave") -> dict[str, str]:
    """Every file of the replica domain, as the slave brick stores it: size and first-shard bytes.

    Read on the brick, not through the mount: reading a sharded file through FUSE up to a shard boundary
    makes the shard translator look up (and, on a writable volume, create) the next shard, and reading an
    unwritten shard of the read-only slave fails with EROFS. The later shards are ``brick_shards``.
    """
    root = brick(volume) / sd_id
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            try:  # the file's size as Gluster keeps it (the brick file holds the first shard only)
                size = int.from_bytes(os.getxattr(path, "trusted.glusterfs.shard.file-size")[:8], "big")
            except OSError:
                size = path.stat().st_size
            out[str(path.relative_to(root))] = f"{size}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    return out


def brick_shards(volume: str = "gvslave") -> dict[str, str]:
    """A brick's ``.shard`` files (shards 2.. of every sharded file), hashed."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((brick(volume) / ".shard").glob("*"))
        if p.is_file()
    }


def guest_view(path: Path) -> bytes:
    """The disk as a guest sees it through the chain below ``path`` (qemu-img convert to raw, local tmp)."""
    with tempfile.TemporaryDirectory(prefix="ovirt-dr-e2e-") as tmp:
        out = Path(tmp) / "disk.raw"
        subprocess.run(
            ["qemu-img", "convert", "-U", "-O", "raw", str(path), str(out)], check=True, capture_output=True
        )
        return out.read_bytes()


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """An engine's state minus what a read legitimately changes.

    Every SDK session logs in, and the engine records each login as an event (code 30, "User ... logged
    in"), which also advances ``next_event_id``. A real engine's audit log does the same for any reader. So
    login events are dropped and the event counter is replaced by the number of other events. Nothing else
    is excluded: request counters and SSO tokens are not part of the state at all.
    """
    s = json.loads(json.dumps(state))
    s["events"] = [e for e in s.get("events", []) if e.get("code") != 30]
    s["next_event_id"] = None
    return s


def task_pid(ti_id: str) -> int | None:
    """The task process of a task instance: Airflow 3.3 titles it ``airflow worker -- <ti id>``."""
    needle = f"airflow worker -- {ti_id}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (proc / "cmdline").read_bytes():
                return int(proc.name)
        except OSError:
            continue
    return None


def wait_for(predicate: Any, timeout: float, what: str, step: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def mails(lab_env: dict[str, str]) -> list[email.message.Message]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted(Path(lab_env["LAB_MAILDIR"]).glob("*.eml"))
    ]


def stop_runs(airflow: Any, dag_id: str) -> None:
    """A test that failed half-way may leave a recovery running: stop it before undoing what it did."""
    airflow.pause(dag_id)
    for run in airflow.runs(dag_id):
        if run["state"] in ("queued", "running"):
            airflow.api("PATCH", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}", {"state": "failed"})
            wait_for(
                lambda r=run: (
                    not any(
                        t["state"] in ("running", "queued", "scheduled", "up_for_retry")
                        for t in airflow.task_instances(dag_id, r["dag_run_id"])
                    )
                ),
                120,
                "the failover's tasks to stop",
            )


def restore_lab(lab_env: dict[str, str], conn: Any, state: dict[str, Any]) -> list[str]:
    """The secondary after a failover: stop the VMs, deactivate/detach/remove (no format) the domain, restore
    the replica (``state``: what ``replica_before``/``saved`` kept), read-only on."""
    import ovirtsdk4

    errors: list[str] = []
    system = conn.system_service()

    def step(what: str, fn) -> None:
        try:
            fn()
        except Exception as e:  # keep undoing the rest
            errors.append(f"{what}: {e}")

    vms = system.vms_service()
    for vm in vms.list():
        if vm.status.value != "down":
            step(f"stop {vm.name}", vms.vm_service(vm.id).stop)
    step(
        "VMs down",
        lambda: wait_for(lambda: all(v.status.value == "down" for v in vms.list()), 120, "VMs down"),
    )
    sds = system.storage_domains_service()
    for sd in sds.list():
        for dc_ref in sd.data_centers or []:
            attached = system.data_centers_service().data_center_service(dc_ref.id).storage_domains_service()
            one = attached.storage_domain_service(sd.id)
            if one.get().status.value != "maintenance":
                step(f"deactivate {sd.name}", one.deactivate)
                step(
                    f"{sd.name} in maintenance",
                    lambda one=one: wait_for(
                        lambda: one.get().status.value == "maintenance", 120, "maintenance"
                    ),
                )
            step(f"detach {sd.name}", one.remove)
        step(
            f"remove {sd.name} (no format)",
            lambda sd=sd: sds.storage_domain_service(sd.id).remove(host="host2"),
        )
    try:
        left = sds.list()
    except ovirtsdk4.Error as e:
        left = [f"cannot list: {e}"]
    if left:
        errors.append(f"domains left on the secondary: {left}")
    # the secondary engine rewrote the OVF_STORE when the domain went to maintenance: put the bytes back
    slave = Path(lab_env["LAB_SLAVE_MOUNT"])
    if state.get("replica_before") and gluster_state()["read_only"] == "off":
        domain = slave / state["sd_id"]
        now = replica_tree(state["sd_id"])
        for rel, (data, whole) in state["saved"].items():
            if now.get(rel) != state["replica_before"][rel]:
                with open(domain / rel, "r+b") as f:  # through the mount, in place: the file keeps its GFID
                    f.write(data)
                    if whole:  # a .meta: the whole file; a volume keeps its (sharded) size
                        f.truncate(len(data))
                    f.flush()
                    os.fsync(f.fileno())
    step("read-only on", lambda: gluster("volume", "set", "gvslave", "features.read-only", "on"))
    if state.get("replica_before"):
        after = replica_tree(state["sd_id"])
        changed = sorted(
            k
            for k in set(after) | set(state["replica_before"])
            if after.get(k) != state["replica_before"].get(k)
        )
        if changed:
            errors.append(f"replica files differ from before the failover: {changed}")
        if brick_shards() != state["shards_before"]:
            errors.append("shard files of the slave brick changed")
    if gluster_state()["read_only"] != "on":
        errors.append("slave not read-only again")
    return errors


# -- the lab as after `up`, and giving it back ------------------------------------------------------------
def site_picture(conn: Any) -> dict[str, Any]:
    """What the lab's tests rely on at a site: domains (status per data center), VMs (id, status, cluster,
    vNIC profiles), templates, affinity groups and labels, the roles on the VMs, the disks it lists."""
    system = conn.system_service()
    clusters = {c.id: c.name for c in system.clusters_service().list()}
    profiles = {p.id: p.name for p in system.vnic_profiles_service().list()}
    roles = {r.id: r.name for r in system.roles_service().list()}
    vms = {}
    for vm in system.vms_service().list():
        service = system.vms_service().vm_service(vm.id)
        vms[vm.name] = {
            "id": vm.id,
            "status": vm.status.value,
            "cluster": clusters.get(vm.cluster.id) if vm.cluster else None,
            "profiles": sorted(
                profiles.get(n.vnic_profile.id, "?") for n in service.nics_service().list() if n.vnic_profile
            ),
            "roles": sorted(
                roles.get(p.role.id, "?") for p in service.permissions_service().list() if p.role
            ),
        }
    domains = {}
    for sd in system.storage_domains_service().list():
        states = []
        for ref in sd.data_centers or []:
            dc = system.data_centers_service().data_center_service(ref.id)
            states.append(
                f"{dc.storage_domains_service().storage_domain_service(sd.id).get().status.value} in {dc.get().name}"
            )
        domains[sd.name] = {"id": sd.id, "states": states or ["unattached"]}
    groups = {}
    for cid, cname in clusters.items():
        for g in system.clusters_service().cluster_service(cid).affinity_groups_service().list():
            groups[f"{cname}/{g.name}"] = sorted(v.id for v in g.vms or [])
    labels = {
        lbl.name: sorted(v.id for v in lbl.vms or []) for lbl in system.affinity_labels_service().list()
    }
    return {
        "domains": domains,
        "vms": vms,
        "templates": sorted(t.name for t in system.templates_service().list() if t.name != "Blank"),
        "affinity_groups": groups,
        "affinity_labels": labels,
        "disks": sorted(d.alias for d in system.disks_service().list()),
    }


def restore_primary(lab_env: dict[str, str], conn: Any, before: dict[str, Any], log: list[str]) -> None:
    """After a failed failback test: the primary's domain imported again from its volume, attached, its
    templates and VMs registered (with the failback mapping: the volume's OVF_STORE may be the secondary's)
    and the VMs that were up started. Best effort; what failed is appended to ``log``."""
    import ovirtsdk4
    import ovirtsdk4.types as t

    from ovirt_dr.mapping import load_mapping

    system = conn.system_service()
    sds = system.storage_domains_service()
    (want,) = [(n, d) for n, d in before["domains"].items() if n == "data_gluster"]
    name, info = want
    try:
        current = {sd.name: sd for sd in sds.list()}
        if name not in current:
            sds.add(
                t.StorageDomain(
                    id=info["id"],
                    name=name,
                    type=t.StorageDomainType.DATA,
                    import_=True,
                    host=t.Host(name="host1"),
                    storage=t.HostStorage(
                        type=t.StorageType.GLUSTERFS,
                        address=lab_env["LAB_GLUSTER_HOST"],
                        path="/gvmaster",
                        vfs_type="glusterfs",
                    ),
                )
            )
        (dc,) = [d for d in system.data_centers_service().list() if d.name == "Default"]
        attached = system.data_centers_service().data_center_service(dc.id).storage_domains_service()
        sd = sds.storage_domain_service(info["id"]).get()
        if not sd.data_centers:
            attached.add(t.StorageDomain(id=info["id"]))
        one = attached.storage_domain_service(info["id"])
        wait_for(lambda: one.get().status.value == "active", 120, "data_gluster active on the primary")
        cfg = load_mapping(REPO / "dags" / "disaster_recovery_vars.yml").registration_configuration(
            "failback"
        )
        domain = sds.storage_domain_service(info["id"])
        for tpl in domain.templates_service().list(unregistered=True):
            domain.templates_service().template_service(tpl.id).register(registration_configuration=cfg)
        for vm in domain.vms_service().list(unregistered=True):
            domain.vms_service().vm_service(vm.id).register(
                registration_configuration=cfg, reassign_bad_macs=True, allow_partial_import=True
            )
        vms = system.vms_service()
        for vm in vms.list():
            if before["vms"].get(vm.name, {}).get("status") == "up" and vm.status.value == "down":
                vms.vm_service(vm.id).start()
        wait_for(
            lambda: all(
                v.status.value == "up"
                for v in vms.list()
                if before["vms"].get(v.name, {}).get("status") == "up"
            ),
            180,
            "the primary's VMs up",
        )
    except (ovirtsdk4.Error, AssertionError) as e:
        log.append(f"restore primary: {e}")


def remove_orphan_disks(conn: Any, log: list[str]) -> None:
    """Disks an engine still lists for domains it no longer has (a detach leaves a template's)."""
    system = conn.system_service()
    present = {sd.id for sd in system.storage_domains_service().list()}
    for disk in system.disks_service().list():
        sd_ids = [sd.id for sd in disk.storage_domains or []]
        if sd_ids and not set(sd_ids) & present:
            try:
                system.disks_service().disk_service(disk.id).remove()
            except Exception as e:  # keep undoing the rest
                log.append(f"remove orphan disk {disk.alias}: {e}")


#: options Gluster leaves on a volume that was once a geo-replication master (``create`` set them; the two
#: ``geo-replication.*`` are protected: only ``reset ... force`` takes them off), and ``features.read-only``,
#: which a recovery sets to ``off`` where it was unset
GEOREP_LEFTOVERS = (
    "changelog.changelog",
    "geo-replication.indexing",
    "geo-replication.ignore-pid-check",
    "features.read-only",
)


def put_options_back(before: dict[str, dict[str, str | None]]) -> list[str]:
    """The lab's volumes' options as they were (``before``: volume -> ``volume_options``): the geo-rep
    leftovers a recovery test may leave are reset (``force``); returns what was reset, and raises on any
    other difference (that would be a change the test does not know how to undo)."""
    done = []
    for volume, opts in before.items():
        now = volume_options(volume)
        for key in sorted(set(now) | set(opts)):
            if now.get(key) == opts.get(key):
                continue
            if key not in GEOREP_LEFTOVERS:
                raise AssertionError(f"{volume}: option {key} is {now.get(key)!r}, was {opts.get(key)!r}")
            if opts.get(key) is None:
                gluster("volume", "reset", volume, key, "force")
            else:
                gluster("volume", "set", volume, key, str(opts[key]))
            done.append(f"{volume} {key}: {now.get(key)} -> {opts.get(key)}")
    return done
