from django.urls import path

from releases import views, watch_views

urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("models/<slug:org_slug>/<str:model_slug>/", views.model_detail, name="model-detail"),
    path(
        "models/<slug:org_slug>/<str:model_slug>/coming/<int:tier_id>/",
        watch_views.coming_soon,
        name="tier-coming-soon",
    ),
    path("tiers/<int:tier_id>/watch/", watch_views.watch, name="tier-watch"),
    path("tiers/<int:tier_id>/unwatch/", watch_views.unwatch, name="tier-unwatch"),
]
