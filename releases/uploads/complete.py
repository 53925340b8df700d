"""Completing an upload: storage assembles the parts into one object version, and its verification
is enqueued. A completion whose answer was lost is finished by completing again."""

from __future__ import annotations

from django.db import transaction

from access.audit import audit_record
from portal import storage
from releases.models import Artifact, Release
from releases.uploads.failures import UploadError, artifact_upload_fail, storage_unavailable_error
from releases.uploads.parts import upload_part_count

MAX_ETAG_LENGTH = 200


def _checked_parts(parts: object, part_count: int) -> list[tuple[int, str]]:
    """(part number, ETag) for exactly the parts 1..part_count, in order."""
    if not isinstance(parts, list):
        raise UploadError("List the parts as [part number, ETag] pairs.", code="invalid_parts")
    checked: dict[int, str] = {}
    for part in parts:
        if not (isinstance(part, list | tuple) and len(part) == 2):
            raise UploadError("List the parts as [part number, ETag] pairs.", code="invalid_parts")
        number, etag = part
        if isinstance(number, bool) or not isinstance(number, int) or number in checked:
            raise UploadError(f"Part number {number!r} is not valid here.", code="invalid_parts")
        if not isinstance(etag, str) or not etag.strip() or len(etag) > MAX_ETAG_LENGTH:
            raise UploadError(f"Part {number} needs the ETag storage answered.", code="invalid_parts")
        checked[number] = etag.strip()
    expected = set(range(1, part_count + 1))
    if set(checked) != expected:
        missing = sorted(expected - set(checked))
        extra = sorted(set(checked) - expected)
        detail = f"missing {_number_ranges(missing)}" if missing else f"unknown {_number_ranges(extra)}"
        raise UploadError(
            f"This file has {part_count} parts; the list given is {detail}.", code="incomplete_parts"
        )
    return sorted(checked.items())


def _number_ranges(numbers: list[int], limit: int = 5) -> str:
    shown = ", ".join(str(number) for number in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def artifact_upload_complete(*, artifact: Artifact, parts: list, actor) -> Artifact:
    """Have storage assemble the uploaded parts, record the object version and enqueue verification.

    ``parts`` lists every part of the file as (part number, ETag as storage answered the PUT). Calling
    this again for an upload already completed returns the artifact unchanged. Refuses parts storage
    cannot assemble (the artifact stays ``uploading``: upload the missing parts and try again).
    """
    with transaction.atomic():
        current = Artifact.objects.select_for_update().select_related("release").get(pk=artifact.pk)
        if current.release.status != Release.Status.DRAFT:
            raise UploadError("This release is published: its files cannot change.", code="release_published")
        if current.status in (Artifact.Status.VERIFYING, Artifact.Status.VERIFIED) and not current.upload_id:
            return current
        if current.status == Artifact.Status.FAILED:
            raise UploadError(f"This upload failed: {current.failure_reason}", code="upload_failed")
        part_count = upload_part_count(size=current.expected_size or 0, part_size=current.part_size or 1)
        checked_parts = _checked_parts(parts, part_count)
        # The claim: from now on the clean-up leaves this upload alone, and a second completion
        # racing this one completes the same parts (storage gives both the same object).
        if current.status != Artifact.Status.VERIFYING:
            current.status = Artifact.Status.VERIFYING
            current.save(update_fields=["status"])
    key, upload_id = current.storage_key, current.upload_id
    try:
        version_id = storage.complete_multipart_upload(key=key, upload_id=upload_id, parts=checked_parts)
    except storage.UploadRejected as error:
        _release_completion_claim(current)
        raise UploadError(
            f"Storage could not assemble the file ({error.code}: {error}). "
            "List the stored parts, upload the missing ones again, then complete.",
            code="parts_rejected",
        ) from None
    except storage.UploadNotFound:
        version_id = _version_of_completed_upload(current)
    except storage.StorageError as error:
        _release_completion_claim(current)
        raise storage_unavailable_error(error) from error
    from releases.tasks import verify_artifact  # the tasks module imports this package

    with transaction.atomic():
        recorded = Artifact.objects.filter(
            pk=current.pk, status=Artifact.Status.VERIFYING, upload_id=upload_id
        ).update(upload_id="", object_version=version_id or "")
        if recorded:
            audit_record(
                action="artifact.uploaded",
                target=current,
                actor=actor,
                payload={"parts": len(checked_parts), "object_version": version_id or ""},
            )
            verify_artifact.delay_on_commit(current.pk)
    current.refresh_from_db()
    return current


def _release_completion_claim(artifact: Artifact) -> None:
    """Back to ``uploading`` after storage refused or failed, so that the publisher can fix and retry."""
    Artifact.objects.filter(
        pk=artifact.pk, status=Artifact.Status.VERIFYING, upload_id=artifact.upload_id
    ).update(status=Artifact.Status.UPLOADING)


def _version_of_completed_upload(artifact: Artifact) -> str | None:
    """Storage forgot the upload: either an earlier completion whose answer was lost assembled it
    (the object exists under the upload's own key), or it was aborted, and the artifact fails."""
    try:
        return storage.head_object(key=artifact.storage_key).get("VersionId")
    except storage.ObjectNotFound:
        reason = "Storage no longer has this upload (it was aborted). Discard the file and upload it again."
        artifact_upload_fail(artifact, reason=reason, action="artifact.upload_lost", actor=None)
        raise UploadError(reason, code="upload_gone") from None
    except storage.StorageError as error:
        _release_completion_claim(artifact)
        raise storage_unavailable_error(error) from error
