"""Every performance benchmark at one scale, one table (docs/performance.md).

    .venv/bin/python bench/run.py --scale 10000            # all of them
    .venv/bin/python bench/run.py --scale 1000 --only metrics_scrape,flight_concurrency

Each benchmark module in MODULES has `run(scale, port_base) -> list[Row]` and starts (and
stops) its own sandbox on its own port base, so they run one after another without
sharing state. Rows with a target say whether it was met; absolute figures are reported
as measured. Run by hand, never in CI: at 10,000 PVCs seeding alone takes minutes.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import common  # noqa: E402

# bench/<module>.py, in the order they run (each one's port base is BASE + 400 * its index).
MODULES = ["inventory_scale", "metrics_scale", "flight_concurrency", "batch_namespace", "policy_evaluate",
           "restic_inventory"]
BASE = 29000
# Targets measured at a fixed size whatever --scale says (the numbers).
FIXED_SCALE = {"batch_namespace": 500}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=10000, help="PVCs (default 10,000)")
    parser.add_argument("--only", default="", help="comma-separated module names (default: all)")
    args = parser.parse_args(argv)
    chosen = [m for m in MODULES if not args.only or m in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - set(MODULES)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; known: {', '.join(MODULES)}")
    rows: list[common.Row] = []
    failed = []
    for name in chosen:
        started = time.monotonic()
        print(f"== {name} at {args.scale} PVCs", file=sys.stderr, flush=True)
        try:
            scale = FIXED_SCALE.get(name, args.scale)
            rows += importlib.import_module(name).run(scale, BASE + 400 * MODULES.index(name))
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        print(f"== {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print(common.table(rows))
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}", file=sys.stderr)
    missed = [r for r in rows if r.verdict == "MISSED"]
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
