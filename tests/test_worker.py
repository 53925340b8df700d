"""A real Celery worker against Redis: the e-mails and the tier openings the background jobs are for.

Each test waits for the worker to run every task published to it (``wait_until_idle``) before
asserting, so "exactly one e-mail" and "no e-mail" are checked on everything the tasks did.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from access.models import Application, AuditEvent, SentEmail
from access.services.applications import application_approve
from access.tasks import send_application_email
from releases.tasks import open_due_tiers
from tests import scenes
from tests.factories import TierFactory
from tests.worker_plugin import wait_for

pytestmark = pytest.mark.worker

APPROVED_SUBJECT = "Your application for Llama Lite (Researchers) was approved"
RECEIVED_SUBJECT = "Your application for Llama Lite (Researchers) was received"


def subjects_to(address: str) -> list[str]:
    return [message.subject for message in mail.outbox if message.to == [address]]


def test_worker_sends_the_approval_email(celery_worker, researcher, reviewer, application_tier):
    application = scenes.submit(researcher, application_tier)
    application_approve(application_id=application.pk, reviewer=reviewer)

    wait_for(lambda: APPROVED_SUBJECT in subjects_to(researcher.email), what="the approval e-mail")
    celery_worker.wait_until_idle()

    assert sorted(subjects_to(researcher.email)) == [APPROVED_SUBJECT, RECEIVED_SUBJECT]
    # The third: Bob, to whom round-robin assigned the application, is told.
    [assigned] = subjects_to(reviewer.email)
    assert (
        assigned.startswith(f"[Gatehouse] Application #{application.pk} for ")
        and "is assigned to you" in assigned
    )
    assert len(mail.outbox) == 3
    approval = next(message for message in mail.outbox if message.subject == APPROVED_SUBJECT)
    assert f"/tiers/{application_tier.pk}/files/" in approval.body
    assert SentEmail.objects.filter(key=f"application:{application.pk}:approved").count() == 1


def test_a_redelivered_email_task_sends_nothing_twice(celery_worker, researcher, reviewer, application_tier):
    application = scenes.submit(researcher, application_tier)
    application_approve(application_id=application.pk, reviewer=reviewer)
    celery_worker.wait_until_idle()
    assert subjects_to(researcher.email).count(APPROVED_SUBJECT) == 1

    # What the broker does when a worker dies after sending but before acknowledging.
    send_application_email.delay(application.pk, "approved")
    send_application_email.delay(application.pk, "approved")
    celery_worker.wait_until_idle()

    # Two e-mails to the applicant, the assignee's notification e-mail, the screening of the submission,
    # and the two redelivered tasks.
    assert len(celery_worker.finished) == 6
    assert subjects_to(researcher.email).count(APPROVED_SUBJECT) == 1


def test_overlapping_scans_open_a_due_tier_exactly_once(celery_worker, release):
    due = TierFactory(release=release, opens_at=timezone.now() - timedelta(minutes=1), opened_at=None)

    # Two scans delivered at once to a worker with two threads, as when beat fires while one is slow.
    open_due_tiers.delay()
    open_due_tiers.delay()
    celery_worker.wait_until_idle()

    assert len(celery_worker.finished) == 2
    due.refresh_from_db()
    assert due.opened_at is not None
    assert AuditEvent.objects.filter(action="tier.opened", target_type="tier", target_id=due.pk).count() == 1


def test_no_submission_email_when_the_transaction_rolls_back(celery_worker, researcher, application_tier):
    with pytest.raises(RuntimeError), transaction.atomic():
        scenes.submit(researcher, application_tier)
        raise RuntimeError("a later step of the same request failed")
    assert not Application.objects.exists()

    # A committed submission afterwards: once its e-mail is out, the worker has seen the whole queue.
    kept = scenes.submit(researcher, application_tier)
    celery_worker.wait_until_idle()
    wait_for(lambda: mail.outbox, what="the submission e-mail")

    assert len(celery_worker.published) == 2  # the e-mail and the screening of the kept submission
    assert subjects_to(researcher.email) == [RECEIVED_SUBJECT]
    assert len(mail.outbox) == 1
    assert list(SentEmail.objects.values_list("key", flat=True)) == [f"application:{kept.pk}:submitted"]
