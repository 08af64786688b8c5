"""Inventory at scale: seed N namespaces x M PVCs x K backups into a private sandbox,
then time Soteria's inventory (the service and the JSON answer) and count its upstream calls,
once per way of reading Longhorn:

- `crd`: Longhorn's volumes, backups and backup volumes from their custom resources through
  the Kubernetes API (what Soteria does);
- `rest`: the manager's `GET /v1/volumes` and `GET /v1/backupvolumes` (what it did before).

Run by hand (results go in docs/benchmarks.md):

    .venv/bin/python bench/inventory_scale.py --namespaces 100 --pvcs 100 --backups 50

It starts its own sandbox on port base 31440 (state in a temporary directory) and stops it
at the end unless --keep is given. Each way is measured in a fresh Python process, so that
each peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WAYS = ("crd", "rest")


def measure(way: str, repeat: int, state_dir: str, port_base: int) -> dict:
    """In this (fresh) process: build the inventory `repeat` times reading Longhorn the given way."""
    from sandbox import faults
    from sandbox.config import SandboxConfig

    cfg = SandboxConfig(state_dir=Path(state_dir), port_base=port_base)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # the inventory remembers failed backups in SQLite and its cache
    from backups.api.serializers import InventoryResponse
    from backups.clients import longhorn, longhorn_crd
    from backups.services import inventory
    from soteria_site.core.metrics import UPSTREAM_REQUESTS

    if way == "rest":
        longhorn_crd.list_volumes, longhorn_crd.list_backup_volumes = longhorn.list_volumes, longhorn.list_backup_volumes
    operations = ("pvcs.list", "pvs.list", "storageclasses.list", "longhorn.volumes.list", "longhorn.backups.list",
                  "longhorn.backupvolumes.list")

    def kube_calls():
        return {op: UPSTREAM_REQUESTS.labels("kubernetes", op, "ok")._value.get() for op in operations}

    timings, answer_bytes, rows, longhorn_calls, kube = [], 0, 0, {}, {}
    for _ in range(repeat):
        faults.reset_calls(cfg)
        before = kube_calls()
        t0 = time.monotonic()
        inv = inventory.build()
        body = json.dumps(InventoryResponse(inv).data)
        timings.append(time.monotonic() - t0)
        answer_bytes, rows = len(body), len(inv.items)
        longhorn_calls = faults.calls(cfg)
        kube = {op: n - before[op] for op, n in kube_calls().items() if n != before[op]}
        del inv, body
    return {"way": way, "inventory_seconds": [round(t, 2) for t in timings], "inventory_rows": rows,
            "answer_megabytes": round(answer_bytes / 2 ** 20, 1), "longhorn_calls_per_inventory": longhorn_calls,
            "kubernetes_lists_per_inventory": kube,
            "peak_rss_megabytes": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--pvcs", type=int, default=100, help="PVCs per namespace")
    parser.add_argument("--backups", type=int, default=50, help="backups per PVC")
    parser.add_argument("--repeat", type=int, default=3, help="inventories through the CRDs")
    parser.add_argument("--rest-repeat", type=int, default=1, help="inventories through the manager's REST API")
    parser.add_argument("--scan-ns", type=float, default=None,
                        help="the emulated manager's cost per (volume, backup) pair scanned by GET /v1/volumes "
                             "(the emulator's volume_list_scan_ns; its default when not given)")
    parser.add_argument("--ways", default=",".join(WAYS), help="comma-separated: crd, rest")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running")
    parser.add_argument("--measure", choices=WAYS, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    parser.add_argument("--port-base", type=int, default=31440, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeat, args.state_dir, args.port_base)))
        return

    from sandbox import cluster, faults, seed
    from sandbox.config import SandboxConfig

    cfg = SandboxConfig(state_dir=Path(tempfile.mkdtemp(prefix="soteria-bench-")), port_base=args.port_base)
    started = time.monotonic()
    cluster.up(cfg, seed=False)
    up_seconds = time.monotonic() - started
    try:
        if args.scan_ns is not None:
            faults.configure(cfg, volume_list_scan_ns=args.scan_ns)
        t0 = time.monotonic()
        try:
            seeded = seed.scale(cfg, args.namespaces, args.pvcs, args.backups, prefix="bench", wait=True)
        except TimeoutError:  # the emulator is still writing Longhorn's CRs: wait longer below
            pvcs = args.namespaces * args.pvcs
            seeded = {"pvcs": pvcs, "backups": pvcs * args.backups, "seconds": None, "kubernetes_seconds": None}
        faults.wait_mirrored(cfg, timeout=3600)
        mirrored = round(time.monotonic() - t0, 1)
        # The manager's volume list can take minutes at this size: the longest timeout Soteria allows.
        env = {**os.environ, **cluster.exports(cfg), "DJANGO_SETTINGS_MODULE": "soteria_site.settings",
               "SOTERIA_UPSTREAM_TIMEOUT_SECONDS": "300"}
        env.setdefault("SOTERIA_DATA_DIR", tempfile.mkdtemp(prefix="soteria-bench-data-"))
        result = {"pvcs": seeded["pvcs"], "backups": seeded["backups"], "sandbox_up_seconds": round(up_seconds, 1),
                  "seed_seconds": seeded["seconds"], "seed_kubernetes_seconds": seeded["kubernetes_seconds"],
                  "seed_and_crds_written_seconds": mirrored,
                  "manager_scan_ns_per_volume_and_backup": faults.config(cfg)["volume_list_scan_ns"]}
        for way in args.ways.split(","):
            repeat = args.repeat if way == "crd" else args.rest_repeat
            child = subprocess.run([sys.executable, __file__, "--measure", way, "--repeat", str(repeat),
                                    "--state-dir", str(cfg.state_dir), "--port-base", str(args.port_base)],
                                   env=env, capture_output=True, text=True, cwd=REPO)
            if child.returncode:
                result[way] = {"failed": child.stderr[-2000:]}
                continue
            result[way] = json.loads(child.stdout.strip().splitlines()[-1])
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            cluster.down(cfg)


if __name__ == "__main__":
    main()
