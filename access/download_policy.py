"""May this user download this file now, and under which tier and grant: the download half
of the policy (access/policy.py holds the rest: organizations, standing, applying, deciding).

Every download route asks here: the page's redirect, the API's download URL, the hub's resolve
and the files lists. The answers carry a stable code, a sentence and where to act.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.urls import reverse
from django.utils import timezone

from access import download_rows
from access.models import Grant
from access.policy import (
    LICENSE_CHANGED_MESSAGE,
    Refusal,
    has_verified_email,
    reaccept_url,
    tier_standing,
)
from releases.models import Artifact, Tier


@dataclass(frozen=True)
class DownloadDecision:
    allowed: bool
    code: str
    message: str
    tier: Tier | None = None
    grant: Grant | None = None
    action_url: str = ""


def download_decision(
    user,
    artifact: Artifact,
    *,
    tiers: list[Tier] | None = None,
    grants: list[Grant] | None = None,
    now: datetime | None = None,
) -> DownloadDecision:
    """May ``user`` download ``artifact`` at this moment, and under which tier and grant?

    Checked on every download URL issued: a revoked or expired grant stops working on
    the very next request. Callers that loaded the artifact's tiers (and the user's grants
    on them, newest first, with ``with_license_state``) pass them; otherwise three queries.
    """
    now = now or timezone.now()
    if tiers is None:
        tiers = list(artifact.tiers.all())
    tiers = [tier for tier in tiers if tier.is_open]
    if not tiers:
        return DownloadDecision(False, "not_open", "No tier that includes this file is open yet.")
    for tier in tiers:
        if tier.gate == Tier.Gate.OPEN:
            return DownloadDecision(True, "open", "", tier=tier)
    if not has_verified_email(user):
        return DownloadDecision(
            False,
            "email_unverified",
            "Verify your e-mail address before downloading.",
            action_url=reverse("account_email"),
        )
    if grants is None:
        grants = list(download_grants(user, tiers))
    else:
        open_tier_ids = {tier.pk for tier in tiers}
        grants = [grant for grant in grants if grant.tier_id in open_tier_ids]
    outdated_grant = None
    for grant in grants:
        if grant.status == Grant.Status.ACTIVE and (grant.expires_at is None or grant.expires_at > now):
            if grant.license_outdated:
                # Another live grant whose acceptance is current may still cover the file.
                outdated_grant = outdated_grant or grant
                continue
            tier = next(tier for tier in tiers if tier.pk == grant.tier_id)
            return DownloadDecision(True, "approved", "", tier=tier, grant=grant)
    if outdated_grant is not None:
        tier = next(tier for tier in tiers if tier.pk == outdated_grant.tier_id)
        return DownloadDecision(
            False,
            "license_changed",
            LICENSE_CHANGED_MESSAGE,
            tier=tier,
            grant=outdated_grant,
            action_url=reaccept_url(tier),
        )
    first_tier = tiers[0]
    apply_url = reverse("tier-detail", kwargs={"tier_id": first_tier.pk})
    if grants:
        latest = grants[0]
        if latest.status == Grant.Status.REVOKED:
            reason = f" Reason: {latest.revoke_reason}" if latest.revoke_reason else ""
            return DownloadDecision(
                False,
                "revoked",
                f"Your access to {latest.tier.name} was revoked.{reason} "
                "Contact the publisher if you think this is wrong.",
                grant=latest,
                action_url=apply_url,
            )
        return DownloadDecision(
            False,
            "expired",
            f"Your access to {latest.tier.name} expired on {latest.expires_at:%Y-%m-%d}. "
            "Apply again to renew it.",
            grant=latest,
            action_url=apply_url,
        )
    return DownloadDecision(
        False,
        "no_grant",
        "You do not have access to this file. Request access on the tier's page.",
        action_url=apply_url,
    )


def download_grants(user, tiers):
    """The user's grants on ``tiers``, newest first, as ``download_decision`` reads them.

    Hand-written SQL on PostgreSQL (access/download_rows.py: every download URL reads this).
    """
    if connection.vendor == "postgresql":
        return download_rows.grants(user, list(tiers))
    return download_grants_orm(user, tiers)


def download_grants_orm(user, tiers):
    return (
        Grant.objects.filter(user=user, tier__in=tiers)
        .with_license_state()
        .select_related("license_acceptance", "tier")
        .order_by("-granted_at")
    )


def tier_download_refusal(user, tier: Tier) -> Refusal | None:
    """Why ``user`` may not see and fetch the files of ``tier`` now, or None if they may."""
    if not tier.is_open:
        return Refusal("not_open", f"This tier opens on {tier.opens_at:%Y-%m-%d %H:%M} UTC.")
    if tier.gate == Tier.Gate.OPEN:
        return None
    if not has_verified_email(user):
        return Refusal(
            "email_unverified", "Verify your e-mail address before downloading.", reverse("account_email")
        )
    standing = tier_standing(user, tier)
    if standing.can_download:
        return None
    if standing.code == "license_changed":
        return Refusal("license_changed", LICENSE_CHANGED_MESSAGE, reaccept_url(tier))
    apply_url = reverse("tier-detail", kwargs={"tier_id": tier.pk})
    messages = {
        "revoked": f"Your access to this tier was revoked. {standing.detail}".strip(),
        "expired": "Your access to this tier has expired. Apply again to renew it.",
        "pending": "Your application is still pending. " + standing.detail,
    }
    code = standing.code if standing.code in messages else "no_grant"
    return Refusal(
        code,
        messages.get(code, "You do not have access to this tier. Request access on its page."),
        apply_url,
    )
