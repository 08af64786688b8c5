"""The cached inventory snapshot the metrics are read from (disposable, like all of SQLite)."""

from django.db import models


class InventorySnapshot(models.Model):
    """One row: the last successful inventory refresh, as JSON rows."""

    generated_at = models.DateTimeField()
    duration_seconds = models.FloatField(default=0)
    rows = models.JSONField(default=list)
    refreshed_at = models.DateTimeField(auto_now=True)


class OperationLock(models.Model):
    """One running operation per key (e.g. "backup:ns/pvc") within this Soteria."""

    key = models.CharField(max_length=255, unique=True)
    expires_at = models.DateTimeField()
