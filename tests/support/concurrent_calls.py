"""Many clients at once against a real server, and what Soteria left behind in the cluster.

`at_once` starts one thread per call and releases them together through a barrier, so the
requests reach gunicorn within a few milliseconds of each other; each call opens its own
connection (tests.support.http.call). `labelled` counts, by Soteria's labels, what a
restore or a backup created: the evidence that losers of a race left no orphans.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from sandbox.config import SandboxConfig

T = TypeVar("T")


def at_once(calls: list[Callable[[], T]], timeout: float = 300.0) -> list[T]:
    """Run every call in its own thread, all released at the same moment; their results in order.
    An exception in a call is re-raised here (the first one)."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], T]) -> None:
        try:
            barrier.wait(timeout)
            results[index] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, c), name=f"at-once-{i}") for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), f"calls still running after {timeout:.0f}s"
    if errors:
        raise errors[0]
    return results


def statuses(replies) -> Counter:
    """status -> how many replies had it (a readable assertion message)."""
    return Counter(r.status for r in replies)


def outcome(replies) -> str:
    """The replies in one line, for the test's output: '200 x1, 409 x9 (target_exists x6, ...)'."""
    codes = Counter(r.json().get("error", "") for r in replies if r.status >= 400)
    return (", ".join(f"{status} x{n}" for status, n in sorted(statuses(replies).items()))
            + (f" ({', '.join(f'{code} x{n}' for code, n in sorted(codes.items()))})" if codes else ""))


def _apis(cfg: SandboxConfig):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cfg.kubeconfig))
    return client.CoreV1Api(api), client.BatchV1Api(api)


def batch(cfg: SandboxConfig):
    """A BatchV1Api on the sandbox's kubeconfig."""
    return _apis(cfg)[1]


def labelled(cfg: SandboxConfig, namespace: str, selector: str) -> dict[str, list[str]]:
    """Names of the PVCs, Jobs and Secrets in `namespace`, and of the PVs anywhere, that carry
    the labels of `selector` (a Kubernetes label selector)."""
    core, batch = _apis(cfg)
    return {
        "pvcs": sorted(p.metadata.name for p in
                       core.list_namespaced_persistent_volume_claim(namespace, label_selector=selector).items),
        "pvs": sorted(p.metadata.name for p in core.list_persistent_volume(label_selector=selector).items),
        "jobs": sorted(j.metadata.name for j in batch.list_namespaced_job(namespace, label_selector=selector).items),
        "secrets": sorted(s.metadata.name for s in
                          core.list_namespaced_secret(namespace, label_selector=selector).items),
    }


def job_finished(cfg: SandboxConfig, namespace: str, name: str) -> bool:
    """Whether the Job completed or failed (the Job controller set its condition)."""
    _, batch = _apis(cfg)
    status = batch.read_namespaced_job(name, namespace).status
    return bool(status.succeeded or status.failed)
