"""Reviewers' decisions: approve and reject, one application at a time or many at once.

One code path serves both: the single-application services are the bulk one with one id, so
the rules cannot drift apart. The rules themselves are access.policy.decision_refusal. A tier
may need several approvals (``Tier.approvals_required``): each reviewer's approval is a Review
of the application's current revision, and the application is approved, with its grant, in the
same transaction as the approval that makes the count; a rejection by any reviewer rejects.

A bulk action writes in a constant number of queries whatever the number of applications
(bulk inserts and updates, the audit chain extended in one insert) and still one audit event
per change. Renewals are approved one by one through access.services.applications._approve,
which extends the renewed grant instead of creating one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from access import policy
from access.audit import AuditEntry, audit_record_many
from access.errors import AccessError, InvalidInput, InvalidTransition, NotAllowed
from access.models import Application, Grant, Review
from access.selectors import review_states
from access.services.grants import MAX_REASON_LENGTH, _expire
from releases.models import Organization

# The most applications one bulk action may decide; the queue shows at most this many per page.
BULK_DECISION_MAX = 1000
APPROVE, REJECT = "approve", "reject"
# Refusals that are about the application's state rather than about who asks.
_STATE_CODES = ("invalid_transition", "already_approved", "already_granted")


@dataclass
class DecisionOutcome:
    """What one call did to each application it was given."""

    decision: str
    # Approved or rejected by this call.
    decided: list[Application] = field(default_factory=list)
    # Approved by this reviewer but still waiting for the tier's further approvals.
    approval_recorded: list[Application] = field(default_factory=list)
    # Left unchanged, with the reason (an AccessError).
    skipped: dict[int, AccessError] = field(default_factory=dict)


def application_approve(*, application_id: int, reviewer, reason: str = "") -> Application:
    """Record ``reviewer``'s approval of an application awaiting a decision; with the tier's
    number of distinct approvals reached, approve it and create (or, for a renewal, extend) its
    grant in the same transaction. Raises the refusal's error, with nothing changed."""
    reason = _clean_reason(reason, required=False)
    with transaction.atomic():
        outcome = _decide([application_id], reviewer=reviewer, decision=APPROVE, reason=reason)
        return _single(outcome, application_id)


def application_reject(*, application_id: int, reviewer, reason: str) -> Application:
    """Reject an application awaiting a decision. The reason is shown to the applicant."""
    reason = _clean_reason(reason, required=True)
    with transaction.atomic():
        outcome = _decide([application_id], reviewer=reviewer, decision=REJECT, reason=reason)
        return _single(outcome, application_id)


def applications_decide(
    *, organization: Organization, application_ids: Iterable[int], reviewer, decision: str, reason: str
) -> DecisionOutcome:
    """Approve or reject many applications of ``organization`` with one reason, in one transaction.

    Each application is decided as ``application_approve``/``application_reject`` would, or
    skipped with the reason (already decided, assigned to someone else...); the others go ahead.
    Refused as a whole, with nothing changed: an id that is not an application of the
    organization, more than BULK_DECISION_MAX ids, none, or an unusable reason.
    """
    if decision not in (APPROVE, REJECT):
        raise InvalidInput("Choose approve or reject.", code="invalid_decision")
    ids = sorted(set(application_ids))
    if not ids:
        raise InvalidInput("Select at least one application.", code="nothing_selected")
    if len(ids) > BULK_DECISION_MAX:
        raise InvalidInput(
            f"Decide at most {BULK_DECISION_MAX} applications at once; {len(ids)} were selected.",
            code="too_many",
        )
    reason = _clean_reason(reason, required=decision == REJECT)
    with transaction.atomic():
        return _decide(ids, reviewer=reviewer, decision=decision, reason=reason, organization=organization)


def _clean_reason(reason: str, *, required: bool) -> str:
    reason = reason.strip()
    if required and not reason:
        raise InvalidInput("Give the applicant a reason for the rejection.", code="reason_missing")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(
            f"A reason may have at most {MAX_REASON_LENGTH} characters.", code="reason_too_long"
        )
    return reason


def _single(outcome: DecisionOutcome, application_id: int) -> Application:
    if application_id in outcome.skipped:
        raise outcome.skipped[application_id]
    return (outcome.decided or outcome.approval_recorded)[0]


def _error(refusal: policy.Refusal) -> AccessError:
    if refusal.code in _STATE_CODES:
        return InvalidTransition(refusal.message, code=refusal.code)
    return NotAllowed(refusal.message, code=refusal.code)


def _decide(
    ids: list[int], *, reviewer, decision: str, reason: str, organization: Organization | None = None
) -> DecisionOutcome:
    """The decision on ``ids``, inside the caller's transaction; rows locked in id order."""
    locked = Application.objects.select_for_update(of=("self",)).select_related(
        "user", "tier__release__model", "assigned_to", "license_acceptance"
    )
    if organization is not None:
        locked = locked.filter(tier__release__model__organization=organization)
    applications = list(locked.filter(pk__in=ids).order_by("pk"))
    if len(applications) != len(ids):
        if organization is None:
            raise NotAllowed("No such application.", code="not_found")
        found = {application.pk for application in applications}
        missing = [pk for pk in ids if pk not in found]
        shown = ", ".join(f"#{pk}" for pk in missing[:20]) + (" …" if len(missing) > 20 else "")
        raise NotAllowed(
            f"Not in this organization's queue: {shown}; nothing was changed.", code="foreign_applications"
        )
    if organization is None:
        organization_id = applications[0].tier.release.model.organization_id
        organization = Organization.objects.get(pk=organization_id)
    roles = policy.roles_in(reviewer, organization)
    states = review_states(applications)

    outcome = DecisionOutcome(decision=decision)
    acting = []
    for application in applications:
        refusal = policy.decision_refusal(
            reviewer, application, decision, roles=roles, state=states[application.pk]
        )
        if refusal is not None:
            outcome.skipped[application.pk] = _error(refusal)
        else:
            acting.append(application)
    if decision == APPROVE:
        acting = _without_granted(acting, outcome)
    if not acting:
        return outcome

    now = timezone.now()
    finishing, waiting = [], []
    if decision == APPROVE:
        for application in acting:
            application.approvals = len(states[application.pk].approver_ids | {reviewer.pk})
            if application.approvals >= application.tier.approvals_required:
                finishing.append(application)
            else:
                waiting.append(application)
    # A renewal's final approval goes through applications._approve, which writes its Review.
    renewing = {a.pk for a in finishing if a.kind != Application.Kind.NEW}
    Review.objects.bulk_create(
        Review(
            application=application,
            reviewer=reviewer,
            decision=decision,
            reason=reason,
            revision=application.revision,
            created_at=now,
        )
        for application in acting
        if application.pk not in renewing
    )
    if decision == REJECT:
        _reject_all(acting, reviewer=reviewer, reason=reason, now=now)
        outcome.decided = acting
        return outcome

    audit_record_many(
        [
            AuditEntry(
                action="application.approval_recorded",
                target=application,
                actor=reviewer,
                payload={
                    "reason": reason,
                    "revision": application.revision,
                    "approvals": application.approvals,
                    "required": application.tier.approvals_required,
                },
            )
            for application in waiting
        ]
    )
    refused = _approve_all(finishing, reviewer=reviewer, reason=reason, now=now)
    outcome.skipped.update(refused)
    outcome.decided = [application for application in finishing if application.pk not in refused]
    outcome.approval_recorded = waiting
    return outcome


def _without_granted(applications: list[Application], outcome: DecisionOutcome) -> list[Application]:
    """Skip new-access applications whose applicant meanwhile got live access to the tier."""
    new = [application for application in applications if application.kind == Application.Kind.NEW]
    if not new:
        return applications
    live = set(
        Grant.objects.active()
        .filter(user_id__in={a.user_id for a in new}, tier_id__in={a.tier_id for a in new})
        .values_list("user_id", "tier_id")
    )
    kept = []
    for application in applications:
        if application.kind == Application.Kind.NEW and (application.user_id, application.tier_id) in live:
            outcome.skipped[application.pk] = InvalidTransition(
                "This user already has access to this tier.", code="already_granted"
            )
        else:
            kept.append(application)
    return kept


def _reject_all(applications: list[Application], *, reviewer, reason: str, now) -> None:
    from access.services.applications import _notify

    Application.objects.filter(pk__in=[a.pk for a in applications]).update(
        status=Application.Status.REJECTED, decided_at=now, decision_reason=reason
    )
    for application in applications:
        application.status, application.decided_at, application.decision_reason = (
            Application.Status.REJECTED,
            now,
            reason,
        )
    audit_record_many(
        [
            AuditEntry(
                action="application.rejected",
                target=application,
                actor=reviewer,
                payload={"reason": reason, "automatic": False},
            )
            for application in applications
        ]
    )
    for application in applications:
        _notify(application, "rejected")


def _approve_all(applications: list[Application], *, reviewer, reason: str, now) -> dict[int, AccessError]:
    """Approve and grant: new access in bulk (as access.services.grants.grant_create would, one
    grant each), renewals one by one through the path that extends their grant. Returns the
    renewals that could not be approved, with the reason; they are left unchanged."""
    from access.services.applications import _approve, _notify

    renewals = [a for a in applications if a.kind != Application.Kind.NEW]
    new = [a for a in applications if a.kind == Application.Kind.NEW]
    refused = {}
    for application in renewals:
        try:
            with transaction.atomic():
                _approve(application, reviewer=reviewer, reason=reason)
        except AccessError as error:
            # The grant it renews was revoked meanwhile, say: this renewal stays as it was.
            refused[application.pk] = error
    if not new:
        return refused
    # A grant past its date that the periodic task has not marked yet would block the new one.
    pairs = {(a.user_id, a.tier_id) for a in new}
    for stale in Grant.objects.past_expiry(now).filter(
        user_id__in={user_id for user_id, _ in pairs}, tier_id__in={tier_id for _, tier_id in pairs}
    ):
        if (stale.user_id, stale.tier_id) in pairs:
            _expire(stale)
    Application.objects.filter(pk__in=[a.pk for a in new]).update(
        status=Application.Status.APPROVED, decided_at=now, decision_reason=reason
    )
    grants = []
    for application in new:
        application.status, application.decided_at, application.decision_reason = (
            Application.Status.APPROVED,
            now,
            reason,
        )
        duration = application.tier.grant_duration_days
        grants.append(
            Grant(
                user_id=application.user_id,
                tier_id=application.tier_id,
                application=application,
                license_acceptance=application.license_acceptance,
                granted_at=now,
                expires_at=now + timedelta(days=duration) if duration else None,
            )
        )
    try:
        with transaction.atomic():
            Grant.objects.bulk_create(grants)
    except IntegrityError:
        # Access granted by another path between our check and this insert: decide again.
        raise InvalidTransition(
            "Someone got access to this tier meanwhile; nothing was changed. Try again.",
            code="already_granted",
        ) from None
    entries = []
    for application, grant in zip(new, grants, strict=True):
        entries.append(
            AuditEntry(
                action="grant.created",
                target=grant,
                actor=reviewer,
                payload={
                    "user_id": grant.user_id,
                    "tier_id": grant.tier_id,
                    "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
                    "license_version_id": grant.license_acceptance.license_version_id,
                },
            )
        )
        entries.append(
            AuditEntry(
                action="application.approved",
                target=application,
                actor=reviewer,
                payload={"reason": reason, "automatic": False, "approvals": application.approvals},
            )
        )
    audit_record_many(entries)
    for application in new:
        _notify(application, "approved")
    return refused
