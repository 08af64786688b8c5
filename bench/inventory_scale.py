"""Inventory at scale: seed N namespaces x M PVCs x K backups into a private sandbox,
then time Soteria's inventory (the service and the JSON answer) and count its upstream calls.

Run by hand (results go in docs/benchmarks.md):

    .venv/bin/python bench/inventory_scale.py --namespaces 100 --pvcs 100 --backups 50

It starts its own sandbox on port base 31440 (state in a temporary directory) and
stops it at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--pvcs", type=int, default=100, help="PVCs per namespace")
    parser.add_argument("--backups", type=int, default=50, help="backups per PVC")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running")
    args = parser.parse_args()

    from sandbox import cluster, faults, seed
    from sandbox.config import SandboxConfig

    cfg = SandboxConfig(state_dir=Path(tempfile.mkdtemp(prefix="soteria-bench-")), port_base=31440)
    started = time.monotonic()
    cluster.up(cfg, seed=False)
    up_seconds = time.monotonic() - started
    try:
        seeded = seed.scale(cfg, args.namespaces, args.pvcs, args.backups, prefix="bench", wait=True)
        os.environ.update(cluster.exports(cfg))
        os.environ.setdefault("SOTERIA_DATA_DIR", tempfile.mkdtemp(prefix="soteria-bench-data-"))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soteria_site.settings")
        import django

        django.setup()
        from backups.api import present
        from backups.services import inventory

        timings, answer_bytes = [], 0
        calls = None
        for _ in range(args.repeat):
            faults.reset_calls(cfg)
            t0 = time.monotonic()
            inv = inventory.build()
            body = json.dumps(present.inventory(inv))
            timings.append(time.monotonic() - t0)
            answer_bytes = len(body)
            calls = faults.calls(cfg)
        result = {
            "pvcs": seeded["pvcs"], "backups": seeded["backups"], "sandbox_up_seconds": round(up_seconds, 1),
            "seed_seconds": seeded["seconds"], "seed_kubernetes_seconds": seeded["kubernetes_seconds"],
            "inventory_seconds": [round(t, 2) for t in timings], "inventory_rows": len(inv.items),
            "answer_megabytes": round(answer_bytes / 2 ** 20, 1), "longhorn_calls_per_inventory": calls,
            "peak_rss_megabytes": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            cluster.down(cfg)


if __name__ == "__main__":
    main()
