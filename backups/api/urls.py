from django.urls import path
from rest_framework.routers import SimpleRouter

from .swap import SwapViewSet
from .views import BackupViewSet, InventoryViewSet, PvcBackupsViewSet, RestoreDrillViewSet, RestoreViewSet

router = SimpleRouter(trailing_slash=False)
router.register("inventory", InventoryViewSet, basename="inventory")  # GET /v1/inventory
router.register("backups", PvcBackupsViewSet, basename="backups")  # GET /v1/backups
router.register("backup", BackupViewSet, basename="backup")  # POST /v1/backup, POST /v1/backup/namespace
router.register("restores", RestoreViewSet, basename="restores")  # GET+POST /v1/restores, POST .../namespace
router.register("restores/swap", SwapViewSet, basename="swap")  # POST /v1/restores/swap, POST .../undo
router.register("restore-drills", RestoreDrillViewSet, basename="restore-drills")  # GET+POST /v1/restore-drills

urlpatterns = [
    *router.urls,
    # The contract's legacy alias of POST /v1/restores. Registering the viewset under this
    # prefix would also answer GET /v1/restore-test and POST /v1/restore-test/namespace,
    # which the contract does not have: one explicit path, POST only.
    path("restore-test", RestoreViewSet.as_view({"post": "create"}), name="restore-test"),
]
