"""Background work of the access app: thin tasks that take ids and call services."""

from __future__ import annotations

import logging
from smtplib import SMTPException

from celery import shared_task

from access import inbox, notifications
from access.services.grants import grants_expire_due

logger = logging.getLogger(__name__)


@shared_task(
    autoretry_for=(SMTPException, OSError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
    # Both limits: the project-wide soft limit (CELERY_TASK_SOFT_TIME_LIMIT, 240 s) above a
    # 60 s hard limit makes Celery refuse to enqueue the task at all.
    soft_time_limit=50,
    time_limit=60,
)
def send_application_email(application_id: int, event: str) -> bool:
    """E-mail the applicant about ``event``; a redelivered task sends nothing twice."""
    return notifications.send_application_email(application_id=application_id, event=event)


@shared_task(time_limit=240)
def expire_due_grants() -> int:
    count = grants_expire_due()
    if count:
        logger.info("Expired %s grants", count)
    return count


@shared_task(
    autoretry_for=(SMTPException, OSError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
    soft_time_limit=50,
    time_limit=60,
)
def send_notification_email(notification_id: int) -> bool:
    """E-mail one in-app notification to a user who wants them at once; sent at most once."""
    return inbox.send_notification_email(notification_id=notification_id)
