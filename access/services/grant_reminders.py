"""Reminders before a grant expires, GRANT_EXPIRY_REMINDER_DAYS ahead (30 and 7 days by default).

A periodic task scans the database; each reminder is sent once. Its key
(``grant:<id>:expiry-reminder:<days>:<expiry timestamp>``) is written in SentEmail in the
same transaction as the in-app notification that carries it (``access.inbox.notify``
e-mails it at once or in the digest), so an overlapping or repeated run finds the key and
sends nothing, and a grant extended by a renewal gets reminders again for its new date.

A grant is reminded for the nearest threshold it has crossed only: one that is granted
with ten days left, or that the scan reaches late, gets the 30-day reminder, then the
7-day one, never a 30-day reminder after the 7-day one.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from access.inbox import notify
from access.models import Grant, SentEmail
from releases.models import Tier

# Grants read per query while scanning one reminder window.
REMINDER_BATCH_SIZE = 1000


def grant_expiry_reminders_send(*, now: datetime | None = None) -> int:
    """Remind the holders of active grants that expire within a reminder threshold; returns
    how many reminders this run sent."""
    now = now or timezone.now()
    sent = 0
    window_start = now
    for days in sorted(settings.GRANT_EXPIRY_REMINDER_DAYS):
        window_end = now + timedelta(days=days)
        sent += _remind_window(days, window_start, window_end, now=now)
        window_start = window_end
    return sent


def _remind_window(days: int, start: datetime, end: datetime, *, now: datetime) -> int:
    """Remind, for threshold ``days``, the grants expiring in (start, end]."""
    sent = 0
    last_pk = 0
    grants = (
        Grant.objects.filter(status=Grant.Status.ACTIVE, expires_at__gt=start, expires_at__lte=end)
        .select_related("user", "tier__release__model")
        .order_by("pk")
    )
    while True:
        batch = list(grants.filter(pk__gt=last_pk)[:REMINDER_BATCH_SIZE])
        if not batch:
            return sent
        keys = {grant.pk: reminder_key(grant, days) for grant in batch}
        already_sent = set(SentEmail.objects.filter(key__in=keys.values()).values_list("key", flat=True))
        for grant in batch:
            if keys[grant.pk] not in already_sent:
                sent += _remind(grant, keys[grant.pk], now=now)
        last_pk = batch[-1].pk


def reminder_key(grant: Grant, days: int) -> str:
    return f"grant:{grant.pk}:expiry-reminder:{days}:{int(grant.expires_at.timestamp())}"


def _remind(grant: Grant, key: str, *, now: datetime) -> int:
    days_left = max(1, math.ceil((grant.expires_at - now) / timedelta(days=1)))
    tier = grant.tier
    if tier.renewal == Tier.Renewal.NONE:
        action, url = "Apply again once it has expired.", reverse("tier-detail", kwargs={"tier_id": tier.pk})
    else:
        action, url = "Ask for a renewal.", reverse("grant-renew", kwargs={"grant_id": grant.pk})
    message = (
        f"Your access to {tier} expires on {grant.expires_at:%Y-%m-%d} (in {days_left} "
        f"day{'s' if days_left != 1 else ''}). {action}"
    )
    try:
        with transaction.atomic():
            SentEmail.objects.create(key=key, to=grant.user.email, subject=message[:300])
            notify(user=grant.user, kind="grant_expiring", message=message, url=url)
    except IntegrityError:
        # An overlapping run sent this reminder first.
        return 0
    return 1
