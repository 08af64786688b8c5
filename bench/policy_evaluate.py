"""Target 8: one policy evaluation over `scale` PVCs with scale/10 policies, at most 2 s.

Kubernetes and Longhorn are the in-process fake the unit tests use (tests/support/fake_cluster.py),
so what is timed is the evaluator's own work and the inventory it builds, not an apiserver's
answer time: 100 PVCs a namespace, each with a few completed backups; one namespace-wide policy
per namespace and PVC-level policies for the rest (a third of them with `retain`); every 100th
PVC is due, so the first evaluation also starts that many backups (the fake's backups stay in
progress, so later runs skip them), and every run writes each policy's result to the policy
Secret. The call counts are those of the last run.

    .venv/bin/python bench/policy_evaluate.py --scale 10000

Rows: the median evaluation (the target), and as absolute figures the inventory build inside
it and the backups, retention reads and Secret writes it made.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import common  # noqa: E402
from bench.common import Row  # noqa: E402

TARGET = "8 policy evaluation"
LIMIT_SECONDS = 2.0
PVCS_PER_NAMESPACE = 100
REPEAT = 3


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soteria_site.settings")
    os.environ.setdefault("SOTERIA_DATA_DIR", tempfile.mkdtemp(prefix="soteria-bench-policy-"))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    settings.SOTERIA_SECRET_NAMESPACE = "soteria"
    settings.SOTERIA_POLICY_SECRET_NAME = "soteria-policies"


def _world(cluster, scale: int):
    """`scale` PVCs and scale/10 policies; returns the policies."""
    from policies.types import Policy
    from tests.support.fake_cluster import NOW

    namespaces = max(1, scale // PVCS_PER_NAMESPACE)
    created = NOW - timedelta(days=30)
    policies = [Policy(namespace=f"ns-{n:03d}", pvc="", interval_hours=24, created_at=created)
                for n in range(namespaces)]
    wanted = max(0, scale // 10 - namespaces)
    for i in range(scale):
        namespace, pvc = f"ns-{i % namespaces:03d}", f"data-{i:05d}"
        due = i % 100 == 0
        cluster.add_pvc(namespace, pvc, backups=[("Completed", hours, None) for hours in
                                                 ((30, 54, 78) if due else (1, 25, 49))])
        if len(policies) - namespaces < wanted and i % (scale // max(wanted, 1)) == 0:
            policies.append(Policy(namespace=namespace, pvc=pvc, interval_hours=12, created_at=created,
                                   retain=3 if len(policies) % 3 == 0 else None))
    return policies


def _measure(scale: int) -> dict:
    import pytest

    from backups.services import inventory
    from policies import evaluate, store
    from tests.support.fake_cluster import NOW, FakeCluster

    with pytest.MonkeyPatch.context() as monkeypatch:
        cluster = FakeCluster().install(monkeypatch)
        policies = _world(cluster, scale)
        store.update(lambda _current: policies)
        build_seconds: list[float] = []
        real_build = inventory.build

        def timed_build(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return real_build(*args, **kwargs)
            finally:
                build_seconds.append(time.perf_counter() - t0)

        monkeypatch.setattr(inventory, "build", timed_build)
        timings, cpu, due, started = [], [], 0, 0
        for run in range(REPEAT):
            cluster.calls.clear()
            at = NOW + timedelta(minutes=run)
            t0, c0 = time.perf_counter(), time.process_time()
            report = evaluate.evaluate(now=at, holder="bench")
            timings.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            assert report.leader
            due, started = max(due, len(report.due)), started + len(report.started)
        return {"seconds": timings, "cpu": cpu, "build": build_seconds, "policies": len(policies), "due": due,
                "started": started, "calls": dict(cluster.calls)}


def run(scale: int, port_base: int) -> list[Row]:  # noqa: ARG001 - no sandbox: the fake cluster
    _django()
    m = _measure(scale)
    evaluation, build = common.median(m["seconds"]), common.median(m["build"])
    own = common.median([total - part for total, part in zip(m["seconds"], m["build"], strict=True)])
    calls = m["calls"]
    detail = (f"{m['due']} due at the first run (later runs: in progress); runs "
              + ", ".join(f"{s:.2f}" for s in m["seconds"]) + " s")
    return [
        Row(TARGET, f"evaluate() over {scale:,} PVCs, {m['policies']:,} policies (median of {REPEAT})",
            evaluation, "s", LIMIT_SECONDS, detail),
        Row(TARGET, "CPU time of this process per evaluation (what a loaded machine does not change)",
            common.median(m["cpu"]), "s"),
        Row(TARGET, "of which the inventory build (fake cluster)", build, "s"),
        Row(TARGET, "of which the evaluator's own work", own, "s"),
        Row(TARGET, "retention reads of backup lists per evaluation", calls.get("list_backups", 0), "calls"),
        Row(TARGET, "policy Secret writes per evaluation", calls.get("replace_secret", 0), "calls"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=10_000, help="PVCs (policies: a tenth of it)")
    parser.add_argument("--port-base", type=int, default=30200, help="unused: no sandbox")
    args = parser.parse_args()
    print(common.table(run(args.scale, args.port_base)))


if __name__ == "__main__":
    main()
