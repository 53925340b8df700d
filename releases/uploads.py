"""Publishers' uploads: the bytes go straight to the bucket in parts; the portal verifies what arrived.

The life of an uploaded artifact::

    artifact_upload_start     -> uploading   a multipart upload under a key of its own, part size chosen here
    artifact_upload_part_urls                presigned PUT URLs for some parts (a few at a time)
    artifact_upload_parts                    the parts stored so far, to resume after an interruption
    artifact_upload_complete  -> verifying   storage assembles the parts; verify_artifact is enqueued
    artifact_verify           -> verified    sha256 and size computed from the stored object version
                              -> failed      ...or they differ from what the publisher announced
    uploads_abort_abandoned   -> failed      no part arrived for UPLOAD_ABANDONED_AFTER_HOURS: aborted
    artifact_upload_discard   (row deleted)  an unfinished or failed file of a draft, to upload it again

Storage calls never run inside a database transaction: a row is claimed (locked or conditionally
updated), the transaction commits, storage is called, and the outcome is recorded in a second short
transaction whose UPDATE is conditional on the claim still holding.

While an upload is being completed the artifact is ``verifying`` with its ``upload_id`` still set; once
storage has assembled the object, ``upload_id`` is cleared and ``object_version`` recorded. A completion
that died between the two is finished by calling artifact_upload_complete again (storage answers a
repeated completion with the same object) or, failing that, failed by the periodic clean-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from access.audit import audit_record
from portal import storage
from releases.models import Artifact, Release
from releases.services import SHA256_PATTERN, ReleaseError, validate_artifact_path

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
# S3's largest object. Bigger files would need more than 10,000 parts of S3's largest part size anyway.
MAX_ARTIFACT_SIZE = 5 * 1024 * MIB * 1024
MAX_PARTS = storage.MAX_PARTS
# Presigned URLs handed out per request: enough to keep a few parallel uploads busy for a long while.
MAX_PART_URLS_PER_REQUEST = 100
MAX_ETAG_LENGTH = 200
# Every uploaded object lives under this prefix; the clean-up aborts forgotten uploads under it only.
ARTIFACT_KEY_PREFIX = "artifacts/"
MAX_STORAGE_KEY_BYTES = 1024


class UploadError(ReleaseError):
    """An upload request that cannot be carried out; ``code`` is stable, for JSON clients."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def upload_cors_origins() -> list[str]:
    """The origins the browser uploader runs on: SITE_URL, and the same scheme and port on each plain
    host of ALLOWED_HOSTS (the demo answers on 127.0.0.1 and localhost). The bucket's CORS rule must
    allow them (``manage.py bucket_cors``)."""
    site = urllib.parse.urlsplit(settings.SITE_URL)
    port = f":{site.port}" if site.port else ""
    origins = [f"{site.scheme}://{site.netloc}"]
    for host in settings.ALLOWED_HOSTS:
        origin = f"{site.scheme}://{host}{port}"
        if host and not host.startswith((".", "*")) and origin not in origins:
            origins.append(origin)
    return origins


# --- Part sizes ------------------------------------------------------------------------------


def upload_part_size(size: int) -> int:
    """The part size for a file of ``size`` bytes: UPLOAD_PART_SIZE_BYTES, or the smallest whole number
    of MiB that cuts the file into at most 10,000 parts (S3's limit) if that is bigger."""
    smallest_that_fits = -(-size // MAX_PARTS)
    smallest_that_fits = -(-smallest_that_fits // MIB) * MIB
    return max(settings.UPLOAD_PART_SIZE_BYTES, smallest_that_fits)


def upload_part_count(*, size: int, part_size: int) -> int:
    """How many parts a file of ``size`` bytes has; an empty file is one empty part."""
    return max(1, -(-size // part_size))


# --- Input checks ----------------------------------------------------------------------------


def _checked_path(path: object) -> str:
    if not isinstance(path, str):
        raise UploadError("Give the file's path in the release as text.", code="invalid_path")
    try:
        return validate_artifact_path(path)
    except ReleaseError as error:
        raise UploadError(str(error), code="invalid_path") from None


def _checked_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        raise UploadError("Give the file's size as a whole number of bytes.", code="invalid_size")
    if size < 0:
        raise UploadError("A file's size cannot be negative.", code="invalid_size")
    if size > MAX_ARTIFACT_SIZE:
        raise UploadError(
            f"A file can have at most {MAX_ARTIFACT_SIZE:,} bytes (5 TiB); this one has {size:,}.",
            code="file_too_large",
        )
    return size


def _checked_sha256(value: object) -> str:
    if not isinstance(value, str):
        raise UploadError("Give the expected sha256 as text.", code="invalid_sha256")
    value = value.strip().lower()
    if value and not SHA256_PATTERN.fullmatch(value):
        raise UploadError(
            "An expected sha256 is 64 hexadecimal characters, as `sha256sum` prints it.",
            code="invalid_sha256",
        )
    return value


def _check_release_takes(release: Release, path: str) -> None:
    if release.status != Release.Status.DRAFT:
        raise UploadError("This release is published: its files cannot change.", code="release_published")
    existing = release.artifacts.filter(path=path).first()
    if existing is not None:
        raise UploadError(
            f"The release already has a file at {path!r} ({existing.get_status_display().lower()}). "
            "Resume its upload, or discard it first.",
            code="duplicate_path",
        )


def _new_storage_key(release: Release, path: str) -> str:
    """A key no other upload uses: a failed or discarded upload never shadows the next one."""
    key = f"{ARTIFACT_KEY_PREFIX}{release.pk}/{secrets.token_hex(16)}/{path}"
    if len(key.encode("utf-8")) > MAX_STORAGE_KEY_BYTES:
        raise UploadError("This path is too long for the object storage; shorten it.", code="invalid_path")
    return key


def _storage_unavailable(error: storage.StorageError) -> UploadError:
    logger.warning("Object storage failed during an upload: %s", error)
    return UploadError(
        "The object storage is not answering; nothing was changed. Try again in a minute.",
        code="storage_unavailable",
    )


# --- Starting, part URLs, resuming -----------------------------------------------------------


def artifact_upload_start(
    *, release: Release, path: str, size: int, expected_sha256: str = "", actor
) -> Artifact:
    """Create an ``uploading`` artifact of a draft release and start its multipart upload.

    ``size`` (bytes, up to MAX_ARTIFACT_SIZE) fixes the part size and count; ``expected_sha256``, if
    given, must match the stored bytes or verification fails. Refuses (UploadError, nothing changed) a
    bad path, size or sha256, a published release and a path the release already has.
    """
    path = _checked_path(path)
    size = _checked_size(size)
    expected_sha256 = _checked_sha256(expected_sha256)
    # Checked before calling storage, and again under the lock below.
    _check_release_takes(release, path)
    part_size = upload_part_size(size)
    key = _new_storage_key(release, path)
    try:
        upload_id = storage.create_multipart_upload(key=key)
    except storage.StorageError as error:
        raise _storage_unavailable(error) from error
    try:
        with transaction.atomic():
            locked_release = Release.objects.select_for_update().get(pk=release.pk)
            _check_release_takes(locked_release, path)
            artifact = Artifact.objects.create(
                release=locked_release,
                path=path,
                status=Artifact.Status.UPLOADING,
                expected_size=size,
                expected_sha256=expected_sha256,
                storage_key=key,
                upload_id=upload_id,
                part_size=part_size,
            )
            audit_record(
                action="artifact.upload_started",
                target=artifact,
                actor=actor,
                payload={
                    "path": path,
                    "size": size,
                    "expected_sha256": expected_sha256,
                    "part_size": part_size,
                    "storage_key": key,
                },
            )
    except BaseException:
        # Best effort: uploads_abort_abandoned aborts whatever this misses.
        with contextlib.suppress(storage.StorageError):
            storage.abort_multipart_upload(key=key, upload_id=upload_id)
        raise
    return artifact


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
        raise _storage_unavailable(error) from error


# --- Completing ------------------------------------------------------------------------------


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
        raise _storage_unavailable(error) from error
    from releases.tasks import verify_artifact  # the tasks module imports this one

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
        _artifact_fail(artifact, reason=reason, action="artifact.upload_lost", actor=None)
        raise UploadError(reason, code="upload_gone") from None
    except storage.StorageError as error:
        _release_completion_claim(artifact)
        raise _storage_unavailable(error) from error


def _artifact_fail(
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


# --- Verifying -------------------------------------------------------------------------------


def artifact_verify(*, artifact_id: int) -> Artifact | None:
    """Stream the stored object version, compute its sha256 and size, and mark the artifact verified,
    or failed with the reason when they differ from what the publisher announced.

    Safe to run twice, also concurrently: only an artifact still ``verifying`` with the same object
    version is changed, once; any other run changes nothing.
    """
    artifact = Artifact.objects.filter(pk=artifact_id).first()
    if artifact is None or artifact.status != Artifact.Status.VERIFYING or artifact.upload_id:
        return artifact
    digest = hashlib.sha256()
    size = 0
    try:
        for chunk in storage.iter_object_chunks(
            key=artifact.storage_key, version_id=artifact.object_version or None
        ):
            digest.update(chunk)
            size += len(chunk)
    except storage.ObjectNotFound:
        reason = "The uploaded file is missing from the object storage. Discard it and upload it again."
        fields = {"status": Artifact.Status.FAILED, "failure_reason": reason}
        payload: dict = {"reason": reason}
    else:
        sha256 = digest.hexdigest()
        reason = _mismatch(artifact, sha256=sha256, size=size)
        payload = {"sha256": sha256, "size": size}
        if reason:
            fields = {"status": Artifact.Status.FAILED, "failure_reason": reason}
            payload["reason"] = reason
        else:
            fields = {
                "status": Artifact.Status.VERIFIED,
                "sha256": sha256,
                "size": size,
                "verified_at": timezone.now(),
            }
    with transaction.atomic():
        changed = Artifact.objects.filter(
            pk=artifact.pk,
            status=Artifact.Status.VERIFYING,
            upload_id="",
            object_version=artifact.object_version,
        ).update(**fields)
        if changed:
            verified = fields["status"] == Artifact.Status.VERIFIED
            action = "artifact.verified" if verified else "artifact.verification_failed"
            audit_record(action=action, target=artifact, payload=payload)
    artifact.refresh_from_db()
    return artifact


def artifact_verification_time_out(*, artifact_id: int, limit_seconds: int) -> bool:
    """Fail an artifact whose verification ran out of time: another run would too. Returns whether
    this call failed it."""
    reason = (
        f"Checking this file took longer than the {limit_seconds} seconds allowed. The operator can raise "
        "ARTIFACT_VERIFY_TIME_LIMIT_SECONDS (and CELERY_VISIBILITY_TIMEOUT); then discard the file and "
        "upload it again."
    )
    with transaction.atomic():
        artifact = Artifact.objects.filter(pk=artifact_id).first()
        changed = Artifact.objects.filter(
            pk=artifact_id, status=Artifact.Status.VERIFYING, upload_id=""
        ).update(status=Artifact.Status.FAILED, failure_reason=reason)
        if changed and artifact is not None:
            audit_record(action="artifact.verification_failed", target=artifact, payload={"reason": reason})
    return bool(changed)


def _mismatch(artifact: Artifact, *, sha256: str, size: int) -> str:
    """Why the stored bytes are not the file the publisher announced, or ''."""
    problems = []
    if artifact.expected_size is not None and size != artifact.expected_size:
        problems.append(
            f"the stored file has {size:,} bytes, not the {artifact.expected_size:,} announced "
            "when the upload started"
        )
    if artifact.expected_sha256 and sha256 != artifact.expected_sha256:
        problems.append(f"its sha256 is {sha256}, not the expected {artifact.expected_sha256}")
    if not problems:
        return ""
    return (
        "Verification failed: "
        + "; ".join(problems)
        + ". The file changed or was damaged on the way; discard it and upload it again."
    )


# --- Discarding and cleaning up --------------------------------------------------------------


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
        if _artifact_fail(
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
    from releases.tasks import verify_artifact  # the tasks module imports this one

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
