"""The Prometheus multiprocess directory shared by web and worker processes.

prometheus_client writes one file per process (named by PID) into
PROMETHEUS_MULTIPROC_DIR, set by the settings module. Web and worker run as two
containers of one pod sharing this directory and one PID namespace
(`shareProcessNamespace: true`), so a starting process set removes the gauge files of
processes that are gone and leaves those of its living sibling alone.

Counter, histogram and summary files of a dead process are kept: its counts are part of
every total. The two containers start and stop independently, so deleting them while
the other container's processes live on would make the summed counters go down, which
Prometheus reads as a counter reset (a spurious increase() and rate()). They are few (one
set per process that ever ran in the pod) and go with the pod's emptyDir.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_PID = re.compile(r"_(\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_process_files(directory: Path) -> int:
    """Delete the gauge files of processes that no longer run (their counts stay). Returns how many."""
    directory.mkdir(parents=True, exist_ok=True)
    removed = 0
    for path in directory.glob("gauge_*.db"):
        match = _PID.search(path.name)
        if match and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def mark_process_dead(pid: int) -> None:
    """gunicorn's child_exit hook: drop a dead worker's live gauges."""
    from django.conf import settings
    from prometheus_client import multiprocess

    if settings.PROMETHEUS_MULTIPROC_DIR:
        multiprocess.mark_process_dead(pid, settings.PROMETHEUS_MULTIPROC_DIR)
