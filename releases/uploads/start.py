"""Starting an upload: the checks of what the publisher announces, a storage key of its own, and the
multipart upload created in storage before the ``uploading`` artifact is recorded."""

from __future__ import annotations

import contextlib
import secrets

from django.db import transaction

from access.audit import audit_record
from portal import storage
from releases.models import Artifact, Release
from releases.services import SHA256_PATTERN, ReleaseError, validate_artifact_path
from releases.uploads.failures import UploadError, storage_unavailable_error
from releases.uploads.parts import MAX_ARTIFACT_SIZE, upload_part_size

# Every uploaded object lives under this prefix; the clean-up aborts forgotten uploads under it only.
ARTIFACT_KEY_PREFIX = "artifacts/"
MAX_STORAGE_KEY_BYTES = 1024


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
        raise storage_unavailable_error(error) from error
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
