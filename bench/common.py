"""What every benchmark reports: rows of one table (bench/run.py prints it).

A row is a measured figure, either a ratio checked against a target (`limit`, the largest
value that meets it) or an absolute figure reported as measured (`limit` None).
Benchmarks are run by hand and recorded in docs/performance.md; they are never timed
assertions in the test suite.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    target: str  # the target number and name, e.g. "1 inventory vs its upstream calls"
    what: str  # what was measured, e.g. "GET /v1/inventory / bare upstream lists"
    value: float
    unit: str  # "x", "s", "ms", "MiB", "calls"...
    limit: float | None = None  # a target: the value must be <= limit; None: absolute, reported
    detail: str = ""

    @property
    def kind(self) -> str:
        return "target" if self.limit is not None else "absolute"

    @property
    def verdict(self) -> str:
        if self.limit is None:
            return ""
        return "met" if self.value <= self.limit else "MISSED"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(rows: list[Row]) -> str:
    """The rows as one Markdown table (docs/performance.md takes it as printed)."""
    lines = ["| # | what | value | target | verdict | detail |", "|---|---|---|---|---|---|"]
    for row in rows:
        value = f"{row.value:,.3g} {row.unit}" if row.value < 1000 else f"{row.value:,.0f} {row.unit}"
        target = f"<= {row.limit:g} {row.unit}" if row.limit is not None else "(absolute)"
        lines.append(f"| {row.target} | {row.what} | {value} | {target} | {row.verdict} | {row.detail} |")
    return "\n".join(lines)
