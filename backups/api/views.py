"""The backups API: thin viewsets over the services, answers rendered by the output serializers."""

from __future__ import annotations

from contextlib import contextmanager

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, PermissionDenied, ValidationError
from rest_framework.response import Response

from soteria_site.web.access import BACKUP, RESTORE, VIEW
from soteria_site.web.api_errors import Busy, error_responses
from soteria_site.web.audit import AuditedViewSet
from soteria_site.web.edge import BUSY_DETAIL, claim_slot
from soteria_site.web.identity import requested_by
from soteria_site.web.permissions import require_namespaces, visible_namespaces
from soteria_site.web.throttles import InventoryThrottle, MutationThrottle

from ..services import backup as backup_service
from ..services import counting, drill_results, drills, inventory_flight
from ..services import restore as restore_service
from .serializers import (
    BackupRequest,
    BackupResponse,
    BackupsQuery,
    BackupsResponse,
    DrillPlanResponse,
    DrillRequest,
    DrillsQuery,
    DrillsResponse,
    InventoryQuery,
    InventoryResponse,
    NamespaceBackupRequest,
    NamespaceBackupResponse,
    NamespaceRestoreRequest,
    NamespaceRestoreResponse,
    RestoreRequest,
    RestoreResponse,
    RestoreStatusResponse,
    inventory_group_json,
    inventory_json,
)

# What a request with a body may also answer: invalid, too large, not JSON.
BODY_ERRORS = (400, 413, 415)


@contextmanager
def refusals_counted(counter):
    """An invalid body or a namespace outside the caller's scope, raised in the block, is a
    request refused before its service was called: counted (rejected, denied) like the
    service counts the rest."""
    try:
        yield
    except (ParseError, ValidationError, PermissionDenied) as exc:
        counting.refused(counter, exc)
        raise


def _validated(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _namespace_filter(request) -> str | None:
    """The optional ?namespace= of a list, which the caller must be allowed to view."""
    namespace = _query(InventoryQuery, request).get("namespace") or None
    if namespace:
        require_namespaces(request, VIEW, namespace)
    return namespace


def _query(serializer_class, request) -> dict:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


class InventoryViewSet(AuditedViewSet):
    """The inventory (GET /v1/inventory): every PVC with its backup freshness and health."""

    required_permissions = {"list": VIEW}
    throttle_classes = [MutationThrottle, InventoryThrottle]
    expensive_actions = ("list",)

    @extend_schema(parameters=[InventoryQuery], responses={200: InventoryResponse, **error_responses(400, 404)},
                   summary="Every PVC grouped by namespace, with backup freshness and health")
    def list(self, request):
        # Live, shared with every concurrent build (in any web process) rather than repeated;
        # JSON callers get the namespaces' JSON the build's leader rendered, put together.
        namespace, visible = _namespace_filter(request), visible_namespaces(request)
        if request.accepted_renderer.format == "json":
            generated_at, groups = inventory_flight.rendered(namespace, visible, inventory_group_json)
            return HttpResponse(inventory_json(generated_at, groups), content_type="application/json")
        return Response(InventoryResponse(inventory_flight.build(namespace, visible=visible)).data)


class PvcBackupsViewSet(AuditedViewSet):
    """One PVC's backups (GET /v1/backups), to choose a restore source."""

    required_permissions = {"list": VIEW}

    @extend_schema(parameters=[BackupsQuery], responses={200: BackupsResponse, **error_responses(400, 404, 422)},
                   summary="A PVC's volume and its backups, newest first")
    def list(self, request):
        query = _query(BackupsQuery, request)
        require_namespaces(request, VIEW, query["namespace"])
        found = backup_service.list_backups(query["namespace"], query["pvc"])
        return Response(BackupsResponse(found).data)


class BackupViewSet(AuditedViewSet):
    """Backups of one PVC (POST /v1/backup) or of a namespace (POST /v1/backup/namespace)."""

    audit_name = "backup"
    required_permissions = {"create": BACKUP, "namespace": BACKUP}
    expensive_actions = ("namespace",)

    @extend_schema(request=BackupRequest,
                   responses={200: BackupResponse, **error_responses(*BODY_ERRORS, 404, 409, 422)},
                   summary="Back up one PVC")
    def create(self, request):
        with refusals_counted(counting.BACKUP_REQUESTS):
            data = _validated(BackupRequest, request)
            require_namespaces(request, BACKUP, data["namespace"])
        # A real backup may wait up to SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS for a detached
        # volume to attach: a long request. Its dry run is not.
        if not data["dry_run"] and not claim_slot(request):
            raise Busy(BUSY_DETAIL)
        result = backup_service.backup_pvc(data["namespace"], data["pvc"], data["tags"], requested_by(request),
                                           dry_run=data["dry_run"])
        return Response(BackupResponse(result).data)

    @extend_schema(request=NamespaceBackupRequest,
                   responses={200: NamespaceBackupResponse, **error_responses(*BODY_ERRORS, 404)},
                   summary="Back up every bound PVC of a namespace")
    @action(detail=False, methods=["post"], url_path="namespace")
    def namespace(self, request):
        with refusals_counted(counting.NAMESPACE_BACKUP_REQUESTS):
            data = _validated(NamespaceBackupRequest, request)
            require_namespaces(request, BACKUP, data["namespace"])
        result = backup_service.backup_namespace(data["namespace"], data["tags"], requested_by(request),
                                                 dry_run=data["dry_run"])
        return Response(NamespaceBackupResponse(result).data)


class RestoreViewSet(AuditedViewSet):
    """Restores (GET and POST /v1/restores, the legacy POST /v1/restore-test) and namespace
    restores (POST /v1/restores/namespace)."""

    audit_name = "restore"
    required_permissions = {"list": VIEW, "create": RESTORE, "namespace": RESTORE}
    expensive_actions = ("list", "create", "namespace")

    @extend_schema(parameters=[InventoryQuery], responses={200: RestoreStatusResponse, **error_responses(400)},
                   summary="PVCs Soteria restored, with Longhorn's restore progress")
    def list(self, request):
        rows = restore_service.restore_status(_namespace_filter(request), visible=visible_namespaces(request))
        return Response(RestoreStatusResponse({"restores": rows}).data)

    @extend_schema(request=RestoreRequest,
                   responses={200: RestoreResponse, **error_responses(*BODY_ERRORS, 404, 409, 422)},
                   summary="Restore a PVC's backup into a new PVC (never overwrites)")
    def create(self, request):
        with refusals_counted(counting.RESTORE_REQUESTS):
            d = _validated(RestoreRequest, request)
            require_namespaces(request, RESTORE, d["namespace"], d["target_namespace"] or d["namespace"])
        result = restore_service.restore_pvc(
            d["namespace"], d["pvc"], d["target_pvc"], requested_by(request), target_namespace=d["target_namespace"],
            snapshot=d["snapshot"], backup_url=d["backup_url"], dry_run=d["dry_run"])
        return Response(RestoreResponse(result).data)

    @extend_schema(request=NamespaceRestoreRequest,
                   responses={200: NamespaceRestoreResponse, **error_responses(*BODY_ERRORS, 404)},
                   summary="Plan or restore every bound PVC of a namespace into another")
    @action(detail=False, methods=["post"], url_path="namespace")
    def namespace(self, request):
        with refusals_counted(counting.NAMESPACE_RESTORE_REQUESTS):
            d = _validated(NamespaceRestoreRequest, request)
            require_namespaces(request, RESTORE, d["namespace"], d["target_namespace"] or d["namespace"])
        result = restore_service.restore_namespace(
            d["namespace"], d["target_namespace"], d["target_prefix"], requested_by(request),
            snapshot=d["snapshot"], dry_run=d["dry_run"])
        return Response(NamespaceRestoreResponse(result).data)


class RestoreDrillViewSet(AuditedViewSet):
    """Restore drills (GET and POST /v1/restore-drills): restore a PVC's latest backup into a
    scratch claim, read it in full and compare it with the backup's manifest (docs/drills.md)."""

    audit_name = "restore-drill"
    required_permissions = {"list": VIEW, "create": RESTORE}

    @extend_schema(parameters=[DrillsQuery], responses={200: DrillsResponse, **error_responses(400, 404)},
                   summary="Restore drills, newest first: of one PVC, a namespace, or every visible one")
    def list(self, request):
        query = _query(DrillsQuery, request)
        if query.get("namespace"):
            require_namespaces(request, VIEW, query["namespace"])
        rows = drill_results.history(query.get("namespace") or None, query.get("pvc") or None,
                                     visible=visible_namespaces(request))
        return Response(DrillsResponse({"drills": rows}).data)

    @extend_schema(request=DrillRequest,
                   responses={202: DrillPlanResponse, 200: DrillPlanResponse,
                              **error_responses(*BODY_ERRORS, 404, 409, 429)},
                   summary="Start a restore drill of a PVC's latest backup (202), or plan it (dry_run, 200)")
    def create(self, request):
        data = _validated(DrillRequest, request)
        require_namespaces(request, RESTORE, data["namespace"])
        planned = drills.start(data["namespace"], data["pvc"], requested_by(request), dry_run=data["dry_run"])
        return Response(DrillPlanResponse(planned).data, status=200 if planned.dry_run else 202)
