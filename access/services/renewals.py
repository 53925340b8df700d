"""Renewing grants: a holder's request, and the extension of the grant when it is approved.

A renewal extends the grant it renews rather than replacing it: the same row gets a
later ``expires_at`` (and becomes active again if it had expired), so its download
events, its license acceptance and the one-active-grant rule stay on one row. What
happened is kept in the renewal Application (``kind=renewal``, ``renews=grant``) and
in the ``grant.renewed`` audit event with the old and new dates.

Where the tier renews automatically (``Tier.renewal == auto``, or a tier that approves
every application automatically) the request is approved at once; otherwise it goes to
the reviewers' queue like any application and ``application_approve`` extends the grant.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from access import policy
from access.audit import audit_record
from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.inbox import notify
from access.models import Application, Grant
from access.services.assignment import application_assign
from releases.models import Tier

MAX_RENEWAL_STATEMENT_LENGTH = 2000
REVOKED_RENEWAL_REASON = "The access it would renew was revoked."


def grant_renewal_request(*, grant_id: int, user, statement: str) -> Application:
    """Ask to renew one's grant, with a short statement of why the access is still needed.

    Creates an Application of kind ``renewal`` for the grant's tier, under the license
    acceptance the grant already stands on. Refused (nothing written) when the policy
    says no: ``renewal_unavailable``, ``revoked``, ``too_early``, ``already_pending``,
    ``license_changed`` and the others of ``policy.renewal_refusal``.
    """
    statement = statement.strip()
    if not statement:
        raise InvalidInput("Say why you still need access.", code="statement_missing")
    if len(statement) > MAX_RENEWAL_STATEMENT_LENGTH:
        raise InvalidInput(
            f"A renewal statement may have at most {MAX_RENEWAL_STATEMENT_LENGTH} characters.",
            code="statement_too_long",
        )
    try:
        with transaction.atomic():
            grant = (
                Grant.objects.select_for_update(of=("self",))
                .with_license_state()
                .select_related("tier__release__model__organization", "application")
                .filter(pk=grant_id, user=user)
                .first()
            )
            if grant is None:
                raise NotAllowed("No such grant.", code="not_found")
            refusal = policy.renewal_refusal(user, grant)
            if refusal is not None:
                raise NotAllowed(refusal.message, code=refusal.code)
            return _request(grant, user=user, statement=statement)
    except IntegrityError:
        # Another request for the tier raced this one; the partial unique index kept one open.
        raise NotAllowed("You already have a request open for this tier.", code="already_pending") from None


def _request(grant: Grant, *, user, statement: str) -> Application:
    tier = grant.tier
    now = timezone.now()
    previous = grant.application or (
        Application.objects.filter(user=user, tier=tier)
        .exclude(affiliation="")
        .order_by("-submitted_at")
        .first()
    )
    application = Application.objects.create(
        user=user,
        tier=tier,
        kind=Application.Kind.RENEWAL,
        renews=grant,
        affiliation=previous.affiliation if previous else "",
        # The statement is what the reviewer reads in place of the intended use.
        intended_use=statement,
        license_acceptance=grant.license_acceptance,
        submitted_at=now,
        decision_due_at=now + timedelta(days=tier.review_days),
    )
    audit_record(
        action="application.submitted",
        target=application,
        actor=user,
        payload={"tier_id": tier.pk, "kind": Application.Kind.RENEWAL, "grant_id": grant.pk},
    )
    if tier.renewal == Tier.Renewal.AUTO or tier.approval == Tier.Approval.AUTO:
        reason = "Renewed automatically."
        application.status = Application.Status.APPROVED
        application.decided_at = now
        application.decision_reason = reason
        application.save(update_fields=["status", "decided_at", "decision_reason"])
        grant = grant_extend(grant_id=grant.pk, application=application, actor=None)
        audit_record(
            action="application.approved",
            target=application,
            payload={"reason": reason, "automatic": True},
        )
        until = f"until {grant.expires_at:%Y-%m-%d}" if grant.expires_at else "with no end date"
        notify(
            user=user,
            kind="grant_renewed",
            message=f"Your access to {tier} was renewed {until}.",
            url=reverse("tier-files", kwargs={"tier_id": tier.pk}),
        )
    else:
        application_assign(application=application)
        notify(
            user=user,
            kind="renewal_requested",
            message=(
                f"Your renewal request for {tier} was received; "
                f"a decision is expected by {application.decision_due_at:%Y-%m-%d}."
            ),
            url=reverse("application-detail", kwargs={"application_id": application.pk}),
        )
    return application


def grant_extend(*, grant_id: int, application: Application, actor=None) -> Grant:
    """Extend a grant for an approved renewal: it runs for the tier's grant duration from
    its old expiry date, or from now if that has passed (a tier whose grants no longer
    expire makes it open-ended), and is active again. Runs inside the caller's transaction,
    which tells the holder (a reviewed renewal by the approval e-mail)."""
    grant = Grant.objects.select_for_update(of=("self",)).select_related("tier", "user").get(pk=grant_id)
    if grant.status == Grant.Status.REVOKED:
        raise InvalidTransition("The access this renewal would extend was revoked.", code="revoked")
    now = timezone.now()
    previous_expires_at, previous_status = grant.expires_at, grant.status
    duration = grant.tier.grant_duration_days
    start = max(now, previous_expires_at) if previous_expires_at else now
    grant.expires_at = start + timedelta(days=duration) if duration else None
    grant.status = Grant.Status.ACTIVE
    try:
        with transaction.atomic():
            grant.save(update_fields=["expires_at", "status"])
    except IntegrityError:
        raise InvalidTransition(
            "This user already has other active access to this tier.", code="already_granted"
        ) from None
    audit_record(
        action="grant.renewed",
        target=grant,
        actor=actor,
        payload={
            "application_id": application.pk,
            "previous_status": previous_status,
            "previous_expires_at": previous_expires_at.isoformat() if previous_expires_at else None,
            "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
        },
    )
    return grant


def renewal_requests_close(*, grant: Grant, actor) -> int:
    """Reject the open renewal requests of a grant that was just revoked. Runs inside the
    revocation's transaction; the revocation notice tells the holder."""
    closed = 0
    open_requests = Application.objects.select_for_update().filter(
        renews=grant, status__in=Application.OPEN_STATUSES
    )
    for application in open_requests:
        application.status = Application.Status.REJECTED
        application.decided_at = timezone.now()
        application.decision_reason = REVOKED_RENEWAL_REASON
        application.save(update_fields=["status", "decided_at", "decision_reason"])
        audit_record(
            action="application.rejected",
            target=application,
            actor=actor,
            payload={"reason": REVOKED_RENEWAL_REASON, "grant_revoked": grant.pk},
        )
        closed += 1
    return closed
