from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import PolicyViewSet

router = SimpleRouter(trailing_slash=False)
router.register("policies", PolicyViewSet, basename="policies")  # GET+POST /v1/policies, DELETE /v1/policies/<id>

urlpatterns = [
    *router.urls,
    # The contract's literal DELETE /v1/policies/?namespace=&pvc=: a path with a trailing slash
    # and no id, which a router without trailing slashes cannot produce.
    path("policies/", PolicyViewSet.as_view({"delete": "destroy_by_query"}), name="policy-by-query"),
    # After someone else deleted or spoiled the policy Secret's key (docs/policies.md).
    path("policy-store/recover", PolicyViewSet.as_view({"post": "recover"}), name="policy-store-recover"),
]
