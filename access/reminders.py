"""Service levels: each tier promises a decision within ``review_days``.

A periodic task (``access.tasks.send_review_reminders``, beat) scans the database:

- an application awaiting a decision whose date is less than REVIEW_REMINDER_HOURS_BEFORE_DUE
  away gets its assignee reminded, once (``Application.due_reminder_sent_at``); an unassigned
  one has nobody to remind and waits for the breach notice;
- an application still awaiting a decision when its date passes is reported to the owners of
  its organization, once (``Application.breach_notice_sent_at``), one notification per owner
  and batch listing the applications.

Each batch is claimed in one short transaction: the rows are locked (``SKIP LOCKED``, so that
overlapping runs take disjoint rows), marked with a conditional update, audited, and the
notifications written; their e-mails leave after commit (access.inbox.notify). A run that dies
before committing leaves everything for the next one; nothing is sent twice. Claiming an
application (a new assignee) or resubmitting and appealing it (a new date) clears the marks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from access.audit import AuditEntry, audit_record_many
from access.inbox import notify
from access.models import Application
from releases.models import Membership

# Applications claimed per transaction, and the most batches of each kind in one run; the next
# run takes what is left.
REMINDER_BATCH_SIZE = 500
MAX_BATCHES_PER_RUN = 20
# Applications named in one breach notice; the rest are counted.
BREACH_IDS_SHOWN = 20


@dataclass(frozen=True)
class ReminderRun:
    reminded: int
    breached: int


def review_reminders_send(*, now: datetime | None = None) -> ReminderRun:
    """Send the due reminders and breach notices that are due at ``now``."""
    now = now or timezone.now()
    reminded = breached = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        count = _remind_assignees(now)
        reminded += count
        if count < REMINDER_BATCH_SIZE:
            break
    for _ in range(MAX_BATCHES_PER_RUN):
        count = _report_breaches(now)
        breached += count
        if count < REMINDER_BATCH_SIZE:
            break
    return ReminderRun(reminded=reminded, breached=breached)


def _claim(applications, field: str, now: datetime) -> list[Application]:
    """Lock a batch nobody else holds and mark it; returns the rows this run now owns."""
    batch = list(
        applications.select_for_update(of=("self",), skip_locked=True)
        .select_related("assigned_to", "tier__release__model")
        .order_by("decision_due_at", "pk")[:REMINDER_BATCH_SIZE]
    )
    if not batch:
        return []
    # Conditional on the mark being unset, though the rows are locked: a second guard costs nothing.
    Application.objects.filter(pk__in=[a.pk for a in batch], **{f"{field}__isnull": True}).update(
        **{field: now}
    )
    return batch


def _remind_assignees(now: datetime) -> int:
    lead = timedelta(hours=settings.REVIEW_REMINDER_HOURS_BEFORE_DUE)
    with transaction.atomic():
        batch = _claim(
            Application.objects.awaiting_decision().filter(
                assigned_to__isnull=False,
                due_reminder_sent_at__isnull=True,
                decision_due_at__gt=now,
                decision_due_at__lte=now + lead,
            ),
            "due_reminder_sent_at",
            now,
        )
        audit_record_many(
            [
                AuditEntry(
                    action="application.due_reminder_sent",
                    target=application,
                    payload={
                        "assigned_to_id": application.assigned_to_id,
                        "decision_due_at": application.decision_due_at.isoformat(),
                    },
                )
                for application in batch
            ]
        )
        for application in batch:
            notify(
                user=application.assigned_to,
                kind="review_due_soon",
                message=f"Application #{application.pk} for {application.tier} is due for a decision "
                f"by {application.decision_due_at:%Y-%m-%d %H:%M} UTC.",
                url=reverse("review-application", kwargs={"application_id": application.pk}),
            )
    return len(batch)


def _report_breaches(now: datetime) -> int:
    with transaction.atomic():
        batch = _claim(
            Application.objects.awaiting_decision().filter(
                breach_notice_sent_at__isnull=True, decision_due_at__lte=now
            ),
            "breach_notice_sent_at",
            now,
        )
        by_organization = defaultdict(list)
        for application in batch:
            by_organization[application.tier.release.model.organization_id].append(application)
        owners = defaultdict(list)
        for membership in Membership.objects.filter(
            organization_id__in=list(by_organization), role=Membership.Role.OWNER, user__is_active=True
        ).select_related("user", "organization"):
            owners[membership.organization_id].append(membership)
        audit_record_many(
            [
                AuditEntry(
                    action="application.service_level_breached",
                    target=application,
                    payload={
                        "decision_due_at": application.decision_due_at.isoformat(),
                        "assigned_to_id": application.assigned_to_id,
                        "owner_ids": [
                            m.user_id for m in owners[application.tier.release.model.organization_id]
                        ],
                    },
                )
                for application in batch
            ]
        )
        for organization_id, applications in by_organization.items():
            for membership in owners[organization_id]:
                notify(user=membership.user, **_breach_notice(membership.organization, applications))
    return len(batch)


def _breach_notice(organization, applications: list[Application]) -> dict:
    if len(applications) == 1:
        application = applications[0]
        who = (
            f"assigned to {application.assigned_to.full_name or application.assigned_to.email}"
            if application.assigned_to
            else "unassigned"
        )
        return {
            "kind": "review_overdue",
            "message": f"Application #{application.pk} for {application.tier} ({who}) passed its decision "
            f"date, {application.decision_due_at:%Y-%m-%d %H:%M} UTC, without a decision.",
            "url": reverse("review-application", kwargs={"application_id": application.pk}),
        }
    shown = ", ".join(f"#{a.pk}" for a in applications[:BREACH_IDS_SHOWN])
    more = len(applications) - BREACH_IDS_SHOWN
    return {
        "kind": "review_overdue",
        "message": f"{len(applications)} applications of {organization.name} passed their decision date "
        f"without a decision: {shown}{f' and {more} more' if more > 0 else ''}.",
        "url": reverse("review-queue", kwargs={"org_slug": organization.slug}),
    }
