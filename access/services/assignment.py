"""Who is in charge of an application: round-robin assignment on submission, and claiming.

The rule that an assigned application is its assignee's to decide (owners excepted) is in
access/policy.py (``assignment_refusal``); this module only changes who the assignee is.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Case, Count, IntegerField, Q, Value, When
from django.urls import reverse
from django.utils import timezone

from access import policy
from access.audit import audit_record
from access.errors import InvalidTransition, NotAllowed
from access.inbox import notify
from access.models import Application, User
from access.selectors import review_states
from releases.models import Membership, Organization


def next_reviewer(*, organization: Organization, exclude_user_ids: Iterable[int] = ()) -> User | None:
    """The member of ``organization`` who gets the next application, deterministically.

    Members with the reviewer role come first, owners only when no reviewer is left; among them,
    the one with the fewest applications awaiting their decision (in any organization: it is
    their load), then the lowest id. Two submissions at the same instant may pick the same
    person; the next ones even it out.
    """
    membership = (
        Membership.objects.filter(
            organization=organization, role__in=policy.REVIEW_ROLES, user__is_active=True
        )
        .exclude(user_id__in=list(exclude_user_ids))
        .annotate(
            owner_last=Case(
                When(role=Membership.Role.OWNER, then=Value(1)), default=Value(0), output_field=IntegerField()
            ),
            open_load=Count(
                "user__assigned_applications",
                filter=Q(user__assigned_applications__status__in=Application.AWAITING_DECISION),
            ),
        )
        .select_related("user")
        .order_by("owner_last", "open_load", "user_id")
        .first()
    )
    return membership.user if membership is not None else None


def application_assign(*, application: Application, exclude_user_ids: Iterable[int] = ()) -> User | None:
    """Assign a just-submitted application round-robin (``next_reviewer``, never the applicant),
    audit it and tell the assignee. Runs inside the caller's transaction, which holds the row.
    With nobody to choose it stays unassigned, open to every reviewer."""
    organization = application.tier.release.model.organization
    assignee = next_reviewer(
        organization=organization, exclude_user_ids={application.user_id, *exclude_user_ids}
    )
    if assignee is None:
        return None
    application.assigned_to = assignee
    application.assigned_at = timezone.now()
    application.save(update_fields=["assigned_to", "assigned_at"])
    audit_record(
        action="application.assigned",
        target=application,
        payload={"assigned_to_id": assignee.pk, "how": "round_robin"},
    )
    notify(
        user=assignee,
        kind="application_assigned",
        message=f"Application #{application.pk} for {application.tier} is assigned to you; "
        f"a decision is due by {application.decision_due_at:%Y-%m-%d}.",
        url=reverse("review-application", kwargs={"application_id": application.pk}),
    )
    return assignee


def application_claim(*, application_id: int, reviewer) -> Application:
    """Make ``reviewer`` the assignee of an open application of their organization.

    An unassigned application may be claimed by any of its reviewers; one assigned to someone
    who still reviews for the organization only by an owner (who takes it over; the previous
    assignee is told). Refused: the applicant, an appeal by whoever rejected it, a closed
    application, one already assigned to the reviewer.
    """
    with transaction.atomic():
        application = (
            Application.objects.select_for_update(of=("self",))
            .select_related("tier__release__model__organization", "assigned_to")
            .filter(pk=application_id)
            .first()
        )
        if application is None:
            raise NotAllowed("No such application.", code="not_found")
        organization = application.tier.release.model.organization
        roles = policy.roles_in(reviewer, organization)
        state = review_states([application])[application.pk]
        refusal = policy.claim_refusal(reviewer, application, roles=roles, state=state)
        if refusal is not None:
            raise _error(refusal)
        previous = application.assigned_to
        application.assigned_to = reviewer
        application.assigned_at = timezone.now()
        # The new assignee gets their own reminder before the decision date.
        application.due_reminder_sent_at = None
        application.save(update_fields=["assigned_to", "assigned_at", "due_reminder_sent_at"])
        audit_record(
            action="application.claimed",
            target=application,
            actor=reviewer,
            payload={
                "assigned_to_id": reviewer.pk,
                "previous_assignee_id": previous.pk if previous else None,
            },
        )
        if previous is not None:
            notify(
                user=previous,
                kind="application_reassigned",
                message=f"{reviewer.full_name or reviewer.email} took over application #{application.pk} "
                f"for {application.tier}.",
                url=reverse("review-application", kwargs={"application_id": application.pk}),
            )
    return application


def _error(refusal: policy.Refusal):
    if refusal.code in ("invalid_transition", "already_assigned"):
        return InvalidTransition(refusal.message, code=refusal.code)
    return NotAllowed(refusal.message, code=refusal.code)
