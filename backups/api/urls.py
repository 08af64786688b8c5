from django.urls import path

from .views import BackupViewSet, InventoryViewSet, RestoreViewSet

urlpatterns = [
    path("inventory", InventoryViewSet.as_view({"get": "list"}), name="inventory"),
    path("backups", BackupViewSet.as_view({"get": "list"}), name="backups"),
    path("backup", BackupViewSet.as_view({"post": "create"}), name="backup"),
    path("backup/namespace", BackupViewSet.as_view({"post": "namespace"}), name="backup-namespace"),
    path("restores", RestoreViewSet.as_view({"get": "list", "post": "create"}), name="restores"),
    path("restores/namespace", RestoreViewSet.as_view({"post": "namespace"}), name="restores-namespace"),
    # Legacy alias of POST /v1/restores (the contract keeps it).
    path("restore-test", RestoreViewSet.as_view({"post": "create"}), name="restore-test"),
]
