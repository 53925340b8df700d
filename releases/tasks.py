"""Background work of the releases app."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from portal.celery import EMAIL_TASK_OPTIONS
from portal.storage import StorageUnavailable
from releases import rollout, uploads
from releases.members import invitation_email_send

logger = logging.getLogger(__name__)


# No retries: the next beat run is the retry. The soft limit interrupts a batch cleanly (its unsent
# watches are freed); the tick stops claiming batches well before it (releases.announcements).
@shared_task(soft_time_limit=200, time_limit=240, max_retries=0)
def rollout_tick() -> list[int]:
    """Open every due tier (once) and tell the watchers of opened tiers (once each). Run by beat;
    any number of overlapping runs is safe (see releases.rollout.rollout_tick)."""
    report = rollout.rollout_tick()
    if report.emails_sent:
        logger.info("Sent %s tier announcements in %s batches", report.emails_sent, report.batches)
    return report.opened


@shared_task(soft_time_limit=200, time_limit=240, max_retries=0)
def open_due_tiers() -> list[int]:
    """The rollout tick's former name, kept for messages queued before an upgrade."""
    return rollout_tick()


@shared_task(**EMAIL_TASK_OPTIONS)
def send_organization_invitation_email(invitation_id: int) -> bool:
    """E-mail an organization invitation's link; a redelivered task sends nothing twice."""
    return invitation_email_send(invitation_id=invitation_id)


@shared_task(
    autoretry_for=(StorageUnavailable,),
    retry_backoff=10,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=6,
    acks_late=True,
    # Hashing streams the whole file: about an hour for a few hundred GB. Kept below the broker's
    # visibility timeout (see settings), past which Redis would hand the task to a second worker.
    soft_time_limit=settings.ARTIFACT_VERIFY_TIME_LIMIT_SECONDS,
    time_limit=settings.ARTIFACT_VERIFY_TIME_LIMIT_SECONDS + 60,
)
def verify_artifact(artifact_id: int) -> str | None:
    """Compute an uploaded artifact's sha256 and size and mark it verified or failed. A redelivered or
    duplicated task changes nothing (releases.uploads.verify.artifact_verify). If the storage stays down
    through the retries, the hourly abort_abandoned_uploads enqueues it again later."""
    try:
        artifact = uploads.artifact_verify(artifact_id=artifact_id)
    except SoftTimeLimitExceeded:
        uploads.artifact_verification_time_out(
            artifact_id=artifact_id, limit_seconds=settings.ARTIFACT_VERIFY_TIME_LIMIT_SECONDS
        )
        raise
    return artifact.status if artifact is not None else None


# No retries: the next hourly run is the retry.
@shared_task(soft_time_limit=540, time_limit=600, max_retries=0)
def abort_abandoned_uploads() -> list[int]:
    """Abort the multipart uploads nobody is finishing and fail their artifacts. Run hourly by beat."""
    return uploads.uploads_abort_abandoned().failed_artifact_ids
