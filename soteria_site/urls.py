from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from backups.metrics_export import metrics_view

from . import admin, health
from .web.access import VIEW
from .web.permissions import HasSoteriaPermission
from .whoami import WhoAmIView


class OpenAPIView(SpectacularAPIView):
    """The schema describes every endpoint: it needs the view permission like the inventory."""

    permission_classes = [HasSoteriaPermission]
    required_permissions = {"get": VIEW}


urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("v1/whoami", WhoAmIView.as_view(), name="whoami"),
    path("v1/", include("backups.api.urls")),
    path("v1/", include("policies.api.urls")),
    path("v1/openapi", OpenAPIView.as_view(), name="openapi"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("", include("soteria_site.console_urls")),
]

handler404 = "soteria_site.web.api_errors.page_not_found"
handler500 = "soteria_site.web.api_errors.server_error"
