"""Restore drills at the client seams: Jobs and Pods as a stand-in for the cluster's, where a
verification Job really runs the manifest reader's command over a local directory standing
in for the scratch claim, and helpers that take a manifest of a tree as a Job would."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from backups import manifests
from backups.drivers import drill_jobs
from backups.services import drill_records
from soteria_site.core import workloads
from soteria_site.core.timeparse import format_time
from soteria_site.core.workloads import Job, Pod

from .fake_cluster import FakeCluster, _selects


def run_reader(root: Path, *, since: datetime | None = None, read_all: bool = False,
               expect: list[str] | None = None) -> str:
    """The reader's output over `root`, run as a Job runs it (`python3 -c <source> ROOT ...`)."""
    command = manifests.command(str(root), since=since, read_all=read_all, expect=expect)
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def manifest_of(root: Path) -> manifests.Manifest:
    """The manifest a backup's manifest Job would record of `root`."""
    return manifests.parse_output(run_reader(root))


def record_manifest(namespace: str, pvc: str, key: str, manifest: manifests.Manifest, when: datetime) -> None:
    drill_records.update(namespace, pvc, lambda r: r.add_manifest(key, manifest, when))


def record_drill(namespace: str, pvc: str, result: str, started: datetime, *, minutes: float = 3,
                 reason: str = "", differences: tuple[str, ...] = (), backup: str = "backup-1",
                 drill_id: str = "") -> dict:
    """Store a drill of the PVC in its verification record, as the drill service writes it (a
    running drill has no end), for tests of what reads the records."""
    drill = {"id": drill_id or f"{started:%Y%m%d-%H%M%S}-{result[:6]}", "namespace": namespace, "pvc": pvc,
             "driver": "longhorn", "volume": f"pvc-{namespace}-{pvc}", "backup": backup,
             "started_at": format_time(started),
             "finished_at": None if result == "running" else format_time(started + timedelta(minutes=minutes)),
             "result": result, "reason": reason or f"drill {result}", "differences": list(differences),
             "requested_by": "tester"}
    drill_records.update(namespace, pvc, lambda r: r.put_drill(drill))
    return drill


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


class FakeWorkloads:
    """Jobs and Pods at the workloads seam. A created Job runs its container's command at
    once, with the claim mount (/data) replaced by `mounted`, and ends `ends_as`."""

    def __init__(self, mounted: Path) -> None:
        self.mounted = mounted
        self.ends_as = workloads.COMPLETE
        self.jobs: dict[tuple[str, str], Job] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.created: list[dict] = []
        self.deleted: list[tuple[str, str]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeWorkloads:
        for name in ("create_job", "delete_job", "list_jobs", "list_pods", "pod_log"):
            monkeypatch.setattr(workloads, name, getattr(self, name))
        return self

    def add_job(self, namespace: str, name: str, labels: dict[str, str], state: str = workloads.RUNNING) -> Job:
        job = Job(namespace=namespace, name=name, uid=f"uid-{name}", state=state, labels=dict(labels))
        self.jobs[(namespace, name)] = job
        return job

    def create_job(self, namespace: str, body: dict) -> Job:
        self.created.append(body)
        meta = body["metadata"]
        container = body["spec"]["template"]["spec"]["containers"][0]
        command = [str(self.mounted) if part == drill_jobs.VERIFY_MOUNT else part for part in container["command"]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        self.logs[(namespace, f"{meta['name']}-pod")] = done.stdout + done.stderr
        return self.add_job(namespace, meta["name"], meta["labels"], self.ends_as)

    def delete_job(self, namespace: str, name: str) -> None:
        self.deleted.append((namespace, name))
        self.jobs.pop((namespace, name), None)

    def list_jobs(self, label_selector: str, namespace: str | None = None) -> list[Job]:
        return [j for j in self.jobs.values() if namespace in (None, j.namespace) and _selects(label_selector, j.labels)]

    def list_pods(self, label_selector: str | None = None, namespace: str | None = None) -> list[Pod]:
        return [Pod(namespace=j.namespace, name=f"{j.name}-pod", phase="Succeeded", node_name="n1",
                    labels={"job-name": j.name})
                for j in self.jobs.values()
                if namespace in (None, j.namespace) and _selects(label_selector or "", {"job-name": j.name})]

    def pod_log(self, namespace: str, name: str, container: str, tail_lines: int = 40,
                limit_bytes: int = 8192) -> str:
        lines = self.logs.get((namespace, name), "").splitlines(keepends=True)
        return "".join(lines[-tail_lines:])[-limit_bytes:]


def restores_finish_at_once(cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Longhorn volume restored from a backup is done restoring as soon as it exists."""
    from backups.clients import longhorn

    created = longhorn.create_volume

    def create_volume(name, **kwargs):
        volume = created(name, **kwargs)
        cluster.volumes[name] = replace(volume, restore_required=False, restore_initiated=False, robustness="healthy")
        return cluster.volumes[name]

    monkeypatch.setattr(longhorn, "create_volume", create_volume)
