"""Sizes of the reliability tests: small in the suite (CI), full under `./dev reliability`.

`./dev reliability` sets SOTERIA_RELIABILITY_FULL=1 and runs tests/reliability; the sizes a
test uses come from `size(ci, full)` so both runs are the same test, and docs/reliability.md
records the figures of the full run.
"""

from __future__ import annotations

import os

FULL = os.environ.get("SOTERIA_RELIABILITY_FULL", "") == "1"


def size(ci, full):
    """The figure for this run: `full` under `./dev reliability`, `ci` otherwise."""
    return full if FULL else ci
