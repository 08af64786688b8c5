"""Which process holds something, and whether that process is gone.

A holder is `<hostname>:<pid>:<start time>` (the start time in clock ticks since boot, from
/proc, so a reused pid is not taken for the process that died). Only a holder on this host
can be judged: a holder elsewhere, or one written in another form, is never called dead.
"""

from __future__ import annotations

import os
import socket
from functools import cache


def _start_ticks(pid: int) -> str:
    """The process's start time (field 22 of /proc/<pid>/stat); "" when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            # The command name (field 2) may hold spaces and parentheses: split after its end.
            return stat.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


@cache
def _this(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def holder() -> str:
    """This process, as a holder (computed once per process: a forked child computes its own)."""
    return _this(os.getpid())


def is_dead(holder_: str) -> bool:
    """True only when `holder_` was a process of this host that no longer runs."""
    host, _, rest = holder_.partition(":")
    pid, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or not ticks:
        return False
    return _start_ticks(int(pid)) != ticks
