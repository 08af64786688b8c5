"""The sandbox's kubelet stand-in (docs/sandbox-kubelet.md).

python -m sandbox.kubelet --kubeconfig PATH --node NAME --port PORT --state-dir DIR --longhorn-volumes DIR
    --local-volumes DIR
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from .api import Api
from .logs import LogServer, LogStore, self_signed_cert
from .node import NodeAgent, labels
from .pod import Context
from .provisioner import Provisioner
from .sync import PodSync

log = logging.getLogger("sandbox.kubelet")

SHUTDOWN_GRACE = 2.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox.kubelet", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True, help="how to reach the apiserver")
    parser.add_argument("--node", default="sandbox-node", help="the Node to register and run pods for")
    parser.add_argument("--port", type=int, required=True, help="HTTPS port of the log endpoint (127.0.0.1)")
    parser.add_argument("--state-dir", type=Path, required=True, help="pod logs, volumes and the TLS key")
    parser.add_argument("--longhorn-volumes", type=Path, required=True,
                        help="directory holding one directory per Longhorn volume")
    parser.add_argument("--local-volumes", type=Path, required=True,
                        help="directory where the local-path provisioner stand-in creates volumes")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def register(node: NodeAgent, stop: threading.Event) -> bool:
    """Register the node, retrying while the apiserver is not answering yet."""
    delay = 0.5
    while not stop.is_set():
        try:
            node.register()
            return True
        except Exception as exc:  # noqa: BLE001 - the apiserver may still be starting
            log.warning("cannot register node %s yet: %s", node.name, exc)
            stop.wait(delay)
            delay = min(delay * 2, 5)
    return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry warnings repeat ours
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    args.state_dir.mkdir(parents=True, exist_ok=True)
    args.longhorn_volumes.mkdir(parents=True, exist_ok=True)
    args.local_volumes.mkdir(parents=True, exist_ok=True)
    api = Api(args.kubeconfig)
    store = LogStore(args.state_dir)
    node = NodeAgent(api, args.node, args.port, str(args.state_dir))
    if not register(node, stop):
        return 0
    node.start()
    sync = PodSync(Context(api, args.node, store, args.longhorn_volumes), labels(args.node))
    sync.start()
    provisioner = Provisioner(api, args.node, args.local_volumes)
    provisioner.start()
    # Last: a kubelet answering /healthz is registered and running pods.
    server = LogServer(store, args.port, *self_signed_cert(args.state_dir / "tls", args.node))
    server.start()
    log.info("node %s ready; logs on https://127.0.0.1:%d", args.node, args.port)

    while not stop.wait(1):
        pass
    log.info("stopping: killing running pods")
    provisioner.stop()
    sync.shutdown(SHUTDOWN_GRACE)
    node.stop()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
