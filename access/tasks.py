"""Background work of the access app: thin tasks that take ids and call services."""

from __future__ import annotations

import logging
from smtplib import SMTPException

from celery import shared_task
from django.db import OperationalError

from access import inbox, notifications, screening
from access.reminders import review_reminders_send
from access.services.grant_reminders import grant_expiry_reminders_send
from access.services.grants import grants_expire_due
from access.services.outcomes import applications_expire_stale
from portal.celery import EMAIL_TASK_OPTIONS

logger = logging.getLogger(__name__)


@shared_task(**EMAIL_TASK_OPTIONS)
def send_application_email(application_id: int, event: str) -> bool:
    """E-mail the applicant about ``event``; a redelivered task sends nothing twice."""
    return notifications.send_application_email(application_id=application_id, event=event)


@shared_task(time_limit=240)
def expire_due_grants() -> int:
    count = grants_expire_due()
    if count:
        logger.info("Expired %s grants", count)
    return count


@shared_task(**EMAIL_TASK_OPTIONS)
def send_notification_email(notification_id: int) -> bool:
    """E-mail one in-app notification to a user who wants them at once; sent at most once."""
    return inbox.send_notification_email(notification_id=notification_id)


@shared_task(**EMAIL_TASK_OPTIONS)
def send_notification_backlog(user_id: int) -> int:
    """E-mail a user who switched to immediate e-mails what was waiting for their digest, once."""
    return inbox.notification_backlog_send(user_id=user_id)


@shared_task(
    autoretry_for=(SMTPException, OSError),
    retry_backoff=30,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=8,
)
def send_notification_digests() -> int:
    """The daily digest (beat, at NOTIFICATION_DIGEST_HOUR_UTC); running it again sends nothing twice."""
    run = inbox.notification_digests_send()
    if run.unfinished:
        # The time budget ran out: a fresh task carries on with the same cutoff.
        send_notification_digests.delay()
    logger.info("Sent %s notification digests", run.users_emailed)
    return run.users_emailed


@shared_task(
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=5,
    soft_time_limit=50,
    time_limit=60,
)
def screen_application(application_id: int) -> bool:
    """Screen a submitted application against its tier's rules; a redelivered task changes nothing."""
    return screening.application_screen(application_id=application_id)


@shared_task(time_limit=240)
def expire_stale_applications() -> int:
    """Beat, hourly: expire applications left without activity past their tier's limit."""
    count = applications_expire_stale()
    if count:
        logger.info("Expired %s stale applications", count)
    return count


@shared_task(time_limit=240)
def send_grant_expiry_reminders() -> int:
    """Beat, hourly: remind grant holders GRANT_EXPIRY_REMINDER_DAYS before expiry, each reminder once."""
    count = grant_expiry_reminders_send()
    if count:
        logger.info("Sent %s grant expiry reminders", count)
    return count


@shared_task(time_limit=240)
def send_review_reminders() -> int:
    """Beat, every five minutes: remind assignees before a decision date and tell owners once it
    has passed (access/reminders.py); each reminder is sent once."""
    run = review_reminders_send()
    if run.reminded or run.breached:
        logger.info(
            "Review reminders: %s assignees reminded, %s breaches reported", run.reminded, run.breached
        )
    return run.reminded + run.breached
