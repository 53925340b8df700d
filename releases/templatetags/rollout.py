"""Template tags of the rollout: whether the requester watches a tier."""

from django import template

from releases.announcements import is_watching

register = template.Library()


@register.simple_tag(takes_context=True)
def watching(context, tier) -> bool:
    """``{% watching tier as is_watched %}``: one query, for pages that show one tier."""
    return is_watching(context["request"].user, tier)
