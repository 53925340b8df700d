from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("publish/", include("releases.publish.urls")),
    path("", include("access.urls")),
    path("", include("releases.urls")),
]
