"""python -m sandbox up|down|status|seed|fault|stop-service|start-service|env

See docs/sandbox.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from . import cluster
from .config import LONGHORN_VERSIONS, SandboxConfig


def _config(args) -> SandboxConfig:
    saved = SandboxConfig.load(Path(args.state_dir) if args.state_dir else None)
    if args.command != "up":
        return saved
    overrides = {}
    if args.port_base:
        overrides["port_base"] = args.port_base
    if args.rbac:
        overrides["rbac"] = True
    if args.longhorn_version:
        overrides["longhorn_version"] = args.longhorn_version
    if args.op_seconds is not None:
        overrides["longhorn_op_seconds"] = args.op_seconds
    return SandboxConfig(**{**saved.__dict__, **overrides})


def _print_exports(cfg: SandboxConfig) -> None:
    for key, value in cluster.exports(cfg).items():
        print(f"export {key}={shlex.quote(value)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--state-dir", help="sandbox state directory (default: $SOTERIA_SANDBOX_DIR "
                        "or ~/.cache/soteria/sandbox)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start everything in the background (idempotent) and print exports")
    p_up.add_argument("--port-base", type=int, help="first of the six loopback ports (default 17440)")
    p_up.add_argument("--rbac", action="store_true", help="run kube-apiserver with --authorization-mode=RBAC")
    p_up.add_argument("--longhorn-version", choices=LONGHORN_VERSIONS, help="emulated Longhorn behaviour")
    p_up.add_argument("--op-seconds", type=float, help="seconds an emulated backup or restore takes")
    p_up.add_argument("--no-seed", action="store_true", help="do not seed the demo data")
    sub.add_parser("down", help="stop every sandbox process and remove its state")
    sub.add_parser("status", help="which sandbox processes run")
    sub.add_parser("env", help="print the export lines again")
    p_seed = sub.add_parser("seed", help="seed N namespaces x M PVCs x K backups (scale generator)")
    p_seed.add_argument("--namespaces", type=int, required=True)
    p_seed.add_argument("--pvcs", type=int, required=True, help="PVCs per namespace")
    p_seed.add_argument("--backups", type=int, required=True, help="backups per PVC")
    p_seed.add_argument("--prefix", default="scale", help="namespace name prefix")
    p_seed.add_argument("--wait", action="store_true", help="wait until every claim is Bound")
    p_fault = sub.add_parser("fault", help="make a Longhorn call fail, hang or slow down")
    p_fault.add_argument("action", help="Longhorn action or route key, e.g. snapshotBackup, volumes.list")
    p_fault.add_argument("--mode", choices=("error", "timeout", "slow", "fail_async", "unknown_async"),
                         default="error")
    p_fault.add_argument("--count", type=int, default=1)
    p_fault.add_argument("--delay", type=float, default=5.0)
    p_fault.add_argument("--message", default="injected by the sandbox")
    sub.add_parser("clear-faults", help="remove every injected Longhorn fault")
    p_cfg = sub.add_parser("longhorn-config", help="show or change the Longhorn emulator's behaviour switches")
    p_cfg.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                       help="e.g. snapshot_max_count=5 failed_backup_ttl_minutes=0.5 volume_list_scan_ns=0")
    for name in ("stop-service", "start-service"):
        p = sub.add_parser(name, help=f"{name.split('-')[0]} one service (fault injection)")
        p.add_argument("service", choices=cluster.SERVICES)
    args = parser.parse_args(argv)
    cfg = _config(args)

    if args.command == "up":
        seconds = cluster.up(cfg, seed=not args.no_seed)
        print(f"# sandbox up in {seconds:.1f}s (state in {cfg.state_dir})", file=sys.stderr)
        _print_exports(cfg)
    elif args.command == "env":
        _print_exports(cfg)
    elif args.command == "down":
        stopped = cluster.down(cfg)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    elif args.command == "status":
        running = cluster.status(cfg)
        for name, pid in running.items():
            print(f"{name:24} {'running pid ' + str(pid) if pid else 'stopped'}")
        return 0 if all(running.values()) else 3
    elif args.command == "seed":
        from . import seed

        summary = seed.scale(cfg, args.namespaces, args.pvcs, args.backups, prefix=args.prefix, wait=args.wait)
        print(json.dumps(summary))
    elif args.command == "fault":
        from . import faults

        faults.inject(cfg, args.action, mode=args.mode, count=args.count, delay=args.delay, message=args.message)
    elif args.command == "longhorn-config":
        from . import faults

        changes = {}
        for item in args.settings:
            key, _, value = item.partition("=")
            try:
                changes[key] = json.loads(value)
            except ValueError:
                changes[key] = value
        print(json.dumps(faults.configure(cfg, **changes) if changes else faults.config(cfg), indent=2))
    elif args.command == "clear-faults":
        from . import faults

        faults.clear(cfg)
    elif args.command == "stop-service":
        cluster.stop_service(cfg, args.service)
    elif args.command == "start-service":
        cluster.start_service(cfg, args.service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
