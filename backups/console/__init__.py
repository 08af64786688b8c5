"""The console: server-rendered pages over the same services as the API (docs/console.md).

Every view that creates or deletes something shows its plan first and acts only on a second,
confirmed request (backups/forms.py, `Confirmable`)."""

from .activity import activity_page, restores_page, running_fragment
from .inventory import inventory_page
from .namespaces import backup_namespace_page, restore_namespace_page
from .pvc import backup_action, drill_action, pvc_page, restore_action

__all__ = ["activity_page", "backup_action", "backup_namespace_page", "drill_action", "inventory_page", "pvc_page",
           "restore_action", "restore_namespace_page", "restores_page", "running_fragment"]
