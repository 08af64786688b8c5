"""Fault injection, call counting and peak concurrency for the /v1 API.

Every /v1 request has a route key: an action name for `?action=` calls
("snapshotBackup", "backupList", "pvCreate", ...) or a route name such as
"volume.create", "volume.delete", "volumes.list", "backupvolumes.list".
The peak number of /v1 calls handled at once is kept beside the counts (a client's
concurrency cap can be checked against it). Faults match a key (or "*" for every route), optionally one resource name,
and apply to the next `count` matching calls (0 means until cleared):

- error:      answer a Longhorn-style 500 error body (status configurable);
- timeout:    hang for `delay` seconds (default 60) or until faults are cleared,
              then answer a 500 error; the request is not carried out;
- slow:       wait `delay` seconds (default 1) first, then carry the call out;
- fail_async: carry the call out, but the backup or restore it starts ends in
              state Error with `message`;
- unknown_async: (snapshotBackup) carry the call out, but the backup ends in
              state Unknown, as when the engine reports a state the manager does
              not know (engineapi ConvertEngineBackupState); `message` is its error.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

MODES = ("error", "timeout", "slow", "fail_async", "unknown_async")
DEFAULT_MESSAGE = "sandbox fault injected"


@dataclass
class Fault:
    action: str
    mode: str
    count: int = 1
    delay: float | None = None
    message: str = DEFAULT_MESSAGE
    status: int = 500
    target: str = ""
    id: int = 0
    hits: int = 0
    released: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def matches(self, key: str, target: str) -> bool:
        return self.action in ("*", key) and (not self.target or self.target == target)

    def public(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "released"}


def parse_fault(body: dict) -> Fault:
    """A Fault from the control API's JSON, or ValueError naming the bad field."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    action, mode = body.get("action"), body.get("mode")
    if not isinstance(action, str) or not action:
        raise ValueError("action: a route key or action name is required")
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}")
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError("count: must be an integer >= 0 (0 = until cleared)")
    delay = body.get("delay")
    if delay is not None and (not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0):
        raise ValueError("delay: must be a number of seconds >= 0")
    status = body.get("status", 500)
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError("status: must be an HTTP error status (400-599)")
    message = body.get("message", DEFAULT_MESSAGE)
    target = body.get("target", "")
    if not isinstance(message, str) or not isinstance(target, str):
        raise ValueError("message and target must be strings")
    return Fault(action=action, mode=mode, count=count, delay=delay, message=message or DEFAULT_MESSAGE,
                 status=status, target=target)


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._calls: Counter[str] = Counter()
        self._in_flight = 0
        self._peak = 0
        # Set (and replaced) by clear(): wakes every call hanging on a fault.
        self._released = threading.Event()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            fault.id = next(self._ids)
            self._faults.append(fault)
        return fault

    def take(self, key: str, target: str = "") -> Fault | None:
        """The first fault matching this call, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(key, target):
                    fault.hits += 1
                    if fault.count and fault.hits >= fault.count:
                        self._faults.remove(fault)
                    fault.released = self._released
                    return fault
        return None

    def clear(self) -> int:
        with self._lock:
            faults, self._faults = self._faults, []
            released, self._released = self._released, threading.Event()
        released.set()
        return len(faults)

    def listing(self) -> list[dict]:
        with self._lock:
            return [fault.public() for fault in self._faults]

    # Call counting -----------------------------------------------------------
    def count_call(self, key: str) -> None:
        with self._lock:
            self._calls[key] += 1

    def calls(self) -> dict:
        with self._lock:
            return {"total": sum(self._calls.values()), "calls": dict(sorted(self._calls.items())),
                    "in_flight": self._in_flight, "peak_concurrent": self._peak}

    def reset_calls(self) -> None:
        """Forget the counts; the peak starts again from the calls in flight now."""
        with self._lock:
            self._calls.clear()
            self._peak = self._in_flight

    @contextmanager
    def in_flight(self):
        """Around a /v1 call's handling: counts it as in flight and keeps the peak."""
        with self._lock:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
