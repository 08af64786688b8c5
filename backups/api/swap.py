"""Swap a restored claim into place, and undo it (POST /v1/restores/swap and .../undo;
docs/swap.md): bodies, answers and the viewset."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from soteria_site.web.access import RESTORE
from soteria_site.web.api_errors import Busy, error_responses
from soteria_site.web.audit import AuditedViewSet, record
from soteria_site.web.edge import BUSY_DETAIL, claim_slot
from soteria_site.web.identity import requested_by
from soteria_site.web.permissions import require_namespaces

from ..clients.workloads import KINDS
from ..services import swap as swap_service
from ..services.swap_steps import ACTIONS
from .fields import StrictBooleanField, StrictSerializer
from .serializers import NameField, PvcNameField

BODY_ERRORS = (400, 413, 415)


class WorkloadIn(StrictSerializer):
    kind = serializers.ChoiceField(choices=KINDS)
    name = PvcNameField()


class SwapRequest(StrictSerializer):
    namespace = NameField()
    pvc = PvcNameField(help_text="the claim the workload mounts now")
    restored_pvc = PvcNameField(help_text="the restored claim to put in its place (same namespace)")
    workload = WorkloadIn(required=False, help_text="the workload expected to mount `pvc` (found when absent)")
    dry_run = StrictBooleanField(required=False, default=False)


class SwapUndoRequest(StrictSerializer):
    namespace = NameField()
    pvc = PvcNameField(help_text="the claim that was swapped")
    workload = WorkloadIn(required=False)
    dry_run = StrictBooleanField(required=False, default=False)


class SwapStepOut(serializers.Serializer):
    number = serializers.IntegerField()
    action = serializers.ChoiceField(choices=sorted(ACTIONS))
    target = serializers.CharField()
    detail = serializers.CharField()
    status = serializers.ChoiceField(choices=["planned", "done", "skipped", "failed"],
                                     help_text="skipped: it was already so")


class WorkloadOut(serializers.Serializer):
    kind = serializers.CharField(source="workload_kind")
    name = serializers.CharField(source="workload_name")


class SwapResponse(serializers.Serializer):
    operation = serializers.ChoiceField(choices=["swap", "undo"])
    namespace = serializers.CharField()
    pvc = serializers.CharField()
    restored_pvc = serializers.CharField()
    workload = WorkloadOut(source="*")
    replicas = serializers.IntegerField(help_text="the workload's replicas before the swap (and after it)")
    mode = serializers.ChoiceField(choices=["volume", "claim"],
                                   help_text="volume: the pod template's volume is pointed at the restored claim; "
                                             "claim: a StatefulSet's claim is recreated on the restored volume")
    requested_by = serializers.CharField()
    dry_run = serializers.BooleanField()
    recorded_at = serializers.CharField(allow_blank=True, help_text="when the swap was made (planned)")
    recorded_by = serializers.CharField(allow_blank=True)
    steps = SwapStepOut(many=True)


def _audit_step(request, result, step) -> None:
    """One audit row per step carried out, besides the request's own."""
    status, body = (200, {}) if step.status != "failed" else (502, {"error": "step_failed", "detail": step.detail})
    record(request, f"swap.{result.operation}.step", status, body,
           f"{result.namespace}/{result.pvc} step {step.number}/{len(result.steps)} {step.action} {step.status}: "
           f"{step.target}", [result.namespace])


class SwapViewSet(AuditedViewSet):
    """After a restore: swap the restored claim in under the workload that mounts the source
    (POST /v1/restores/swap), and put things back (POST /v1/restores/swap/undo)."""

    audit_name = "swap"
    required_permissions = {"create": RESTORE, "undo": RESTORE}

    def _validated(self, serializer_class, request) -> dict:
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        require_namespaces(request, RESTORE, data["namespace"])
        if not data["dry_run"] and not claim_slot(request):  # a real run waits for pods and claims
            raise Busy(BUSY_DETAIL)
        return data

    @extend_schema(request=SwapRequest, responses={200: SwapResponse, **error_responses(*BODY_ERRORS, 404, 409)},
                   summary="Swap a restored PVC in under the Deployment or StatefulSet that mounts its source "
                           "(dry_run: the plan)")
    def create(self, request):
        d = self._validated(SwapRequest, request)
        result = swap_service.swap(d["namespace"], d["pvc"], d["restored_pvc"], requested_by(request),
                                   workload=d.get("workload"), dry_run=d["dry_run"],
                                   on_step=lambda r, s: _audit_step(request, r, s))
        return Response(SwapResponse(result).data)

    @extend_schema(request=SwapUndoRequest,
                   responses={200: SwapResponse, **error_responses(*BODY_ERRORS, 404, 409)},
                   summary="Undo the swap of a PVC: its previous claim or volume and replicas (dry_run: the plan)")
    @action(detail=False, methods=["post"], url_path="undo")
    def undo(self, request):
        d = self._validated(SwapUndoRequest, request)
        result = swap_service.undo(d["namespace"], d["pvc"], requested_by(request), workload=d.get("workload"),
                                   dry_run=d["dry_run"], on_step=lambda r, s: _audit_step(request, r, s))
        return Response(SwapResponse(result).data)
