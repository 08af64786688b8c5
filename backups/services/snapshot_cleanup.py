"""Delete the Longhorn snapshots Soteria took once their backups are over (a schedule)."""

from __future__ import annotations

from datetime import datetime, timezone

from django.conf import settings


def prune(now: datetime | None = None) -> dict[str, int]:
    """With the Longhorn driver (alone or in `auto`): Soteria's remembered snapshots whose backup
    is Completed or failed, or that have no backup and are older than the snapshot timeout."""
    if settings.SOTERIA_BACKUP_DRIVER not in ("longhorn", "auto"):
        return {"checked": 0}
    from ..drivers import longhorn_snapshots

    return longhorn_snapshots.prune_remembered(now or datetime.now(timezone.utc))
