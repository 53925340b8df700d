"""The browser uploader in headless Chromium: a publisher picks files on the upload page, the parts go
straight to SeaweedFS (CORS, presigned PUTs), the portal completes the uploads and a real Celery worker
verifies them; an interrupted upload resumes with only the missing parts."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal import storage
from releases import uploads
from releases.models import Artifact
from tests.factories import PASSWORD
from tests.helpers import sha256
from tests.releases.uploading import THREE_PARTS, draft_release, part_body, put, random_bytes

pytestmark = pytest.mark.browser

WEIGHTS = "model-00001-of-00001.safetensors"


@pytest.fixture
def signed_in(new_page, live_server, owner):
    def open_page():
        page = new_page()
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=login]", owner.email)
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Sign In").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        return page

    return open_page


def row(page, path: str):
    return page.locator(f'#upload-table tr[data-path="{path}"]')


def storage_puts(page, endpoint_url: str) -> list[int]:
    """Part numbers of the PUTs the page sends to the storage host, as they start."""
    numbers: list[int] = []

    def record(request):
        if request.method == "PUT" and request.url.startswith(endpoint_url):
            numbers.append(int(re.search(r"[?&]partNumber=(\d+)", request.url).group(1)))

    page.on("request", record)
    return numbers


def test_a_publisher_uploads_files_in_the_browser_and_sees_them_verified(
    live_server, celery_worker, bucket_cors, s3, model, signed_in
):
    draft = draft_release(model)
    weights = random_bytes(THREE_PARTS)
    config = b'{"hidden_size": 64}\n'
    page = signed_in()
    puts = storage_puts(page, s3.endpoint_url)
    page.goto(f"{live_server.url}/publish/acme/releases/{draft.pk}/upload/")

    page.set_input_files(
        "#upload-files",
        [
            {"name": WEIGHTS, "mimeType": "application/octet-stream", "buffer": weights},
            {"name": "config.json", "mimeType": "application/json", "buffer": config},
        ],
    )
    # The publisher states the sums; the config's is of another file, so it must fail.
    page.fill("#upload-sums", f"{sha256(weights)}  {WEIGHTS}\n{sha256(b'other')}  config.json\n")
    page.get_by_role("button", name="Upload").click()

    expect(row(page, WEIGHTS).locator("[data-role=status]")).to_have_text("Verified", timeout=30_000)
    expect(row(page, WEIGHTS).locator("[data-role=sha256]")).to_have_text(sha256(weights))
    expect(row(page, "config.json").locator("[data-role=status]")).to_have_text("Failed", timeout=30_000)
    expect(row(page, "config.json")).to_contain_text(f"not the expected {sha256(b'other')}")
    assert sorted(puts) == [1, 1, 2, 3]  # three parts of the weights, one of the config

    artifact = Artifact.objects.get(release=draft, path=WEIGHTS)
    assert (artifact.status, artifact.size, artifact.sha256) == ("verified", len(weights), sha256(weights))
    stored = b"".join(
        storage.iter_object_chunks(key=artifact.storage_key, version_id=artifact.object_version)
    )
    assert stored == weights

    # Discard the failed file, as its row offers.
    row(page, "config.json").get_by_role("button", name="Discard").click()
    expect(row(page, "config.json")).to_have_count(0)
    assert not Artifact.objects.filter(release=draft, path="config.json").exists()


def test_an_interrupted_browser_upload_resumes_with_the_missing_parts(
    live_server, celery_worker, bucket_cors, s3, model, owner, signed_in
):
    draft = draft_release(model)
    weights = random_bytes(THREE_PARTS)
    # An earlier visit stored part 2, then the tab was closed.
    artifact = uploads.artifact_upload_start(release=draft, path=WEIGHTS, size=len(weights), actor=owner)
    url = uploads.artifact_upload_part_urls(artifact=artifact, part_numbers=[2])[2]
    assert put(url, part_body(weights, 2))[0] == 200
    page = signed_in()
    puts = storage_puts(page, s3.endpoint_url)
    page.goto(f"{live_server.url}/publish/acme/releases/{draft.pk}/upload/")
    expect(row(page, WEIGHTS).locator("[data-role=status]")).to_have_text("Uploading")

    page.set_input_files(
        "#upload-files", [{"name": WEIGHTS, "mimeType": "application/octet-stream", "buffer": weights}]
    )
    page.get_by_role("button", name="Upload").click()

    expect(row(page, WEIGHTS).locator("[data-role=status]")).to_have_text("Verified", timeout=30_000)
    assert sorted(puts) == [1, 3]
    artifact.refresh_from_db()
    assert (artifact.status, artifact.sha256) == ("verified", sha256(weights))
