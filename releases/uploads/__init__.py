"""Publishers' uploads: the bytes go straight to the bucket in parts; the portal verifies what arrived.

The life of an uploaded artifact, and the module of each step::

    artifact_upload_start     -> uploading   start.py: a multipart upload under a key of its own,
                                             part size chosen here
    artifact_upload_part_urls                parts.py: presigned PUT URLs for some parts (a few at a time)
    artifact_upload_parts                    parts.py: the parts stored so far, to resume an interruption
    artifact_upload_complete  -> verifying   complete.py: storage assembles the parts; verify_artifact
                                             is enqueued
    artifact_verify           -> verified    verify.py: sha256 and size computed from the stored version
                              -> failed      ...or they differ from what the publisher announced
    uploads_abort_abandoned   -> failed      cleanup.py: no part arrived for UPLOAD_ABANDONED_AFTER_HOURS
    artifact_upload_discard   (row deleted)  cleanup.py: an unfinished or failed file of a draft, to
                                             upload it again

``failures.py`` holds UploadError and the failing of an unfinished upload that several steps share;
``cors.py`` the origins the bucket's CORS rule must allow for the browser uploader.

Storage calls never run inside a database transaction: a row is claimed (locked or conditionally
updated), the transaction commits, storage is called, and the outcome is recorded in a second short
transaction whose UPDATE is conditional on the claim still holding.

While an upload is being completed the artifact is ``verifying`` with its ``upload_id`` still set; once
storage has assembled the object, ``upload_id`` is cleared and ``object_version`` recorded. A completion
that died between the two is finished by calling artifact_upload_complete again (storage answers a
repeated completion with the same object) or, failing that, failed by the periodic clean-up.

Callers import from this package (``from releases import uploads``); the modules are its topics.
"""

from releases.uploads.cleanup import UploadCleanup, artifact_upload_discard, uploads_abort_abandoned
from releases.uploads.complete import artifact_upload_complete
from releases.uploads.cors import upload_cors_origins
from releases.uploads.failures import UploadError
from releases.uploads.parts import (
    MAX_ARTIFACT_SIZE,
    MAX_PART_URLS_PER_REQUEST,
    artifact_upload_part_urls,
    artifact_upload_parts,
    upload_part_count,
    upload_part_size,
)
from releases.uploads.start import ARTIFACT_KEY_PREFIX, artifact_upload_start
from releases.uploads.verify import artifact_verification_time_out, artifact_verify

__all__ = [
    "ARTIFACT_KEY_PREFIX",
    "MAX_ARTIFACT_SIZE",
    "MAX_PART_URLS_PER_REQUEST",
    "UploadCleanup",
    "UploadError",
    "artifact_upload_complete",
    "artifact_upload_discard",
    "artifact_upload_part_urls",
    "artifact_upload_parts",
    "artifact_upload_start",
    "artifact_verification_time_out",
    "artifact_verify",
    "upload_cors_origins",
    "upload_part_count",
    "upload_part_size",
    "uploads_abort_abandoned",
]
