"""Uploads straight to object storage (releases/uploads/), against a real SeaweedFS: multipart
uploads in parallel parts, resuming, completing, verifying the sha256, the clean-up of abandoned
uploads, and the bad input that changes nothing."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.management import call_command
from django.utils import timezone

from access.models import AuditEvent
from portal import storage
from releases import uploads
from releases.models import Artifact, Release
from releases.services import ReleaseError, release_publish, release_revision
from releases.tasks import abort_abandoned_uploads, verify_artifact
from tests.factories import ArtifactFactory, ReleaseFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes
from tests.releases.uploading import (
    MIB,
    PART_SIZE,
    THREE_PARTS,
    part_body,
    put,
    upload_parts,
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def start(release, owner, content: bytes, path="model-00001-of-00001.safetensors", **arguments) -> Artifact:
    return uploads.artifact_upload_start(
        release=release, path=path, size=len(content), actor=owner, **arguments
    )


def complete(artifact: Artifact, etags: dict[int, str], owner) -> Artifact:
    return uploads.artifact_upload_complete(artifact=artifact, parts=sorted(etags.items()), actor=owner)


def uploads_in_storage(release: Release) -> set[str]:
    return {upload.upload_id for upload in storage.list_multipart_uploads(prefix=f"artifacts/{release.pk}/")}


# --- Part sizes -----------------------------------------------------------------------------


def test_the_part_size_is_the_setting_for_ordinary_files(settings):
    settings.UPLOAD_PART_SIZE_BYTES = 64 * MIB
    assert uploads.upload_part_size(10 * 1024 * MIB) == 64 * MIB
    assert uploads.upload_part_count(size=10 * 1024 * MIB, part_size=64 * MIB) == 160


@pytest.mark.parametrize("size", [640 * 1024 * MIB, 4 * 1024 * 1024 * MIB, uploads.MAX_ARTIFACT_SIZE])
def test_huge_files_get_bigger_parts_to_stay_within_ten_thousand(settings, size):
    settings.UPLOAD_PART_SIZE_BYTES = 64 * MIB
    part_size = uploads.upload_part_size(size)
    assert part_size % MIB == 0
    assert 64 * MIB <= part_size <= storage.MAX_PART_SIZE
    assert uploads.upload_part_count(size=size, part_size=part_size) <= 10_000


def test_an_empty_file_is_one_empty_part():
    assert uploads.upload_part_count(size=0, part_size=PART_SIZE) == 1


# --- The happy path -------------------------------------------------------------------------


def test_a_file_uploaded_in_parallel_parts_is_completed_and_verified(
    s3, draft, owner, content, celery_eager, django_capture_on_commit_callbacks
):
    since = last_audit_id()
    artifact = start(draft, owner, content)
    assert (artifact.status, artifact.part_size, artifact.expected_size) == (
        "uploading",
        PART_SIZE,
        len(content),
    )
    assert artifact.size is None and artifact.sha256 == ""
    assert artifact.storage_key.startswith(f"artifacts/{draft.pk}/")

    etags = upload_parts(artifact, content, [1, 2, 3])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        artifact = complete(artifact, etags, owner)
    assert len(callbacks) == 1  # verify_artifact, enqueued once the completion committed

    artifact.refresh_from_db()
    assert artifact.status == Artifact.Status.VERIFIED
    assert (artifact.sha256, artifact.size) == (sha256(content), len(content))
    assert artifact.upload_id == "" and artifact.verified_at is not None
    head = storage.head_object(key=artifact.storage_key)
    assert artifact.object_version == head["VersionId"] and head["ContentLength"] == len(content)
    stored = b"".join(
        storage.iter_object_chunks(key=artifact.storage_key, version_id=artifact.object_version)
    )
    assert stored == content
    assert audit_actions(since) == ["artifact.upload_started", "artifact.uploaded", "artifact.verified"]
    assert artifact.upload_id not in uploads_in_storage(draft)


def test_an_empty_file_uploads_as_one_empty_part(s3, draft, owner):
    artifact = start(draft, owner, b"", path="empty.txt")
    etags = upload_parts(artifact, b"", [1])
    complete(artifact, etags, owner)
    artifact = uploads.artifact_verify(artifact_id=artifact.pk)
    assert (artifact.status, artifact.size, artifact.sha256) == ("verified", 0, sha256(b""))


def test_an_interrupted_upload_resumes_with_the_parts_not_stored_yet(s3, draft, owner, content):
    artifact = start(draft, owner, content)
    first = upload_parts(artifact, content, [1, 3])
    # The connection drops; later the uploader asks what storage already has.
    stored = uploads.artifact_upload_parts(artifact=artifact)
    assert [(part.part_number, part.size) for part in stored] == [
        (1, PART_SIZE),
        (3, THREE_PARTS - 2 * PART_SIZE),
    ]
    assert {part.part_number: part.etag for part in stored} == first

    with pytest.raises(uploads.UploadError) as refused:
        complete(artifact, first, owner)
    assert refused.value.code == "incomplete_parts" and "missing 2" in refused.value.message
    artifact.refresh_from_db()
    assert artifact.status == Artifact.Status.UPLOADING

    rest = upload_parts(artifact, content, [2])
    complete(artifact, {**first, **rest}, owner)
    artifact = uploads.artifact_verify(artifact_id=artifact.pk)
    assert (artifact.status, artifact.sha256) == ("verified", sha256(content))


def test_completing_twice_changes_nothing_the_second_time(s3, draft, owner, content):
    artifact = start(draft, owner, content)
    etags = upload_parts(artifact, content, [1, 2, 3])
    first = complete(artifact, etags, owner)
    since = last_audit_id()
    again = complete(artifact, etags, owner)
    assert (
        (again.status, again.object_version)
        == (first.status, first.object_version)
        == ("verifying", first.object_version)
    )
    assert audit_actions(since) == []


def test_a_part_storage_does_not_have_is_refused_and_the_upload_stays_open(s3, draft, owner, content):
    artifact = start(draft, owner, content)
    etags = upload_parts(artifact, content, [1, 2, 3])
    with nothing_changes(), pytest.raises(uploads.UploadError) as refused:
        complete(artifact, {**etags, 2: '"0123456789abcdef0123456789abcdef"'}, owner)
    assert refused.value.code == "parts_rejected"
    artifact.refresh_from_db()
    assert (artifact.status, artifact.object_version) == ("uploading", "")
    assert complete(artifact, etags, owner).status == Artifact.Status.VERIFYING


def test_a_presigned_part_url_cannot_be_used_for_another_part(s3, draft, owner, content):
    artifact = start(draft, owner, content)
    url = uploads.artifact_upload_part_urls(artifact=artifact, part_numbers=[1])[1]
    status, _ = put(url.replace("partNumber=1", "partNumber=2"), part_body(content, 2))
    assert status == 403
    assert uploads.artifact_upload_parts(artifact=artifact) == []


# --- Verification ---------------------------------------------------------------------------


def test_a_sha256_other_than_the_expected_one_fails_the_file_with_the_reason(s3, draft, owner, content):
    expected = sha256(b"the file the publisher meant to send")
    artifact = start(draft, owner, content, expected_sha256=expected.upper())
    assert artifact.expected_sha256 == expected
    complete(artifact, upload_parts(artifact, content, [1, 2, 3]), owner)
    since = last_audit_id()
    artifact = uploads.artifact_verify(artifact_id=artifact.pk)
    assert artifact.status == Artifact.Status.FAILED
    assert f"its sha256 is {sha256(content)}, not the expected {expected}" in artifact.failure_reason
    assert "upload it again" in artifact.failure_reason
    assert artifact.sha256 == "" and artifact.size is None and artifact.verified_at is None
    event = AuditEvent.objects.get(pk__gt=since)
    assert event.action == "artifact.verification_failed" and event.payload["sha256"] == sha256(content)


def test_a_matching_expected_sha256_verifies(s3, draft, owner, content):
    artifact = start(draft, owner, content, expected_sha256=sha256(content))
    complete(artifact, upload_parts(artifact, content, [1, 2, 3]), owner)
    assert uploads.artifact_verify(artifact_id=artifact.pk).status == Artifact.Status.VERIFIED


def test_a_stored_file_of_another_size_than_announced_fails(s3, draft, owner, content):
    artifact = uploads.artifact_upload_start(
        release=draft, path="short.bin", size=len(content) + 10, actor=owner
    )
    complete(artifact, upload_parts(artifact, content, [1, 2, 3]), owner)
    artifact = uploads.artifact_verify(artifact_id=artifact.pk)
    assert artifact.status == Artifact.Status.FAILED
    assert f"has {len(content):,} bytes, not the {len(content) + 10:,} announced" in artifact.failure_reason


def test_verifying_twice_changes_nothing_the_second_time(s3, draft, owner, content, celery_eager):
    artifact = start(draft, owner, content)
    complete(artifact, upload_parts(artifact, content, [1, 2, 3]), owner)
    first = verify_artifact.delay(artifact.pk).get()
    artifact.refresh_from_db()
    since = last_audit_id()
    second = verify_artifact.delay(artifact.pk).get()
    again = Artifact.objects.get(pk=artifact.pk)
    assert first == second == "verified"
    assert (again.sha256, again.size, again.verified_at) == (
        artifact.sha256,
        artifact.size,
        artifact.verified_at,
    )
    assert audit_actions(since) == []


def test_verification_of_an_upload_not_completed_yet_does_nothing(s3, draft, owner, content):
    artifact = start(draft, owner, content)
    with nothing_changes():
        assert uploads.artifact_verify(artifact_id=artifact.pk).status == Artifact.Status.UPLOADING
    assert uploads.artifact_verify(artifact_id=999_999) is None


def test_a_stored_object_that_disappeared_fails_verification(s3, draft, owner, content):
    artifact = start(draft, owner, content)
    artifact = complete(artifact, upload_parts(artifact, content, [1, 2, 3]), owner)
    storage.delete_object_version(key=artifact.storage_key, version_id=artifact.object_version)
    artifact = uploads.artifact_verify(artifact_id=artifact.pk)
    assert (
        artifact.status == Artifact.Status.FAILED
        and "missing from the object storage" in artifact.failure_reason
    )


# --- Publishing -----------------------------------------------------------------------------


def test_a_release_is_not_published_while_a_file_is_not_verified(s3, draft, owner, content):
    ArtifactFactory(release=draft, path="config.json")
    artifact = start(draft, owner, content)
    with nothing_changes(), pytest.raises(ReleaseError) as refused:
        release_publish(release=draft, actor=owner)
    assert "model-00001-of-00001.safetensors (uploading)" in str(refused.value)
    draft.refresh_from_db()
    assert (draft.status, draft.revision) == ("draft", "")

    complete(artifact, upload_parts(artifact, content, [1, 2, 3]), owner)
    with pytest.raises(ReleaseError, match=r"safetensors \(verifying\)"):
        release_publish(release=draft, actor=owner)
    uploads.artifact_verify(artifact_id=artifact.pk)
    published = release_publish(release=draft, actor=owner)
    assert published.status == Release.Status.PUBLISHED
    assert published.revision == release_revision(draft.artifacts.all())


def test_a_failed_file_blocks_publishing_until_it_is_discarded(s3, draft, owner, content):
    ArtifactFactory(release=draft, path="config.json")
    artifact = start(draft, owner, content, expected_sha256=sha256(b"other"))
    complete(artifact, upload_parts(artifact, content, [1, 2, 3]), owner)
    artifact = uploads.artifact_verify(artifact_id=artifact.pk)
    with pytest.raises(ReleaseError, match=r"safetensors \(failed\)"):
        release_publish(release=draft, actor=owner)

    since = last_audit_id()
    uploads.artifact_upload_discard(artifact=artifact, actor=owner)
    assert not Artifact.objects.filter(pk=artifact.pk).exists()
    assert audit_actions(since) == ["artifact.discarded"]
    with pytest.raises(storage.ObjectNotFound):
        storage.head_object(key=artifact.storage_key, version_id=artifact.object_version)
    # The path is free again.
    again = start(draft, owner, content)
    assert again.storage_key != artifact.storage_key


def test_discarding_an_unfinished_upload_aborts_it(s3, draft, owner, content):
    artifact = start(draft, owner, content)
    upload_parts(artifact, content, [1])
    uploads.artifact_upload_discard(artifact=artifact, actor=owner)
    assert artifact.upload_id not in uploads_in_storage(draft)


def test_a_verified_file_cannot_be_discarded(s3, draft, owner):
    artifact = ArtifactFactory(release=draft)
    with nothing_changes(), pytest.raises(uploads.UploadError) as refused:
        uploads.artifact_upload_discard(artifact=artifact, actor=owner)
    assert refused.value.code == "not_discardable"


# --- Abandoned uploads ----------------------------------------------------------------------


def test_an_abandoned_upload_is_aborted_and_its_file_failed(s3, draft, owner, content, settings):
    settings.UPLOAD_ABANDONED_AFTER_HOURS = 24
    artifact = start(draft, owner, content)
    upload_parts(artifact, content, [1])
    Artifact.objects.filter(pk=artifact.pk).update(created_at=timezone.now() - timedelta(hours=30))
    since = last_audit_id()

    result = uploads.uploads_abort_abandoned(now=timezone.now() + timedelta(hours=25))

    assert artifact.pk in result.failed_artifact_ids
    artifact.refresh_from_db()
    assert artifact.status == Artifact.Status.FAILED and artifact.upload_id == ""
    assert "abandoned: no part arrived for 24 hours" in artifact.failure_reason
    assert artifact.upload_id not in uploads_in_storage(draft)
    assert all(upload.key != artifact.storage_key for upload in storage.list_multipart_uploads())
    assert audit_actions(since) == ["artifact.upload_abandoned"]
    # A second run finds nothing more to do.
    since = last_audit_id()
    assert (
        artifact.pk
        not in uploads.uploads_abort_abandoned(now=timezone.now() + timedelta(hours=25)).failed_artifact_ids
    )
    assert audit_actions(since) == []


def test_an_old_upload_still_receiving_parts_is_left_alone(s3, draft, owner, content):
    artifact = start(draft, owner, content)
    upload_parts(artifact, content, [1])
    Artifact.objects.filter(pk=artifact.pk).update(created_at=timezone.now() - timedelta(hours=30))
    with nothing_changes():
        result = uploads.uploads_abort_abandoned(older_than=timedelta(hours=24))
    assert artifact.pk not in result.failed_artifact_ids
    assert [part.part_number for part in uploads.artifact_upload_parts(artifact=artifact)] == [1]


def test_a_recent_upload_is_left_alone(s3, draft, owner, content):
    artifact = start(draft, owner, content)
    with nothing_changes():
        uploads.uploads_abort_abandoned(older_than=timedelta(hours=24))
    assert artifact.upload_id in uploads_in_storage(draft)


def test_forgotten_uploads_in_the_bucket_are_aborted_too(s3, draft, owner, content):
    artifact = start(draft, owner, content)  # known and unfinished: left to the artifact rule above
    orphan_key = f"artifacts/{draft.pk}/crashed-before-the-row-was-written/model.bin"
    orphan = storage.create_multipart_upload(key=orphan_key)
    outside_key = s3.key("not-gatehouse.bin")
    outside = storage.create_multipart_upload(key=outside_key)

    abort_abandoned_uploads.apply()  # the beat task, with the setting's limit: nothing is old enough yet
    assert orphan in uploads_in_storage(draft)

    result = uploads.uploads_abort_abandoned(now=timezone.now() + timedelta(hours=25))
    assert result.orphans_aborted >= 1
    remaining = {upload.upload_id for upload in storage.list_multipart_uploads()}
    assert orphan not in remaining
    assert outside in remaining  # only uploads under artifacts/ belong to Gatehouse
    assert artifact.pk in result.failed_artifact_ids
    storage.abort_multipart_upload(key=outside_key, upload_id=outside)


def test_a_verification_that_lost_its_task_is_enqueued_again(
    s3, draft, owner, content, celery_eager, django_capture_on_commit_callbacks
):
    artifact = start(draft, owner, content)
    # Its task never runs: the on-commit enqueue is not captured here, as if the broker had lost it.
    complete(artifact, upload_parts(artifact, content, [1, 2, 3]), owner)
    Artifact.objects.filter(pk=artifact.pk).update(created_at=timezone.now() - timedelta(hours=30))

    with django_capture_on_commit_callbacks(execute=True):
        result = uploads.uploads_abort_abandoned(older_than=timedelta(hours=24))

    assert result.verifications_requeued == [artifact.pk] and result.failed_artifact_ids == []
    artifact.refresh_from_db()
    assert (artifact.status, artifact.sha256) == ("verified", sha256(content))


def test_a_verification_out_of_time_fails_the_file_with_what_to_do(s3, draft, owner, content, monkeypatch):
    artifact = start(draft, owner, content)
    complete(artifact, upload_parts(artifact, content, [1, 2, 3]), owner)

    def too_slow(**arguments):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(uploads, "artifact_verify", too_slow)
    since = last_audit_id()
    assert verify_artifact.apply(args=[artifact.pk]).failed()
    artifact.refresh_from_db()
    assert artifact.status == Artifact.Status.FAILED
    assert "ARTIFACT_VERIFY_TIME_LIMIT_SECONDS" in artifact.failure_reason
    assert audit_actions(since) == ["artifact.verification_failed"]


# --- Bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"path": "../model.bin"}, "invalid_path"),
        ({"path": "weights/../../etc/passwd"}, "invalid_path"),
        ({"path": "/etc/passwd"}, "invalid_path"),
        ({"path": "a//b.bin"}, "invalid_path"),
        ({"path": ""}, "invalid_path"),
        ({"path": 7}, "invalid_path"),
        ({"size": -1}, "invalid_size"),
        ({"size": "1024"}, "invalid_size"),
        ({"size": True}, "invalid_size"),
        ({"size": 5 * 1024 * 1024 * MIB + 1}, "file_too_large"),
        ({"expected_sha256": "abc"}, "invalid_sha256"),
        ({"expected_sha256": "g" * 64}, "invalid_sha256"),
        ({"expected_sha256": None}, "invalid_sha256"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(s3, draft, owner, arguments, code):
    values = {"path": "model.bin", "size": 1024, "expected_sha256": "", **arguments}
    before = uploads_in_storage(draft)
    with nothing_changes(), pytest.raises(uploads.UploadError) as refused:
        uploads.artifact_upload_start(release=draft, actor=owner, **values)
    assert refused.value.code == code
    assert uploads_in_storage(draft) == before


def test_a_path_the_release_already_has_is_refused(s3, draft, owner):
    ArtifactFactory(release=draft, path="config.json")
    before = uploads_in_storage(draft)
    with nothing_changes(), pytest.raises(uploads.UploadError) as refused:
        uploads.artifact_upload_start(release=draft, path="config.json", size=10, actor=owner)
    assert refused.value.code == "duplicate_path" and "config.json" in refused.value.message
    assert uploads_in_storage(draft) == before


def test_a_published_release_takes_no_upload(s3, model, owner):
    published = ReleaseFactory(model=model, version="v1.0")
    with nothing_changes(), pytest.raises(uploads.UploadError) as refused:
        uploads.artifact_upload_start(release=published, path="late.bin", size=10, actor=owner)
    assert refused.value.code == "release_published"


@pytest.mark.parametrize(
    ("part_numbers", "code"),
    [
        ([], "invalid_parts"),
        ("1", "invalid_parts"),
        ([0], "invalid_parts"),
        ([4], "invalid_parts"),
        ([1, 1], "invalid_parts"),
        ([True], "invalid_parts"),
        (list(range(1, 102)), "too_many_parts"),
    ],
)
def test_part_urls_are_only_for_the_parts_of_the_file(s3, draft, owner, content, part_numbers, code):
    artifact = start(draft, owner, content)
    with pytest.raises(uploads.UploadError) as refused:
        uploads.artifact_upload_part_urls(artifact=artifact, part_numbers=part_numbers)
    assert refused.value.code == code


@pytest.mark.parametrize(
    "parts",
    [
        "1",
        [[1, '"a"'], [2, '"b"']],
        [[1, '"a"'], [2, '"b"'], [3, '"c"'], [4, '"d"']],
        [[1, '"a"'], [1, '"a"'], [2, '"b"'], [3, '"c"']],
        [[1, ""], [2, '"b"'], [3, '"c"']],
        [[1, '"a"', 5]],
    ],
)
def test_a_bad_part_list_is_refused_and_changes_nothing(s3, draft, owner, content, parts):
    artifact = start(draft, owner, content)
    with nothing_changes(), pytest.raises(uploads.UploadError):
        uploads.artifact_upload_complete(artifact=artifact, parts=parts, actor=owner)
    artifact.refresh_from_db()
    assert artifact.status == Artifact.Status.UPLOADING


def test_no_part_urls_for_a_completed_upload(s3, draft, owner, content):
    artifact = start(draft, owner, content)
    artifact = complete(artifact, upload_parts(artifact, content, [1, 2, 3]), owner)
    with pytest.raises(uploads.UploadError) as refused:
        uploads.artifact_upload_part_urls(artifact=artifact, part_numbers=[1])
    assert refused.value.code == "not_uploading"


# --- Storage: CORS for the browser uploader -------------------------------------------------


def preflight(url: str, origin: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - local SeaweedFS
        url, method="OPTIONS", headers={"Origin": origin, "Access-Control-Request-Method": "PUT"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_bucket_cors_lets_the_portal_origin_put_parts_and_no_other(s3, draft, owner, content):
    artifact = start(draft, owner, content)
    url = uploads.artifact_upload_part_urls(artifact=artifact, part_numbers=[1])[1]
    try:
        storage.ensure_bucket_cors(["https://gatehouse.example.org/"])
        assert storage.bucket_cors_origins() == ["https://gatehouse.example.org"]
        assert preflight(url, "https://gatehouse.example.org") == 200
        assert preflight(url, "https://evil.example") == 403
        status, etag = put(url, part_body(content, 1), headers={"Origin": "https://gatehouse.example.org"})
        assert status == 200 and etag
    finally:
        storage.get_client().delete_bucket_cors(Bucket=s3.bucket)


def test_a_wildcard_cors_origin_is_refused(s3):
    with pytest.raises(ValueError, match="not '\\*'"):
        storage.ensure_bucket_cors(["*"])
    with pytest.raises(ValueError):
        storage.ensure_bucket_cors([])


def test_the_upload_origins_are_the_site_and_its_plain_host_names(settings):
    settings.SITE_URL = "http://127.0.0.1:8000"
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", ".example.org", "*"]
    assert uploads.upload_cors_origins() == ["http://127.0.0.1:8000", "http://localhost:8000"]


def test_the_bucket_cors_command_allows_the_portal_origin(s3, settings):
    settings.SITE_URL = "https://gatehouse.example.org"
    settings.ALLOWED_HOSTS = ["gatehouse.example.org"]
    out = io.StringIO()
    try:
        call_command("bucket_cors", stdout=out)
        assert storage.bucket_cors_origins() == ["https://gatehouse.example.org"]
        assert "https://gatehouse.example.org" in out.getvalue()
    finally:
        storage.get_client().delete_bucket_cors(Bucket=s3.bucket)
    assert storage.bucket_cors_origins() == []
