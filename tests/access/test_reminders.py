"""Service levels: the assignee reminded before the decision date, owners told once it passed."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from access.models import Application, AuditEvent, Notification
from access.reminders import REMINDER_BATCH_SIZE, review_reminders_send
from access.tasks import send_review_reminders
from releases.models import Membership
from tests.access.queue_scenes import OWNER, REVIEWER, assign, bulk_pending, member
from tests.portal.test_settings import start_django


@pytest.fixture
def second_owner(organization, owner):
    return member(organization, OWNER, "olga@acme.example", "Olga Owner")


def due_in(application, delta: timedelta) -> Application:
    Application.objects.filter(pk=application.pk).update(decision_due_at=timezone.now() + delta)
    application.refresh_from_db()
    return application


def notifications(kind: str) -> list[tuple[str, str]]:
    return list(
        Notification.objects.filter(kind=kind).order_by("user__email").values_list("user__email", "message")
    )


# --- Before the decision date ---------------------------------------------------------------


def test_the_assignee_is_reminded_once_within_the_lead_time(reviewer, application_tier, emails):
    assert settings.REVIEW_REMINDER_HOURS_BEFORE_DUE == 24
    application = due_in(assign(bulk_pending(application_tier, 1)[0], reviewer), timedelta(hours=12))

    with emails.on_commit():
        run = review_reminders_send()

    assert run.reminded == 1
    [(email, message)] = notifications("review_due_soon")
    assert email == "bob@acme.example"
    assert f"Application #{application.pk} for {application_tier} is due for a decision by" in message
    application.refresh_from_db()
    assert application.due_reminder_sent_at is not None
    assert (
        AuditEvent.objects.filter(action="application.due_reminder_sent", target_id=application.pk).count()
        == 1
    )
    assert [m.to for m in emails.outbox] == [["bob@acme.example"]]

    with emails.on_commit():
        again = review_reminders_send()

    assert again.reminded == 0
    assert len(notifications("review_due_soon")) == 1
    assert len(emails.outbox) == 1


def test_nobody_is_reminded_too_early_and_the_reminder_comes_once_in_the_window(
    reviewer, application_tier, settings
):
    settings.REVIEW_REMINDER_HOURS_BEFORE_DUE = 6
    application = due_in(assign(bulk_pending(application_tier, 1)[0], reviewer), timedelta(hours=10))

    assert review_reminders_send().reminded == 0
    assert review_reminders_send(now=timezone.now() + timedelta(hours=5)).reminded == 1
    assert review_reminders_send(now=timezone.now() + timedelta(hours=6)).reminded == 0
    application.refresh_from_db()
    assert application.due_reminder_sent_at is not None


def test_unassigned_decided_and_overdue_applications_get_no_reminder(reviewer, application_tier):
    unassigned, decided, overdue = bulk_pending(application_tier, 3)
    due_in(unassigned, timedelta(hours=2))
    due_in(assign(decided, reviewer), timedelta(hours=2))
    Application.objects.filter(pk=decided.pk).update(status=Application.Status.APPROVED)
    due_in(assign(overdue, reviewer), -timedelta(hours=1))

    assert review_reminders_send().reminded == 0
    assert notifications("review_due_soon") == []


def test_an_appeal_is_reminded_like_a_new_application(reviewer, application_tier):
    (appeal,) = bulk_pending(application_tier, 1, status=Application.Status.APPEALED)
    due_in(assign(appeal, reviewer), timedelta(hours=3))

    assert review_reminders_send().reminded == 1


# --- After the decision date ----------------------------------------------------------------


def test_every_owner_is_told_once_when_the_date_passes(owner, second_owner, reviewer, application_tier):
    application = due_in(assign(bulk_pending(application_tier, 1)[0], reviewer), -timedelta(minutes=5))

    run = review_reminders_send()

    assert run.breached == 1
    told = notifications("review_overdue")
    assert [email for email, _ in told] == ["alice@acme.example", "olga@acme.example"]
    assert (
        f"Application #{application.pk} for {application_tier} (assigned to Bob Reviewer) passed"
        in told[0][1]
    )
    assert not Notification.objects.filter(user=reviewer, kind="review_overdue").exists()
    event = AuditEvent.objects.get(action="application.service_level_breached")
    assert sorted(event.payload["owner_ids"]) == sorted([owner.pk, second_owner.pk])

    assert review_reminders_send().breached == 0
    assert len(notifications("review_overdue")) == 2


def test_many_breaches_at_once_make_one_notice_per_owner(owner, application_tier):
    applications = bulk_pending(application_tier, 25)
    Application.objects.filter(pk__in=[a.pk for a in applications]).update(
        decision_due_at=timezone.now() - timedelta(hours=1)
    )

    assert review_reminders_send().breached == 25

    [(email, message)] = notifications("review_overdue")
    assert email == "alice@acme.example"
    assert message.startswith("25 applications of Acme AI passed their decision date without a decision: #")
    assert message.endswith(" and 5 more.")
    assert Application.objects.filter(breach_notice_sent_at__isnull=True).count() == 0


def test_a_run_takes_several_batches(owner, application_tier):
    count = REMINDER_BATCH_SIZE + 3
    applications = bulk_pending(application_tier, count)
    Application.objects.filter(pk__in=[a.pk for a in applications]).update(
        decision_due_at=timezone.now() - timedelta(hours=1)
    )

    assert review_reminders_send().breached == count
    assert len(notifications("review_overdue")) == 2


@pytest.mark.django_db(transaction=True)
def test_a_row_another_run_holds_is_left_to_it(owner, reviewer, application_tier):
    application = due_in(assign(bulk_pending(application_tier, 1)[0], reviewer), -timedelta(minutes=1))
    locked, release = threading.Event(), threading.Event()

    def hold_the_row():
        try:
            with transaction.atomic():
                Application.objects.select_for_update().get(pk=application.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    assert locked.wait(10)
    try:
        assert review_reminders_send().breached == 0
    finally:
        release.set()
        holder.join()

    assert review_reminders_send().breached == 1
    assert len(notifications("review_overdue")) == 1


# --- The periodic task and its setting ------------------------------------------------------


def test_beat_runs_the_reminders_every_five_minutes(owner, application_tier, celery_eager):
    assert settings.CELERY_BEAT_SCHEDULE["send-review-reminders"] == {
        "task": "access.tasks.send_review_reminders",
        "schedule": 300.0,
    }
    due_in(bulk_pending(application_tier, 1)[0], -timedelta(minutes=1))

    assert send_review_reminders.delay().get() == 1
    assert send_review_reminders.delay().get() == 0


@pytest.mark.parametrize("value", ["0", "721", "a day"])
def test_the_lead_time_setting_is_bounded(value):
    result = start_django(REVIEW_REMINDER_HOURS_BEFORE_DUE=value)

    assert result.returncode != 0
    assert "REVIEW_REMINDER_HOURS_BEFORE_DUE" in result.stderr


def test_an_organization_without_owners_still_marks_the_breach_once(organization, application_tier):
    # An organization whose only members are reviewers has nobody to tell; the mark is still set once.
    member(organization, REVIEWER, "rita@acme.example", "Rita Reviewer")
    application = due_in(bulk_pending(application_tier, 1)[0], -timedelta(minutes=1))

    assert review_reminders_send().breached == 1
    assert notifications("review_overdue") == []
    application.refresh_from_db()
    assert application.breach_notice_sent_at is not None
    assert Membership.objects.filter(role=OWNER).count() == 0
