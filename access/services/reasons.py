"""Preset rejection reasons: the sentences an organization's reviewers pick from.

Owners and publishers manage them (access.policy.can_publish). A reason is retired rather than
deleted: it leaves the reviewers' pickers, and can be restored; applications keep the text they
were given, so nothing else depends on the row.
"""

from __future__ import annotations

from django.db import transaction

from access import policy
from access.audit import audit_record
from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.models import RejectionReason
from releases.models import Organization

MAX_REJECTION_REASON_LENGTH = RejectionReason._meta.get_field("text").max_length
# Active reasons per organization: a picker longer than this helps nobody.
MAX_ACTIVE_REJECTION_REASONS = 100


def rejection_reason_create(*, organization: Organization, text: str, actor) -> RejectionReason:
    """Add an active preset reason. Refused: an empty or over-long text, one the organization
    already has (in any case), more than MAX_ACTIVE_REJECTION_REASONS active reasons."""
    text = " ".join(text.split())
    if not text:
        raise InvalidInput("Write the reason.", code="text_missing")
    if len(text) > MAX_REJECTION_REASON_LENGTH:
        raise InvalidInput(
            f"A preset reason has at most {MAX_REJECTION_REASON_LENGTH} characters.", code="text_too_long"
        )
    with transaction.atomic():
        _lock(organization, actor)
        existing = RejectionReason.objects.filter(organization=organization, text__iexact=text).first()
        if existing is not None:
            hint = "" if existing.active else " It is retired: restore it instead."
            raise InvalidTransition(f"This reason already exists.{hint}", code="duplicate")
        _check_room(organization)
        reason = RejectionReason.objects.create(organization=organization, text=text)
        audit_record(action="rejection_reason.created", target=reason, actor=actor, payload={"text": text})
    return reason


def rejection_reason_set_active(
    *, organization: Organization, reason_id: int, active: bool, actor
) -> RejectionReason:
    """Retire a preset reason (``active=False``) or restore it. Raises RejectionReason.DoesNotExist
    for a reason of another organization."""
    with transaction.atomic():
        _lock(organization, actor)
        reason = RejectionReason.objects.select_for_update().get(pk=reason_id, organization=organization)
        if reason.active == active:
            state = "in use" if active else "retired"
            raise InvalidTransition(f"This reason is already {state}.")
        if active:
            _check_room(organization)
        reason.active = active
        reason.save(update_fields=["active"])
        audit_record(
            action="rejection_reason.restored" if active else "rejection_reason.retired",
            target=reason,
            actor=actor,
            payload={"text": reason.text},
        )
    return reason


def _lock(organization: Organization, actor) -> None:
    if not policy.can_publish(actor, organization):
        raise NotAllowed("Only the organization's owners and publishers manage preset reasons.")
    # Serialises changes to one organization's reasons, so that the limit holds under races.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()


def _check_room(organization: Organization) -> None:
    if (
        RejectionReason.objects.filter(organization=organization, active=True).count()
        >= MAX_ACTIVE_REJECTION_REASONS
    ):
        raise InvalidInput(
            f"An organization has at most {MAX_ACTIVE_REJECTION_REASONS} preset reasons in use; "
            "retire one first.",
            code="too_many",
        )
