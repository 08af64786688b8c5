from django.urls import path

from .views import BackupViewSet, InventoryViewSet

urlpatterns = [
    path("inventory", InventoryViewSet.as_view({"get": "list"}), name="inventory"),
    path("backups", BackupViewSet.as_view({"get": "list"}), name="backups"),
    path("backup", BackupViewSet.as_view({"post": "create"}), name="backup"),
    path("backup/namespace", BackupViewSet.as_view({"post": "namespace"}), name="backup-namespace"),
]
