"""Container logs on disk, and the kubelet's HTTPS endpoint that serves them.

The apiserver answers `GET .../pods/<pod>/log` by proxying to the node's
kubelet endpoint (InternalIP and daemonEndpoints port): GET
/containerLogs/<namespace>/<pod>/<container>. It does not verify the kubelet's
certificate (no --kubelet-certificate-authority), so a self-signed one is used,
and the stand-in does not authenticate callers (loopback only).

Supported query parameters: tailLines, limitBytes, timestamps, sinceSeconds,
sinceTime, previous. `follow` is ignored: the answer is the log so far.
"""

from __future__ import annotations

import logging
import re
import ssl
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

# Namespaces, pod and container names are DNS-1123 names; anything else is not a pod here.
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class LogStore:
    """<state>/pods/<namespace>_<pod>_<uid>/logs/<container>[.previous].log"""

    def __init__(self, state_dir: Path):
        self.root = state_dir / "pods"

    def pod_dir(self, pod: dict) -> Path:
        meta = pod["metadata"]
        return self.root / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"

    def path(self, pod: dict, container: str, previous: bool = False) -> Path:
        return self.pod_dir(pod) / "logs" / f"{container}{'.previous' if previous else ''}.log"

    def find(self, namespace: str, pod: str, container: str, previous: bool) -> Path | None:
        """The log of the newest pod of that name (names and namespaces never contain '_')."""
        dirs = sorted(self.root.glob(f"{namespace}_{pod}_*"), key=lambda p: p.stat().st_mtime)
        for pod_dir in reversed(dirs):
            path = pod_dir / "logs" / f"{container}{'.previous' if previous else ''}.log"
            if path.exists():
                return path
        return None


def render(path: Path, query: dict[str, str]) -> bytes:
    """The log's text as the kubelet answers, filtered by the query parameters."""
    since = None
    if "sinceSeconds" in query:
        since = datetime.now(timezone.utc) - timedelta(seconds=int(query["sinceSeconds"]))
    elif "sinceTime" in query:
        since = datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
    timestamps = query.get("timestamps") == "true"
    lines: list[bytes] = []
    pending = b""  # a line continued over several records (P ... F)
    for record in path.read_bytes().splitlines():
        stamp, tag, text = (record.split(b" ", 2) + [b"", b""])[:3]
        if since and datetime.fromisoformat(stamp.decode()[:26] + "+00:00") < since:
            continue
        if not pending and timestamps:
            pending = stamp + b" "
        pending += text
        if tag == b"F":
            lines.append(pending + b"\n")
            pending = b""
    if pending:
        lines.append(pending)
    if "tailLines" in query:
        tail = int(query["tailLines"])
        lines = lines[-tail:] if tail > 0 else []
    body = b"".join(lines)
    if "limitBytes" in query:
        body = body[:int(query["limitBytes"])]
    return body


def self_signed_cert(directory: Path, node: str) -> tuple[Path, Path]:
    """A serving certificate for 127.0.0.1, made once with openssl."""
    cert, key = directory / "kubelet.crt", directory / "kubelet.key"
    if not cert.exists() or not key.exists():
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                        "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={node}",
                        "-addext", f"subjectAltName=IP:127.0.0.1,DNS:{node}"],
                       check=True, capture_output=True)
        key.chmod(0o600)
    return cert, key


class LogServer:
    def __init__(self, store: LogStore, port: int, cert: Path, key: Path):
        handler = type("Handler", (_Handler,), {"store": store})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        # The TLS handshake happens in the request's thread, not in the accept loop.
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True,
                                                do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="log-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    store: LogStore
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if url.path == "/healthz":
            return self._answer(200, b"ok")
        if len(parts) != 4 or parts[0] != "containerLogs":
            return self._answer(404, b"the sandbox kubelet serves only /containerLogs and /healthz\n")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        _, namespace, pod, container = parts
        if not all(NAME.match(name) for name in (namespace, pod, container)):
            return self._answer(404, b"no such pod\n")
        path = self.store.find(namespace, pod, container, query.get("previous") == "true")
        if path is None:
            kind = "previous terminated container" if query.get("previous") == "true" else "container"
            return self._answer(404, f'{kind} "{container}" in pod "{pod}" has no logs\n'.encode())
        try:
            body = render(path, query)
        except ValueError as exc:
            return self._answer(400, f"bad query: {exc}\n".encode())
        self._answer(200, body)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args) -> None:
        log.debug("log server: " + fmt, *args)
