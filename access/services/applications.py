"""Applications: submitting, withdrawing, and the approval and rejection steps shared by
reviewers (access.services.decisions) and automatic decisions."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from access import policy
from access.audit import audit_record
from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.models import Application, Review
from access.questions import clean_answers
from access.services.assignment import application_assign

# Reviewers' decisions live in access.services.decisions; importable from here too.
from access.services.decisions import application_approve, application_reject  # noqa: F401
from access.services.grants import MAX_REASON_LENGTH, grant_create
from access.services.licenses import license_accept
from access.services.renewals import grant_extend
from releases.models import Tier

MAX_AFFILIATION_LENGTH = 200
MAX_INTENDED_USE_LENGTH = 5000


def clean_statement(*, affiliation: str, intended_use: str) -> tuple[str, str]:
    """The applicant's affiliation and intended use, stripped; InvalidInput when empty or too long."""
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
    return affiliation, intended_use


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
    affiliation, intended_use = clean_statement(affiliation=affiliation, intended_use=intended_use)
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
                application_assign(application=application)
                screen_after_commit(application)
    except IntegrityError:
        # Two submissions raced past the policy check; the partial unique index caught the second.
        raise NotAllowed(
            "You already have an application open for this tier.", code="already_pending"
        ) from None
    return application


def _approve(application: Application, *, reviewer, reason: str) -> None:
    if reviewer is not None:
        Review.objects.create(
            application=application,
            reviewer=reviewer,
            decision=Review.Decision.APPROVE,
            reason=reason,
            revision=application.revision,
        )
    application.status = Application.Status.APPROVED
    application.decided_at = timezone.now()
    application.decision_reason = reason
    application.save(update_fields=["status", "decided_at", "decision_reason"])
    if application.kind == Application.Kind.RENEWAL:
        # A renewal extends the grant it renews instead of creating another (access/services/renewals.py).
        grant_extend(grant_id=application.renews_id, application=application, actor=reviewer)
    else:
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


def _reject_automatically(application: Application, *, reason: str) -> None:
    """Screening's rejection: no reviewer, so no Review row; the audit actor is None."""
    application.status = Application.Status.REJECTED
    application.decided_at = timezone.now()
    application.decision_reason = reason
    application.save(update_fields=["status", "decided_at", "decision_reason"])
    audit_record(
        action="application.rejected",
        target=application,
        actor=None,
        payload={"reason": reason, "automatic": True},
    )
    _notify(application, "rejected")


def application_decide_automatically(*, application: Application, approve: bool, reason: str) -> None:
    """Screening's decision on a pending application that the caller has locked, in the caller's
    transaction: the reviewers' approve and reject paths without a reviewer (no Review row, audit
    actor None, the applicant told as for any decision)."""
    if application.status != Application.Status.PENDING:
        raise InvalidTransition(f"This application is already {application.get_status_display().lower()}.")
    if approve:
        _approve(application, reviewer=None, reason=reason)
    else:
        _reject_automatically(application, reason=reason[:MAX_REASON_LENGTH])


def application_withdraw(*, application_id: int, user) -> Application:
    with transaction.atomic():
        application = Application.objects.select_for_update().get(pk=application_id, user=user)
        if application.status not in Application.OPEN_STATUSES:
            raise InvalidTransition(
                f"This application is already {application.get_status_display().lower()}."
            )
        application.status = Application.Status.WITHDRAWN
        application.decided_at = timezone.now()
        application.save(update_fields=["status", "decided_at"])
        audit_record(action="application.withdrawn", target=application, actor=user)
    return application


def screen_after_commit(application: Application) -> None:
    """Screen it after commit (access.screening); screening may decide it."""
    from access.tasks import screen_application

    screen_application.delay_on_commit(application.pk)


def _notify(application: Application, event: str) -> None:
    from access.tasks import send_application_email

    send_application_email.delay_on_commit(application.pk, event)
