"""EngineServer: one emulated oVirt engine over HTTPS, in-process (pytest fixture) or from the CLI.

``ThreadingHTTPServer`` speaking HTTP/1.1 so that the SDK's ``wait=False`` futures go out together on
several keep-alive connections. The TLS handshake runs in the connection's own thread (not in the accept
loop), so one slow or refused client never stalls the others. ``engine_down(seconds)`` really closes the
listening socket (new connections are refused) and drops requests on open keep-alive connections without
an answer, then listens again on the same port.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ovirt_dr_lab.engine.api import Api, RequestHandler
from ovirt_dr_lab.engine.certs import ensure_certs
from ovirt_dr_lab.engine.client import LabEngineClient
from ovirt_dr_lab.engine.core import Engine

log = logging.getLogger(__name__)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], ssl_ctx: ssl.SSLContext, api: Api) -> None:
        self.ssl_ctx = ssl_ctx
        self.api = api
        super().__init__(addr, RequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(60)
        # no Nagle: an answer goes out at once instead of waiting ~40 ms for the client's delayed ACK
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake from %s failed: %s", client_address, exc)
            return
        try:
            tls.settimeout(RequestHandler.timeout)
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            tls.close()


class EngineServer:
    """One engine: ``start()``, ``stop()``, ``url`` (API URL), ``ca_file``, ``lab`` (LabEngineClient).

    :param site: the site dict or a path to its YAML.
    :param state_dir: where state.json, the CA and the server certificate live (kept across restarts).
    :param port: 0 picks a free port.
    """

    def __init__(
        self, site: dict[str, Any] | Path | str, state_dir: Path | str, port: int = 0, host: str = "127.0.0.1"
    ):
        self.site = site
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port
        self.engine: Engine | None = None
        self.api: Api | None = None
        self._httpd: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.ca_file, self.cert_file, self.key_file = ensure_certs(self.state_dir)
        self._lab: LabEngineClient | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/ovirt-engine/api"

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def lab(self) -> LabEngineClient:
        if self._lab is None:
            self._lab = LabEngineClient(self.base_url, str(self.ca_file))
        return self._lab

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx

    def _listen(self) -> None:
        assert self.api is not None
        last: OSError | None = None
        for _ in range(50):  # the old socket of an engine_down may linger for a moment
            try:
                httpd = _TLSServer((self.host, self.port), self._ssl_context(), self.api)
                break
            except OSError as exc:
                last = exc
                time.sleep(0.1)
        else:
            raise RuntimeError(f"cannot listen on {self.host}:{self.port}: {last}")
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True, name="engine-http"
        )
        self._thread.start()

    def start(self) -> EngineServer:
        self.engine = Engine(self.site, self.state_dir)
        self.api = Api(self.engine)
        self.api.on_engine_down = self._engine_down
        self._listen()
        return self

    def _close_listener(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _engine_down(self, seconds: float) -> None:
        def cycle() -> None:
            time.sleep(0.2)  # let the lab call that asked for it get its answer
            with self._lock:
                if self._stopped.is_set():
                    return
                self._close_listener()
            remaining = seconds - 0.2
            if self._stopped.wait(max(0.0, remaining)):
                return
            with self._lock:
                if not self._stopped.is_set() and self._httpd is None:
                    self._listen()

        threading.Thread(target=cycle, daemon=True, name="engine-down").start()

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            self._close_listener()
        if self.engine is not None:
            self.engine.close()

    def __enter__(self) -> EngineServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
