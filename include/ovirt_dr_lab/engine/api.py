"""HTTP side of the emulated engine: SSO, the REST API routes, lab-only endpoints, faults and counters.

Routes are ``(method, template)`` pairs; the template with every placeholder written ``{id}`` is the key of
the request counters (``"POST /vms/{id}/snapshots"``, relative to ``/ovirt-engine/api``; SSO and logout
keep their full path). Status codes, bodies and faults follow reference/ovirt-api.md: 404 with an empty
body for unknown ids, ``<fault>`` for 400/409, DELETE always 200, adds 201/202 with a body.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ovirtsdk4.types as T
from ovirtsdk4.reader import Reader

from ovirt_dr_lab.engine import render, search
from ovirt_dr_lab.engine.common import EngineFault, conflict, incomplete, not_found
from ovirt_dr_lab.engine.core import Engine
from ovirt_dr_lab.engine.render import href

log = logging.getLogger(__name__)

API_PREFIX = "/ovirt-engine/api"
LAB_PREFIX = "/ovirt-engine/lab"
SSO_TOKEN = "/ovirt-engine/sso/oauth/token"
SSO_LOGOUT = "/ovirt-engine/services/sso-logout"
XML_TYPE = "application/xml;charset=UTF-8"
JSON_TYPE = "application/json"


@dataclass
class Request:
    method: str
    path: str
    params: list[str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def q(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)

    def flag(self, name: str) -> bool:
        return (
            self.query.get(name) or self.headers.get(name.replace("_", "-").lower()) or ""
        ).lower() == "true"

    @property
    def correlation_id(self) -> str | None:
        return self.query.get("correlation_id") or self.headers.get("correlation-id")

    def parsed(self) -> Any:
        """The body read with the SDK's own reader (``types.Action``, ``types.Snapshot`` ...)."""
        text = self.body.strip()
        if not text:
            return None
        try:
            return Reader.read(text)
        except Exception as exc:  # the engine answers malformed XML with a 400 fault
            raise EngineFault(400, f"Request syntactically incorrect: {exc}", reason="Bad Request") from exc


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = XML_TYPE
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    method: str
    regex: re.Pattern[str]
    status: int | None
    hang_s: float | None
    count: int


Handler = Callable[[Request], Response]


def xml(status: int, body: bytes) -> Response:
    return Response(status, body)


def jresp(obj: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(obj).encode(), JSON_TYPE)


class Api:
    """Routing table and handlers; one instance per engine, shared by all request threads."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.r = render.Renderer(engine)
        self.tokens: dict[str, tuple[str, float]] = {}
        self.tokens_lock = threading.Lock()
        self.faults: list[Fault] = []
        self.faults_lock = threading.Lock()
        self.down_until = 0.0
        self.on_engine_down: Callable[[float], None] | None = None
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        self.lab_routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        self._build_routes()

    # ---- routing -----------------------------------------------------------------------------
    @staticmethod
    def _compile(template: str) -> tuple[re.Pattern[str], str]:
        pattern = re.sub(r"\{[a-z_]+\}", "([^/]+)", template)
        key = re.sub(r"\{[a-z_]+\}", "{id}", template)
        return re.compile("^" + pattern + "/?$"), key

    def add(self, method: str, template: str, fn: Handler, lab: bool = False) -> None:
        rx, key = self._compile(template)
        (self.lab_routes if lab else self.routes).append((method, rx, key, fn))

    def match(
        self, method: str, path: str, lab: bool = False
    ) -> tuple[Handler | None, list[str], str | None]:
        table = self.lab_routes if lab else self.routes
        path_known = False
        for m, rx, key, fn in table:
            found = rx.match(path)
            if found:
                path_known = True
                if m == method:
                    return fn, list(found.groups()), key
        return None, [], ("405" if path_known else None)

    def _build_routes(self) -> None:
        a = self.add
        a("GET", "", self.get_api)
        # data centers, clusters, hosts, networks
        a("GET", "/datacenters", self.list_dcs)
        a("GET", "/datacenters/{dc}", self.get_dc)
        a("GET", "/datacenters/{dc}/storagedomains", self.list_dc_sds)
        a("POST", "/datacenters/{dc}/storagedomains", self.attach_sd)
        a("GET", "/datacenters/{dc}/storagedomains/{sd}", self.get_dc_sd)
        a("DELETE", "/datacenters/{dc}/storagedomains/{sd}", self.detach_sd)
        a("POST", "/datacenters/{dc}/storagedomains/{sd}/activate", self.activate_sd)
        a("POST", "/datacenters/{dc}/storagedomains/{sd}/deactivate", self.deactivate_sd)
        a("GET", "/clusters", self.list_clusters)
        a("GET", "/clusters/{c}", self.get_cluster)
        a("GET", "/clusters/{c}/affinitygroups", self.list_affinity_groups)
        a("GET", "/clusters/{c}/affinitygroups/{g}", self.get_affinity_group)
        a("GET", "/clusters/{c}/affinitygroups/{g}/vms", self.list_affinity_group_vms)
        a("GET", "/clusters/{c}/glustervolumes", self.list_gluster_volumes)
        a("GET", "/hosts", self.list_hosts)
        a("GET", "/hosts/{h}", self.get_host)
        a("GET", "/hosts/{h}/storage", self.list_host_storage)
        a("GET", "/hosts/{h}/storage/{s}", self.get_host_storage)
        a("GET", "/networks", self.list_networks)
        a("GET", "/networks/{n}", self.get_network)
        a("GET", "/vnicprofiles", self.list_vnic_profiles)
        a("GET", "/vnicprofiles/{p}", self.get_vnic_profile)
        a("GET", "/affinitylabels", self.list_affinity_labels)
        a("GET", "/affinitylabels/{l}", self.get_affinity_label)
        a("GET", "/roles", self.list_roles)
        a("GET", "/roles/{r}", self.get_role)
        a("GET", "/domains", self.list_aaa_domains)
        a("GET", "/domains/{d}", self.get_aaa_domain)
        a("GET", "/users", self.list_users)
        a("GET", "/users/{u}", self.get_user)
        # VMs
        a("GET", "/vms", self.list_vms)
        a("GET", "/vms/{vm}", self.get_vm)
        a("DELETE", "/vms/{vm}", self.remove_vm)
        a("GET", "/vms/{vm}/diskattachments", self.list_disk_attachments)
        a("GET", "/vms/{vm}/diskattachments/{d}", self.get_disk_attachment)
        a("GET", "/vms/{vm}/nics", self.list_nics)
        a("GET", "/vms/{vm}/nics/{n}", self.get_nic)
        a("PUT", "/vms/{vm}/nics/{n}", self.update_nic)
        a("GET", "/vms/{vm}/affinitylabels", self.list_vm_affinity_labels)
        a("GET", "/vms/{vm}/permissions", self.list_vm_permissions)
        a("GET", "/vms/{vm}/permissions/{p}", self.get_vm_permission)
        a("GET", "/vms/{vm}/snapshots", self.list_snapshots)
        a("POST", "/vms/{vm}/snapshots", self.add_snapshot)
        a("GET", "/vms/{vm}/snapshots/{s}", self.get_snapshot)
        a("DELETE", "/vms/{vm}/snapshots/{s}", self.remove_snapshot)
        a("GET", "/vms/{vm}/snapshots/{s}/disks", self.list_snapshot_disks)
        a("POST", "/vms/{vm}/start", self.start_vm)
        a("POST", "/vms/{vm}/stop", lambda r: self.stop_vm(r, "stop"))
        a("POST", "/vms/{vm}/shutdown", lambda r: self.stop_vm(r, "shutdown"))
        a("POST", "/vms/{vm}/freezefilesystems", lambda r: self.freeze(r, "freeze"))
        a("POST", "/vms/{vm}/thawfilesystems", lambda r: self.freeze(r, "thaw"))
        # disks, templates
        a("GET", "/disks", self.list_disks)
        a("GET", "/disks/{d}", self.get_disk)
        a("DELETE", "/disks/{d}", self.remove_disk)
        a("GET", "/templates", self.list_templates)
        a("GET", "/templates/{t}", self.get_template)
        # storage domains
        a("GET", "/storagedomains", self.list_sds)
        a("POST", "/storagedomains", self.add_sd)
        a("GET", "/storagedomains/{sd}", self.get_sd)
        a("DELETE", "/storagedomains/{sd}", self.remove_sd)
        a("POST", "/storagedomains/{sd}/updateovfstore", self.update_ovf_store)
        a("GET", "/storagedomains/{sd}/vms", lambda r: self.list_sd_entities(r, "vms"))
        a("GET", "/storagedomains/{sd}/vms/{id}", lambda r: self.get_sd_entity(r, "vms"))
        a("POST", "/storagedomains/{sd}/vms/{id}/register", lambda r: self.register(r, "vms"))
        a("GET", "/storagedomains/{sd}/templates", lambda r: self.list_sd_entities(r, "templates"))
        a("GET", "/storagedomains/{sd}/templates/{id}", lambda r: self.get_sd_entity(r, "templates"))
        a("POST", "/storagedomains/{sd}/templates/{id}/register", lambda r: self.register(r, "templates"))
        a("GET", "/storagedomains/{sd}/disks", self.list_sd_disks)
        # events, jobs
        a("GET", "/events", self.list_events)
        a("POST", "/events", self.add_event)
        a("GET", "/events/{ev}", self.get_event)
        a("GET", "/jobs", self.list_jobs)
        a("GET", "/jobs/{j}", self.get_job)
        a("GET", "/jobs/{j}/steps", self.list_steps)
        # lab-only
        lab = self.add
        lab("GET", "/counters", lambda r: jresp(dict(sorted(self.e.counters.items()))), lab=True)
        lab("POST", "/counters/reset", self.lab_reset_counters, lab=True)
        lab("DELETE", "/counters", self.lab_reset_counters, lab=True)
        lab("GET", "/freeze_log", lambda r: jresp(list(self.e.freeze_log)), lab=True)
        lab("POST", "/write", self.lab_write, lab=True)
        lab("POST", "/writer/start", self.lab_start_writer, lab=True)
        lab("POST", "/writer/stop", self.lab_stop_writer, lab=True)
        lab("GET", "/writes", lambda r: jresp(list(self.e.write_log)), lab=True)
        lab("GET", "/latency", lambda r: jresp(self.e.latency), lab=True)
        lab("POST", "/latency", lambda r: jresp(self.e.set_latency(self._json(r))), lab=True)
        lab("POST", "/faults", self.lab_inject_fault, lab=True)
        lab("DELETE", "/faults", self.lab_clear_faults, lab=True)
        lab("POST", "/faults/clear", self.lab_clear_faults, lab=True)
        lab("POST", "/engine_down", self.lab_engine_down, lab=True)
        lab("GET", "/disks/{d}/chain", lambda r: jresp(self.e.disk_chain(r.params[0])), lab=True)
        lab(
            "GET",
            "/disks/{d}/initial_content",
            lambda r: jresp(self.e.initial_content(r.params[0])),
            lab=True,
        )
        lab("POST", "/tokens/expire", self.lab_expire_tokens, lab=True)
        lab("POST", "/vms/{vm}/status", self.lab_set_vm_status, lab=True)
        lab("POST", "/vms/{vm}/snapshots/{s}/status", self.lab_set_snapshot_status, lab=True)
        lab("POST", "/hosts/{h}/status", self.lab_set_host_status, lab=True)
        lab("GET", "/state", lambda r: jresp(self.e.state_copy()), lab=True)

    # ---- dispatch ----------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Response | None:
        """Answer one request; ``None`` means: drop the connection without an answer (engine down)."""
        parts = urlsplit(raw_path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if path.startswith(LAB_PREFIX):
            return self._handle_lab(method, path[len(LAB_PREFIX) :], query, headers, body)
        if time.monotonic() < self.down_until:
            return None
        if path.startswith(API_PREFIX):
            fn, params, key = self.match(method, path[len(API_PREFIX) :].rstrip("/"))
            counter = f"{method} {key or '/'}" if fn is not None else f"{method} {path}"
        else:
            fn, params, key = None, [], None
            counter = f"{method} {path}"
        with self.e.lock:
            self.e.counters[counter] = self.e.counters.get(counter, 0) + 1
        injected = self._injected(method, path)
        if injected is not None:
            return injected
        if path == SSO_TOKEN:
            return self.sso_token(body)
        if path == SSO_LOGOUT:
            return self.sso_logout(body)
        if not path.startswith(API_PREFIX):
            return Response(404, b"", "text/plain")
        if not self._authorized(headers):
            return Response(401, b"", XML_TYPE, {"WWW-Authenticate": 'Bearer realm="RESTAPI"'})
        if fn is None:
            if key == "405":
                return xml(405, b"")
            return Response(404, b"")
        req = Request(method, path, params, query, headers, body)
        try:
            if method == "GET":
                # reads render straight from the state dicts: hold the state lock so a background task
                # (merge, registration) cannot change a dict while it is being iterated
                with self.e.lock:
                    return fn(req)
            return fn(req)
        except EngineFault as f:
            if f.empty:
                return Response(f.status, b"")
            return xml(f.status, render.fault(f.reason, f.detail))
        except search.SearchError as exc:
            return xml(400, render.fault("Operation Failed", f"[{exc}]"))

    def _handle_lab(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Response:
        fn, params, key = self.match(method, path.rstrip("/"), lab=True)
        if fn is None:
            return jresp({"error": f"no lab endpoint {method} {path}"}, 404 if key is None else 405)
        req = Request(method, path, params, query, headers, body)
        try:
            return fn(req)
        except EngineFault as f:
            return jresp({"error": f.detail or f.reason}, f.status)
        except (ValueError, KeyError, TypeError) as exc:
            return jresp({"error": f"{type(exc).__name__}: {exc}"}, 400)

    def _injected(self, method: str, path: str) -> Response | None:
        with self.faults_lock:
            hit = None
            for f in self.faults:
                if f.count > 0 and f.method in (method, "*") and f.regex.search(path):
                    f.count -= 1
                    hit = f
                    break
            self.faults = [f for f in self.faults if f.count > 0]
        if hit is None:
            return None
        if hit.hang_s:
            time.sleep(hit.hang_s)
        if hit.status is None:
            return None
        if hit.status in (401, 404):
            return Response(hit.status, b"")
        return xml(
            hit.status, render.fault("Operation Failed", f"[Injected fault {hit.status} on {method} {path}]")
        )

    def _authorized(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return False
        token = auth[7:].strip()
        with self.tokens_lock:
            entry = self.tokens.get(token)
            if entry is None:
                return False
            if entry[1] < time.time():
                self.tokens.pop(token, None)
                return False
        return True

    # ---- SSO ---------------------------------------------------------------------------------
    def sso_token(self, body: bytes) -> Response:
        form = {
            k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()
        }
        username = form.get("username", "")
        if form.get("grant_type") != "password":
            return jresp({"error_code": "unsupported_grant_type", "error": "Unsupported grant type."}, 400)
        user = self.e.users.get(username)
        if user is None and "@" not in username:
            user = self.e.users.get(username + "@internal")
        if user is None or user.get("password") is None or str(user["password"]) != form.get("password"):
            return jresp(
                {
                    "error_code": "access_denied",
                    "error": f"Cannot authenticate user '{username}': The username or password is incorrect..",
                },
                400,
            )
        token = secrets.token_urlsafe(48)
        exp = time.time() + self.e.token_ttl
        with self.tokens_lock:
            self.tokens[token] = (username, exp)
        self.e.add_event(
            f"User {username}-authz connecting from '127.0.0.1' using session '{token[:12]}' logged in.",
            code=30,
        )
        return jresp(
            {
                "access_token": token,
                "scope": form.get("scope", "ovirt-app-api"),
                "exp": str(int(exp * 1000)),
                "token_type": "bearer",
            }
        )

    def sso_logout(self, body: bytes) -> Response:
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        with self.tokens_lock:
            self.tokens.pop(form.get("token", ""), None)
        return jresp({})

    # ---- helpers -----------------------------------------------------------------------------
    def listing(
        self,
        req: Request,
        root: str,
        items: list[dict[str, Any]],
        render_fn: Callable[[dict[str, Any]], str],
        getter: Any,
    ) -> Response:
        case = (req.q("case_sensitive") or "false").lower() == "true"
        mx = req.q("max")
        found = search.apply(
            items, req.q("search"), getter, case_sensitive=case, page_size=int(mx) if mx else None
        )
        if mx not in (None, "") and int(mx) >= 0:
            found = found[: int(mx)]
        return xml(200, render.collection(root, [render_fn(i) for i in found]))

    @staticmethod
    def _json(req: Request) -> Any:
        return json.loads(req.body or b"{}")

    def _name_getter(self, extra: Callable[[dict[str, Any], str], list[Any] | None] | None = None) -> Any:
        def get(item: dict[str, Any], f: str) -> list[Any] | None:
            if f in ("name", "id", "status", "description"):
                return [item.get(f)]
            return extra(item, f) if extra else None

        return get

    def _dc_of_cluster(self, cluster_id: str | None) -> dict[str, Any] | None:
        c = self.e.s["clusters"].get(cluster_id or "")
        return self.e.s["datacenters"].get(c["dc_id"]) if c else None

    # ---- system ------------------------------------------------------------------------------
    def get_api(self, req: Request) -> Response:
        return xml(200, self.r.api())

    # ---- compute collections -----------------------------------------------------------------
    def list_dcs(self, req: Request) -> Response:
        s = self.e.s

        def extra(dc: dict[str, Any], f: str) -> list[Any] | None:
            if f in ("storage", "storage.name"):
                return [sd["name"] for sd in s["storage_domains"].values() if sd.get("dc_id") == dc["id"]]
            if f in ("cluster", "cluster.name"):
                return [c["name"] for c in s["clusters"].values() if c["dc_id"] == dc["id"]]
            return None

        def get(dc: dict[str, Any], f: str) -> list[Any] | None:
            if f == "status":
                return [self.r.dc_status(dc)]
            if f in ("name", "id", "description"):
                return [dc.get(f)]
            return extra(dc, f)

        return self.listing(req, "data_centers", list(s["datacenters"].values()), self.r.datacenter, get)

    def get_dc(self, req: Request) -> Response:
        return xml(200, render.document(self.r.datacenter(self.e.get("datacenters", req.params[0]))))

    def list_clusters(self, req: Request) -> Response:
        def extra(c: dict[str, Any], f: str) -> list[Any] | None:
            if f in ("datacenter", "datacenter.name"):
                dc = self.e.s["datacenters"].get(c["dc_id"])
                return [dc["name"] if dc else None]
            return None

        return self.listing(
            req, "clusters", list(self.e.s["clusters"].values()), self.r.cluster, self._name_getter(extra)
        )

    def get_cluster(self, req: Request) -> Response:
        return xml(200, render.document(self.r.cluster(self.e.get("clusters", req.params[0]))))

    def list_affinity_groups(self, req: Request) -> Response:
        cid = self.e.get("clusters", req.params[0])["id"]
        items = [g for g in self.e.s["affinity_groups"].values() if g["cluster_id"] == cid]
        return self.listing(req, "affinity_groups", items, self.r.affinity_group, self._name_getter())

    def get_affinity_group(self, req: Request) -> Response:
        g = self.e.get("affinity_groups", req.params[1])
        if g["cluster_id"] != req.params[0]:
            raise not_found()
        return xml(200, render.document(self.r.affinity_group(g)))

    def list_affinity_group_vms(self, req: Request) -> Response:
        g = self.e.get("affinity_groups", req.params[1])
        vms = [self.e.s["vms"][v] for v in g["vm_ids"] if v in self.e.s["vms"]]
        return xml(200, render.collection("vms", [self.r.vm(v) for v in vms]))

    def list_gluster_volumes(self, req: Request) -> Response:
        cid = self.e.get("clusters", req.params[0])["id"]
        names = sorted(
            {
                sd.get("path", "").strip("/")
                for sd in self.e.s["storage_domains"].values()
                if sd.get("path") and sd.get("storage_type", "glusterfs") == "glusterfs"
            }
            | {k.partition(":")[2].strip("/") for k in self.e.gluster_mounts}
        )
        return xml(
            200, render.collection("gluster_volumes", [self.r.gluster_volume(cid, n) for n in names if n])
        )

    def list_hosts(self, req: Request) -> Response:
        def extra(h: dict[str, Any], f: str) -> list[Any] | None:
            if f in ("cluster", "cluster.name"):
                return [self.e.s["clusters"].get(h["cluster_id"], {}).get("name")]
            if f in ("datacenter", "datacenter.name"):
                dc = self._dc_of_cluster(h["cluster_id"])
                return [dc["name"] if dc else None]
            if f == "address":
                return [h.get("address")]
            return None

        return self.listing(
            req, "hosts", list(self.e.s["hosts"].values()), self.r.host, self._name_getter(extra)
        )

    def get_host(self, req: Request) -> Response:
        return xml(200, render.document(self.r.host(self.e.get("hosts", req.params[0]))))

    def _host_luns(self, host: dict[str, Any]) -> list[dict[str, Any]]:
        """The LUNs a host sees: every LUN of the site (one SAN for all hosts), only while it is up.

        A LUN a disk of this engine uses is reported ``used``, as vdsm's device list says.
        """
        if host["status"] != "up":
            return []
        used = {d.get("lun_id") for d in self.e.s["disks"].values() if d.get("storage_type") == "lun"}
        return [dict(lun, used=lun["id"] in used) for _, lun in sorted(self.e.s.get("luns", {}).items())]

    def list_host_storage(self, req: Request) -> Response:
        host = self.e.get("hosts", req.params[0])
        items = [self.r.host_storage(lun, host["id"]) for lun in self._host_luns(host)]
        return xml(200, render.collection("host_storages", items))

    def get_host_storage(self, req: Request) -> Response:
        host = self.e.get("hosts", req.params[0])
        for lun in self._host_luns(host):
            if lun["id"] == req.params[1]:
                return xml(200, render.document(self.r.host_storage(lun, host["id"])))
        raise not_found()

    def list_networks(self, req: Request) -> Response:
        return self.listing(
            req, "networks", list(self.e.s["networks"].values()), self.r.network, self._name_getter()
        )

    def get_network(self, req: Request) -> Response:
        return xml(200, render.document(self.r.network(self.e.get("networks", req.params[0]))))

    def list_vnic_profiles(self, req: Request) -> Response:
        items = list(self.e.s["vnic_profiles"].values())
        return self.listing(req, "vnic_profiles", items, self.r.vnic_profile, self._name_getter())

    def get_vnic_profile(self, req: Request) -> Response:
        return xml(200, render.document(self.r.vnic_profile(self.e.get("vnic_profiles", req.params[0]))))

    def list_affinity_labels(self, req: Request) -> Response:
        items = list(self.e.s["affinity_labels"].values())
        return self.listing(req, "affinity_labels", items, self.r.affinity_label, self._name_getter())

    def get_affinity_label(self, req: Request) -> Response:
        return xml(200, render.document(self.r.affinity_label(self.e.get("affinity_labels", req.params[0]))))

    def list_roles(self, req: Request) -> Response:
        return self.listing(req, "roles", list(self.e.s["roles"].values()), self.r.role, self._name_getter())

    def get_role(self, req: Request) -> Response:
        return xml(200, render.document(self.r.role(self.e.get("roles", req.params[0]))))

    def list_aaa_domains(self, req: Request) -> Response:
        items = list(self.e.s["aaa_domains"].values())
        return self.listing(req, "domains", items, self.r.aaa_domain, self._name_getter())

    def get_aaa_domain(self, req: Request) -> Response:
        return xml(200, render.document(self.r.aaa_domain(self.e.get("aaa_domains", req.params[0]))))

    def list_users(self, req: Request) -> Response:
        def extra(u: dict[str, Any], f: str) -> list[Any] | None:
            return [u["user_name"]] if f in ("usrname", "user_name", "login") else None

        return self.listing(
            req, "users", list(self.e.s["users"].values()), self.r.user, self._name_getter(extra)
        )

    def get_user(self, req: Request) -> Response:
        return xml(200, render.document(self.r.user(self.e.get("users", req.params[0]))))

    # ---- VMs ---------------------------------------------------------------------------------
    def _vm_getter(self) -> Any:
        s = self.e.s

        def extra(v: dict[str, Any], f: str) -> list[Any] | None:
            if f in ("storage", "storage.name", "storage_domain", "storage_domain.name"):
                return sorted(
                    {
                        s["storage_domains"][sd]["name"]
                        for sd in self.e.vm_sd_ids(v)
                        if sd in s["storage_domains"]
                    }
                )
            if f in ("storage.id",):
                return self.e.vm_sd_ids(v)
            if f in ("cluster", "cluster.name"):
                return [s["clusters"].get(v["cluster_id"], {}).get("name")]
            if f in ("datacenter", "datacenter.name"):
                dc = self._dc_of_cluster(v["cluster_id"])
                return [dc["name"] if dc else None]
            if f in ("host", "host.name"):
                return [s["hosts"].get(v.get("host_id") or "", {}).get("name")]
            if f == "template":
                return [v.get("template_id")]
            return None

        return self._name_getter(extra)

    def _follow(self, req: Request) -> set[str]:
        return {f.strip() for f in (req.q("follow") or "").split(",") if f.strip()}

    def list_vms(self, req: Request) -> Response:
        follow = self._follow(req)
        items = sorted(self.e.s["vms"].values(), key=lambda v: v["name"])
        return self.listing(req, "vms", items, lambda v: self.r.vm(v, follow), self._vm_getter())

    def get_vm(self, req: Request) -> Response:
        return xml(200, render.document(self.r.vm(self.e.get("vms", req.params[0]), self._follow(req))))

    def remove_vm(self, req: Request) -> Response:
        self.e.remove_vm(req.params[0], req.flag("detach_only"))
        return xml(200, render.action())

    def list_disk_attachments(self, req: Request) -> Response:
        vm = self.e.get("vms", req.params[0])
        follow_disk = "disk" in self._follow(req)
        items = [
            self.r.disk_attachment(self.e.s["disks"][d], vm["id"], follow_disk)
            for d in vm["disk_ids"]
            if d in self.e.s["disks"]
        ]
        return xml(200, render.collection("disk_attachments", items))

    def get_disk_attachment(self, req: Request) -> Response:
        vm = self.e.get("vms", req.params[0])
        if req.params[1] not in vm["disk_ids"]:
            raise not_found()
        disk = self.e.get("disks", req.params[1])
        return xml(200, render.document(self.r.disk_attachment(disk, vm["id"], "disk" in self._follow(req))))

    def list_nics(self, req: Request) -> Response:
        vm = self.e.get("vms", req.params[0])
        return xml(200, render.collection("nics", [self.r.nic(n, vm["id"]) for n in vm.get("nics", [])]))

    def get_nic(self, req: Request) -> Response:
        nic = self.e.vm_nic(req.params[0], req.params[1])
        return xml(200, render.document(self.r.nic(nic, req.params[0])))

    def update_nic(self, req: Request) -> Response:
        """PUT a vNIC: ``plugged`` and ``linked`` (what ``VmNicService.update`` sends to (un)plug a vNIC)."""
        body = req.parsed()
        if not isinstance(body, T.Nic):
            raise EngineFault(400, "Request syntactically incorrect: expected a <nic>", reason="Bad Request")
        nic = self.e.update_nic(req.params[0], req.params[1], plugged=body.plugged, linked=body.linked)
        with self.e.lock:
            return xml(200, render.document(self.r.nic(nic, req.params[0])))

    def list_vm_affinity_labels(self, req: Request) -> Response:
        vm = self.e.get("vms", req.params[0])
        labels = [lab for lab in self.e.s["affinity_labels"].values() if vm["id"] in lab["vm_ids"]]
        return xml(200, render.collection("affinity_labels", [self.r.affinity_label(lab) for lab in labels]))

    def list_vm_permissions(self, req: Request) -> Response:
        vm = self.e.get("vms", req.params[0])
        items = [self.r.permission(p) for p in self.e.vm_permissions(vm["id"])]
        return xml(200, render.collection("permissions", items))

    def get_vm_permission(self, req: Request) -> Response:
        vm = self.e.get("vms", req.params[0])
        for perm in self.e.vm_permissions(vm["id"]):
            if perm["id"] == req.params[1]:
                return xml(200, render.document(self.r.permission(perm)))
        raise not_found()

    def list_snapshots(self, req: Request) -> Response:
        vm_id = self.e.get("vms", req.params[0])["id"]
        with self.e.lock:
            snaps = self.e.vm_snapshots(vm_id)
        items = [self.r.snapshot(sn, vm_id) for sn in snaps]
        mx = req.q("max")
        if mx:
            items = items[: int(mx)]
        return xml(200, render.collection("snapshots", items))

    def add_snapshot(self, req: Request) -> Response:
        vm_id = self.e.get("vms", req.params[0])["id"]
        snap = req.parsed()
        if snap is not None and not isinstance(snap, T.Snapshot):
            raise EngineFault(400, "Request body must be a snapshot", reason="Bad Request")
        description = snap.description if snap is not None else None
        persist = True if snap is None or snap.persist_memorystate is None else bool(snap.persist_memorystate)
        disk_ids = None
        if snap is not None and snap.disk_attachments:
            disk_ids = []
            for att in snap.disk_attachments:
                disk_id = (att.disk.id if att.disk is not None else None) or att.id
                if not disk_id:
                    raise incomplete("DiskAttachment", ["disk.id"])
                disk_ids.append(disk_id)
        created = self.e.add_snapshot(vm_id, description, persist, disk_ids, req.correlation_id)
        return xml(202, render.document(self.r.snapshot(created, vm_id, creation_status="pending")))

    def get_snapshot(self, req: Request) -> Response:
        vm_id = self.e.get("vms", req.params[0])["id"]
        with self.e.lock:
            snap = self.e.get_snapshot(vm_id, req.params[1])
        return xml(200, render.document(self.r.snapshot(snap, vm_id)))

    def remove_snapshot(self, req: Request) -> Response:
        job = self.e.remove_snapshot(req.params[0], req.params[1], req.correlation_id)
        if req.flag("async"):
            # what the engine does with async=true on a remove; the SDK then raises (reference: avoid it)
            return Response(202, b"")
        return xml(200, render.action("complete", job["id"]))

    def list_snapshot_disks(self, req: Request) -> Response:
        vm_id = self.e.get("vms", req.params[0])["id"]
        with self.e.lock:
            snap = self.e.get_snapshot(vm_id, req.params[1])
            items = []
            for disk_id, vol in sorted(snap["volumes"].items()):
                disk = self.e.s["disks"].get(disk_id)
                if disk is not None:
                    link = href("vms", vm_id, "snapshots", snap["id"], "disks", disk_id)
                    items.append(self.r.disk(disk, volume=vol, link=link))
        return xml(200, render.collection("disks", items))

    def start_vm(self, req: Request) -> Response:
        self.e.start_vm(req.params[0])
        return xml(200, render.action())

    def stop_vm(self, req: Request, verb: str) -> Response:
        self.e.stop_vm(req.params[0], verb)
        return xml(200, render.action())

    def freeze(self, req: Request, action: str) -> Response:
        self.e.freeze(req.params[0], action)
        return xml(200, render.action())

    # ---- disks / templates -------------------------------------------------------------------
    def _disk_getter(self) -> Any:
        def extra(d: dict[str, Any], f: str) -> list[Any] | None:
            if f in ("alias", "name"):
                return [d["alias"]]
            if f in ("storage", "storage.name", "storage_domain"):
                return [self.e.s["storage_domains"].get(d["sd_id"], {}).get("name")]
            if f in ("vm_names", "vm.name"):
                return [self.e.s["vms"].get(d.get("vm_id") or "", {}).get("name")]
            return None

        def get(d: dict[str, Any], f: str) -> list[Any] | None:
            if f in ("id", "status"):
                return [d.get(f)]
            return extra(d, f)

        return get

    def list_disks(self, req: Request) -> Response:
        items = sorted(self.e.s["disks"].values(), key=lambda d: d["alias"])
        return self.listing(req, "disks", items, self.r.disk, self._disk_getter())

    def get_disk(self, req: Request) -> Response:
        return xml(200, render.document(self.r.disk(self.e.get("disks", req.params[0]))))

    def remove_disk(self, req: Request) -> Response:
        self.e.remove_disk(req.params[0])
        return xml(200, render.action())

    def list_templates(self, req: Request) -> Response:
        items = sorted(self.e.s["templates"].values(), key=lambda t: t["name"])
        return self.listing(req, "templates", items, self.r.template, self._name_getter())

    def get_template(self, req: Request) -> Response:
        return xml(200, render.document(self.r.template(self.e.get("templates", req.params[0]))))

    # ---- storage domains ---------------------------------------------------------------------
    def _sd_getter(self) -> Any:
        def get(sd: dict[str, Any], f: str) -> list[Any] | None:
            if f in ("name", "id", "description"):
                return [sd.get(f)]
            if f == "status":
                return [sd.get("status") if not sd.get("dc_id") else sd.get("status")]
            if f in ("datacenter", "datacenter.name"):
                dc = self.e.s["datacenters"].get(sd.get("dc_id") or "")
                return [dc["name"] if dc else None]
            if f in ("type", "storage_type"):
                return [sd.get("type", "data"), sd.get("storage_type", "glusterfs")]
            if f in ("address", "storage.address"):
                return [sd.get("address")]
            if f in ("path", "storage.path"):
                return [sd.get("path")]
            return None

        return get

    def list_sds(self, req: Request) -> Response:
        items = sorted(self.e.s["storage_domains"].values(), key=lambda sd: sd["name"])
        return self.listing(req, "storage_domains", items, self.r.storage_domain, self._sd_getter())

    def get_sd(self, req: Request) -> Response:
        return xml(200, render.document(self.r.storage_domain(self.e.get("storage_domains", req.params[0]))))

    def add_sd(self, req: Request) -> Response:
        sd = req.parsed()
        if not isinstance(sd, T.StorageDomain):
            raise incomplete("StorageDomain", ["name", "type", "host", "storage"])
        missing = []
        if sd.host is None or not (sd.host.id or sd.host.name):
            missing.append("host.id|name")
        if sd.type is None:
            missing.append("type")
        st = sd.storage
        if st is None or st.type is None:
            missing.append("storage.type")
        elif st.type == T.StorageType.GLUSTERFS:
            if not st.path:
                missing.append("storage.path")
            if not st.address:
                missing.append("storage.address")
            if not st.vfs_type:
                missing.append("storage.vfs_type")
        if not sd.import_ and not sd.name:
            missing.append("name")
        if missing:
            raise incomplete("StorageDomain", missing)
        if st.type != T.StorageType.GLUSTERFS:
            raise conflict(
                f"Cannot add Storage. The emulator supports GlusterFS domains only, not {st.type.value}"
            )
        host = sd.host.name or self.e.get("hosts", sd.host.id)["name"]
        if sd.import_:
            created = self.e.import_domain(sd.name, st.address, st.path, host, sd.id)
        else:
            created = self.e.create_domain(sd.name, st.address, st.path)
        return xml(201, render.document(self.r.storage_domain(created)))

    def remove_sd(self, req: Request) -> Response:
        self.e.remove_domain(req.params[0], req.q("host"), req.flag("format"), req.flag("destroy"))
        return xml(200, render.action())

    def update_ovf_store(self, req: Request) -> Response:
        job = self.e.update_ovf_store(req.params[0], req.correlation_id)
        return xml(200, render.action("complete", job["id"]))

    def list_dc_sds(self, req: Request) -> Response:
        dc = self.e.get("datacenters", req.params[0])
        items = sorted(
            (sd for sd in self.e.s["storage_domains"].values() if sd.get("dc_id") == dc["id"]),
            key=lambda sd: sd["name"],
        )
        return self.listing(
            req, "storage_domains", items, lambda sd: self.r.storage_domain(sd, dc["id"]), self._sd_getter()
        )

    def get_dc_sd(self, req: Request) -> Response:
        sd = self.e._attached(req.params[0], req.params[1])
        return xml(200, render.document(self.r.storage_domain(sd, req.params[0])))

    def attach_sd(self, req: Request) -> Response:
        dc = self.e.get("datacenters", req.params[0])
        body = req.parsed()
        if not isinstance(body, T.StorageDomain) or not (body.id or body.name):
            raise incomplete("StorageDomain", ["id|name"], "attach")
        sd = self.e.lookup("storage_domains", body.id, body.name, "StorageDomain")
        attached = self.e.attach_domain(dc["id"], sd["id"])
        return xml(201, render.document(self.r.storage_domain(attached, dc["id"])))

    def detach_sd(self, req: Request) -> Response:
        self.e.detach_domain(req.params[0], req.params[1])
        return xml(200, render.action())

    def activate_sd(self, req: Request) -> Response:
        self.e.activate_domain(req.params[0], req.params[1])
        return xml(200, render.action())

    def deactivate_sd(self, req: Request) -> Response:
        self.e.deactivate_domain(req.params[0], req.params[1])
        return xml(200, render.action())

    def list_sd_entities(self, req: Request, kind: str) -> Response:
        sd = self.e.get("storage_domains", req.params[0])
        root = "vms" if kind == "vms" else "templates"
        if req.flag("unregistered"):
            ents = sorted(self.e.unregistered(sd["id"], kind).values(), key=lambda x: x["name"])
            return xml(
                200, render.collection(root, [self.r.unregistered_vm(x, sd["id"], kind) for x in ents])
            )
        if kind == "vms":
            items = [v for v in self.e.s["vms"].values() if sd["id"] in self.e.vm_sd_ids(v)]
            return xml(
                200, render.collection(root, [self.r.vm(v) for v in sorted(items, key=lambda v: v["name"])])
            )
        items = [
            t
            for t in self.e.s["templates"].values()
            if any(self.e.s["disks"].get(d, {}).get("sd_id") == sd["id"] for d in t.get("disk_ids", []))
        ]
        return xml(200, render.collection(root, [self.r.template(t) for t in items]))

    def get_sd_entity(self, req: Request, kind: str) -> Response:
        sd_id, ent_id = req.params
        ent = self.e.unregistered(sd_id, kind).get(ent_id)
        if ent is not None:
            return xml(200, render.document(self.r.unregistered_vm(ent, sd_id, kind)))
        coll = "vms" if kind == "vms" else "templates"
        obj = self.e.get(coll, ent_id)
        return xml(200, render.document(self.r.vm(obj) if kind == "vms" else self.r.template(obj)))

    def list_sd_disks(self, req: Request) -> Response:
        sd = self.e.get("storage_domains", req.params[0])
        if req.flag("unregistered"):
            disks = []
            for kind in ("vms", "templates"):
                for ent in self.e.unregistered(sd["id"], kind).values():
                    disks += ent.get("disks", [])
            return xml(
                200, render.collection("disks", [self.r.unregistered_disk(d, sd["id"]) for d in disks])
            )
        items = sorted(
            (d for d in self.e.s["disks"].values() if d["sd_id"] == sd["id"]), key=lambda d: d["alias"]
        )
        return xml(200, render.collection("disks", [self.r.disk(d) for d in items]))

    def register(self, req: Request, kind: str) -> Response:
        act = req.parsed()
        if act is not None and not isinstance(act, T.Action):
            raise EngineFault(400, "Request body must be an action", reason="Bad Request")
        job = self.e.register(req.params[0], kind, req.params[1], act, req.correlation_id)
        return xml(200, render.action("complete", job["id"]))

    # ---- events / jobs -----------------------------------------------------------------------
    def list_events(self, req: Request) -> Response:
        with self.e.lock:
            events = list(reversed(self.e.s["events"]))
        frm = req.q("from")
        if frm not in (None, ""):
            events = [ev for ev in events if ev["id"] > int(frm)]

        def get(ev: dict[str, Any], f: str) -> list[Any] | None:
            key = {"custom_event_id": "custom_id", "type": "code", "event_id": "id"}.get(f, f)
            if key in ("origin", "severity", "custom_id", "correlation_id", "id", "code", "description"):
                return [ev.get(key)]
            if f in ("vm.name", "vm"):
                return [self.e.s["vms"].get(ev.get("vm_id") or "", {}).get("name")]
            if f in ("storage.name", "storage"):
                return [self.e.s["storage_domains"].get(ev.get("sd_id") or "", {}).get("name")]
            if f == "time":
                return [ev.get("time")]
            return None

        return self.listing(req, "events", events, self.r.event, get)

    def add_event(self, req: Request) -> Response:
        ev = req.parsed()
        if not isinstance(ev, T.Event):
            raise incomplete("Event", ["origin", "severity", "customId", "description"])
        missing = [
            name
            for name, val in (
                ("origin", ev.origin),
                ("severity", ev.severity),
                ("customId", ev.custom_id),
                ("description", ev.description),
            )
            if val in (None, "")
        ]
        if missing:
            raise incomplete("Event", missing)
        vm_id = ev.vm.id if ev.vm is not None else None
        sd_id = ev.storage_domain.id if ev.storage_domain is not None else None
        if vm_id and vm_id not in self.e.s["vms"]:
            raise EngineFault(404, f"Entity not found: VM: id={vm_id}")
        if sd_id and sd_id not in self.e.s["storage_domains"]:
            raise EngineFault(404, f"Entity not found: StorageDomain: id={sd_id}")
        with self.e.lock:
            for old in self.e.s["events"]:
                if (
                    old.get("origin") == ev.origin
                    and old.get("custom_id") == ev.custom_id
                    and ev.custom_id != -1
                ):
                    raise conflict(
                        "Cannot add Event. An event with the same origin and custom id already exists."
                    )
        created = self.e.add_event(
            ev.description,
            # AuditLogType EXTERNAL_EVENT_NORMAL (9801), _WARNING, _ERROR, EXTERNAL_ALERT
            code={"normal": 9801, "warning": 9802, "error": 9803, "alert": 9804}.get(ev.severity.value, 9801),
            severity=ev.severity.value,
            origin=ev.origin,
            custom_id=ev.custom_id,
            vm_id=vm_id,
            sd_id=sd_id,
            correlation_id=req.correlation_id,
        )
        return xml(201, render.document(self.r.event(created)))

    def get_event(self, req: Request) -> Response:
        with self.e.lock:
            for ev in self.e.s["events"]:
                if str(ev["id"]) == req.params[0]:
                    return xml(200, render.document(self.r.event(ev)))
        raise not_found()

    def list_jobs(self, req: Request) -> Response:
        with self.e.lock:
            jobs = sorted(self.e.s["jobs"].values(), key=lambda j: j["start_time"], reverse=True)

        def get(j: dict[str, Any], f: str) -> list[Any] | None:
            if f in ("id", "status", "description", "correlation_id"):
                return [j.get(f)]
            return None

        return self.listing(req, "jobs", jobs, self.r.job, get)

    def get_job(self, req: Request) -> Response:
        return xml(200, render.document(self.r.job(self.e.get("jobs", req.params[0]))))

    def list_steps(self, req: Request) -> Response:
        job = self.e.get("jobs", req.params[0])
        return xml(200, render.collection("steps", [self.r.step(st, job["id"]) for st in job["steps"]]))

    # ---- lab-only ----------------------------------------------------------------------------
    def lab_reset_counters(self, req: Request) -> Response:
        with self.e.lock:
            self.e.counters.clear()
        return jresp({})

    def lab_write(self, req: Request) -> Response:
        b = self._json(req)
        return jresp(
            self.e.guest_write(
                b["vm_id"], b["disk_id"], int(b["offset"]), int(b["length"]), int(b["pattern"])
            )
        )

    def lab_start_writer(self, req: Request) -> Response:
        b = self._json(req)
        self.e.start_writer(
            list(b["vm_ids"]), float(b.get("interval_s", 0.5)), int(b.get("block_size", 65536))
        )
        return jresp({"started": True})

    def lab_stop_writer(self, req: Request) -> Response:
        self.e.stop_writer()
        return jresp({"stopped": True, "writes": len(self.e.write_log), "errors": list(self.e.writer_errors)})

    def lab_inject_fault(self, req: Request) -> Response:
        b = self._json(req)
        f = Fault(
            method=str(b.get("method", "*")).upper(),
            regex=re.compile(b["path_regex"]),
            status=int(b["status"]) if b.get("status") is not None else None,
            hang_s=float(b["hang_s"]) if b.get("hang_s") is not None else None,
            count=int(b.get("count", 1)),
        )
        if f.status is None and f.hang_s is None:
            raise EngineFault(400, "a fault needs status and/or hang_s")
        with self.faults_lock:
            self.faults.append(f)
        return jresp({"injected": True})

    def lab_clear_faults(self, req: Request) -> Response:
        with self.faults_lock:
            self.faults.clear()
        return jresp({})

    def lab_engine_down(self, req: Request) -> Response:
        seconds = float(self._json(req).get("seconds", 5))
        self.down_until = time.monotonic() + seconds
        if self.on_engine_down is not None:
            self.on_engine_down(seconds)
        return jresp({"down_s": seconds})

    def lab_expire_tokens(self, req: Request) -> Response:
        with self.tokens_lock:
            n = len(self.tokens)
            self.tokens.clear()
        return jresp({"expired": n})

    def lab_set_snapshot_status(self, req: Request) -> Response:
        """Put a regular snapshot into (or out of) preview: ``{"status": "in_preview" | "ok"}``.

        What a user's "Preview" leaves behind in the engine; the DR validation must refuse such a VM.
        """
        status = self._json(req)["status"]
        if status not in ("in_preview", "ok"):
            raise EngineFault(400, "status must be in_preview or ok")
        with self.e.lock:
            vm = self.e.get("vms", req.params[0])
            snap = self.e.s["snapshots"].get(req.params[1])
            if snap is None or snap["vm_id"] != vm["id"]:
                raise EngineFault(404, f"VM {vm['name']} has no snapshot {req.params[1]}")
            if snap["status"] not in ("ok", "in_preview"):
                raise EngineFault(409, f"snapshot {snap['id']} is {snap['status']}")
            if status == "in_preview" and any(
                o["vm_id"] == vm["id"] and o["status"] == "in_preview" and o["id"] != snap["id"]
                for o in self.e.s["snapshots"].values()
            ):
                raise EngineFault(409, f"VM {vm['name']} already previews a snapshot")
            snap["status"] = status
            self.e.save()
        return jresp({"status": status})

    def lab_set_host_status(self, req: Request) -> Response:
        status = self._json(req)["status"]
        T.HostStatus(status)  # validates
        with self.e.lock:
            host = self.e.get("hosts", req.params[0])
            host["status"] = status
            self.e.save()
        return jresp({"status": status})

    def lab_set_vm_status(self, req: Request) -> Response:
        status = self._json(req)["status"]
        T.VmStatus(status)  # validates
        with self.e.lock:
            vm = self.e.get("vms", req.params[0])
            vm["status"] = status
            if status == "down":
                vm["host_id"] = None
            elif not vm.get("host_id"):
                hosts = [h for h in self.e.s["hosts"].values() if h["cluster_id"] == vm["cluster_id"]]
                vm["host_id"] = hosts[0]["id"] if hosts else None
            self.e.save()
        return jresp({"status": status})


class RequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler; every answer carries Content-Type and Content-Length."""

    protocol_version = "HTTP/1.1"
    server_version = "ovirt-dr-lab-engine"
    timeout = 300
    wbufsize = -1  # buffered: status line, headers and body leave in one TLS record (flushed per request)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        log.debug("%s - %s", self.address_string(), format % args)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        api: Api = self.server.api  # type: ignore[attr-defined]
        started = time.monotonic()
        try:
            resp = api.handle(self.command, self.path, headers, body)
        except Exception as exc:  # an emulator bug must surface as a 500 fault, not a dropped connection
            log.exception("engine emulator error on %s %s", self.command, self.path)
            resp = Response(500, render.fault("Internal Server Error", f"{type(exc).__name__}: {exc}"))
        if resp is None:
            self.close_connection = True
            return
        if self.command != "GET" or resp.status >= 400:
            # changes and refusals are what one looks for in an engine log; plain reads stay at debug
            level = logging.INFO if "/ovirt-engine/lab/" not in self.path else logging.DEBUG
            log.log(
                level, "%s %s -> %d (%.3fs)", self.command, self.path, resp.status, time.monotonic() - started
            )
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve
    do_HEAD = _serve
