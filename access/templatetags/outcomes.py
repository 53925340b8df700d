"""Template helpers for outcomes and grants: an application's earlier versions, and whether
the user reviews for a tier's organization."""

from __future__ import annotations

from django import template

from access import policy
from access.models import Application, ApplicationRevision
from access.views.apply import _answer_rows

register = template.Library()


@register.simple_tag
def application_versions(application: Application) -> list[ApplicationRevision]:
    """The application's earlier versions, oldest first, each with ``answer_rows`` labelled by
    the questions that version answered. One query."""
    versions = list(ApplicationRevision.objects.filter(application=application).order_by("number"))
    for version in versions:
        version.answer_rows = _answer_rows(version)
    return versions


@register.simple_tag(takes_context=True)
def reviews_tier(context, tier) -> bool:
    """Whether the signed-in user reviews for the tier's organization (and may see its grants)."""
    user = context["request"].user
    return user.is_authenticated and policy.can_review(user, tier.release.model.organization)
