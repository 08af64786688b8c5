"""GET/POST /v1/policies, DELETE /v1/policies/<id> and /v1/policies/?namespace=&pvc=."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from soteria_site.web.access import POLICIES, VIEW
from soteria_site.web.api_errors import error_responses
from soteria_site.web.audit import AuditedViewSet
from soteria_site.web.identity import requested_by
from soteria_site.web.permissions import visible_namespaces

from .. import services
from ..types import PolicyView, policy_id, policy_namespace
from .serializers import (
    PolicyList,
    PolicyOut,
    PolicyQuery,
    PolicyRequest,
    PolicyStoreRecovered,
    PolicyStoreRecoverRequest,
)


class PolicyViewSet(AuditedViewSet):
    """Backup policies, kept in the policy Secret."""

    audit_name = "policy"
    required_permissions = {"list": VIEW, "create": POLICIES, "destroy": POLICIES, "destroy_by_query": POLICIES,
                            "recover": POLICIES}
    # An id is `<namespace>.<pvc>` or `<namespace>`, and a PVC name may hold dots: anything but
    # a slash (the router's default for trailing_slash=False refuses dots).
    lookup_value_regex = "[^/]+"

    def audit_namespaces(self, request, kwargs) -> list[str]:
        pk = kwargs.get("pk") or request.query_params.get("namespace", "")
        return [policy_namespace(pk)] if pk else []

    @extend_schema(responses={200: PolicyList, **error_responses()},
                   summary="The backup policies of the namespaces the caller may view, with last run and next due")
    def list(self, request):
        visible = visible_namespaces(request)
        due = services.with_due_times(services.list_policies(visible), visible)
        return Response(PolicyList({"policies": due.views, "due_times_as_of": due.as_of}).data)

    @extend_schema(request=PolicyRequest, responses={200: PolicyOut, 201: PolicyOut, **error_responses(400, 413, 415)},
                   summary="Create or update a policy (same namespace and pvc = same policy)")
    def create(self, request):
        body = PolicyRequest(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        policy, created = services.save_policy(d["namespace"], d["pvc"], d["interval_hours"], d["enabled"],
                                               d["retain"], d["tags"], requested_by(request),
                                               verify_every_hours=d["verify_every_hours"])
        return Response(PolicyOut(PolicyView(policy)).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(responses={200: PolicyOut, **error_responses(404)}, summary="Delete a policy by id")
    def destroy(self, request, pk=None):
        return Response(PolicyOut(PolicyView(services.delete_policy(pk, requested_by(request)))).data)

    @extend_schema(parameters=[PolicyQuery], responses={200: PolicyOut, **error_responses(400, 404)},
                   operation_id="policies_destroy_by_query",
                   summary="Delete a policy by namespace and pvc (the contract's DELETE /v1/policies/)")
    def destroy_by_query(self, request):
        query = PolicyQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        pk = policy_id(query.validated_data["namespace"], query.validated_data["pvc"])
        return Response(PolicyOut(PolicyView(services.delete_policy(pk, requested_by(request)))).data)

    @extend_schema(request=PolicyStoreRecoverRequest, responses={200: PolicyStoreRecovered, **error_responses(400, 409)},
                   operation_id="policy_store_recover",
                   summary="Write the policies back after the policy Secret or its key was deleted or spoiled")
    def recover(self, request):
        body = PolicyStoreRecoverRequest(data=request.data)
        body.is_valid(raise_exception=True)
        policies, kept = services.recover_store(body.validated_data["discard"], requested_by(request))
        return Response(PolicyStoreRecovered({"policies": [PolicyView(p) for p in policies],
                                              "kept_unreadable_as": kept}).data)
