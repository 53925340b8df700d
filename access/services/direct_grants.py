"""A reviewer gives a person access to a tier directly, by e-mail address.

Access in Gatehouse always rests on the holder's own acceptance of the tier's license text, so a
reviewer cannot simply create a grant for someone. ``grant_direct`` therefore does the strongest
thing the license allows, in this order:

1. an application of theirs awaiting a decision on the tier is approved, through
   ``access.services.decisions.application_approve`` (the tier's number of approvals, the
   assignment and own-application rules apply as on the review page);
2. otherwise, if they have already accepted the tier's license in a version that is still
   binding (in an earlier application, or on another tier under the same license), a grant is
   created at once on that acceptance;
3. otherwise they are invited (an ``Invitation`` for their e-mail address, on invitation and
   application tiers): they get the grant when they accept the license on the tier's page.

Used by the REST API (POST /api/v1/tiers/{id}/grants) and by the hub's ``grant_access``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from access import policy
from access.audit import audit_record
from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.inbox import notify
from access.models import Application, Grant, Invitation, LicenseAcceptance, User
from access.services.decisions import application_approve
from access.services.grants import grant_create, invitation_create
from releases.models import Tier

GRANTED, APPROVED, APPROVAL_RECORDED, INVITED = "granted", "approved", "approval_recorded", "invited"


@dataclass(frozen=True)
class DirectGrant:
    """What ``grant_direct`` did: ``outcome`` is one of granted, approved, approval_recorded, invited."""

    outcome: str
    email: str
    grant: Grant | None = None
    application: Application | None = None
    invitation: Invitation | None = None


def grant_direct(*, tier: Tier, email: str, actor) -> DirectGrant:
    """Give the holder of ``email`` access to ``tier`` on ``actor``'s decision (see the module).

    Refused, with nothing changed: a reviewer of another organization (``not_allowed``), an
    unusable address (``invalid_email``), an open tier (``open_tier``), the actor's own address
    (``own_grant``), live access already (``already_granted``), and, where no grant can be made
    at once, a tier closed to new access (``closed``), a click-through tier (anyone may accept
    its license; ``license_acceptance_needed``), a revoked holder (``revoked``) or an open
    invitation (``already_invited``). An application the actor may not approve (assigned to
    someone else, say) is refused with the decision's own code.
    """
    email = _clean_email(email)
    organization = tier.release.model.organization
    if not policy.can_review(actor, organization):
        raise NotAllowed("Only the organization's owners and reviewers may grant access.")
    if tier.gate == Tier.Gate.OPEN:
        raise InvalidInput("This tier is open to everyone; there is nothing to grant.", code="open_tier")
    if email == actor.email.lower():
        raise NotAllowed("You cannot grant access to yourself; another reviewer must.", code="own_grant")
    user = User.objects.filter(email__iexact=email).first()
    with transaction.atomic():
        if user is not None:
            if Grant.objects.active().filter(user=user, tier=tier).exists():
                raise InvalidTransition(f"{email} already has access to this tier.", code="already_granted")
            awaiting = (
                Application.objects.filter(user=user, tier=tier, status__in=Application.AWAITING_DECISION)
                .values_list("pk", flat=True)
                .first()
            )
            if awaiting is not None:
                application = application_approve(application_id=awaiting, reviewer=actor)
                if application.status == Application.Status.APPROVED:
                    grant = Grant.objects.get(application=application)
                    return DirectGrant(APPROVED, email, grant=grant, application=application)
                return DirectGrant(APPROVAL_RECORDED, email, application=application)
        if tier.closes_at is not None and tier.closes_at <= timezone.now():
            raise InvalidTransition(
                f"This tier closed on {tier.closes_at:%Y-%m-%d} UTC; it takes no new access.", code="closed"
            )
        acceptance = _binding_acceptance(user, tier) if user is not None else None
        if acceptance is not None:
            grant = grant_create(user=user, tier=tier, license_acceptance=acceptance, actor=actor)
            audit_record(
                action="grant.granted_directly",
                target=grant,
                actor=actor,
                payload={"email": email, "license_acceptance_id": acceptance.pk},
            )
            notify(
                user=user,
                kind="grant_created",
                message=f"You were given access to {tier}.",
                url=reverse("tier-detail", kwargs={"tier_id": tier.pk}),
            )
            return DirectGrant(GRANTED, email, grant=grant)
        return DirectGrant(INVITED, email, invitation=_invite(tier, email, user=user, actor=actor))


def _clean_email(email: str) -> str:
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidInput(f"“{email[:100]}” is not an e-mail address.", code="invalid_email") from None
    return email


def _binding_acceptance(user, tier: Tier) -> LicenseAcceptance | None:
    """The user's latest acceptance of the tier's license in a version no later version
    supersedes (one published with re-acceptance required), or None.

    A grant on it is not ``license_outdated`` (access.models.GrantQuerySet.with_license_state).
    """
    binding = tier.license.versions.filter(requires_reacceptance=True).aggregate(number=Max("number"))
    binding_from = binding["number"] or 0
    return (
        LicenseAcceptance.objects.filter(
            user=user, license_version__license=tier.license, license_version__number__gte=binding_from
        )
        .order_by("-accepted_at", "-pk")
        .first()
    )


def _invite(tier: Tier, email: str, *, user, actor) -> Invitation:
    if tier.gate == Tier.Gate.CLICK_THROUGH:
        raise InvalidTransition(
            f"Anyone gets this tier by accepting its license; {email} has not. Send them the tier's page.",
            code="license_acceptance_needed",
        )
    latest_grant = None
    if user is not None:
        latest_grant = Grant.objects.filter(user=user, tier=tier).order_by("-granted_at").first()
    if latest_grant is not None and latest_grant.status == Grant.Status.REVOKED:
        # The policy refuses a revoked holder's own acceptance; an invitation would never work.
        raise InvalidTransition(
            f"The access of {email} was revoked and they have not accepted the current license, "
            "so it cannot be restored here.",
            code="revoked",
        )
    invitation = Invitation.objects.select_for_update().filter(tier=tier, email__iexact=email).first()
    if invitation is None:
        invitation = invitation_create(tier=tier, email=email, actor=actor)
    elif invitation.accepted_at is None:
        raise InvalidTransition(
            f"{email} is already invited; they get access when they accept the license.",
            code="already_invited",
        )
    else:
        # Accepted once, and that access has since ended: the same invitation is open again.
        invitation.accepted_at = None
        invitation.save(update_fields=["accepted_at"])
        audit_record(action="invitation.reopened", target=invitation, actor=actor, payload={"email": email})
    if user is not None:
        notify(
            user=user,
            kind="tier_invited",
            message=f"You are invited to {tier}: accept its license to get access.",
            url=reverse("tier-detail", kwargs={"tier_id": tier.pk}),
        )
    return invitation
