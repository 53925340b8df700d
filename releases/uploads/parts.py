"""The parts of a multipart upload: their size and count, presigned URLs to PUT them, and the list of
those already stored, to resume an interrupted upload."""

from __future__ import annotations

from django.conf import settings

from portal import storage
from releases.models import Artifact
from releases.uploads.failures import UploadError, storage_unavailable_error

MIB = 1024 * 1024
# S3's largest object. Bigger files would need more than 10,000 parts of S3's largest part size anyway.
MAX_ARTIFACT_SIZE = 5 * 1024 * MIB * 1024
MAX_PARTS = storage.MAX_PARTS
# Presigned URLs handed out per request: enough to keep a few parallel uploads busy for a long while.
MAX_PART_URLS_PER_REQUEST = 100


def upload_part_size(size: int) -> int:
    """The part size for a file of ``size`` bytes: UPLOAD_PART_SIZE_BYTES, or the smallest whole number
    of MiB that cuts the file into at most 10,000 parts (S3's limit) if that is bigger."""
    smallest_that_fits = -(-size // MAX_PARTS)
    smallest_that_fits = -(-smallest_that_fits // MIB) * MIB
    return max(settings.UPLOAD_PART_SIZE_BYTES, smallest_that_fits)


def upload_part_count(*, size: int, part_size: int) -> int:
    """How many parts a file of ``size`` bytes has; an empty file is one empty part."""
    return max(1, -(-size // part_size))


def _require_uploading(artifact: Artifact) -> None:
    if artifact.status != Artifact.Status.UPLOADING or not artifact.upload_id:
        raise UploadError(
            f"{artifact.path} is {artifact.get_status_display().lower()}, not uploading.",
            code="not_uploading",
        )


def artifact_upload_part_urls(*, artifact: Artifact, part_numbers: list[int]) -> dict[int, str]:
    """Presigned PUT URLs for some parts of an uploading artifact, valid UPLOAD_PART_URL_LIFETIME_SECONDS.

    At most MAX_PART_URLS_PER_REQUEST distinct part numbers, each within the artifact's part count.
    Signing changes nothing and calls no server, so it writes no audit event; starting and completing
    the upload do.
    """
    _require_uploading(artifact)
    part_count = upload_part_count(size=artifact.expected_size or 0, part_size=artifact.part_size or 1)
    if not isinstance(part_numbers, list) or not part_numbers:
        raise UploadError("Ask for a list of part numbers.", code="invalid_parts")
    if len(part_numbers) > MAX_PART_URLS_PER_REQUEST:
        raise UploadError(
            f"Ask for at most {MAX_PART_URLS_PER_REQUEST} part URLs at a time.", code="too_many_parts"
        )
    for number in part_numbers:
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= part_count:
            raise UploadError(
                f"Part numbers of this file go from 1 to {part_count}; {number!r} is not one of them.",
                code="invalid_parts",
            )
    if len(set(part_numbers)) != len(part_numbers):
        raise UploadError("Each part number only once, please.", code="invalid_parts")
    lifetime = settings.UPLOAD_PART_URL_LIFETIME_SECONDS
    return {
        number: storage.presign_upload_part(
            key=artifact.storage_key,
            upload_id=artifact.upload_id,
            part_number=number,
            lifetime_seconds=lifetime,
        )
        for number in part_numbers
    }


def artifact_upload_parts(*, artifact: Artifact) -> list[storage.UploadedPart]:
    """The parts of an uploading artifact already in storage: a resumed upload sends only the others."""
    _require_uploading(artifact)
    try:
        return storage.list_uploaded_parts(key=artifact.storage_key, upload_id=artifact.upload_id)
    except storage.UploadNotFound:
        raise UploadError(
            "Storage no longer has this upload; discard the file and upload it again.", code="upload_gone"
        ) from None
    except storage.StorageError as error:
        raise storage_unavailable_error(error) from error
