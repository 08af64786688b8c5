from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from backups.metrics_export import metrics_view

from . import health
from .whoami import WhoAmIView

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("v1/whoami", WhoAmIView.as_view(), name="whoami"),
    path("v1/", include("backups.api.urls")),
    path("v1/", include("policies.api.urls")),
    path("v1/openapi", SpectacularAPIView.as_view(), name="openapi"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("soteria_site.console_urls")),
]

handler404 = "soteria_site.api_errors.page_not_found"
handler500 = "soteria_site.api_errors.server_error"
