"""GET/POST /v1/policies, DELETE /v1/policies/<id>."""

from __future__ import annotations

import logging

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from backups.services import inventory
from soteria_site.core.errors import SoteriaError
from soteria_site.core.timeparse import format_time
from soteria_site.web.access import POLICIES, VIEW
from soteria_site.web.audit import AuditedViewSet
from soteria_site.web.identity import requested_by
from soteria_site.web.permissions import visible_namespaces

from .. import services
from ..types import policy_id, policy_namespace
from .serializers import PolicyList, PolicyOut, PolicyQuery, PolicyRequest

log = logging.getLogger(__name__)


def present(policy, next_due=None) -> dict:
    return {"id": policy.id, "namespace": policy.namespace, "pvc": policy.pvc,
            "interval_hours": policy.interval_hours, "enabled": policy.enabled, "retain": policy.retain,
            "tags": list(policy.tags), "created_at": format_time(policy.created_at),
            "updated_at": format_time(policy.updated_at), "updated_by": policy.updated_by,
            "last_run_at": format_time(policy.last_run_at), "last_result": policy.last_result,
            "last_detail": policy.last_detail, "next_due_at": format_time(next_due)}


def with_due_times(policies, visible: frozenset[str] | None = None) -> list[dict]:
    """Policies with next_due_at; without it (null) if the inventory cannot be built now.
    `visible`: the namespaces the policies were chosen from (None: every namespace)."""
    items = []
    if policies:
        try:
            items = inventory.build(visible=visible).items
        except SoteriaError as exc:
            log.warning("next_due_at unavailable: %s", exc.detail)
    return [present(p, services.next_due_at(p, policies, items) if p.enabled else None) for p in policies]


class PolicyViewSet(AuditedViewSet):
    audit_name = "policy"
    required_permissions = {"list": VIEW, "create": POLICIES, "destroy": POLICIES, "destroy_by_query": POLICIES}
    expensive_actions = ("list",)  # due times need the inventory

    def audit_namespaces(self, request, kwargs) -> list[str]:
        pk = kwargs.get("pk") or request.query_params.get("namespace", "")
        return [policy_namespace(pk)] if pk else []

    @extend_schema(responses=PolicyList,
                   summary="The backup policies of the namespaces the caller may view, with last run and next due")
    def list(self, request):
        visible = visible_namespaces(request)
        return Response({"policies": with_due_times(services.list_policies(visible), visible)})

    @extend_schema(request=PolicyRequest, responses={200: PolicyOut, 201: PolicyOut},
                   summary="Create or update a policy (same namespace and pvc = same policy)")
    def create(self, request):
        body = PolicyRequest(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        policy, created = services.save_policy(d["namespace"], d["pvc"], d["interval_hours"], d["enabled"],
                                               d["retain"], d["tags"], requested_by(request))
        return Response(present(policy), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(responses={200: PolicyOut}, summary="Delete a policy by id")
    def destroy(self, request, pk=None):
        return Response(present(services.delete_policy(pk, requested_by(request))))

    @extend_schema(parameters=[PolicyQuery], responses={200: PolicyOut}, operation_id="policies_destroy_by_query",
                   summary="Delete a policy by namespace and pvc (the contract's DELETE /v1/policies/)")
    def destroy_by_query(self, request):
        query = PolicyQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        pk = policy_id(query.validated_data["namespace"], query.validated_data["pvc"])
        return Response(present(services.delete_policy(pk, requested_by(request))))
