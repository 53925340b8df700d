"""What every step of an upload may refuse with, and how an unfinished upload is marked failed."""

from __future__ import annotations

import logging

from django.db import transaction

from access.audit import audit_record
from portal import storage
from releases.models import Artifact
from releases.services import ReleaseError

logger = logging.getLogger(__name__)


class UploadError(ReleaseError):
    """An upload request that cannot be carried out; ``code`` is stable, for JSON clients."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def storage_unavailable_error(error: storage.StorageError) -> UploadError:
    """The refusal a publisher sees when storage failed; the storage's own words go to the log."""
    logger.warning("Object storage failed during an upload: %s", error)
    return UploadError(
        "The object storage is not answering; nothing was changed. Try again in a minute.",
        code="storage_unavailable",
    )


def artifact_upload_fail(
    artifact: Artifact, *, reason: str, action: str, actor, payload: dict | None = None
) -> bool:
    """Mark an unfinished upload failed, if it still is the upload ``artifact`` describes."""
    with transaction.atomic():
        failed = Artifact.objects.filter(
            pk=artifact.pk,
            status__in=(Artifact.Status.UPLOADING, Artifact.Status.VERIFYING),
            upload_id=artifact.upload_id,
        ).update(status=Artifact.Status.FAILED, failure_reason=reason, upload_id="")
        if failed:
            audit_record(
                action=action,
                target=artifact,
                actor=actor,
                payload={"reason": reason, "upload_id": artifact.upload_id, **(payload or {})},
            )
    return bool(failed)
