from django.urls import include, path

urlpatterns = [
    path("", include("releases.publish.urls_workspace")),
    path("", include("releases.publish.urls_uploads")),
    path("", include("releases.publish.urls_rollout")),
    path("", include("releases.publish.urls_reasons")),
]
