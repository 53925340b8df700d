"""Verifying an uploaded file: the sha256 and size of the stored object version, against what the
publisher announced. Run by the ``verify_artifact`` task."""

from __future__ import annotations

import hashlib

from django.db import transaction
from django.utils import timezone

from access.audit import audit_record
from portal import storage
from releases.models import Artifact


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
