"""Reads of access state used by several views."""

from __future__ import annotations

from collections import defaultdict

from django.db import connection

from access import download_rows, policy
from access.models import Application, AuditEvent, Grant, Invitation, Review
from releases.models import Artifact, Membership, Release, Tier


def standings_for_tiers(user, tiers: list[Tier]) -> dict[int, policy.TierStanding]:
    """The user's standing on each tier, in three queries whatever the number of tiers."""
    if not user.is_authenticated:
        return {tier.pk: policy.tier_standing(user, tier) for tier in tiers}
    tier_ids = [tier.pk for tier in tiers]
    applications, grants = defaultdict(list), defaultdict(list)
    for application in Application.objects.filter(user=user, tier_id__in=tier_ids):
        applications[application.tier_id].append(application)
    for grant in Grant.objects.with_license_state().filter(user=user, tier_id__in=tier_ids):
        grants[grant.tier_id].append(grant)
    invited = set(
        Invitation.objects.filter(
            tier_id__in=tier_ids, email__iexact=user.email, accepted_at__isnull=True
        ).values_list("tier_id", flat=True)
    )
    return {
        tier.pk: policy.tier_standing(
            user, tier, applications=applications[tier.pk], grants=grants[tier.pk], invited=tier.pk in invited
        )
        for tier in tiers
    }


HISTORY_LABELS = {
    "application.submitted": "Submitted",
    "application.screened": "Screened automatically",
    "application.approved": "Approved",
    "application.rejected": "Rejected",
    "application.withdrawn": "Withdrawn",
    "application.returned": "Returned for revision",
    "application.resubmitted": "Revised and resubmitted",
    "application.appealed": "Appealed",
    "application.expired": "Expired without activity",
    "application.assigned": "Assigned",
    "application.claimed": "Claimed",
    "application.approval_recorded": "Approval recorded",
    "application.due_reminder_sent": "Assignee reminded of the decision date",
    "application.service_level_breached": "Decision date passed; owners told",
}


def application_histories(applications: list[Application]) -> dict[int, list[AuditEvent]]:
    """The audit events of each application, oldest first, in one query."""
    history = defaultdict(list)
    events = AuditEvent.objects.filter(
        target_type="application", target_id__in=[application.pk for application in applications]
    ).order_by("id")
    for event in events:
        event.label = HISTORY_LABELS.get(event.action, event.action)
        history[event.target_id].append(event)
    return history


def review_states(applications: list[Application]) -> dict[int, policy.ReviewState]:
    """What access.policy.decision_refusal needs about each application, in two queries."""
    reviews = defaultdict(list)
    for review in Review.objects.filter(application_id__in=[a.pk for a in applications]).order_by("pk"):
        reviews[review.application_id].append(review)
    organization_of = {a.pk: a.tier.release.model.organization_id for a in applications}
    assignee_ids = {a.assigned_to_id for a in applications if a.assigned_to_id is not None}
    reviewing = set(
        Membership.objects.filter(user_id__in=assignee_ids, role__in=policy.REVIEW_ROLES).values_list(
            "user_id", "organization_id"
        )
    )
    states = {}
    for application in applications:
        approvers, rejecters = set(), set()
        for review in reviews[application.pk]:
            if review.decision == Review.Decision.APPROVE:
                if review.revision == application.revision:
                    approvers.add(review.reviewer_id)
            else:
                # A rejection (then an appeal) or a return starts a new round of approvals.
                approvers.clear()
                if review.decision == Review.Decision.REJECT:
                    rejecters.add(review.reviewer_id)
        states[application.pk] = policy.ReviewState(
            approver_ids=frozenset(approvers),
            rejecter_ids=frozenset(rejecters),
            assignee_reviews=(application.assigned_to_id, organization_of[application.pk]) in reviewing,
        )
    return states


def downloadable_artifacts(**artifact_filters) -> list[tuple[Artifact, list[Tier]]]:
    """Files of published releases matching ``artifact_filters`` (Artifact field lookups), each
    with the tiers that include it, newest release first, in one query.

    Read through the tier-file link table so that a file and its tiers come back together: the
    download routes must stay within a handful of queries per URL. A file that no tier includes
    is not downloadable by anyone and is left out. On PostgreSQL the usual lookups run as
    hand-written SQL (access/download_rows.py); this ORM query is the reference and the fallback.
    """
    if connection.vendor == "postgresql" and set(artifact_filters) <= set(download_rows.CANDIDATE_FILTERS):
        return download_rows.candidates(**artifact_filters)
    return downloadable_artifacts_orm(**artifact_filters)


def downloadable_artifacts_orm(**artifact_filters) -> list[tuple[Artifact, list[Tier]]]:
    link = Tier.artifacts.through
    rows = (
        link.objects.filter(
            artifact__release__status=Release.Status.PUBLISHED,
            **{f"artifact__{lookup}": value for lookup, value in artifact_filters.items()},
        )
        .select_related("artifact__release__model__organization", "tier")
        .order_by("-artifact__release__published_at", "artifact__path", "tier_id")
    )
    artifacts: dict[int, Artifact] = {}
    tiers: dict[int, list[Tier]] = defaultdict(list)
    for row in rows:
        artifacts.setdefault(row.artifact_id, row.artifact)
        tiers[row.artifact_id].append(row.tier)
    return [(artifact, tiers[pk]) for pk, artifact in artifacts.items()]
