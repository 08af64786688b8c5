"""What the backups app keeps in its (disposable) database."""

from django.db import models


class CachedInventory(models.Model):
    """One row: the last successful inventory refresh, as JSON rows."""

    generated_at = models.DateTimeField()
    duration_seconds = models.FloatField(default=0)
    rows = models.JSONField(default=list)
    refreshed_at = models.DateTimeField(auto_now=True)


class CachedRowChange(models.Model):
    """A change of the cached rows: one PVC's since the last refresh (a backup or restore Soteria
    started, a restore drill's verdict), applied over the rows when they are read and deleted by
    the next refresh that has seen it, so one backup never rewrites every row; or the refresh
    itself (all rows replaced), which readers that keep something derived from the rows compare."""

    namespace = models.CharField(max_length=253)
    pvc = models.CharField(max_length=253)
    kind = models.CharField(max_length=32)  # inventory_cache.BACKUP_STARTED, RESTORED, VERIFIED, REPLACED
    fields = models.JSONField(default=dict)
    recorded_at = models.DateTimeField(auto_now_add=True)


class OperationLock(models.Model):
    """One running operation per key (e.g. "backup:ns/pvc") within this Soteria."""

    key = models.CharField(max_length=255, unique=True)
    expires_at = models.DateTimeField()
    # The process holding it (soteria_site.core.liveness): a lock of a killed process is taken over.
    holder = models.CharField(max_length=120, default="", blank=True)


class BackupFailure(models.Model):
    """A failed backup the inventory refresh saw (see backups/drivers/failure_memory.py): kept while
    Longhorn still lists it, or, once Longhorn deleted it, while it is newer than the
    volume's last success."""

    volume = models.CharField(max_length=255)
    backup = models.CharField(max_length=255)
    error = models.TextField(blank=True, default="")
    first_seen = models.DateTimeField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["volume", "backup"], name="backup_failure_volume_backup")]


class OwnSnapshot(models.Model):
    """A Longhorn snapshot Soteria took for a backup and has not deleted yet (pruned by
    backups/services/snapshot_cleanup.py)."""

    volume = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["volume", "name"], name="own_snapshot_volume_name")]
