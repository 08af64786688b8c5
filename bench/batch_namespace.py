"""Target 7: a namespace backup of `scale` PVCs against a Longhorn manager that takes 20 ms a
call, a few PVCs at a time, costs at most a quarter of the same backup done one PVC at a time,
and never has more calls in flight than the cap allows.

It starts a private sandbox (the real apiserver and the Longhorn emulator; no kubelet, so the
manifest Jobs the backups create are made but never run), seeds one namespace of `scale` bound
Longhorn PVCs, gives the emulator `call_delay_seconds` 0.02, and in a fresh Python process runs
`backup_namespace` twice: with SOTERIA_NAMESPACE_CONCURRENCY 1 (sequential) and with the cap
(CAP, below). The emulator's peak of /v1 calls in flight (GET /sandbox/calls) is read after
each run.

    .venv/bin/python bench/batch_namespace.py --scale 500 [--cap 8]

Rows: parallel / sequential wall time (target <= 0.25), the parallel run's peak of Longhorn
calls in flight (target <= the cap), and as absolute figures both wall times and the Longhorn
calls a PVC costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import common  # noqa: E402
from bench.common import Row  # noqa: E402

TARGET = "7 namespace backup"
CALL_SECONDS = 0.02
CAP = 8  # the cap of the parallel run (SOTERIA_NAMESPACE_CONCURRENCY, default 4, at most 32)
NAMESPACE = "batch-000"


def measure(state_dir: str, port_base: int, cap: int) -> dict:
    """In this (fresh) process, against the running sandbox: the sequential run, then the capped one."""
    from sandbox import faults
    from sandbox.config import SandboxConfig

    cfg = SandboxConfig(state_dir=Path(state_dir), port_base=port_base)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from backups.services import backup

    settings.SOTERIA_NAMESPACE_CONCURRENCY = cap
    backup.backup_namespace(NAMESPACE, [], "bench", dry_run=True)  # imports the SDKs, opens connections
    runs = {}
    for name, concurrency in (("sequential", 1), ("parallel", cap)):
        settings.SOTERIA_NAMESPACE_CONCURRENCY = concurrency
        time.sleep(2)  # the previous run's backups end (op_seconds is short) and the snapshot names' second moves on
        faults.reset_calls(cfg)
        t0 = time.monotonic()
        result = backup.backup_namespace(NAMESPACE, [], "bench")
        seconds = time.monotonic() - t0
        calls = faults.calls(cfg)
        runs[name] = {"seconds": seconds, "cap": concurrency, "totals": result.totals,
                      "errors": sorted({o.error for o in result.results if o.error}),
                      "longhorn_calls": sum(calls.values()), "peak": faults.peak_concurrency(cfg)}
    return runs


def _sandbox(port_base: int):
    from sandbox import cluster, kube
    from sandbox.config import SandboxConfig

    cfg = SandboxConfig(state_dir=Path(tempfile.mkdtemp(prefix="soteria-bench-batch-")), port_base=port_base)
    cfg.save()
    kube.start(cfg)
    cluster.start_longhorn(cfg)
    return cfg


def run(scale: int, port_base: int, cap: int = CAP) -> list[Row]:
    from sandbox import cluster, faults, seed

    cfg = _sandbox(port_base)
    try:
        seed.scale(cfg, 1, scale, 1, prefix="batch", wait=True)
        faults.configure(cfg, op_seconds=0.05, call_delay_seconds=CALL_SECONDS)
        env = {**os.environ, **cluster.exports(cfg), "DJANGO_SETTINGS_MODULE": "soteria_site.settings",
               "SOTERIA_DATA_DIR": tempfile.mkdtemp(prefix="soteria-bench-batch-data-")}
        child = subprocess.run([sys.executable, __file__, "--measure", "--state-dir", str(cfg.state_dir),
                                "--port-base", str(port_base), "--cap", str(cap)],
                               env=env, capture_output=True, text=True, cwd=REPO)
        if child.returncode:
            raise RuntimeError(f"the measuring process failed (exit {child.returncode}):\n{child.stderr[-3000:]}")
        runs = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        cluster.down(cfg)
    seq, par = runs["sequential"], runs["parallel"]
    totals = f"{par['totals']['success']} started, {par['totals']['failed']} failed" + (
        f" ({', '.join(par['errors'])})" if par["errors"] else "")
    return [
        Row(TARGET, f"parallel (cap {cap}) / sequential wall time, {scale} PVCs, {CALL_SECONDS * 1000:g} ms a call",
            par["seconds"] / seq["seconds"], "x", 0.25, totals),
        Row(TARGET, f"peak Longhorn calls in flight (cap {cap})", par["peak"], "calls", cap,
            f"sequential run: {seq['peak']}"),
        Row(TARGET, "sequential namespace backup", seq["seconds"], "s"),
        Row(TARGET, f"parallel namespace backup (cap {cap})", par["seconds"], "s"),
        Row(TARGET, "Longhorn calls per PVC backed up", par["longhorn_calls"] / max(scale, 1), "calls"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=500, help="PVCs in the namespace")
    parser.add_argument("--port-base", type=int, default=30200)
    parser.add_argument("--cap", type=int, default=CAP, help="SOTERIA_NAMESPACE_CONCURRENCY of the parallel run")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.state_dir, args.port_base, args.cap)))
        return
    print(common.table(run(args.scale, args.port_base, args.cap)))


if __name__ == "__main__":
    main()
