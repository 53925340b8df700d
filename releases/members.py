"""An organization's members: invitations by e-mail, roles, removal.

Each service is keyword-only, runs in one transaction, checks who acts (only owners
manage members) and the current state itself, raises MembershipError for anything
illegal, and writes its audit event in the same transaction. An organization always
keeps at least one owner: every change that could remove the last one locks the
organization row first, so two owners demoting each other at once cannot both win.
"""

from __future__ import annotations

import logging

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from access import policy
from access.audit import audit_record
from access.models import SentEmail
from releases.models import Membership, Organization, OrganizationInvitation
from releases.services import ReleaseError

logger = logging.getLogger(__name__)

MAX_EMAIL_LENGTH = 254


class MembershipError(ReleaseError):
    """An illegal change to an organization's members; the message is meant for people."""

    def __init__(self, message: str, *, code: str = "membership_error"):
        super().__init__(message)
        self.message = message
        self.code = code


def _require_owner(actor, organization: Organization) -> None:
    if actor is None or not policy.can_manage_members(actor, organization):
        raise MembershipError("Only the organization's owners manage its members.", code="not_owner")


def _require_role(role: str) -> None:
    if role not in Membership.Role.values:
        raise MembershipError(
            f"Unknown role {role!r}; choose one of {', '.join(Membership.Role.values)}.", code="unknown_role"
        )


def _normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    if len(email) > MAX_EMAIL_LENGTH:
        raise MembershipError(
            f"An e-mail address has at most {MAX_EMAIL_LENGTH} characters.", code="bad_email"
        )
    try:
        validate_email(email)
    except ValidationError:
        raise MembershipError(
            f"{email or 'An empty value'} is not an e-mail address.", code="bad_email"
        ) from None
    return email


def _lock_membership(membership: Membership) -> tuple[Membership, int]:
    """Lock the organization row, then the membership: the membership as it is now, and how many owners
    the organization has. Refused when the person is no longer a member."""
    organization = membership.organization
    Organization.objects.select_for_update().get(pk=organization.pk)
    owners = Membership.objects.filter(organization=organization, role=Membership.Role.OWNER).count()
    locked = Membership.objects.select_for_update().select_related("user").filter(pk=membership.pk).first()
    if locked is None:
        raise MembershipError("This person is no longer a member.", code="not_member")
    return locked, owners


def _refuse_losing_last_owner(membership: Membership, owners: int) -> None:
    """Refuse to demote or remove ``membership`` when it is the organization's only owner."""
    if membership.role == Membership.Role.OWNER and owners <= 1:
        raise MembershipError(
            "An organization needs at least one owner: make someone else owner first.", code="last_owner"
        )


def _member_label(membership: Membership) -> str:
    return membership.user.full_name or membership.user.email


# --- Invitations ----------------------------------------------------------------------------


def membership_invite(*, organization: Organization, email: str, role: str, actor) -> OrganizationInvitation:
    """Offer ``role`` in ``organization`` to ``email``, and e-mail the link after commit.

    Refused for a non-owner, an unknown role, a malformed address, an address that already
    belongs to a member, or one that already has an open invitation.
    """
    _require_owner(actor, organization)
    _require_role(role)
    email = _normalise_email(email)
    with transaction.atomic():
        if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
            raise MembershipError(
                f"{email} is already a member of {organization.name}.", code="already_member"
            )
        try:
            with transaction.atomic():
                invitation = OrganizationInvitation.objects.create(
                    organization=organization, email=email, role=role, invited_by=actor
                )
        except IntegrityError:
            raise MembershipError(
                f"{email} already has an open invitation to {organization.name}.", code="already_invited"
            ) from None
        audit_record(
            action="organization.member_invited",
            target=invitation,
            actor=actor,
            payload={"organization_id": organization.pk, "email": email, "role": role},
        )
        from releases.tasks import send_organization_invitation_email

        send_organization_invitation_email.delay_on_commit(invitation.pk)
    return invitation


def invitation_accept(*, invitation: OrganizationInvitation, user) -> Membership:
    """Make ``user`` a member with the invitation's role, once.

    The user must own the invited address, verified. Refused when the invitation was already
    taken or withdrawn, or when the user is already a member.
    """
    with transaction.atomic():
        invitation = (
            OrganizationInvitation.objects.select_for_update()
            .select_related("organization")
            .filter(pk=invitation.pk)
            .first()
        )
        if invitation is None:
            raise MembershipError("This invitation was withdrawn.", code="invitation_withdrawn")
        if invitation.accepted_at is not None:
            raise MembershipError("This invitation was already accepted.", code="invitation_taken")
        if not EmailAddress.objects.filter(user=user, email__iexact=invitation.email, verified=True).exists():
            raise MembershipError(
                f"This invitation is for {invitation.email}; verify that address on your account first.",
                code="email_mismatch",
            )
        organization = invitation.organization
        if Membership.objects.filter(organization=organization, user=user).exists():
            raise MembershipError(f"You are already a member of {organization.name}.", code="already_member")
        membership = Membership.objects.create(organization=organization, user=user, role=invitation.role)
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
        audit_record(
            action="organization.member_joined",
            target=membership,
            actor=user,
            payload={
                "organization_id": organization.pk,
                "user_id": user.pk,
                "role": membership.role,
                "invitation_id": invitation.pk,
            },
        )
    return membership


def invitation_withdraw(*, invitation: OrganizationInvitation, actor) -> None:
    """Withdraw an open invitation; its link stops working."""
    _require_owner(actor, invitation.organization)
    with transaction.atomic():
        locked = OrganizationInvitation.objects.select_for_update().filter(pk=invitation.pk).first()
        if locked is None or locked.accepted_at is not None:
            raise MembershipError("This invitation is no longer open.", code="invitation_taken")
        audit_record(
            action="organization.invitation_withdrawn",
            target=locked,
            actor=actor,
            payload={"organization_id": locked.organization_id, "email": locked.email, "role": locked.role},
        )
        locked.delete()


def invitations_accept_for_email(*, user, email: str) -> list[Membership]:
    """Take every open invitation to ``email``, now verified on ``user``'s account.

    Called when allauth confirms an address: a new user invited before signing up becomes a
    member as soon as their e-mail is verified. An invitation that cannot be taken (the user is
    already a member) is left open and logged; the owner sees it on the members page.
    """
    memberships = []
    for invitation in OrganizationInvitation.objects.filter(email__iexact=email, accepted_at__isnull=True):
        try:
            memberships.append(invitation_accept(invitation=invitation, user=user))
        except MembershipError as error:
            logger.info("Invitation %s not taken by user %s: %s", invitation.pk, user.pk, error.message)
    return memberships


def on_email_confirmed(sender, request, email_address, **kwargs) -> None:
    """allauth's ``email_confirmed`` signal; connected in releases.apps."""
    invitations_accept_for_email(user=email_address.user, email=email_address.email)


def invitation_email_send(*, invitation_id: int) -> bool:
    """E-mail the invitation link; keyed in SentEmail so a redelivered task sends it once.

    Returns False when the invitation is gone, taken, or its e-mail was already sent.
    """
    invitation = (
        OrganizationInvitation.objects.select_related("organization", "invited_by")
        .filter(pk=invitation_id, accepted_at__isnull=True)
        .first()
    )
    if invitation is None:
        return False
    context = {
        "invitation": invitation,
        "organization": invitation.organization,
        "role": Membership.Role(invitation.role).label,
        "accept_url": settings.SITE_URL
        + reverse("publish-invitation", kwargs={"invitation_id": invitation.pk}),
        "signup_url": settings.SITE_URL + reverse("account_signup"),
    }
    subject = render_to_string("releases/publish/emails/invitation_subject.txt", context).strip()
    body = render_to_string("releases/publish/emails/invitation.txt", context)
    try:
        with transaction.atomic():
            receipt = SentEmail.objects.create(
                key=f"organization-invitation:{invitation.pk}", to=invitation.email, subject=subject[:300]
            )
    except IntegrityError:
        return False
    try:
        send_mail(subject, body, None, [invitation.email])
    except Exception:
        SentEmail.objects.filter(pk=receipt.pk).delete()
        raise
    return True


# --- Roles and removal ----------------------------------------------------------------------


def membership_change_role(*, membership: Membership, role: str, actor) -> Membership:
    """Give a member another role. The last owner cannot be demoted."""
    _require_owner(actor, membership.organization)
    _require_role(role)
    with transaction.atomic():
        membership, owners = _lock_membership(membership)
        if membership.role == role:
            raise MembershipError(
                f"{_member_label(membership)} is already {Membership.Role(role).label.lower()}.",
                code="same_role",
            )
        _refuse_losing_last_owner(membership, owners)
        previous = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            action="organization.member_role_changed",
            target=membership,
            actor=actor,
            payload={
                "organization_id": membership.organization_id,
                "user_id": membership.user_id,
                "from": previous,
                "to": role,
            },
        )
    return membership


def membership_remove(*, membership: Membership, actor) -> None:
    """Remove a member from the organization. The last owner cannot be removed."""
    _require_owner(actor, membership.organization)
    with transaction.atomic():
        membership, owners = _lock_membership(membership)
        _refuse_losing_last_owner(membership, owners)
        audit_record(
            action="organization.member_removed",
            target=membership,
            actor=actor,
            payload={
                "organization_id": membership.organization_id,
                "user_id": membership.user_id,
                "role": membership.role,
            },
        )
        membership.delete()
