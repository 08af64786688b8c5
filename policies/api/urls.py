from django.urls import path

from .views import PolicyViewSet

urlpatterns = [
    path("policies", PolicyViewSet.as_view({"get": "list", "post": "create"}), name="policies"),
    path("policies/<str:pk>", PolicyViewSet.as_view({"delete": "destroy"}), name="policy"),
    # The contract's literal form: DELETE /v1/policies/?namespace=&pvc=
    path("policies/", PolicyViewSet.as_view({"delete": "destroy_by_query"}), name="policy-by-query"),
]
