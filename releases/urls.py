from django.urls import path

from releases import views

urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("models/<slug:org_slug>/<str:model_slug>/", views.model_detail, name="model-detail"),
]
