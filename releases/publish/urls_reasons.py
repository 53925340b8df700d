"""Workspace pages for the organization's preset rejection reasons."""

from django.urls import path

from releases.publish import views_reasons

urlpatterns = [
    path(
        "<slug:org_slug>/rejection-reasons/",
        views_reasons.rejection_reasons,
        name="publish-rejection-reasons",
    ),
    path(
        "<slug:org_slug>/rejection-reasons/<int:reason_id>/active/",
        views_reasons.rejection_reason_active,
        name="publish-rejection-reason-active",
    ),
]
