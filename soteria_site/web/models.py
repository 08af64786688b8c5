"""What Soteria keeps in its (disposable) database besides sessions and the queue."""

from django.db import models


class Access(models.Model):
    """Holds Soteria's permissions; it has no table and no rows."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_inventory", "View the inventory and backups"),
            ("run_backup", "Run backups"),
            ("run_restore", "Run restores"),
            ("manage_policies", "Manage backup policies"),
        ]


class AuditEntry(models.Model):
    """One mutating request: who, what, when, result. Recent ones show in the console;
    the durable trail is the Kubernetes Events and the log."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=254)
    method = models.CharField(max_length=16)
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=512, blank=True)
    # The namespaces the action touched, as `|ns1|ns2|`: who may see the entry.
    namespaces = models.CharField(max_length=160, blank=True, default="")
    status = models.PositiveSmallIntegerField()
    result = models.CharField(max_length=64)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name_plural = "audit entries"

    @property
    def namespace_list(self) -> list[str]:
        return [n for n in self.namespaces.split("|") if n]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target} -> {self.result}"
