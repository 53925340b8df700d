"""The rollout timeline of a release (releases/publish/views_rollout.py)."""

from django.urls import path

from releases.publish import views_rollout as views

rollout = "<slug:org_slug>/releases/<int:release_id>/rollout/"

urlpatterns = [
    path(rollout, views.timeline, name="publish-timeline"),
    path(rollout + "hold/", views.hold, name="publish-rollout-hold"),
    path(rollout + "resume/", views.resume, name="publish-rollout-resume"),
    path(rollout + "tiers/<int:tier_id>/open-now/", views.open_now, name="publish-tier-open-now"),
]
