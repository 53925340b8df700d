"""Applications: submitting, approving, rejecting, withdrawing."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from access import policy
from access.audit import audit_record
from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.models import Application, Review
from access.questions import clean_answers
from access.services.grants import MAX_REASON_LENGTH, grant_create
from access.services.licenses import license_accept
from releases.models import Tier

MAX_AFFILIATION_LENGTH = 200
MAX_INTENDED_USE_LENGTH = 5000


def application_submit(
    *,
    user,
    tier: Tier,
    affiliation: str,
    intended_use: str,
    answers: dict,
    typed_name: str,
    seen_text_sha256: str,
    ip_address: str | None = None,
) -> Application:
    """Submit an application with its license acceptance, in one transaction.

    An auto-approval tier approves it at once (and creates the grant); otherwise it
    waits for a reviewer. The applicant is e-mailed after commit.
    """
    affiliation, intended_use = affiliation.strip(), intended_use.strip()
    if not affiliation or len(affiliation) > MAX_AFFILIATION_LENGTH:
        raise InvalidInput(
            f"Give your affiliation, in at most {MAX_AFFILIATION_LENGTH} characters.", code="affiliation"
        )
    if not intended_use or len(intended_use) > MAX_INTENDED_USE_LENGTH:
        raise InvalidInput(
            f"Describe your intended use, in at most {MAX_INTENDED_USE_LENGTH} characters.",
            code="intended_use",
        )
    cleaned_answers = clean_answers(tier.questions, answers)
    try:
        with transaction.atomic():
            refusal = policy.application_refusal(user, tier)
            if refusal is not None:
                raise NotAllowed(refusal.message, code=refusal.code)
            acceptance = license_accept(
                user=user,
                license_version=tier.license.current_version,
                typed_name=typed_name,
                seen_text_sha256=seen_text_sha256,
                ip_address=ip_address,
            )
            now = timezone.now()
            application = Application.objects.create(
                user=user,
                tier=tier,
                affiliation=affiliation,
                intended_use=intended_use,
                answers=cleaned_answers,
                questions=tier.questions,
                license_acceptance=acceptance,
                submitted_at=now,
                decision_due_at=now + timedelta(days=tier.review_days),
            )
            audit_record(
                action="application.submitted",
                target=application,
                actor=user,
                ip_address=ip_address,
                payload={"tier_id": tier.pk},
            )
            if tier.approval == Tier.Approval.AUTO:
                _approve(application, reviewer=None, reason="Approved automatically.")
            else:
                _notify(application, "submitted")
    except IntegrityError:
        # Two submissions raced past the policy check; the partial unique index caught the second.
        raise NotAllowed(
            "You already have an application open for this tier.", code="already_pending"
        ) from None
    return application


def _locked_pending(application_id: int, reviewer) -> Application:
    application = (
        Application.objects.select_for_update(of=("self",))
        .select_related("tier__release__model__organization", "user")
        .get(pk=application_id)
    )
    if not policy.can_review(reviewer, application.tier.release.model.organization):
        raise NotAllowed("Only the organization's owners and reviewers may decide applications.")
    if application.user_id == reviewer.pk:
        raise NotAllowed("You cannot decide your own application.", code="own_application")
    if application.status != Application.Status.PENDING:
        raise InvalidTransition(f"This application is already {application.get_status_display().lower()}.")
    return application


def application_approve(*, application_id: int, reviewer, reason: str = "") -> Application:
    """Approve a pending application and create its grant, in the same transaction."""
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(f"A reason may have at most {MAX_REASON_LENGTH} characters.")
    with transaction.atomic():
        application = _locked_pending(application_id, reviewer)
        _approve(application, reviewer=reviewer, reason=reason.strip())
    return application


def _approve(application: Application, *, reviewer, reason: str) -> None:
    if reviewer is not None:
        Review.objects.create(
            application=application, reviewer=reviewer, decision=Review.Decision.APPROVE, reason=reason
        )
    application.status = Application.Status.APPROVED
    application.decided_at = timezone.now()
    application.decision_reason = reason
    application.save(update_fields=["status", "decided_at", "decision_reason"])
    grant_create(
        user=application.user,
        tier=application.tier,
        license_acceptance=application.license_acceptance,
        application=application,
        actor=reviewer,
    )
    audit_record(
        action="application.approved",
        target=application,
        actor=reviewer,
        payload={"reason": reason, "automatic": reviewer is None},
    )
    _notify(application, "approved")


def application_reject(*, application_id: int, reviewer, reason: str) -> Application:
    """Reject a pending application. The reason is shown to the applicant."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Give the applicant a reason for the rejection.", code="reason_missing")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(
            f"A reason may have at most {MAX_REASON_LENGTH} characters.", code="reason_too_long"
        )
    with transaction.atomic():
        application = _locked_pending(application_id, reviewer)
        Review.objects.create(
            application=application, reviewer=reviewer, decision=Review.Decision.REJECT, reason=reason
        )
        application.status = Application.Status.REJECTED
        application.decided_at = timezone.now()
        application.decision_reason = reason
        application.save(update_fields=["status", "decided_at", "decision_reason"])
        audit_record(
            action="application.rejected", target=application, actor=reviewer, payload={"reason": reason}
        )
        _notify(application, "rejected")
    return application


def application_withdraw(*, application_id: int, user) -> Application:
    with transaction.atomic():
        application = Application.objects.select_for_update().get(pk=application_id, user=user)
        if application.status != Application.Status.PENDING:
            raise InvalidTransition(
                f"This application is already {application.get_status_display().lower()}."
            )
        application.status = Application.Status.WITHDRAWN
        application.decided_at = timezone.now()
        application.save(update_fields=["status", "decided_at"])
        audit_record(action="application.withdrawn", target=application, actor=user)
    return application


def _notify(application: Application, event: str) -> None:
    from access.tasks import send_application_email

    send_application_email.delay_on_commit(application.pk, event)
