"""What the Longhorn manager in front of Soteria supports, asked once and cached.

The manager reports its version in the read-only setting `current-longhorn-version`
(e.g. `v1.7.2`); `backupMode` exists from 1.7.0 (1.6 ignores the field, so a full
backup would silently be incremental). Longhorn 1.9 can delete the snapshot of an
on-demand backup itself once the backup is Completed (setting
`auto-cleanup-snapshot-after-on-demand-backup-completed`). Facts: docs/longhorn.md.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.cache import cache

from soteria_site.core.errors import SoteriaError

from ..clients import longhorn

VERSION_SETTING = "current-longhorn-version"
AUTO_CLEANUP_SETTING = "auto-cleanup-snapshot-after-on-demand-backup-completed"
BACKUP_MODE_SINCE = (1, 7)
VERSION_CACHE_SECONDS = 3600
SETTING_CACHE_SECONDS = 300
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


class BackupModeUnsupported(SoteriaError):
    """SOTERIA_LONGHORN_BACKUP_MODE asks for something this Longhorn cannot do."""

    status = 422
    code = "backup_mode_unsupported"


def parse_version(raw: str | None) -> tuple[int, int, int] | None:
    """`v1.7.2` -> (1, 7, 2); None for anything else (a development build, no setting)."""
    match = _VERSION.match((raw or "").strip())
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def version() -> tuple[int, int, int] | None:
    """The manager's version, from the shared cache (asked at most once an hour)."""
    key = "soteria:longhorn:version"
    cached = cache.get(key)
    if cached is None:
        parsed = parse_version(longhorn.get_setting(VERSION_SETTING))
        cached = list(parsed) if parsed else []
        cache.set(key, cached, VERSION_CACHE_SECONDS)
    return tuple(cached) if cached else None


def version_text() -> str:
    found = version()
    return "v" + ".".join(map(str, found)) if found else "an unknown version"


def backup_mode_problem(mode: str | None = None) -> str:
    """Why the configured backup mode cannot be honoured here, or ""."""
    mode = mode or settings.SOTERIA_LONGHORN_BACKUP_MODE
    if mode != "full":
        return ""
    found = version()
    if found is None or found[:2] >= BACKUP_MODE_SINCE:
        return ""
    return (f"SOTERIA_LONGHORN_BACKUP_MODE=full needs Longhorn 1.7 or later; this Longhorn manager is "
            f"{version_text()}, which ignores backupMode and would take an incremental backup. Set "
            "SOTERIA_LONGHORN_BACKUP_MODE=incremental or upgrade Longhorn")


def require_backup_mode(mode: str) -> None:
    problem = backup_mode_problem(mode)
    if problem:
        raise BackupModeUnsupported(problem, setting="SOTERIA_LONGHORN_BACKUP_MODE")


def auto_cleans_snapshots() -> bool:
    """Whether Longhorn itself deletes an on-demand backup's snapshot once it is Completed (1.9+)."""
    key = "soteria:longhorn:auto-cleanup-snapshot"
    cached = cache.get(key)
    if cached is None:
        cached = (longhorn.get_setting(AUTO_CLEANUP_SETTING) or "").strip().lower() == "true"
        cache.set(key, cached, SETTING_CACHE_SECONDS)
    return bool(cached)
