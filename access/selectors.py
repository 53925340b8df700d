"""Reads of access state used by several views."""

from __future__ import annotations

from collections import defaultdict

from access import policy
from access.models import Application, AuditEvent, Grant, Invitation
from releases.models import Tier


def standings_for_tiers(user, tiers: list[Tier]) -> dict[int, policy.TierStanding]:
    """The user's standing on each tier, in three queries whatever the number of tiers."""
    if not user.is_authenticated:
        return {tier.pk: policy.tier_standing(user, tier) for tier in tiers}
    tier_ids = [tier.pk for tier in tiers]
    applications, grants = defaultdict(list), defaultdict(list)
    for application in Application.objects.filter(user=user, tier_id__in=tier_ids):
        applications[application.tier_id].append(application)
    for grant in Grant.objects.with_license_state().filter(user=user, tier_id__in=tier_ids):
        grants[grant.tier_id].append(grant)
    invited = set(
        Invitation.objects.filter(
            tier_id__in=tier_ids, email__iexact=user.email, accepted_at__isnull=True
        ).values_list("tier_id", flat=True)
    )
    return {
        tier.pk: policy.tier_standing(
            user, tier, applications=applications[tier.pk], grants=grants[tier.pk], invited=tier.pk in invited
        )
        for tier in tiers
    }


HISTORY_LABELS = {
    "application.submitted": "Submitted",
    "application.approved": "Approved",
    "application.rejected": "Rejected",
    "application.withdrawn": "Withdrawn",
}


def application_histories(applications: list[Application]) -> dict[int, list[AuditEvent]]:
    """The audit events of each application, oldest first, in one query."""
    history = defaultdict(list)
    events = AuditEvent.objects.filter(
        target_type="application", target_id__in=[application.pk for application in applications]
    ).order_by("id")
    for event in events:
        event.label = HISTORY_LABELS.get(event.action, event.action)
        history[event.target_id].append(event)
    return history
