"""OvirtHook: one oVirt engine, reached with the unmodified ovirtsdk4 from an Airflow ``ovirt`` connection.

The connection holds the API URL (host), user (login), password, and in its extras ``ca_file`` (TLS is
verified by default) and ``insecure`` (never in production). The SDK connection is opened lazily and
closed by ``close()`` / the context manager, so an operator never leaks an SSO session on the engine.

Methods are thin: one engine concept each, returning SDK types, so operators stay readable and the
engine's own faults (``ovirtsdk4.Error`` with ``.fault``) reach the task log unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from ovirt_dr.waiting import polls

if TYPE_CHECKING:
    import ovirtsdk4
    import ovirtsdk4.types as otypes

#: oVirt audit log code of "OVF_STORE updated" (AuditLogType.UPDATE_OVF_FOR_STORAGE_DOMAIN... user-triggered).
OVF_UPDATED_EVENT_CODE = 199


class OvirtError(RuntimeError):
    """An engine answer the pipeline cannot accept, with what was asked named."""


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def enum_value(value: Any) -> Any:
    """An SDK enum's value (``SnapshotStatus.OK`` -> ``"ok"``); anything else (None, a string) as it is."""
    return getattr(value, "value", value)


def status_of(obj: Any, attr: str = "status") -> str | None:
    """``obj.<attr>`` of an SDK object as its plain value (``vm.status`` -> ``"up"``); None if unset."""
    return enum_value(getattr(obj, attr, None))


class OvirtHook(BaseHook):
    """Talk to one oVirt engine.

    :param ovirt_conn_id: Airflow connection of type ``ovirt``.
    :param timeout: seconds for each HTTP request of the SDK (0 = no limit).
    """

    conn_name_attr = "ovirt_conn_id"
    default_conn_name = "ovirt_default"
    conn_type = "ovirt"
    hook_name = "oVirt Engine"

    def __init__(self, ovirt_conn_id: str = default_conn_name, timeout: int = 120) -> None:
        super().__init__()
        self.ovirt_conn_id = ovirt_conn_id
        self.timeout = timeout
        self._conn: ovirtsdk4.Connection | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hide the fields an engine connection does not use (the provider info says the same)."""
        return {
            "hidden_fields": ["schema", "port", "extra"],
            "relabeling": {"host": "API URL", "login": "Username"},
            "placeholders": {
                "host": "https://engine.example.com/ovirt-engine/api",
                "login": "admin@internal",
            },
        }

    # -- connection ----------------------------------------------------------------------------------
    def connection_kwargs(self) -> dict[str, Any]:
        """ovirtsdk4.Connection arguments from the Airflow connection (the password is never logged)."""
        conn = self.get_connection(self.ovirt_conn_id)
        extra = conn.extra_dejson or {}
        host = (conn.host or "").strip()
        if not host:
            raise OvirtError(f"connection {self.ovirt_conn_id!r}: the API URL (host) is empty")
        if "://" in host:
            url = host
        else:
            port = f":{conn.port}" if conn.port else ""
            url = f"https://{host}{port}/ovirt-engine/api"
        # The SSO login sends the password: only over TLS, never inside the URL (it is logged).
        parts = urlsplit(url)
        if parts.scheme.lower() != "https":
            raise OvirtError(
                f"connection {self.ovirt_conn_id!r}: the API URL must be https:// (got {parts.scheme}://): "
                "the engine login sends the password"
            )
        if not parts.hostname or parts.username is not None or parts.password is not None:
            raise OvirtError(
                f"connection {self.ovirt_conn_id!r}: the API URL must be https://<engine>/ovirt-engine/api, "
                "with no user or password in it (those go in the connection's login and password)"
            )
        insecure = _as_bool(extra.get("insecure", False))
        ca_file = extra.get("ca_file") or None
        if not insecure and not ca_file:
            raise OvirtError(
                f"connection {self.ovirt_conn_id!r}: set extra 'ca_file' to the engine's CA certificate "
                "(TLS is verified by default; 'insecure' disables it)"
            )
        if insecure:
            self.log.warning(
                "connection %r: TLS certificate verification is OFF (extra 'insecure'): anyone on the path to "
                "%s can read the engine password. For emergencies only: set 'ca_file' and remove 'insecure'.",
                self.ovirt_conn_id,
                parts.hostname,
            )
        if not conn.login:
            raise OvirtError(f"connection {self.ovirt_conn_id!r}: the username (login) is empty")
        return {
            "url": url,
            "username": conn.login,
            "password": conn.password or "",
            "ca_file": ca_file,
            "insecure": insecure,
            "timeout": self.timeout,
        }

    def get_conn(self) -> ovirtsdk4.Connection:
        if self._conn is None:
            import ovirtsdk4

            kwargs = self.connection_kwargs()
            self.log.info("Connecting to oVirt engine %s as %s", kwargs["url"], kwargs["username"])
            self._conn = ovirtsdk4.Connection(**kwargs)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close(logout=True)
            except Exception:  # a failed logout must not mask the task's own outcome
                self.log.warning("Logout from %s failed", self.ovirt_conn_id, exc_info=True)
            self._conn = None

    def __enter__(self) -> OvirtHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def test_connection(self) -> tuple[bool, str]:
        """Used by the Airflow UI's "Test" button."""
        try:
            api = self.system.get()
            return True, f"Connected to {api.product_info.name} {api.product_info.version.full_version}"
        except Exception as e:
            return False, str(e)
        finally:
            self.close()

    @cached_property
    def types(self) -> Any:
        import ovirtsdk4.types as otypes

        return otypes

    @property
    def system(self) -> Any:
        return self.get_conn().system_service()

    # -- storage domains -----------------------------------------------------------------------------
    def get_storage_domain(self, name: str) -> otypes.StorageDomain:
        found = self.system.storage_domains_service().list(search=f'name="{name}"')
        found = [sd for sd in found if sd.name == name]
        if not found:
            raise OvirtError(f"storage domain {name!r} does not exist on the engine")
        return found[0]

    def get_attached_domain(self, sd_id: str) -> tuple[otypes.DataCenter, otypes.StorageDomain]:
        """The data center a domain is attached to, and the domain as that DC sees it (with its status)."""
        sd = self.system.storage_domains_service().storage_domain_service(sd_id).get()
        dcs = sd.data_centers or []
        if not dcs:
            raise OvirtError(f"storage domain {sd.name!r} is not attached to a data center")
        dcs_service = self.system.data_centers_service()
        dc = dcs_service.data_center_service(dcs[0].id).get()
        attached = (
            dcs_service.data_center_service(dc.id).storage_domains_service().storage_domain_service(sd_id)
        )
        return dc, attached.get()

    def update_ovf_store(self, sd_id: str) -> None:
        self.system.storage_domains_service().storage_domain_service(sd_id).update_ovf_store()

    def events_since(self, after_id: int | None = None, max_events: int = 200) -> list[otypes.Event]:
        """Events newer than ``after_id`` (newest first, as the engine lists them)."""
        kwargs: dict[str, Any] = {"max": max_events}
        if after_id is not None:
            kwargs["from_"] = after_id
        return [
            e for e in self.system.events_service().list(**kwargs) if after_id is None or int(e.id) > after_id
        ]

    def last_event_id(self) -> int:
        events = self.system.events_service().list(max=1)
        return int(events[0].id) if events else 0

    def add_event(
        self,
        *,
        description: str,
        severity: str,
        custom_id: int,
        vm_id: str | None = None,
        sd_id: str | None = None,
        origin: str = "ovirt-dr",
    ) -> otypes.Event:
        t = self.types
        return self.system.events_service().add(
            t.Event(
                description=description,
                severity=t.LogSeverity(severity),
                origin=origin,
                custom_id=custom_id,
                vm=t.Vm(id=vm_id) if vm_id else None,
                storage_domain=t.StorageDomain(id=sd_id) if sd_id else None,
            )
        )

    # -- DR mapping inventory (dr_mapping generate / validate; owner: H3) ----------------------------
    #: top-level collections the mapping names things in, read in one batch
    MAPPING_COLLECTIONS = (
        "data_centers",
        "clusters",
        "hosts",
        "networks",
        "vnic_profiles",
        "affinity_labels",
        "domains",
        "roles",
        "users",
        "storage_domains",
        "disks",
    )

    def api_url(self) -> str:
        """The API URL of the connection (compared with the mapping file's ``dr_sites_*_url``)."""
        return str(self.connection_kwargs()["url"])

    def mapping_inventory(
        self, vm_domains: Iterable[str] = (), vm_follow: str = "nics,snapshots,disk_attachments.disk"
    ) -> dict[str, Any]:
        """Everything a DR mapping names on this engine, in two batches of requests (two round trips).

        First batch: every collection of :attr:`MAPPING_COLLECTIONS`, plus the VMs with a disk on each
        storage domain named in ``vm_domains`` (with their NICs, snapshots and disks followed inline).
        Second batch, by the ids of the first: the affinity groups of every cluster, the storage domains
        as each data center sees them (attachment status), and the LUNs each ``up`` host sees.
        Returns the SDK lists as they come: the collection names as keys, plus ``vms`` (domain name ->
        VMs), ``affinity_groups`` (cluster id -> groups), ``attached_domains`` (data center id -> domains)
        and ``host_storage`` (host id -> host storages).
        """
        system = self.system
        kinds = list(self.MAPPING_COLLECTIONS)
        domains = list(vm_domains)
        calls = [lambda k=k: getattr(system, f"{k}_service")().list(wait=False) for k in kinds]
        calls += [
            lambda d=d: system.vms_service().list(search=f'storage="{d}"', follow=vm_follow, wait=False)
            for d in domains
        ]
        answers = self.gather(calls)
        out: dict[str, Any] = dict(zip(kinds, answers[: len(kinds)], strict=True))
        out["vms"] = dict(zip(domains, answers[len(kinds) :], strict=True))
        clusters = [c.id for c in out["clusters"]]
        dcs = [dc.id for dc in out["data_centers"]]
        hosts = [h.id for h in out["hosts"] if getattr(h.status, "value", None) == "up"]
        calls = [
            lambda c=c: (
                system.clusters_service().cluster_service(c).affinity_groups_service().list(wait=False)
            )
            for c in clusters
        ]
        calls += [
            lambda d=d: (
                system.data_centers_service()
                .data_center_service(d)
                .storage_domains_service()
                .list(wait=False)
            )
            for d in dcs
        ]
        calls += [
            lambda h=h: system.hosts_service().host_service(h).storage_service().list(wait=False)
            for h in hosts
        ]
        answers = self.gather(calls)
        out["affinity_groups"] = dict(zip(clusters, answers[: len(clusters)], strict=True))
        out["attached_domains"] = dict(
            zip(dcs, answers[len(clusters) : len(clusters) + len(dcs)], strict=True)
        )
        out["host_storage"] = dict(zip(hosts, answers[len(clusters) + len(dcs) :], strict=True))
        return out

    def vm_permissions_of(self, vm_ids: list[str]) -> dict[str, list[otypes.Permission]]:
        """Each VM's permissions (one batch): the roles a VM's OVF carries to the other site."""
        answers = self.gather(lambda v=v: self._vm(v).permissions_service().list(wait=False) for v in vm_ids)
        return dict(zip(vm_ids, answers, strict=True))

    # -- batching ------------------------------------------------------------------------------------
    @staticmethod
    def gather(calls: Iterable[Any], missing_ok: bool = False) -> list[Any]:
        """Send every request first (each call returns an SDK future), then collect the answers.

        N requests then cost about one round trip instead of N: this is what keeps a 100-VM domain's
        snapshot window close to one snapshot's latency. With ``missing_ok`` a 404 gives ``None``.
        """
        import ovirtsdk4

        futures = [call() for call in calls]
        out = []
        for future in futures:
            try:
                out.append(future.wait())
            except ovirtsdk4.NotFoundError:
                if not missing_ok:
                    raise
                out.append(None)
        return out

    def _vm(self, vm_id: str) -> Any:
        return self.system.vms_service().vm_service(vm_id)

    # -- VMs and disks -------------------------------------------------------------------------------
    def vms_on_domain(self, sd_name: str) -> list[otypes.Vm]:
        vms = self.system.vms_service().list(search=f'storage="{sd_name}"')
        return sorted(vms, key=lambda v: v.name)

    def disks_on_domain(self, vm_ids: list[str], sd_id: str) -> dict[str, list[otypes.Disk]]:
        """Each VM's disks whose storage domain is ``sd_id`` (a VM can span domains: only these are ours)."""
        answers = self.gather(
            lambda v=v: self._vm(v).disk_attachments_service().list(follow="disk", wait=False) for v in vm_ids
        )
        out: dict[str, list[otypes.Disk]] = {}
        for vm_id, atts in zip(vm_ids, answers, strict=True):
            disks = [
                a.disk
                for a in atts
                if a.disk is not None and any(sd.id == sd_id for sd in a.disk.storage_domains or [])
            ]
            out[vm_id] = sorted(disks, key=lambda d: d.id)
        return out

    def get_disks(self, disk_ids: list[str]) -> dict[str, otypes.Disk]:
        disks = self.system.disks_service()
        answers = self.gather(lambda d=d: disks.disk_service(d).get(wait=False) for d in disk_ids)
        return dict(zip(disk_ids, answers, strict=True))

    def freeze(self, vm_id: str) -> None:
        self.system.vms_service().vm_service(vm_id).freeze_filesystems()

    def thaw(self, vm_id: str) -> None:
        self.system.vms_service().vm_service(vm_id).thaw_filesystems()

    # -- snapshots -----------------------------------------------------------------------------------
    def snapshots_of(self, vm_ids: list[str]) -> dict[str, list[otypes.Snapshot]]:
        answers = self.gather(lambda v=v: self._vm(v).snapshots_service().list(wait=False) for v in vm_ids)
        return dict(zip(vm_ids, answers, strict=True))

    def get_snapshots(self, refs: list[tuple[str, str]]) -> dict[tuple[str, str], otypes.Snapshot | None]:
        """``(vm_id, snapshot_id)`` -> the snapshot, or ``None`` once it is gone (404)."""
        answers = self.gather(
            (
                lambda v=v, s=s: self._vm(v).snapshots_service().snapshot_service(s).get(wait=False)
                for v, s in refs
            ),
            missing_ok=True,
        )
        return dict(zip(refs, answers, strict=True))

    def snapshot_disks_of(self, refs: list[tuple[str, str]]) -> dict[tuple[str, str], list[otypes.Disk]]:
        answers = self.gather(
            lambda v=v, s=s: (
                self._vm(v).snapshots_service().snapshot_service(s).disks_service().list(wait=False)
            )
            for v, s in refs
        )
        return dict(zip(refs, answers, strict=True))

    def add_snapshot(self, vm_id: str, description: str, disk_ids: Iterable[str], wait: bool = True) -> Any:
        """Disk-only snapshot of just these disks (``persist_memorystate=False``).

        With ``wait=False`` returns the SDK future, so many VMs are snapshotted concurrently.
        """
        t = self.types
        snap = t.Snapshot(
            description=description,
            persist_memorystate=False,
            disk_attachments=[t.DiskAttachment(disk=t.Disk(id=d)) for d in disk_ids],
        )
        service = self.system.vms_service().vm_service(vm_id).snapshots_service()
        return service.add(snap, wait=wait)

    def remove_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        """Start the live merge; the engine answers at once and the snapshot is gone when GET gives 404.

        Not batched: ovirtsdk4 4.6.3's ``SnapshotService.remove(wait=False)`` drops its future (returns
        None), and the engine answers a remove at once anyway; the wait for the merges is batched.
        """
        self._vm(vm_id).snapshots_service().snapshot_service(snapshot_id).remove()

    # -- waiting (one batched read per poll, whatever the number of objects) --------------------------
    def wait_snapshots_ok(
        self, refs: Iterable[tuple[str, str]], timeout: float, poll: float = 1.0
    ) -> dict[tuple[str, str], str]:
        """Wait until every snapshot ``(vm_id, snapshot_id)`` is ``ok``; return why for those that are not.

        A snapshot the engine marks anything but ``locked``/``ok`` (or that vanishes) is given up at once,
        the others are still waited for; at the deadline the rest are reported with their last status.
        Empty when all are ok.
        """
        pending = dict.fromkeys(refs, "locked")
        failed: dict[tuple[str, str], str] = {}
        for _ in polls(timeout, poll):
            for ref, snap in self.get_snapshots(list(pending)).items():
                status = status_of(snap, "snapshot_status") if snap is not None else None
                if snap is None:
                    failed[ref] = "disappeared while being created"
                elif status not in ("ok", "locked", None):
                    failed[ref] = f"ended {status}"
                elif status != "ok":
                    pending[ref] = status or "locked"
                    continue
                pending.pop(ref)
            if not pending:
                break
        else:
            failed.update({ref: f"still {status} after {timeout:.0f}s" for ref, status in pending.items()})
        return failed

    def wait_snapshots_gone(
        self, refs: Iterable[tuple[str, str]], timeout: float, poll: float = 1.0
    ) -> list[tuple[str, str]]:
        """Wait until every snapshot ``(vm_id, snapshot_id)`` is gone (merged); return those still there."""
        left = list(refs)
        for _ in polls(timeout, poll):
            if left:
                left = [ref for ref, snap in self.get_snapshots(left).items() if snap is not None]
            if not left:
                break
        return left

    def wait_event(
        self, code: int, sd_id: str, after_id: int, timeout: float, poll: float = 2.0
    ) -> otypes.Event | None:
        """The first event ``code`` about storage domain ``sd_id`` newer than ``after_id``, or None at the
        deadline (how the engine says an asynchronous domain operation such as an OVF update is done)."""
        for _ in polls(timeout, poll):
            for event in self.events_since(after_id):
                if event.code == code and event.storage_domain and event.storage_domain.id == sd_id:
                    return event
        return None

    def wait_attached_domain(
        self,
        dc_id: str,
        sd_id: str,
        want: str,
        timeout: float,
        poll: float = 2.0,
        on_status: Callable[[str | None], None] | None = None,
    ) -> str | None:
        """Wait until the domain, as data center ``dc_id`` sees it, is ``want`` (e.g. ``active``).

        ``on_status`` is called with every other status read, so a caller can act on one (activate a
        domain found in maintenance). Returns the last status: ``want``, or what it still was at the deadline.
        """
        service = (
            self.system.data_centers_service()
            .data_center_service(dc_id)
            .storage_domains_service()
            .storage_domain_service(sd_id)
        )
        status = None
        for _ in polls(timeout, poll):
            status = status_of(service.get())
            if status == want:
                break
            if on_status is not None:
                on_status(status)
        return status

    def wait_vms(
        self, vm_ids: Iterable[str], want: str, passing: Collection[str], timeout: float, poll: float = 2.0
    ) -> dict[str, tuple[str | None, otypes.Vm | None]]:
        """Wait until each VM is ``want`` or has left the ``passing`` states (one list request per poll).

        Returns per VM its status and the VM as last read: ``want``; a status outside ``passing`` (it went
        elsewhere, None: gone); or, at the deadline, the ``passing`` status it was still in.
        """
        pending = list(dict.fromkeys(vm_ids))
        out: dict[str, tuple[str | None, Any]] = {}
        for _ in polls(timeout, poll):
            current = {vm.id: vm for vm in self.system.vms_service().list()}
            for vm_id in list(pending):
                vm = current.get(vm_id)
                status = status_of(vm) if vm is not None else None
                out[vm_id] = (status, vm)
                if status == want or status not in passing:
                    pending.remove(vm_id)
            if not pending:
                break
        return out
