"""python -m sandbox.longhorn: serve the Longhorn manager emulator on loopback."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from werkzeug.serving import WSGIRequestHandler, make_server

from .constants import LONGHORN_VERSIONS
from .core import Emulator
from .server import App

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class QuietHandler(WSGIRequestHandler):
    """No access log line per request (benchmarks make millions)."""

    def log_request(self, *args, **kwargs) -> None:
        pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox.longhorn", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True,
                        help="where state.json, the journal and volumes/, snapshots/, backupstore/ live")
    parser.add_argument("--kubeconfig", type=Path, help="the cluster pvCreate/pvcCreate talk to")
    parser.add_argument("--version", choices=sorted(LONGHORN_VERSIONS), default="1.7", dest="longhorn_version",
                        help="Longhorn behaviour to emulate")
    parser.add_argument("--op-seconds", type=float, default=2.0,
                        help="how long a backup or a restore takes")
    parser.add_argument("--kube-sync-seconds", type=float, default=2.0,
                        help="how often kubernetesStatus is refreshed from the API server (0: never)")
    parser.add_argument("--namespace", default="longhorn-system",
                        help="where the Longhorn CRs are mirrored (with --kubeconfig)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--etcd-url", help="benchmark seeding only: write new Longhorn CRs straight into this "
                                           "loopback etcd instead of through the API server (docs/sandbox-longhorn.md)")
    args = parser.parse_args(argv)
    if args.host not in LOOPBACK:
        parser.error("--host must be a loopback address")
    if args.etcd_url and urlsplit(args.etcd_url).hostname not in LOOPBACK:
        parser.error("--etcd-url must be a loopback address")
    if args.op_seconds < 0:
        parser.error("--op-seconds must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    emulator = Emulator(args.state_dir, args.longhorn_version, args.op_seconds, args.kubeconfig,
                        args.kube_sync_seconds, args.namespace, etcd_url=args.etcd_url)
    emulator.start()
    handler = WSGIRequestHandler if args.access_log else QuietHandler
    server = make_server(args.host, args.port, App(emulator), threaded=True, request_handler=handler)
    server.daemon_threads = True

    def shut_down(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    logging.getLogger(__name__).info("Longhorn %s emulator on http://%s:%d, state in %s",
                                     emulator.longhorn_version, args.host, args.port, args.state_dir)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
