"""Outcomes of an application besides approval and rejection: return for revision and
resubmission, the one appeal after a rejection, and the expiry of stale applications.

Approving, rejecting and withdrawing are in access/services/applications.py; the
cool-down before re-applying is a policy rule (access.policy.application_refusal).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.urls import reverse
from django.utils import timezone

from access import policy
from access.audit import audit_record
from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.inbox import notify
from access.models import Application, ApplicationRevision, Review, User
from access.questions import clean_answers
from access.selectors import review_states
from access.services.applications import clean_statement, screen_after_commit
from access.services.assignment import next_reviewer
from access.services.grants import MAX_REASON_LENGTH
from releases.models import Membership, Tier

MAX_APPEAL_STATEMENT_LENGTH = 5000
# Stale applications expired per periodic run; the next run takes the rest.
STALE_BATCH_SIZE = 500


def _application_url(application: Application) -> str:
    return reverse("application-detail", kwargs={"application_id": application.pk})


def _review_url(application: Application) -> str:
    return reverse("review-application", kwargs={"application_id": application.pk})


# --- Return for revision and resubmission ---------------------------------------------------


def application_return(*, application_id: int, reviewer, message: str) -> Application:
    """Send a pending application back to its applicant with a message saying what to change.

    The application stays open (status ``returned``) until the applicant resubmits it,
    withdraws it, or it expires as stale. Refused for anyone who may not decide it and
    for an application that is not pending (an appeal is approved or rejected, not returned).
    """
    message = message.strip()
    if not message:
        raise InvalidInput("Tell the applicant what to change.", code="message_missing")
    if len(message) > MAX_REASON_LENGTH:
        raise InvalidInput(
            f"A message may have at most {MAX_REASON_LENGTH} characters.", code="message_too_long"
        )
    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .select_related("tier__release__model__organization", "user", "assigned_to")
            .filter(pk=application_id)
            .first()
        )
        if application is None:
            raise NotAllowed("No such application.", code="not_found")
        refusal = policy.decision_refusal(
            reviewer,
            application,
            "return",
            roles=policy.roles_in(reviewer, application.tier.release.model.organization),
            state=review_states([application])[application.pk],
        )
        if refusal is not None:
            error = InvalidTransition if refusal.code == "invalid_transition" else NotAllowed
            raise error(refusal.message, code=refusal.code)
        if application.status != Application.Status.PENDING:
            raise InvalidTransition("Only a pending application can be returned for revision.")
        Review.objects.create(
            application=application,
            reviewer=reviewer,
            decision=Review.Decision.RETURN,
            reason=message,
            revision=application.revision,
        )
        application.status = Application.Status.RETURNED
        application.decision_reason = message
        application.save(update_fields=["status", "decision_reason"])
        audit_record(
            action="application.returned",
            target=application,
            actor=reviewer,
            payload={"reason": message, "revision": application.revision},
        )
        notify(
            user=application.user,
            kind="application_returned",
            message=f"Your application for {application.tier} was returned for revision: {message}",
            url=reverse("application-edit", kwargs={"application_id": application.pk}),
        )
    return application


def application_resubmit(
    *, application_id: int, user, affiliation: str, intended_use: str, answers: dict
) -> Application:
    """Resubmit a returned application with the applicant's edits.

    The version the reviewer saw is kept as an ApplicationRevision (the history shows
    both), the revision number goes up by one, and the decision due date restarts from
    now. The answers are checked against the questions the application was made with,
    so a tier whose form changed in the meantime does not break it; the license
    acceptance given with the first submission still stands.
    """
    affiliation, intended_use = clean_statement(affiliation=affiliation, intended_use=intended_use)
    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .select_related("tier", "assigned_to")
            .filter(pk=application_id, user=user)
            .first()
        )
        if application is None:
            raise NotAllowed("No such application.", code="not_found")
        if application.status != Application.Status.RETURNED:
            raise InvalidTransition("Only an application returned for revision can be resubmitted.")
        cleaned_answers = clean_answers(application.questions, answers)
        ApplicationRevision.objects.create(
            application=application,
            number=application.revision,
            affiliation=application.affiliation,
            intended_use=application.intended_use,
            answers=application.answers,
            questions=application.questions,
            submitted_at=application.submitted_at,
            returned_reason=application.decision_reason,
        )
        now = timezone.now()
        application.affiliation = affiliation
        application.intended_use = intended_use
        application.answers = cleaned_answers
        application.revision += 1
        application.status = Application.Status.PENDING
        application.submitted_at = now
        application.decision_due_at = now + timedelta(days=application.tier.review_days)
        application.decision_reason = ""
        # The service-level reminders are about the new due date.
        application.due_reminder_sent_at = None
        application.breach_notice_sent_at = None
        application.save(
            update_fields=[
                "affiliation",
                "intended_use",
                "answers",
                "revision",
                "status",
                "submitted_at",
                "decision_due_at",
                "decision_reason",
                "due_reminder_sent_at",
                "breach_notice_sent_at",
            ]
        )
        audit_record(
            action="application.resubmitted",
            target=application,
            actor=user,
            payload={"revision": application.revision},
        )
        # The new revision is screened again; screening may decide it, as on a first submission.
        screen_after_commit(application)
        reviewer = application.assigned_to or _last_returned_by(application)
        if reviewer is not None:
            notify(
                user=reviewer,
                kind="application_resubmitted",
                message=f"Application #{application.pk} for {application.tier} was revised and resubmitted.",
                url=_review_url(application),
            )
    return application


def _last_returned_by(application: Application) -> User | None:
    review = (
        Review.objects.filter(application=application, decision=Review.Decision.RETURN)
        .select_related("reviewer")
        .order_by("-created_at", "-pk")
        .first()
    )
    return review.reviewer if review else None


# --- The one appeal -------------------------------------------------------------------------


def application_appeal(*, application_id: int, user, statement: str) -> Application:
    """Appeal a rejection, once, with a statement; the appeal goes to another reviewer.

    The application becomes ``appealed`` with a new decision due date and is assigned to a
    reviewer of the organization other than the applicant and whoever rejected it (the one
    with the fewest applications awaiting their decision, then the longest-standing
    member); with nobody left it waits unassigned in the queue. A second appeal is refused
    with the code ``appeal_used``.
    """
    statement = statement.strip()
    if not statement:
        raise InvalidInput("Say why the decision should change.", code="statement_missing")
    if len(statement) > MAX_APPEAL_STATEMENT_LENGTH:
        raise InvalidInput(
            f"An appeal may have at most {MAX_APPEAL_STATEMENT_LENGTH} characters.", code="statement_too_long"
        )
    try:
        with transaction.atomic():
            return _appeal(application_id, user=user, statement=statement)
    except IntegrityError:
        # A new application for the tier raced the appeal; the partial unique index kept one open.
        raise NotAllowed(
            "You already have an application open for this tier.", code="already_pending"
        ) from None


def _appeal(application_id: int, *, user, statement: str) -> Application:
    application = (
        Application.objects.select_for_update(of=("self",))
        .select_related("tier__release__model__organization")
        .filter(pk=application_id, user=user)
        .first()
    )
    if application is None:
        raise NotAllowed("No such application.", code="not_found")
    if application.appealed_at is not None:
        raise NotAllowed("You have already appealed this decision; an appeal is final.", code="appeal_used")
    if application.status != Application.Status.REJECTED:
        raise InvalidTransition("Only a rejected application can be appealed.")
    open_elsewhere = Application.objects.filter(
        user=user, tier=application.tier, status__in=Application.OPEN_STATUSES
    ).exclude(pk=application.pk)
    if open_elsewhere.exists():
        raise NotAllowed("You already have an application open for this tier.", code="already_pending")
    now = timezone.now()
    assignee = _appeal_reviewer(application)
    application.status = Application.Status.APPEALED
    application.appealed_at = now
    application.appeal_statement = statement
    application.decided_at = None
    application.decision_due_at = now + timedelta(days=application.tier.review_days)
    application.assigned_to = assignee
    application.assigned_at = now if assignee else None
    application.due_reminder_sent_at = None
    application.breach_notice_sent_at = None
    application.save(
        update_fields=[
            "status",
            "appealed_at",
            "appeal_statement",
            "decided_at",
            "decision_due_at",
            "assigned_to",
            "assigned_at",
            "due_reminder_sent_at",
            "breach_notice_sent_at",
        ]
    )
    audit_record(
        action="application.appealed",
        target=application,
        actor=user,
        payload={"statement": statement, "assigned_to_id": assignee.pk if assignee else None},
    )
    message = f"Application #{application.pk} for {application.tier} was appealed and needs a new decision."
    if assignee is not None:
        notify(user=assignee, kind="application_appealed", message=message, url=_review_url(application))
    else:
        for owner in _owners(application.tier):
            notify(
                user=owner,
                kind="application_appealed",
                message=f"{message} No reviewer other than the one who rejected it is available.",
                url=_review_url(application),
            )
    return application


def _appeal_reviewer(application: Application) -> User | None:
    """Who decides the appeal: the organization's next reviewer by the round-robin rule
    (access.services.assignment.next_reviewer), leaving out the applicant and everyone
    who rejected the application."""
    rejecters = review_states([application])[application.pk].rejecter_ids
    return next_reviewer(
        organization=application.tier.release.model.organization,
        exclude_user_ids={application.user_id, *rejecters},
    )


def _owners(tier: Tier):
    return User.objects.filter(
        memberships__organization_id=tier.release.model.organization_id,
        memberships__role=Membership.Role.OWNER,
        is_active=True,
    )


# --- Stale applications ---------------------------------------------------------------------

STALE_STATUSES = (Application.Status.PENDING, Application.Status.RETURNED)


def applications_expire_stale(*, now: datetime | None = None) -> int:
    """Expire pending and returned applications with no activity (a submission or a review)
    for their tier's ``stale_after_days``, telling each applicant. Tiers without the limit
    (empty or 0) never expire applications.

    Each application is locked and checked again before it changes, so a resubmission or a
    decision racing the scan wins, and overlapping runs expire an application once.
    """
    now = now or timezone.now()
    expired = 0
    tiers = Tier.objects.filter(stale_after_days__gt=0, applications__status__in=STALE_STATUSES).distinct()
    for tier in tiers:
        cutoff = now - timedelta(days=tier.stale_after_days)
        candidate_ids = list(
            _stale(Application.objects.filter(tier=tier), cutoff).values_list("pk", flat=True)[
                : STALE_BATCH_SIZE - expired
            ]
        )
        for application_id in candidate_ids:
            expired += _expire_stale(application_id, tier=tier, cutoff=cutoff, now=now)
        if expired >= STALE_BATCH_SIZE:
            break
    return expired


def _stale(applications, cutoff: datetime):
    return (
        applications.filter(status__in=STALE_STATUSES, submitted_at__lte=cutoff)
        .annotate(last_review_at=Max("reviews__created_at"))
        .filter(Q(last_review_at__isnull=True) | Q(last_review_at__lte=cutoff))
        .order_by("submitted_at", "pk")
    )


def _expire_stale(application_id: int, *, tier: Tier, cutoff: datetime, now: datetime) -> int:
    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(pk=application_id, status__in=STALE_STATUSES)
            .first()
        )
        # Still stale under the lock? (Select the row again: an annotated query cannot be locked.)
        if application is None or not _stale(Application.objects.filter(pk=application_id), cutoff).exists():
            return 0
        previous_status = application.status
        reason = f"No activity for {tier.stale_after_days} days."
        application.status = Application.Status.EXPIRED
        application.decided_at = now
        application.decision_reason = reason
        application.save(update_fields=["status", "decided_at", "decision_reason"])
        audit_record(
            action="application.expired",
            target=application,
            payload={"reason": reason, "previous_status": previous_status},
        )
        notify(
            user=application.user,
            kind="application_expired",
            message=(
                f"Your application for {tier} expired after {tier.stale_after_days} days without "
                "activity. You may apply again."
            ),
            url=_application_url(application),
        )
    return 1
