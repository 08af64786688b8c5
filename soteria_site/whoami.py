"""GET /v1/whoami: who Soteria thinks you are, and what you may do."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .web.access import grants_of
from .web.api_errors import error_responses
from .web.identity import identity_of


class WhoAmIView(APIView):
    required_permissions = {}

    @extend_schema(responses={200: inline_serializer("WhoAmI", {
        "user": serializers.CharField(), "email": serializers.CharField(allow_blank=True),
        "groups": serializers.ListField(child=serializers.CharField()),
        "auth": serializers.ChoiceField(choices=["header", "token", "anonymous"]),
        "permissions": serializers.ListField(child=serializers.CharField()),
        "namespaces": serializers.DictField(),
    }), **error_responses()}, summary="The caller's identity, permissions and namespace scopes")
    def get(self, request):
        identity = identity_of(request)
        return Response({"user": identity.user, "email": identity.email, "groups": list(identity.groups),
                         "auth": identity.method, **grants_of(request).as_dict()})
