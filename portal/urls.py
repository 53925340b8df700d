from django.contrib import admin
from django.urls import include, path

from api.v1 import api as api_v1

urlpatterns = [
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
