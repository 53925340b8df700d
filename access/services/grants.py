"""Grants: creating them on approval or acceptance, revoking, expiring."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from access import policy
from access.audit import audit_record
from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.inbox import notify
from access.models import Application, Grant, Invitation, LicenseAcceptance
from access.services.licenses import license_accept
from access.services.renewals import renewal_requests_close
from releases.models import Tier

MAX_REASON_LENGTH = 2000
# Grants expired per periodic run; the next run (a minute later) takes the rest.
EXPIRY_BATCH_SIZE = 1000


def grant_create(
    *,
    user,
    tier: Tier,
    license_acceptance: LicenseAcceptance,
    application: Application | None = None,
    actor=None,
) -> Grant:
    """Create the active grant of ``user`` on ``tier``. Runs inside the caller's transaction."""
    now = timezone.now()
    # A grant past its date that the periodic task has not marked yet would block the new one.
    for stale in Grant.objects.past_expiry(now).filter(user=user, tier=tier):
        _expire(stale)
    expires_at = now + timedelta(days=tier.grant_duration_days) if tier.grant_duration_days else None
    try:
        with transaction.atomic():
            grant = Grant.objects.create(
                user=user,
                tier=tier,
                application=application,
                license_acceptance=license_acceptance,
                granted_at=now,
                expires_at=expires_at,
            )
    except IntegrityError:
        raise InvalidTransition(
            "This user already has access to this tier.", code="already_granted"
        ) from None
    audit_record(
        action="grant.created",
        target=grant,
        actor=actor,
        payload={
            "user_id": user.pk,
            "tier_id": tier.pk,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "license_version_id": license_acceptance.license_version_id,
        },
    )
    return grant


def tier_license_accept(
    *, user, tier: Tier, typed_name: str, seen_text_sha256: str, ip_address: str | None = None
) -> Grant:
    """Grant access to a click-through tier, or to an invitation or application tier one is
    invited to, on acceptance of its license; the invitation is then used up."""
    with transaction.atomic():
        refusal = policy.license_acceptance_refusal(user, tier)
        if refusal is not None:
            raise NotAllowed(refusal.message, code=refusal.code)
        acceptance = license_accept(
            user=user,
            license_version=tier.license.current_version,
            typed_name=typed_name,
            seen_text_sha256=seen_text_sha256,
            ip_address=ip_address,
        )
        grant = grant_create(user=user, tier=tier, license_acceptance=acceptance, actor=user)
        if tier.gate in (Tier.Gate.INVITATION, Tier.Gate.APPLICATION):
            Invitation.objects.filter(tier=tier, email__iexact=user.email, accepted_at__isnull=True).update(
                accepted_at=timezone.now()
            )
    return grant


def grant_reaccept(
    *, user, tier: Tier, typed_name: str, seen_text_sha256: str, ip_address: str | None = None
) -> Grant:
    """Record the user's acceptance of the current version of the tier's license and point
    their active grant at it, after a new version required re-acceptance; downloads work again.

    Refused (nothing written) without an active grant on the tier, when the grant's acceptance
    is already current enough, or when the text changed again while the user was reading it.
    """
    with transaction.atomic():
        grant = (
            Grant.objects.select_for_update(of=("self",))
            .with_license_state()
            .select_related("license_acceptance", "tier__license")
            .filter(user=user, tier=tier)
            .active()
            .first()
        )
        if grant is None:
            raise NotAllowed("You have no active access to this tier.", code="no_grant")
        if not grant.license_outdated:
            raise InvalidTransition(
                "You have already accepted the license that applies to your access.", code="already_accepted"
            )
        previous_version_id = grant.license_acceptance.license_version_id
        acceptance = license_accept(
            user=user,
            license_version=tier.license.current_version,
            typed_name=typed_name,
            seen_text_sha256=seen_text_sha256,
            ip_address=ip_address,
        )
        grant.license_acceptance = acceptance
        grant.save(update_fields=["license_acceptance"])
        audit_record(
            action="grant.license_reaccepted",
            target=grant,
            actor=user,
            ip_address=ip_address,
            payload={
                "license_version_id": acceptance.license_version_id,
                "previous_license_version_id": previous_version_id,
                "text_sha256": acceptance.text_sha256,
            },
        )
    return grant


def invitation_create(*, tier: Tier, email: str, actor) -> Invitation:
    """Reserve access to ``tier`` for ``email``: its holder gets a grant by accepting the license.

    On an application tier an invitation is a reviewer's direct grant to someone who has not
    accepted the license yet (access.services.direct_grants); it stands in for an application.
    """
    if tier.gate not in (Tier.Gate.INVITATION, Tier.Gate.APPLICATION):
        raise InvalidInput("Only invitation and application tiers take invitations.")
    if not policy.can_review(actor, tier.release.model.organization):
        raise NotAllowed("Only the organization's owners and reviewers may invite.")
    with transaction.atomic():
        invitation, created = Invitation.objects.get_or_create(
            tier=tier, email=email.strip().lower(), defaults={"invited_by": actor}
        )
        if not created:
            raise InvalidTransition(f"{email} is already invited to this tier.")
        audit_record(
            action="invitation.created", target=invitation, actor=actor, payload={"email": invitation.email}
        )
    return invitation


def grant_revoke(*, grant_id: int, actor, reason: str) -> Grant:
    """Revoke at once: every download URL asked for from now on is refused."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Give a reason for the revocation.")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(f"A reason may have at most {MAX_REASON_LENGTH} characters.")
    with transaction.atomic():
        grant = (
            # Lock the grant only, not the tier, release and organization rows it joins.
            Grant.objects.select_for_update(of=("self",))
            .select_related("tier__release__model__organization")
            .get(pk=grant_id)
        )
        if not policy.can_review(actor, grant.tier.release.model.organization):
            raise NotAllowed("Only the organization's owners and reviewers may revoke access.")
        if grant.status != Grant.Status.ACTIVE:
            raise InvalidTransition(f"This grant is already {grant.get_status_display().lower()}.")
        grant.status = Grant.Status.REVOKED
        grant.revoked_at = timezone.now()
        grant.revoked_by = actor
        grant.revoke_reason = reason
        grant.save(update_fields=["status", "revoked_at", "revoked_by", "revoke_reason"])
        audit_record(action="grant.revoked", target=grant, actor=actor, payload={"reason": reason})
        renewal_requests_close(grant=grant, actor=actor)
        notify(
            user=grant.user,
            kind="grant_revoked",
            message=f"Your access to {grant.tier} was revoked: {reason}",
            url=reverse("tier-detail", kwargs={"tier_id": grant.tier_id}),
        )
    return grant


def grants_expire_due(*, now: datetime | None = None) -> int:
    """Mark grants past their expiry date as expired, each with its audit event.

    Downloads check ``expires_at`` themselves, so this only makes the state visible;
    the conditional update keeps overlapping runs from expiring a grant twice.
    """
    now = now or timezone.now()
    expired = 0
    for grant in Grant.objects.past_expiry(now)[:EXPIRY_BATCH_SIZE]:
        with transaction.atomic():
            expired += _expire(grant)
    return expired


def _expire(grant: Grant) -> bool:
    """Mark one grant expired, once: the conditional update loses any race cleanly."""
    changed = Grant.objects.filter(pk=grant.pk, status=Grant.Status.ACTIVE).update(
        status=Grant.Status.EXPIRED
    )
    if changed:
        audit_record(
            action="grant.expired", target=grant, payload={"expires_at": grant.expires_at.isoformat()}
        )
    return bool(changed)
