"""Loopback fault proxies for the upstreams the Longhorn emulator does not cover: the
Kubernetes API and the S3 endpoint (docs/sandbox.md, "Fault injection").

`KubeFaultProxy` listens on plain HTTP on 127.0.0.1 and forwards every request to the
sandbox's kube-apiserver over HTTPS. A rule makes the next `count` requests whose method and
path match answer an error status with a Kubernetes `Status` body (409 Conflict, 500, 503...),
close the connection without forwarding (`drop`), forward and then close without answering
(`lost`: the change is made, the caller never hears of it), or hang until the rules are
cleared (`hang`). `pause()` closes the listener (connections are refused) and `resume()`
opens it again on the same port. Every request is recorded as (method, path, outcome), so a
test can count retries. `kubeconfig()` writes a kubeconfig that reaches the apiserver
through the proxy.

`TcpFaultProxy` forwards TCP connections (S3 for restic, from Soteria's process and from
Job pods, which share the host's network) and can refuse them (`pause`), accept and hang
them (`hang`), or accept and close them at once (`reset`).

Both run in the calling process, on daemon threads; `close()` stops them.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .config import HOST, SandboxConfig

MODES = ("status", "drop", "lost", "hang")
REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid",
           429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
               "proxy-connection", "content-length"}


@dataclass
class Rule:
    """The next `count` requests (0: every one until cleared) whose method is `method` ("*":
    any) and whose path (without the query) matches the regular expression `path`."""

    method: str
    path: str
    mode: str = "status"
    status: int = 500
    count: int = 1
    message: str = "injected by the sandbox's fault proxy"
    reason: str = ""  # the Status body's reason; by default the status's usual one
    hits: int = 0
    _pattern: re.Pattern = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self._pattern = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and self._pattern.fullmatch(path) is not None


def status_body(status: int, message: str, reason: str = "") -> bytes:
    reason = reason or REASONS.get(status, "InternalError")
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": status}).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class KubeFaultProxy:
    """Plain HTTP on 127.0.0.1 in front of the sandbox's apiserver (see the module's doc)."""

    def __init__(self, cfg: SandboxConfig, port: int = 0):
        from . import kube

        self.cfg = cfg
        self.upstream = ("127.0.0.1", cfg.port("apiserver"))
        self.token = kube.tokens(cfg)["admin"]
        self._tls = ssl.create_default_context(cafile=str(kube.ca_cert(cfg)))
        self._tls.check_hostname = False
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._released = threading.Event()
        self.requests: list[tuple[str, str, str]] = []  # (method, path, outcome)
        self._connections: set[socket.socket] = set()
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.resume()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # --- the listener ------------------------------------------------------------------------
    def resume(self) -> None:
        """Listen (again, on the same port)."""
        if self._server is not None:
            return
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                with proxy._lock:
                    proxy._connections.add(self.connection)

            def finish(self):
                with proxy._lock:
                    proxy._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def _handle(self):
                proxy._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        self._server = _Server((HOST, self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="kube-fault-proxy", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """Stop listening and close every open connection: new connections are refused, as
        when the apiserver is down."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._lock:
            released, self._released = self._released, threading.Event()
        released.set()

    def close(self) -> None:
        self.clear()
        self.pause()

    # --- rules -------------------------------------------------------------------------------
    def add(self, method: str, path: str, mode: str = "status", *, status: int = 500, count: int = 1,
            message: str = "injected by the sandbox's fault proxy", reason: str = "") -> Rule:
        rule = Rule(method, path, mode, status, count, message, reason)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules = []
            released, self._released = self._released, threading.Event()
        released.set()

    def _take(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    if rule.count and rule.hits >= rule.count:
                        self._rules.remove(rule)
                    return rule
        return None

    def count(self, method: str, path: str, outcome: str | None = None) -> int:
        """How many requests matched `method` and the regular expression `path` (and `outcome`)."""
        pattern = re.compile(path)
        with self._lock:
            return sum(1 for m, p, o in self.requests if m == method and pattern.fullmatch(p)
                       and outcome in (None, o))

    def forget(self) -> None:
        with self._lock:
            self.requests = []

    def _record(self, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self.requests.append((method, path, outcome))

    # --- serving -------------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path.split("?", 1)[0]
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        rule = self._take(method, path)
        if rule is not None and rule.mode == "status":
            self._record(method, path, f"status_{rule.status}")
            payload = status_body(rule.status, rule.message, rule.reason)
            handler.send_response(rule.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        if rule is not None and rule.mode in ("drop", "hang"):
            self._record(method, path, rule.mode)
            if rule.mode == "hang":
                self._released.wait()
            handler.close_connection = True
            self._abort(handler)
            return
        try:
            status, headers, data = self._forward(method, handler.path, handler.headers, body)
        except OSError:
            self._record(method, path, "upstream_unreachable")
            handler.close_connection = True
            self._abort(handler)
            return
        if rule is not None:  # lost: the apiserver did it, the caller never hears
            self._record(method, path, f"lost_{status}")
            handler.close_connection = True
            self._abort(handler)
            return
        self._record(method, path, f"forwarded_{status}")
        handler.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_HEADERS:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(data)

    @staticmethod
    def _abort(handler: BaseHTTPRequestHandler) -> None:
        """Close the client's connection without a word (an RST, as a crashed server leaves)."""
        try:
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _forward(self, method: str, target: str, headers, body: bytes):
        conn = http.client.HTTPSConnection(*self.upstream, context=self._tls, timeout=120)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", f"{self.upstream[0]}:{self.upstream[1]}")
            for name, value in headers.items():
                if name.lower() not in HOP_HEADERS:
                    conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig (the sandbox's admin) whose server is this proxy."""
        path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: sandbox-faults
  cluster:
    server: {self.url}
users:
- name: admin
  user:
    token: {self.token}
contexts:
- name: sandbox-faults
  context:
    cluster: sandbox-faults
    user: admin
current-context: sandbox-faults
""")
        path.chmod(0o600)
        return path


class TcpFaultProxy:
    """Forward TCP connections from 127.0.0.1:port to `upstream`; or refuse, hang or reset them."""

    MODES = ("forward", "hang", "reset")

    def __init__(self, upstream: tuple[str, int], port: int = 0):
        self.upstream = upstream
        self.mode = "forward"
        self.port = port
        self._listener: socket.socket | None = None
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.resume()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def set_mode(self, mode: str) -> None:
        """`forward`, `hang` (accept, never answer) or `reset` (accept and close at once).
        Leaving `hang` closes the connections it held."""
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(self.MODES)}")
        self.mode = mode
        if mode != "hang":
            released, self._released = self._released, threading.Event()
            released.set()

    def resume(self) -> None:
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="tcp-fault-proxy", daemon=True).start()

    def pause(self) -> None:
        """Close the listener (connections are refused) and every connection open through it."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            for sock in list(self._open):
                _close(sock)
            self._open.clear()
        self.set_mode(self.mode if self.mode != "hang" else "forward")

    def close(self) -> None:
        self.mode = "forward"
        self.pause()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        mode, released = self.mode, self._released
        if mode == "reset":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            client.close()
            return
        with self._lock:
            self._open.add(client)
        if mode == "hang":
            released.wait()
            self._drop(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            self._drop(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.add(upstream)
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        self._pipe(client, upstream)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        self._drop(source)
        self._drop(sink)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
