"""One live inventory build shared by every caller that asks while it runs (single flight).

Eight people opening the inventory at once should cost the upstream lists of one build,
whichever gunicorn process or thread answers them. The processes share only the database,
so the flight is coordinated through the shared database cache:

- A caller tries to become the leader of its scope (every namespace, or one) with
  `cache.add` on the scope's lock, whose value names the flight. The leader builds, stores
  the answer (or its error) under the scope's result key, then releases the lock.
- A caller that finds the lock taken follows that flight: it polls a small "done" marker
  until the leader published, then reads the answer once and filters it by its own
  ?namespace= and visible namespaces.
- The lock is a lease of LEASE_SECONDS that the leader renews while it builds. A leader that
  dies (killed, timed out by gunicorn) stops renewing; its lock expires and one follower
  becomes the next leader, so nobody waits for a dead process longer than one lease.

A follower never takes an answer whose build started before its flight did, so the
answer is as live as a build of its own would have been, up to the leader's head start.
A request for one namespace joins a running build of every namespace when there is one,
and otherwise runs its own, smaller, flight.

What a leader publishes is cut by namespace: each namespace's rows pickled on their own and,
when the leader's caller is the API, each namespace's JSON as the API answers it. So a
follower's answer is the chosen namespaces' bytes put together, not a render of its own, and
no single pickle, unpickle or JSON encoding holds the interpreter (and with it /healthz and
every other request of that process) for more than one namespace's rows.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.core.cache import cache
from django.db import connection

from soteria_site.core.errors import SoteriaError, UpstreamTimeout

from ..types import Inventory, NamespaceGroup
from . import inventory

log = logging.getLogger(__name__)

LEASE_SECONDS = 10  # a silent leader is given up after this long
POLL_SECONDS = 0.05  # how often a follower looks for the leader's answer
WAIT_SECONDS = 300  # a follower's whole wait, however many leaders die before it
RESULT_SECONDS = 120  # how long an answer stays readable for late followers
ALL = "*"


@dataclass(frozen=True)
class Flight:
    token: str
    started_ns: int


@dataclass(frozen=True)
class Failure:
    """A leader's error, as its followers raise it again (same class, status and detail)."""

    error_class: type
    state: dict
    detail: str

    def rebuild(self) -> SoteriaError:
        exc = self.error_class.__new__(self.error_class)
        Exception.__init__(exc, self.detail)
        exc.__dict__.update(self.state)
        return exc


@dataclass(frozen=True)
class Published:
    """One build, by namespace (sorted): its rows pickled, and its JSON when rendered."""

    generated_at: datetime
    rows: tuple[tuple[str, bytes], ...]
    json: tuple[tuple[str, bytes], ...] | None

    def chosen(self, namespace: str | None, visible: frozenset[str] | None) -> list[int]:
        return [i for i, (name, _) in enumerate(self.rows)
                if (namespace is None or name == namespace) and (visible is None or name in visible)]


Render = Callable[[NamespaceGroup], bytes]


def build(namespace: str | None = None, visible: frozenset[str] | None = None) -> Inventory:
    """The live inventory of `namespace` (None: every one), only `visible` namespaces when
    given, from the build running now or from a new one that concurrent callers share."""
    found = _published(namespace, None)
    items = [item for i in found.chosen(namespace, visible) for item in pickle.loads(found.rows[i][1])]
    return Inventory(generated_at=found.generated_at, items=items)


def rendered(namespace: str | None, visible: frozenset[str] | None, render: Render) -> tuple[datetime, list[bytes]]:
    """As build(), as the JSON of each chosen namespace (`render` of its group), in order: the
    leader's rendering when it made one, so concurrent API callers render the inventory once."""
    found = _published(namespace, render)
    chosen = found.chosen(namespace, visible)
    if found.json is not None:
        return found.generated_at, [found.json[i][1] for i in chosen]
    return found.generated_at, [render(NamespaceGroup(found.rows[i][0], pickle.loads(found.rows[i][1])))
                                for i in chosen]


def _published(namespace: str | None, render: Render | None) -> Published:
    if namespace is not None and _running(ALL) is not None:
        return _shared(ALL, lambda: _cut(inventory.build(), render))
    scope = ALL if namespace is None else namespace
    return _shared(scope, lambda: _cut(inventory.build(namespace), render))


def _cut(found: Inventory, render: Render | None) -> Published:
    groups = found.by_namespace()
    return Published(generated_at=found.generated_at,
                     rows=tuple((group.name, pickle.dumps(group.pvcs, pickle.HIGHEST_PROTOCOL)) for group in groups),
                     json=tuple((group.name, render(group)) for group in groups) if render else None)


def _keys(scope: str) -> tuple[str, str, str]:
    base = f"soteria:inventory-flight:{scope}"
    return f"{base}:lock", f"{base}:done", f"{base}:result"


def _running(scope: str) -> Flight | None:
    return cache.get(_keys(scope)[0])


def _shared(scope: str, work: Callable[[], Published]) -> Published:
    lock_key, done_key, result_key = _keys(scope)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        mine = Flight(uuid.uuid4().hex, time.time_ns())
        if cache.add(lock_key, mine, timeout=LEASE_SECONDS):
            return _lead(scope, mine, work)
        leader = cache.get(lock_key)
        if leader is None:
            continue  # released between the two reads: try to lead again
        outcome = _follow(scope, leader, deadline)
        if outcome is not None:
            if isinstance(outcome, Failure):
                raise outcome.rebuild()
            return outcome
        if time.monotonic() > deadline:
            raise UpstreamTimeout("inventory", f"no inventory build finished within {WAIT_SECONDS} s")
        log.warning("inventory build %s stopped without an answer; building again", leader.token)


def _lead(scope: str, mine: Flight, work: Callable[[], Published]) -> Published:
    lock_key, done_key, result_key = _keys(scope)
    stop = threading.Event()
    beat = threading.Thread(target=_renew, args=(lock_key, mine, stop), daemon=True,
                            name=f"inventory-flight-{mine.token[:8]}")
    beat.start()
    try:
        try:
            found = work()
        except SoteriaError as exc:
            _publish(done_key, result_key, mine, Failure(type(exc), dict(exc.__dict__), exc.detail))
            raise
        _publish(done_key, result_key, mine, found)
        return found
    finally:
        stop.set()
        beat.join()
        if cache.get(lock_key) == mine:
            cache.delete(lock_key)


def _publish(done_key: str, result_key: str, flight: Flight, outcome) -> None:
    """The answer first, then the small marker followers poll, so no follower polls the answer."""
    cache.set(result_key, (flight, outcome), timeout=RESULT_SECONDS)
    cache.set(done_key, flight, timeout=RESULT_SECONDS)


def _renew(lock_key: str, mine: Flight, stop: threading.Event) -> None:
    """Keep the leader's lease while it builds (this thread dies with the process)."""
    try:
        while not stop.wait(LEASE_SECONDS / 3):
            if cache.get(lock_key) == mine:
                cache.touch(lock_key, LEASE_SECONDS)
    finally:
        connection.close()


def _follow(scope: str, leader: Flight, deadline: float):
    """The answer of `leader`'s flight (or of a later one); None when the leader stopped
    without one (its lease expired or it was released unanswered)."""
    lock_key, done_key, result_key = _keys(scope)
    while time.monotonic() < deadline:
        done = cache.get(done_key)
        if done is not None and done.started_ns >= leader.started_ns:
            published = cache.get(result_key)
            if published is not None and published[0].started_ns >= leader.started_ns:
                return published[1]
        if cache.get(lock_key) != leader:
            done = cache.get(done_key)
            if done is None or done.started_ns < leader.started_ns:
                return None
            continue  # published just now: read it above
        time.sleep(POLL_SECONDS)
    return None
