"""The soteria_site app's models live with the HTTP kernel that uses them."""

from .web.models import Access, AuditEntry  # noqa: F401
