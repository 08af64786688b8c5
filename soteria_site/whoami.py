"""GET /v1/whoami: who Soteria thinks you are, and what you may do."""

from dataclasses import dataclass

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .web.access import Grants, grants_of
from .web.api_errors import error_responses
from .web.identity import Identity, identity_of


@dataclass(frozen=True)
class Caller:
    identity: Identity
    grants: Grants


class SortedNamesField(serializers.ListField):
    """A set of names as a sorted list."""

    child = serializers.CharField()

    def to_representation(self, data):
        return sorted(data)


class ScopesOut(serializers.Serializer):
    """The namespaces of each operation; null: every namespace."""

    view = SortedNamesField(source="view_namespaces", allow_null=True)
    backup = SortedNamesField(source="backup_namespaces", allow_null=True)
    restore = SortedNamesField(source="restore_namespaces", allow_null=True)


class WhoAmI(serializers.Serializer):
    user = serializers.CharField(source="identity.user")
    email = serializers.CharField(source="identity.email", allow_blank=True)
    groups = serializers.ListField(source="identity.groups", child=serializers.CharField())
    auth = serializers.ChoiceField(source="identity.method", choices=["header", "token", "anonymous"])
    permissions = SortedNamesField(source="grants.permissions")
    namespaces = ScopesOut(source="grants")


class WhoAmIView(APIView):
    required_permissions = {}

    @extend_schema(responses={200: WhoAmI, **error_responses()},
                   summary="The caller's identity, permissions and namespace scopes")
    def get(self, request):
        return Response(WhoAmI(Caller(identity_of(request), grants_of(request))).data)
