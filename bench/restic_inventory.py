"""Target 9: with the restic driver the inventory costs one repository listing whatever the
number of PVCs, measured against a repository of 1,000 snapshots.

Run by hand (results go in docs/performance.md):

    .venv/bin/python bench/restic_inventory.py --scale 1000

It starts its own sandbox (ports from --port-base), creates N bound PVCs (100 a namespace)
through the real apiserver, the restic Secret, and a local restic repository holding 1,000
snapshots tagged for the first PVCs as Soteria's backup Jobs tag them (spread evenly, at
least one each). Then, in a fresh Python process with SOTERIA_BACKUP_DRIVER=restic, it builds
the inventory of one namespace (100 PVCs) and of every namespace (N PVCs) and counts restic
runs (soteria_upstream_requests_total{system="restic"}) for each.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import common  # noqa: E402
from common import Row  # noqa: E402

SNAPSHOTS = 1_000
PER_NAMESPACE = 100
PASSWORD = "bench-only"
SECRET_NAMESPACE = "bench-restic"
TARGET = "9 restic inventory"


# --- In the measuring process ----------------------------------------------------------------
def measure(namespace: str) -> dict:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from backups.api.serializers import InventoryResponse
    from backups.services import inventory
    from soteria_site.core.metrics import UPSTREAM_REQUESTS

    def runs() -> float:  # every restic run, whatever its command or outcome
        return sum(s.value for m in UPSTREAM_REQUESTS.collect() for s in m.samples
                   if s.name.endswith("_total") and s.labels.get("system") == "restic")

    result = {}
    for scope, only in (("namespace", namespace), ("all", None)):
        before = runs()
        started = time.perf_counter()
        built = inventory.build(namespace=only)
        json.dumps(InventoryResponse(built).data)
        seconds = time.perf_counter() - started
        result[scope] = {"pvcs": len(built.items), "restic_runs": runs() - before, "seconds": seconds,
                         "with_backups": sum(1 for item in built.items if item.backup_count)}
    return result


# --- The driver ------------------------------------------------------------------------------
def _claims(cfg, scale: int) -> list[tuple[str, str]]:
    from sandbox import seed

    names = [f"restic-{n:03d}" for n in range(max(1, -(-scale // PER_NAMESPACE)))]
    seed.ensure_basics(cfg, [*names, SECRET_NAMESPACE])
    core, _ = seed._api(cfg)
    pairs = [(ns, f"data-{m:04d}") for ns in names for m in range(min(scale, PER_NAMESPACE))][:scale]

    def create(pair):
        pv, claim = seed.pv_and_pvc(cfg, pair[0], pair[1], "1Gi", "longhorn")
        seed._ignore_exists(core.create_persistent_volume, pv)
        seed._ignore_exists(core.create_namespaced_persistent_volume_claim, pair[0], claim)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(create, pairs))
    seed.wait_bound(cfg, pairs, timeout=900)
    secret = {"AWS_ACCESS_KEY_ID": "unused", "AWS_SECRET_ACCESS_KEY": "unused", "RESTIC_PASSWORD": PASSWORD}
    seed._ignore_exists(core.create_namespaced_secret, SECRET_NAMESPACE, {
        "metadata": {"name": "soteria-restic"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}})
    return pairs


def _repository(path: Path, pairs: list[tuple[str, str]]) -> float:
    """A local repository with SNAPSHOTS snapshots of one tiny file, tagged per PVC. Seconds taken."""
    from backups.drivers.restic_jobs import pvc_tags

    started = time.monotonic()
    env = {**os.environ, "RESTIC_PASSWORD": PASSWORD, "RESTIC_REPOSITORY": str(path)}
    subprocess.run(["restic", "init", "-q"], env=env, check=True, capture_output=True)
    owners = [pairs[i % len(pairs)] for i in range(SNAPSHOTS)]

    def backup(pair):
        tags = ",".join(pvc_tags(*pair))
        subprocess.run(["restic", "backup", "-q", "--stdin", "--stdin-filename", "data", "--tag", tags],
                       env=env, input=f"{pair}\n".encode(), check=True, capture_output=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(backup, owners))
    return time.monotonic() - started


def run(scale: int = 10_000, port_base: int = 29400, state_dir: str | None = None,
        keep: bool = False) -> list[Row]:
    from sandbox import cluster
    from sandbox.config import SandboxConfig

    cfg = SandboxConfig(state_dir=Path(state_dir or tempfile.mkdtemp(prefix="soteria-bench-")), port_base=port_base)
    cluster.up(cfg, seed=False)
    try:
        pairs = _claims(cfg, scale)
        repository = cfg.state_dir / "restic-bench-repository"
        made = 0.0 if repository.exists() else _repository(repository, pairs)
        env = {**os.environ, **cluster.exports(cfg), "DJANGO_SETTINGS_MODULE": "soteria_site.settings",
               "SOTERIA_BACKUP_DRIVER": "restic", "SOTERIA_RESTIC_REPOSITORY": str(repository),
               "SOTERIA_SECRET_NAMESPACE": SECRET_NAMESPACE, "SOTERIA_RESTIC_TIMEOUT_SECONDS": "600",
               "SOTERIA_DATA_DIR": tempfile.mkdtemp(prefix="soteria-bench-data-")}
        done = subprocess.run([sys.executable, __file__, "--measure", pairs[0][0]], env=env, capture_output=True,
                              text=True, cwd=REPO)
        if done.returncode:
            raise RuntimeError(f"the restic measurement failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        if not keep:
            cluster.down(cfg)
    one, every = result["namespace"], result["all"]
    return [
        Row(TARGET, f"restic listings per inventory, {every['pvcs']:,} PVCs", every["restic_runs"], "calls", 1,
            f"{SNAPSHOTS:,} snapshots; {every['with_backups']:,} PVCs have some"),
        Row(TARGET, f"restic listings per inventory, one namespace ({one['pvcs']:,} PVCs)", one["restic_runs"],
            "calls", 1, f"{SNAPSHOTS:,} snapshots"),
        Row(TARGET, f"restic inventory build + JSON answer, {every['pvcs']:,} PVCs", every["seconds"], "s",
            detail=f"{SNAPSHOTS:,} snapshots in a local repository, restic's cache warm; the first build "
                   f"(one namespace, cache cold) took {one['seconds']:.2f} s"),
        Row(TARGET, "making the repository (restic backup x 1,000)", made, "s", detail="not part of any target"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=10_000, help="PVCs (100 a namespace)")
    parser.add_argument("--port-base", type=int, default=29400)
    parser.add_argument("--state-dir", help="the sandbox's state (its repository is reused when there)")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child process: one namespace's name
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    print(common.table(run(args.scale, args.port_base, args.state_dir, args.keep)))


if __name__ == "__main__":
    main()
