"""Helpers for the browser tests: Debian's Chromium for pytest-playwright, the cast as
request headers, and reloading a page until it shows a condition.

Playwright cannot download its own browser here, so the launch points at
/usr/bin/chromium. Waiting is Playwright's auto-waiting `expect`, or polling
with a deadline (`reload_until`); never a bare sleep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from . import cast
from .polling import wait_for as wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

# The fixed cast, as the proxy would send them (Playwright's extra_http_headers).
ADMIN = dict(cast.ADMIN)
VIEWER = dict(cast.VIEWER)

T = TypeVar("T")


def reload_until(page, check: Callable[[], T], timeout: float = 60.0, what: str = "condition") -> T:
    """Reload the page until `check` (reading the page) is truthy, within a deadline."""
    def attempt():
        page.reload()
        return check()

    return check() or wait_until(attempt, timeout=timeout, what=what, interval=0.5)
