"""The backups API: thin viewsets over the services."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ParseError, PermissionDenied, ValidationError
from rest_framework.response import Response

from soteria_site.web.access import BACKUP, RESTORE, VIEW
from soteria_site.web.api_errors import Busy
from soteria_site.web.audit import AuditedViewSet
from soteria_site.web.edge import BUSY_DETAIL, claim_slot
from soteria_site.web.identity import requested_by
from soteria_site.web.permissions import require_namespaces, visible_namespaces
from soteria_site.web.throttles import InventoryThrottle, MutationThrottle

from ..metrics import BACKUP_REQUESTS, NAMESPACE_BACKUP_REQUESTS, NAMESPACE_RESTORE_REQUESTS, RESTORE_REQUESTS
from ..services import backup as backup_service
from ..services import inventory
from ..services import restore as restore_service
from . import present
from .serializers import (
    BackupRequest,
    BackupResponse,
    BackupsQuery,
    BackupsResponse,
    InventoryQuery,
    InventoryResponse,
    NamespaceBackupRequest,
    NamespaceBackupResponse,
    NamespaceRestoreRequest,
    NamespaceRestoreResponse,
    RestoreRequest,
    RestoreResponse,
    RestoreStatusResponse,
)


def _validated(serializer_class, request, counter) -> dict:
    """The request body, validated; a refused body is counted as `rejected` in `counter`."""
    try:
        serializer = serializer_class(data=request.data)
        if serializer.is_valid():
            return serializer.validated_data
        raise ValidationError(serializer.errors)
    except (ParseError, ValidationError):
        counter.labels(settings.SOTERIA_BACKUP_DRIVER, "rejected").inc()
        raise


def _allowed(request, counter, operation, *namespaces) -> None:
    """Namespace scopes; a refusal is counted as `denied` in `counter`."""
    try:
        require_namespaces(request, operation, *namespaces)
    except PermissionDenied:
        counter.labels(settings.SOTERIA_BACKUP_DRIVER, "denied").inc()
        raise


def _namespace_filter(request) -> str | None:
    """The optional ?namespace= of a list, which the caller must be allowed to view."""
    query = InventoryQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    namespace = query.validated_data.get("namespace")
    if namespace:
        require_namespaces(request, VIEW, namespace)
    return namespace


class InventoryViewSet(AuditedViewSet):
    required_permissions = {"list": VIEW}
    throttle_classes = [MutationThrottle, InventoryThrottle]
    expensive_actions = ("list",)

    @extend_schema(parameters=[InventoryQuery], responses=InventoryResponse,
                   summary="Every PVC grouped by namespace, with backup freshness and health")
    def list(self, request):
        namespace = _namespace_filter(request)
        return Response(present.inventory(inventory.build(namespace, visible=visible_namespaces(request))))


class BackupViewSet(AuditedViewSet):
    audit_name = "backup"
    required_permissions = {"list": VIEW, "create": BACKUP, "namespace": BACKUP}
    expensive_actions = ("namespace",)

    @extend_schema(parameters=[BackupsQuery], responses=BackupsResponse,
                   summary="A PVC's volume and its backups, newest first")
    def list(self, request):
        query = BackupsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        require_namespaces(request, VIEW, query.validated_data["namespace"])
        found = backup_service.list_backups(query.validated_data["namespace"], query.validated_data["pvc"])
        return Response(present.backups(found))

    @extend_schema(request=BackupRequest, responses=BackupResponse, summary="Back up one PVC")
    def create(self, request):
        data = _validated(BackupRequest, request, BACKUP_REQUESTS)
        _allowed(request, BACKUP_REQUESTS, BACKUP, data["namespace"])
        # A real backup may wait up to SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS for a detached
        # volume to attach: a long request. Its dry run is not.
        if not data["dry_run"] and not claim_slot(request):
            raise Busy(BUSY_DETAIL)
        result = backup_service.backup_pvc(data["namespace"], data["pvc"], data["tags"], requested_by(request),
                                           dry_run=data["dry_run"])
        return Response(present.backup_result(result))

    @extend_schema(request=NamespaceBackupRequest, responses=NamespaceBackupResponse,
                   summary="Back up every bound PVC of a namespace")
    def namespace(self, request):
        data = _validated(NamespaceBackupRequest, request, NAMESPACE_BACKUP_REQUESTS)
        _allowed(request, NAMESPACE_BACKUP_REQUESTS, BACKUP, data["namespace"])
        result = backup_service.backup_namespace(data["namespace"], data["tags"], requested_by(request),
                                                 dry_run=data["dry_run"])
        return Response(present.namespace_backup(result))


class RestoreViewSet(AuditedViewSet):
    audit_name = "restore"
    required_permissions = {"list": VIEW, "create": RESTORE, "namespace": RESTORE}
    expensive_actions = ("list", "create", "namespace")

    @extend_schema(parameters=[InventoryQuery], responses=RestoreStatusResponse,
                   summary="PVCs Soteria restored, with Longhorn's restore progress")
    def list(self, request):
        rows = restore_service.restore_status(_namespace_filter(request), visible=visible_namespaces(request))
        return Response(present.restore_status(rows))

    @extend_schema(request=RestoreRequest, responses=RestoreResponse,
                   summary="Restore a PVC's backup into a new PVC (never overwrites)")
    def create(self, request):
        d = _validated(RestoreRequest, request, RESTORE_REQUESTS)
        _allowed(request, RESTORE_REQUESTS, RESTORE, d["namespace"], d["target_namespace"] or d["namespace"])
        result = restore_service.restore_pvc(
            d["namespace"], d["pvc"], d["target_pvc"], requested_by(request), target_namespace=d["target_namespace"],
            snapshot=d["snapshot"], backup_url=d["backup_url"], dry_run=d["dry_run"])
        return Response(present.restore_result(result))

    @extend_schema(request=NamespaceRestoreRequest, responses=NamespaceRestoreResponse,
                   summary="Plan or restore every bound PVC of a namespace into another")
    def namespace(self, request):
        d = _validated(NamespaceRestoreRequest, request, NAMESPACE_RESTORE_REQUESTS)
        _allowed(request, NAMESPACE_RESTORE_REQUESTS, RESTORE, d["namespace"], d["target_namespace"] or d["namespace"])
        result = restore_service.restore_namespace(
            d["namespace"], d["target_namespace"], d["target_prefix"], requested_by(request),
            snapshot=d["snapshot"], dry_run=d["dry_run"])
        return Response(present.namespace_restore(result))
