"""Liveness and readiness, public whatever the auth settings.

/healthz answers without touching anything upstream. /readyz asks the
Kubernetes API and, with the Longhorn driver, the Longhorn manager, both at
once with a short timeout, and answers 503 naming what failed.

Anyone may call /readyz, so its body names each dependency with `ok` and, when
it failed, Soteria's stable error code, nothing more. The details (URLs,
versions, upstream messages, where the policy Secret is) go to Soteria's log,
once each time a dependency's state changes in this process, not at every probe.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from backups import drivers
from backups.drivers import DriverUnavailable
from soteria_site.core import kubernetes
from soteria_site.core.errors import SoteriaError

log = logging.getLogger(__name__)

# Dependency -> its last state in this process: "" when it answered, else the error code.
_states: dict[str, str] = {}
_states_lock = threading.Lock()


@never_cache
@require_safe
def healthz(request):
    return JsonResponse({"status": "ok"})


def _note(name: str, state: str, detail: str) -> None:
    """Log a dependency's state when it differs from the last one this process saw."""
    with _states_lock:
        previous = _states.get(name)
        _states[name] = state
    if previous == state:
        return
    if state:
        log.warning("readiness: %s failed (%s): %s", name, state, detail)
    else:
        log.info("readiness: %s %s%s", name, "answers again" if previous else "answers",
                 f" ({detail})" if detail else "")


def _check(name: str, probe) -> dict:
    try:
        detail = probe()
    except SoteriaError as exc:
        _note(name, exc.code, exc.detail)
        return {"ok": False, "error": exc.code}
    _note(name, "", detail or "")
    return {"ok": True}


def _driver(driver, timeout: float) -> str:
    """The driver's own probe; its hints are logged once per change, without failing readiness."""
    probe = driver.probe(timeout)
    for name, (code, text) in probe.hints.items():
        if code or _states.get(name):  # a hint only when there is, or was, a problem
            _note(name, code, text)
    return probe.detail


def _probes() -> dict:
    timeout = settings.SOTERIA_READY_TIMEOUT_SECONDS
    probes = {"kubernetes": lambda: f"Kubernetes {kubernetes.server_version(timeout=timeout)}"}
    try:
        driver = drivers.current()
    except DriverUnavailable:
        return probes  # a driver this version lacks has nothing to probe; requests answer 501
    probes[driver.name] = lambda: _driver(driver, timeout)
    return probes


def _policy_store() -> str:
    from policies import store

    return f"{len(store.load())} policies in {store.where()}"


@never_cache
@require_safe
def readyz(request):
    probes = _probes()
    with ThreadPoolExecutor(max_workers=len(probes) + 1) as pool:
        futures = {name: pool.submit(_check, name, probe) for name, probe in probes.items()}
        # Reported, but not a reason to take the pod out of service: an unreadable
        # policy Secret is fixed with kubectl while backups and restores go on.
        policies = pool.submit(_check, "policies", _policy_store)
        checks = {name: future.result() for name, future in futures.items()}
    ready = all(c["ok"] for c in checks.values())
    failed = [name for name, c in checks.items() if not c["ok"]]
    body = {"status": "ready" if ready else "unavailable", "checks": checks, "policies": policies.result()}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=200 if ready else 503)
