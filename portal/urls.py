from django.contrib import admin
from django.urls import include, path

from api.v1 import api as api_v1
from portal import health, metrics

urlpatterns = [
    # Probes and the scraper (portal/health.py, portal/metrics.py): ahead of every other pattern, so that
    # no page or hub route can ever shadow them.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("publish/", include("releases.publish.urls")),
    path("api/v1/", api_v1.urls),
    path("", include("access.urls")),
    path("", include("releases.urls")),
    # huggingface_hub's paths (/api/models/…, /<org>/<model>/resolve/…); last, as the most general.
    path("", include("api.hub.urls")),
]

handler404 = "api.errors.page_not_found"
# A database outage answers 503 with an explanation, whichever layer met it (portal/unavailable.py).
handler500 = "portal.unavailable.server_error"
