"""Helpers for the browser tests: Debian's Chromium for pytest-playwright, the cast as
request headers, and reloading a page until it shows a condition.

Playwright cannot download its own browser here, so the launch points at
/usr/bin/chromium. Waiting is Playwright's auto-waiting `expect`, or polling
with a deadline (`reload_until`); never a bare sleep.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
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


# Console pages: the width of a desktop window and of a phone (docs/console.md, "Looks").
WIDTHS = {1280: 800, 390: 844}
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot_dir(tmp_path_factory) -> Path:
    """docs/screenshots/ with SOTERIA_WRITE_SCREENSHOTS=1 (docs/console.md shows them), else a
    temporary directory, so a test run leaves the tree as it was."""
    if os.environ.get("SOTERIA_WRITE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(exist_ok=True)
        return DOCS_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


def check_page(page, axe, screenshots: Path, name: str, width: int) -> None:
    """The page as shown now, at `width`: no sideways scrolling (wide tables scroll in their
    own region), no serious or critical axe-core violation, and a screenshot `<name>-<width>`."""
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-wrap'))
        .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
    assert scroll <= inner, f"{name} is {scroll - inner}px wider than a {width}px window: {wide}"
    found = axe.run(page).response["violations"]
    serious = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
               for v in found if v["impact"] in ("serious", "critical")]
    assert serious == [], "\n".join(serious)
    shot = screenshots / f"{name}-{width}.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 5_000  # a real picture of a page, not a blank one
