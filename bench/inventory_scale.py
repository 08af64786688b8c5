"""Targets 1 and 2: the live inventory against the bare cost of its own upstream calls, and the
peak memory of the process that builds it, at N Longhorn PVCs with K backups each.

Run by hand (results go in docs/performance.md):

    .venv/bin/python bench/inventory_scale.py --scale 10000 --backups 50

It starts its own sandbox (state in a temporary directory, ports from --port-base) and seeds
it: N PVs and PVCs through the real apiserver, N Longhorn volumes with K Completed backups each
in the emulator, which writes them as Longhorn CRs. Then, each in a fresh Python process:

- `time`: `repeat` rounds of (a) the inventory's six Kubernetes lists sent bare, the same
  requests and pages, every body read and thrown away unparsed, one list after another, and
  (b) `inventory.build()` plus the JSON answer of GET /v1/inventory. The ratio is the median
  of (b) over the median of (a), both from the same run; list operations are counted from
  soteria_upstream_requests_total (pages of one list count as one).
- `memory`: one inventory build and its JSON answer; the process's peak RSS.

`--state-dir DIR --keep` keeps the sandbox; run again with the same DIR to measure without
seeding again (a seeded sandbox is recognised by its marker file).
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
sys.path.insert(0, str(REPO / "bench"))

import common  # noqa: E402
from common import Row  # noqa: E402

BACKUPS = 50
PER_NAMESPACE = 100
OPERATIONS = ("pvcs.list", "pvs.list", "storageclasses.list", "longhorn.volumes.list", "longhorn.backups.list",
              "longhorn.backupvolumes.list")
TARGET_TIME = "1 inventory vs its upstream calls"
TARGET_MEMORY = "2 inventory memory"


# --- In the measuring process ----------------------------------------------------------------
def _setup() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # the inventory reads the failed backups it remembers


def _reset_peak() -> None:
    """Forget the peak RSS so far: Linux carries a parent's peak into a child across fork and
    exec (ru_maxrss), so the driver's own seeding would count (clear_refs, Linux 4.0 and later)."""
    Path("/proc/self/clear_refs").write_text("5")


def _rss_mib() -> float:
    """The peak RSS since the last _reset_peak (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bare_lists() -> dict[str, float]:
    """Seconds per list: the requests the inventory sends, bodies read and not parsed."""
    from django.conf import settings

    from backups.clients.longhorn_crd import GROUP, VERSION
    from soteria_site.core import kubernetes as k

    namespace = settings.SOTERIA_LONGHORN_NAMESPACE
    custom = k._custom().list_namespaced_custom_object
    lists = {
        "pvcs.list": (k._core().list_persistent_volume_claim_for_all_namespaces, ()),
        "pvs.list": (k._core().list_persistent_volume, ()),
        "longhorn.volumes.list": (custom, (GROUP, VERSION, namespace, "volumes")),
        "longhorn.backups.list": (custom, (GROUP, VERSION, namespace, "backups")),
        "longhorn.backupvolumes.list": (custom, (GROUP, VERSION, namespace, "backupvolumes")),
    }
    seconds = {}
    started = time.perf_counter()
    k._call("storageclasses.list", k._storage().list_storage_class, count=False, raw=True)  # one page, as listed
    seconds["storageclasses.list"] = time.perf_counter() - started
    for operation, (fn, args) in lists.items():
        started, token = time.perf_counter(), None
        while True:
            body = k._call(operation, fn, *args, limit=k.PAGE_SIZE, count=False, raw=True,
                           **({"_continue": token} if token else {}))
            token = k._continue_token(operation, body)
            if not token:
                break
        seconds[operation] = time.perf_counter() - started
    return seconds


def _inventory() -> tuple[float, int, int, dict[str, int]]:
    """(seconds, rows, answer bytes, list operations) of one inventory and its JSON answer."""
    from backups.api.serializers import InventoryResponse
    from backups.services import inventory
    from soteria_site.core.metrics import UPSTREAM_REQUESTS

    def counts():
        return {op: UPSTREAM_REQUESTS.labels("kubernetes", op, "ok")._value.get() for op in OPERATIONS}

    before = counts()
    started = time.perf_counter()
    built = inventory.build()
    body = json.dumps(InventoryResponse(built).data)
    seconds = time.perf_counter() - started
    lists = {op: int(n - before[op]) for op, n in counts().items() if n != before[op]}
    return seconds, len(built.items), len(body), lists


def measure_time(repeat: int) -> dict:
    _setup()
    bare, built, lists, rows, size, per_list = [], [], {}, 0, 0, []
    for _ in range(repeat):  # interleaved, so both see the same load on a shared machine
        seconds = _bare_lists()
        per_list.append(seconds)
        bare.append(sum(seconds.values()))
        took, rows, size, lists = _inventory()
        built.append(took)
    return {"bare_seconds": bare, "inventory_seconds": built, "rows": rows, "answer_bytes": size, "lists": lists,
            "bare_per_list": {op: common.median([s[op] for s in per_list]) for op in per_list[0]}}


def measure_memory() -> dict:
    _reset_peak()
    _setup()
    from backups.api.serializers import InventoryResponse  # noqa: F401  (loaded before the baseline)
    from backups.services import inventory  # noqa: F401

    baseline = _rss_mib()
    _, rows, _, _ = _inventory()
    return {"baseline_rss_mib": baseline, "peak_rss_mib": _rss_mib(), "rows": rows}


# --- The driver ------------------------------------------------------------------------------
def _seed(cfg, scale: int, backups: int) -> dict:
    from sandbox import faults, procs, seed

    marker = cfg.state_dir / "bench-inventory-seed.json"
    if marker.exists():
        return json.loads(marker.read_text())
    namespaces, per_namespace = max(1, -(-scale // PER_NAMESPACE)), min(scale, PER_NAMESPACE)
    started = time.monotonic()
    # Once the claims are bound the controller manager has no part in an inventory, and its
    # garbage collector and quota informers would hold every Longhorn CR written afterwards
    # (3.4 GB of its memory at about 300,000 of them): it is stopped before they are written.
    try:
        seeded = seed.scale(cfg, namespaces, per_namespace, backups, prefix="bench", wait=True,
                            on_bound=lambda: procs.stop(cfg, "kube-controller-manager"))
    except TimeoutError:  # the emulator is still writing Longhorn's CRs: wait longer below
        seeded = {"pvcs": namespaces * per_namespace, "backups": namespaces * per_namespace * backups}
    faults.wait_mirrored(cfg, timeout=4 * 3600)
    seeded = {"pvcs": seeded["pvcs"], "backups": seeded["backups"], "seconds": round(time.monotonic() - started, 1)}
    marker.write_text(json.dumps(seeded))
    return seeded


def _child(mode: str, env: dict, repeat: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--measure", mode, "--repeat", str(repeat)],
                          env=env, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise RuntimeError(f"the {mode} measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(scale: int = 10_000, port_base: int = 29000, backups: int = BACKUPS, repeat: int = 3,
        state_dir: str | None = None, keep: bool = False) -> list[Row]:
    from sandbox import cluster
    from sandbox.config import SandboxConfig

    cfg = SandboxConfig(state_dir=Path(state_dir or tempfile.mkdtemp(prefix="soteria-bench-")), port_base=port_base,
                        longhorn_crs_via_etcd=True, apiserver_watch_cache=False)
    cluster.up(cfg, seed=False)
    try:
        seeded = _seed(cfg, scale, backups)
        env = {**os.environ, **cluster.exports(cfg), "DJANGO_SETTINGS_MODULE": "soteria_site.settings",
               "SOTERIA_BACKUP_DRIVER": "longhorn", "SOTERIA_UPSTREAM_TIMEOUT_SECONDS": "300",
               "SOTERIA_DATA_DIR": tempfile.mkdtemp(prefix="soteria-bench-data-")}
        timed = _child("time", env, repeat)
        memory = _child("memory", env, 1)
    finally:
        if not keep:
            cluster.down(cfg)
    bare, built = common.median(timed["bare_seconds"]), common.median(timed["inventory_seconds"])
    size = f"{seeded['pvcs']:,} PVCs x {backups} backups"
    slowest = max(timed["bare_per_list"], key=timed["bare_per_list"].get)
    return [
        Row(TARGET_TIME, "inventory (build + JSON answer) / its bare Kubernetes lists", built / bare, "x", 1.2,
            f"{size}; medians of {repeat} interleaved rounds"),
        Row(TARGET_TIME, "inventory build + JSON answer", built, "s",
            detail=f"{timed['rows']:,} rows, {timed['answer_bytes'] / 2 ** 20:.1f} MiB answer; runs "
                   + ", ".join(f"{s:.2f}" for s in timed["inventory_seconds"])),
        Row(TARGET_TIME, "bare lists, one after another, bodies not parsed", bare, "s",
            detail=f"slowest {slowest} {timed['bare_per_list'][slowest]:.2f} s; runs "
                   + ", ".join(f"{s:.2f}" for s in timed["bare_seconds"])),
        Row(TARGET_TIME, "Kubernetes list operations per inventory", sum(timed["lists"].values()), "calls",
            detail=", ".join(f"{op} {n}" for op, n in sorted(timed["lists"].items()))),
        Row(TARGET_MEMORY, "peak RSS of the process building the inventory", memory["peak_rss_mib"], "MiB", 300,
            f"{size}; one build + JSON answer in a fresh process"),
        Row(TARGET_MEMORY, "RSS of that process before the build (Django loaded)", memory["baseline_rss_mib"], "MiB"),
        Row(TARGET_TIME, "seeding the sandbox (apiserver + Longhorn CRs written)", seeded.get("seconds") or 0, "s",
            detail="not part of any target"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=10_000, help="PVCs (100 a namespace)")
    parser.add_argument("--backups", type=int, default=BACKUPS, help="Completed backups per PVC")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds of bare lists and inventory")
    parser.add_argument("--port-base", type=int, default=29000)
    parser.add_argument("--state-dir", help="the sandbox's state (reused, not seeded again, when seeded)")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running")
    parser.add_argument("--measure", choices=("time", "memory"), help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure:
        result = measure_time(args.repeat) if args.measure == "time" else measure_memory()
        print(json.dumps(result))
        return
    rows = run(args.scale, args.port_base, args.backups, args.repeat, args.state_dir, args.keep)
    print(common.table(rows))


if __name__ == "__main__":
    main()
