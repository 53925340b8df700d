"""The upload endpoints under /publish/ (releases/publish/views_uploads.py), the upload page, the
release manifest, and the command-line uploader end to end against the live portal, a real Celery
worker and SeaweedFS."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from access.models import AuditEvent
from portal import storage
from releases import uploads
from releases.models import Artifact, Membership, Release
from releases.services import release_publish
from tests.factories import ArtifactFactory, MembershipFactory, ReleaseFactory, UserFactory
from tests.helpers import nothing_changes
from tests.releases.uploading import THREE_PARTS, draft_release, part_body, put, random_bytes
from tests.scenes import new_token
from tests.worker_plugin import wait_for

PATH = "model-00001-of-00001.safetensors"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def client_for(user, *, enforce_csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=enforce_csrf)
    client.force_login(user)
    return client


def api(client: Client, method: str, url: str, body=None, **headers):
    arguments = {"HTTP_ACCEPT": "application/json", **headers}
    if body is not None:
        arguments["data"] = body if isinstance(body, str | bytes) else json.dumps(body)
        arguments["content_type"] = "application/json"
    return getattr(client, method.lower())(url, **arguments)


def uploads_url(release: Release) -> str:
    return reverse(
        "publish-uploads", kwargs={"org_slug": release.model.organization.slug, "release_id": release.pk}
    )


def start_body(content: bytes, **overrides) -> dict:
    return {"path": PATH, "size": len(content), "expected_sha256": sha256(content), **overrides}


# --- The whole upload through the endpoints -------------------------------------------------


def test_a_publisher_uploads_a_file_through_the_endpoints(
    s3, draft, publisher, content, django_capture_on_commit_callbacks
):
    client = client_for(publisher, enforce_csrf=True)
    client.get(reverse("publish-upload", kwargs={"org_slug": "acme", "release_id": draft.pk}))
    csrf = {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}

    started = api(client, "POST", uploads_url(draft), start_body(content), **csrf)
    assert started.status_code == 201, started.json()
    artifact = started.json()["artifact"]
    assert (artifact["status"], artifact["part_count"], artifact["expected_size"]) == (
        "uploading",
        3,
        len(content),
    )

    answer = api(client, "POST", artifact["urls"]["part_urls"], {"part_numbers": [1, 2, 3]}, **csrf).json()
    assert answer["expires_in"] == django_settings.UPLOAD_PART_URL_LIFETIME_SECONDS
    etags = {}
    for number in (1, 2, 3):
        status, etags[number] = put(answer["urls"][str(number)], part_body(content, number))
        assert status == 200

    listed = api(client, "GET", artifact["urls"]["parts"]).json()["parts"]
    assert [(part["part_number"], part["etag"]) for part in listed] == sorted(etags.items())

    parts = [{"part_number": number, "etag": etag} for number, etag in sorted(etags.items())]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        completed = api(client, "POST", artifact["urls"]["complete"], {"parts": parts}, **csrf)
    assert completed.status_code == 202, completed.json()
    assert completed.json()["artifact"]["status"] == "verifying"
    assert len(callbacks) == 1

    uploads.artifact_verify(artifact_id=artifact["id"])
    detail = api(client, "GET", artifact["urls"]["detail"]).json()["artifact"]
    assert (detail["status"], detail["sha256"], detail["size"]) == ("verified", sha256(content), len(content))
    assert AuditEvent.objects.filter(action="artifact.uploaded", actor=publisher).count() == 1


# Session, user, the release (scoped to the user's organizations in the same query), its files.
LISTING_MAX_QUERIES = 4
# The same, and the header's question whether the user publishes anywhere.
PAGE_MAX_QUERIES = 5


@pytest.mark.parametrize("file_count", [1, 20])
def test_the_release_listing_shows_each_file_and_its_status_in_flat_queries(
    s3, draft, owner, file_count, django_assert_max_num_queries
):
    for number in range(file_count):
        ArtifactFactory(release=draft, path=f"shard-{number:03d}.safetensors")
    client = client_for(owner)
    with django_assert_max_num_queries(LISTING_MAX_QUERIES):
        response = api(client, "GET", uploads_url(draft))
    assert response.status_code == 200
    body = response.json()
    assert body["release"] == {"id": draft.pk, "version": "v2.0", "status": "draft"}
    assert len(body["artifacts"]) == file_count
    assert (body["artifacts"][0]["path"], body["artifacts"][0]["status"]) == (
        "shard-000.safetensors",
        "verified",
    )


@pytest.mark.parametrize("file_count", [1, 20])
def test_the_upload_page_lists_the_files_in_flat_queries(
    s3, draft, owner, file_count, django_assert_max_num_queries
):
    for number in range(file_count):
        ArtifactFactory(release=draft, path=f"shard-{number:03d}.safetensors")
    client = client_for(owner)
    url = reverse("publish-upload", kwargs={"org_slug": "acme", "release_id": draft.pk})
    with django_assert_max_num_queries(PAGE_MAX_QUERIES):
        response = client.get(url)
    assert response.content.decode().count('data-path="shard-') == file_count


def test_a_session_post_without_the_csrf_token_is_refused(s3, draft, owner, content):
    client = client_for(owner, enforce_csrf=True)
    with nothing_changes():
        response = api(client, "POST", uploads_url(draft), start_body(content))
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"


def test_a_personal_access_token_needs_no_csrf_token(s3, draft, owner, content):
    _, raw = new_token(owner, name="upload box")
    client = Client(enforce_csrf_checks=True)
    response = api(
        client, "POST", uploads_url(draft), start_body(content), HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert response.status_code == 201, response.json()
    assert AuditEvent.objects.filter(action="artifact.upload_started", actor=owner).count() == 1


def test_an_anonymous_request_is_told_to_sign_in(s3, draft, content):
    with nothing_changes():
        response = api(Client(), "POST", uploads_url(draft), start_body(content))
    assert response.status_code == 401
    assert response.json()["error"] == "auth_required"


def test_a_storage_outage_answers_503_and_changes_nothing(s3, draft, owner, content, settings):
    settings.S3_ENDPOINT_URL = "http://127.0.0.1:9"
    storage.clear_client_cache()
    with nothing_changes():
        response = api(client_for(owner), "POST", uploads_url(draft), start_body(content))
    assert response.status_code == 503
    assert response.json()["error"] == "storage_unavailable"


# --- Bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"expected_sha256": "not-a-sha256"}, "invalid_sha256"),
        ({"expected_sha256": "a" * 63}, "invalid_sha256"),
        ({"path": "../outside.bin"}, "invalid_path"),
        ({"path": "weights/../../outside.bin"}, "invalid_path"),
        ({"path": "/absolute.bin"}, "invalid_path"),
        ({"path": None}, "invalid_path"),
        ({"size": -1}, "invalid_size"),
        ({"size": "10"}, "invalid_size"),
        ({"size": 5 * 1024**4 + 1}, "file_too_large"),
    ],
)
def test_bad_input_answers_400_with_a_stable_code_and_changes_nothing(
    s3, draft, owner, content, overrides, code
):
    with nothing_changes():
        response = api(client_for(owner), "POST", uploads_url(draft), start_body(content, **overrides))
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert response.json()["message"]


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", ""])
def test_a_body_that_is_not_a_json_object_is_refused(s3, draft, owner, body):
    with nothing_changes():
        response = api(client_for(owner), "POST", uploads_url(draft), body)
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_request", "invalid_path")


def test_a_duplicate_path_answers_400(s3, draft, owner, content):
    ArtifactFactory(release=draft, path=PATH)
    with nothing_changes():
        response = api(client_for(owner), "POST", uploads_url(draft), start_body(content))
    assert response.status_code == 400
    assert response.json()["error"] == "duplicate_path"


def test_a_published_release_answers_400(s3, model, owner, content):
    published = ReleaseFactory(model=model, version="v1.0")
    with nothing_changes():
        response = api(client_for(owner), "POST", uploads_url(published), start_body(content))
    assert response.status_code == 400
    assert response.json()["error"] == "release_published"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"parts": "all"}, "invalid_parts"),
        ({"parts": [{"part_number": 1}]}, "invalid_parts"),
        ({"parts": [{"part_number": 1, "etag": '"x"', "size": 3}]}, "invalid_parts"),
        ({"parts": [{"part_number": 1, "etag": '"x"'}]}, "incomplete_parts"),
    ],
)
def test_a_bad_completion_answers_400_and_changes_nothing(s3, draft, owner, content, body, code):
    client = client_for(owner)
    artifact = api(client, "POST", uploads_url(draft), start_body(content)).json()["artifact"]
    with nothing_changes():
        response = api(client, "POST", artifact["urls"]["complete"], body)
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert Artifact.objects.get(pk=artifact["id"]).status == Artifact.Status.UPLOADING


def test_too_many_part_urls_at_once_answers_400(s3, draft, owner, settings):
    settings.UPLOAD_PART_SIZE_BYTES = 5 * 1024 * 1024
    client = client_for(owner)
    body = {"path": "big.bin", "size": 200 * 5 * 1024 * 1024}
    artifact = api(client, "POST", uploads_url(draft), body).json()["artifact"]
    response = api(client, "POST", artifact["urls"]["part_urls"], {"part_numbers": list(range(1, 102))})
    assert response.status_code == 400
    assert response.json()["error"] == "too_many_parts"


# --- Who may: everyone but the organization's owners and publishers gets 404 ----------------


def endpoint_calls(release: Release, artifact: Artifact) -> list[tuple[str, str, dict | None]]:
    arguments = {"org_slug": release.model.organization.slug, "release_id": release.pk}
    upload = {**arguments, "artifact_id": artifact.pk}
    return [
        ("GET", reverse("publish-upload", kwargs=arguments), None),
        ("GET", reverse("publish-upload-cli", kwargs=arguments), None),
        ("GET", reverse("publish-uploads", kwargs=arguments), None),
        ("POST", reverse("publish-uploads", kwargs=arguments), {"path": "other.bin", "size": 10}),
        ("GET", reverse("publish-upload-detail", kwargs=upload), None),
        ("POST", reverse("publish-upload-part-urls", kwargs=upload), {"part_numbers": [1]}),
        ("GET", reverse("publish-upload-parts", kwargs=upload), None),
        ("POST", reverse("publish-upload-complete", kwargs=upload), {"parts": []}),
        ("POST", reverse("publish-upload-discard", kwargs=upload), None),
    ]


@pytest.mark.parametrize("who", ["outsider", "researcher", "reviewer"])
def test_anyone_but_owners_and_publishers_gets_404_everywhere(s3, draft, owner, content, who, request):
    user = request.getfixturevalue(who)
    artifact = uploads.artifact_upload_start(release=draft, path=PATH, size=len(content), actor=owner)
    client = client_for(user)
    with nothing_changes():
        for method, url, body in endpoint_calls(draft, artifact):
            response = api(client, method, url, body)
            assert response.status_code == 404, (method, url, response.status_code)
    artifact.refresh_from_db()
    assert artifact.status == Artifact.Status.UPLOADING


def test_a_token_of_a_non_member_gets_404(s3, draft, owner, outsider, content):
    artifact = uploads.artifact_upload_start(release=draft, path=PATH, size=len(content), actor=owner)
    _, raw = new_token(outsider)
    with nothing_changes():
        for method, url, body in endpoint_calls(draft, artifact)[2:]:
            response = api(Client(), method, url, body, HTTP_AUTHORIZATION=f"Bearer {raw}")
            assert response.status_code == 404, (method, url)
            assert response.json()["error"] == "not_found"


def test_an_artifact_is_only_found_under_its_own_release(s3, draft, model, owner, content):
    other = draft_release(model, version="v3.0")
    artifact = uploads.artifact_upload_start(release=other, path=PATH, size=len(content), actor=owner)
    url = reverse(
        "publish-upload-detail",
        kwargs={"org_slug": "acme", "release_id": draft.pk, "artifact_id": artifact.pk},
    )
    assert api(client_for(owner), "GET", url).status_code == 404


def test_a_publisher_of_another_organization_gets_404(s3, draft, owner, content):
    stranger = UserFactory()
    MembershipFactory(user=stranger, role=Membership.Role.PUBLISHER)
    response = api(client_for(stranger), "POST", uploads_url(draft), start_body(content))
    assert response.status_code == 404


# --- Pages and the manifest -----------------------------------------------------------------


def test_the_upload_page_offers_the_browser_uploader_and_the_command(s3, draft, owner):
    ArtifactFactory(release=draft, path="config.json")
    response = client_for(owner).get(
        reverse("publish-upload", kwargs={"org_slug": "acme", "release_id": draft.pk})
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "releases/upload.js" in page and f'data-uploads-url="{uploads_url(draft)}"' in page
    assert f"--organization acme --release {draft.pk}" in page
    assert "config.json" in page


def test_the_command_line_uploader_is_served_from_the_upload_page(s3, draft, owner):
    response = client_for(owner).get(
        reverse("publish-upload-cli", kwargs={"org_slug": "acme", "release_id": draft.pk})
    )
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="gatehouse-upload.py"'
    assert b"def main(" in response.content


def test_a_published_release_has_a_sha256sums_manifest_whose_sha1_is_its_revision(s3, draft, owner):
    ArtifactFactory(release=draft, path="config.json", sha256="a" * 64)
    ArtifactFactory(release=draft, path="weights/model.safetensors", sha256="b" * 64)
    url = reverse("publish-release-manifest", kwargs={"org_slug": "acme", "release_id": draft.pk})
    assert client_for(owner).get(url).status_code == 404  # a draft has none yet

    release = release_publish(release=draft, actor=owner)
    response = client_for(owner).get(url)
    assert response.status_code == 200
    manifest = response.content.decode()
    assert manifest == f"{'a' * 64}  config.json\n{'b' * 64}  weights/model.safetensors\n"
    assert hashlib.sha1(manifest.encode(), usedforsecurity=False).hexdigest() == release.revision
    assert response["X-Release-Revision"] == release.revision


def test_the_manifest_is_404_for_a_non_member(s3, model, outsider):
    release = ReleaseFactory(model=model, version="v1.0")
    url = reverse("publish-release-manifest", kwargs={"org_slug": "acme", "release_id": release.pk})
    assert client_for(outsider).get(url).status_code == 404


# --- The command-line uploader, end to end --------------------------------------------------


def run_cli(portal_url: str, release: Release, raw_token: str, workdir: Path, *files: str):
    return subprocess.run(  # noqa: S603 - this interpreter running the project's own module
        [
            sys.executable,
            "-m",
            "releases.cli_upload",
            "--portal",
            portal_url,
            "--organization",
            release.model.organization.slug,
            "--release",
            str(release.pk),
            *files,
        ],
        cwd=workdir,
        env={
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(django_settings.BASE_DIR),
            "GATEHOUSE_TOKEN": raw_token,
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def workdir(tmp_path) -> Path:
    (tmp_path / "tokenizer").mkdir()
    return tmp_path


@pytest.mark.worker
def test_the_command_line_uploader_uploads_and_verifies_each_file(
    s3, live_server, celery_worker, draft, owner, workdir
):
    files = {PATH: random_bytes(THREE_PARTS), "tokenizer/tokenizer.json": b'{"model": {"type": "BPE"}}\n'}
    for name, body in files.items():
        (workdir / name).write_bytes(body)
    _, raw = new_token(owner, name="upload box")

    result = run_cli(live_server.url, draft, raw, workdir, *files)

    assert result.returncode == 0, result.stdout + result.stderr
    for path, body in files.items():
        artifact = Artifact.objects.get(release=draft, path=path)
        assert (artifact.status, artifact.sha256, artifact.size) == ("verified", sha256(body), len(body))
        assert artifact.expected_sha256 == sha256(body)
        stored = b"".join(
            storage.iter_object_chunks(key=artifact.storage_key, version_id=artifact.object_version)
        )
        assert stored == body
        assert f"{path}: verified, sha256 {sha256(body)}" in result.stdout

    again = run_cli(live_server.url, draft, raw, workdir, *files)
    assert again.returncode == 0
    assert f"{PATH}: already uploaded and verified, skipped" in again.stdout


@pytest.mark.worker
def test_the_command_line_uploader_resumes_an_interrupted_upload(
    s3, live_server, celery_worker, draft, owner, workdir
):
    body = random_bytes(THREE_PARTS)
    (workdir / PATH).write_bytes(body)
    # An earlier run stored parts 1 and 2, then died.
    artifact = uploads.artifact_upload_start(
        release=draft, path=PATH, size=len(body), expected_sha256=sha256(body), actor=owner
    )
    urls = uploads.artifact_upload_part_urls(artifact=artifact, part_numbers=[1, 2])
    for number in (1, 2):
        assert put(urls[number], part_body(body, number))[0] == 200
    _, raw = new_token(owner)

    result = run_cli(live_server.url, draft, raw, workdir, PATH)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming the unfinished upload" in result.stdout
    assert "2 of 3 parts already stored" in result.stdout
    assert "part 3 sent" in result.stdout and "part 1 sent" not in result.stdout
    artifact = wait_for(
        lambda: Artifact.objects.filter(pk=artifact.pk, status=Artifact.Status.VERIFIED).first(),
        what="verified",
    )
    assert artifact.sha256 == sha256(body)


@pytest.mark.worker
def test_the_command_line_uploader_takes_over_an_upload_started_elsewhere_before_any_part(
    s3, live_server, celery_worker, draft, owner, workdir
):
    body = random_bytes(1000)
    (workdir / "config.json").write_bytes(body)
    started = uploads.artifact_upload_start(release=draft, path="config.json", size=1000, actor=owner)
    _, raw = new_token(owner)

    result = run_cli(live_server.url, draft, raw, workdir, "config.json")

    assert result.returncode == 0, result.stdout + result.stderr
    started.refresh_from_db()
    assert (started.status, started.sha256) == ("verified", sha256(body))


@pytest.mark.worker
def test_the_command_line_uploader_refuses_a_path_that_holds_another_file(
    s3, live_server, celery_worker, draft, owner, workdir
):
    (workdir / "tokenizer" / "vocab.json").write_bytes(b"{}")
    ArtifactFactory(release=draft, path="tokenizer/vocab.json", sha256="c" * 64, size=2)
    _, raw = new_token(owner)

    with nothing_changes():
        result = run_cli(live_server.url, draft, raw, workdir, "tokenizer/vocab.json")

    assert result.returncode == 1
    assert "tokenizer/vocab.json: FAILED" in result.stdout
    assert "already has another file at this path (verified)" in result.stdout
