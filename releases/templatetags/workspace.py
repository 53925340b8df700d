from django import template

from access import policy

register = template.Library()


@register.simple_tag(takes_context=True)
def publishes_anywhere(context) -> bool:
    """Whether the signed-in user may open some organization's publisher workspace: one query,
    asked only where the header is drawn for an authenticated user."""
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return False
    return policy.publishable_organizations(user).exists()
