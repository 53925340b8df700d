"""Removing unfinished uploads: a publisher discards one to upload the path again, and the periodic
clean-up aborts those nobody is finishing (and enqueues again verifications that lost their task)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from access.audit import audit_record
from portal import storage
from releases.models import Artifact, Release
from releases.uploads.failures import UploadError, artifact_upload_fail
from releases.uploads.start import ARTIFACT_KEY_PREFIX

logger = logging.getLogger(__name__)


def artifact_upload_discard(*, artifact: Artifact, actor) -> None:
    """Remove an unfinished (``uploading``) or ``failed`` file from a draft release, with its upload or
    stored object, so that the path can be uploaded again."""
    with transaction.atomic():
        release = Release.objects.select_for_update().get(pk=artifact.release_id)
        if release.status != Release.Status.DRAFT:
            raise UploadError("This release is published: its files cannot change.", code="release_published")
        current = Artifact.objects.select_for_update().get(pk=artifact.pk)
        if current.status not in (Artifact.Status.UPLOADING, Artifact.Status.FAILED):
            raise UploadError(
                f"{current.path} is {current.get_status_display().lower()}; only an unfinished or "
                "failed upload can be discarded.",
                code="not_discardable",
            )
        audit_record(
            action="artifact.discarded",
            target=current,
            actor=actor,
            payload={"path": current.path, "status": current.status, "storage_key": current.storage_key},
        )
        current.delete()
    # After commit, best effort: the clean-up aborts a forgotten upload; the key is never reused.
    try:
        if current.upload_id:
            storage.abort_multipart_upload(key=current.storage_key, upload_id=current.upload_id)
        if current.object_version:
            storage.delete_object_version(key=current.storage_key, version_id=current.object_version)
    except storage.StorageError as error:
        logger.warning("Could not remove the storage of discarded artifact %s: %s", artifact.pk, error)


@dataclass(frozen=True)
class UploadCleanup:
    """What uploads_abort_abandoned did: the artifacts it failed, the forgotten uploads it aborted, and
    the verifications it enqueued again."""

    failed_artifact_ids: list[int]
    orphans_aborted: int
    verifications_requeued: list[int]


def uploads_abort_abandoned(
    *, older_than: timedelta | None = None, now: datetime | None = None
) -> UploadCleanup:
    """Abort the multipart uploads nobody is finishing, and fail their artifacts.

    An artifact's upload is abandoned when it started more than ``older_than`` ago (default:
    UPLOAD_ABANDONED_AFTER_HOURS) and no part arrived since; a large upload still receiving parts is left
    alone. Uploads in the bucket (under ARTIFACT_KEY_PREFIX) that no unfinished artifact knows, started
    before the same limit, are aborted too: leftovers of a crash or of a discarded artifact.

    A completed upload still ``verifying`` that old lost its task (the storage stayed down through its
    retries, or a worker died): its verification is enqueued again; a duplicate run changes nothing.
    """
    if older_than is None:
        older_than = timedelta(hours=settings.UPLOAD_ABANDONED_AFTER_HOURS)
    cutoff = (now or timezone.now()) - older_than
    hours = older_than.total_seconds() / 3600
    reason = (
        f"The upload was abandoned: no part arrived for {hours:g} hours, so it was aborted. "
        "Discard the file and upload it again."
    )
    unfinished = Artifact.objects.filter(
        status__in=(Artifact.Status.UPLOADING, Artifact.Status.VERIFYING)
    ).exclude(upload_id="")
    failed_ids = []
    for artifact in unfinished.filter(created_at__lt=cutoff).order_by("pk"):
        try:
            parts = storage.list_uploaded_parts(key=artifact.storage_key, upload_id=artifact.upload_id)
        except storage.UploadNotFound:
            parts = []
        if any(part.last_modified >= cutoff for part in parts):
            continue
        if artifact_upload_fail(
            artifact,
            reason=reason,
            action="artifact.upload_abandoned",
            actor=None,
            payload={"parts": len(parts)},
        ):
            storage.abort_multipart_upload(key=artifact.storage_key, upload_id=artifact.upload_id)
            failed_ids.append(artifact.pk)
    known = set(unfinished.values_list("upload_id", flat=True))
    orphans = [
        upload
        for upload in storage.list_multipart_uploads(older_than=cutoff, prefix=ARTIFACT_KEY_PREFIX)
        if upload.upload_id not in known
    ]
    for upload in orphans:
        storage.abort_multipart_upload(key=upload.key, upload_id=upload.upload_id)
    from releases.tasks import verify_artifact  # the tasks module imports this package

    stalled = list(
        Artifact.objects.filter(
            status=Artifact.Status.VERIFYING, upload_id="", created_at__lt=cutoff
        ).values_list("pk", flat=True)
    )
    for artifact_id in stalled:
        verify_artifact.delay_on_commit(artifact_id)
    if failed_ids or orphans or stalled:
        logger.info(
            "Aborted %s abandoned uploads and %s forgotten ones; verifying %s files again",
            len(failed_ids),
            len(orphans),
            len(stalled),
        )
    return UploadCleanup(
        failed_artifact_ids=failed_ids, orphans_aborted=len(orphans), verifications_requeued=stalled
    )
