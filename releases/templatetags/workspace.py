from typing import NamedTuple

from django import template
from django.contrib.auth import get_user_model
from django.db.models import Exists

from access import inbox, policy

register = template.Library()


class HeaderFacts(NamedTuple):
    publishes_anywhere: bool
    unread_notifications: int


@register.simple_tag(takes_context=True)
def publishes_anywhere(context) -> bool:
    """Whether the signed-in user may open some organization's publisher workspace."""
    return _header_facts(context).publishes_anywhere


@register.simple_tag(takes_context=True)
def unread_notifications(context) -> int:
    """How many of the signed-in user's notifications are unread."""
    return _header_facts(context).unread_notifications


def _header_facts(context) -> HeaderFacts:
    """What the header shows a signed-in user: one query for all of it, once per request, asked
    only where the header is drawn for an authenticated user."""
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return HeaderFacts(False, 0)
    request = context.get("request")
    facts = getattr(request, "_gatehouse_header_facts", None)
    if facts is None:
        row = (
            get_user_model()
            .objects.filter(pk=user.pk)
            .annotate(
                publishes=Exists(policy.publishable_organizations(user)),
                unread=inbox.unread_count_of_user_row(),
            )
            .values_list("publishes", "unread")
            .first()
        )
        facts = HeaderFacts(*row) if row else HeaderFacts(False, 0)
        if request is not None:
            request._gatehouse_header_facts = facts
    return facts
