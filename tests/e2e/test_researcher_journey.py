"""PRODUCT.md journeys 1 to 3 in headless Chromium, on the real parts.

A researcher signs up and follows the verification link from the e-mail, finds the model, reads the
tier's license before applying, applies, and sees the application pending with its decision date; a
reviewer approves it in a browser of their own; a real Celery worker e-mails the researcher, who then
downloads each file (a 302 to a presigned SeaweedFS URL) and checks its sha256.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from access.models import Application, DownloadEvent
from access.services.licenses import license_create
from releases.models import Tier
from releases.rollout import tier_create
from releases.services import artifact_add, release_create, release_publish, tier_open
from tests.helpers import sha256
from tests.worker_plugin import wait_for

pytestmark = pytest.mark.browser

EMAIL = "erin@university.example"
FULL_NAME = "Erin Example"
PASSWORD = "tulip-orbit-7-canyon"
REVIEWER_PASSWORD = "correct horse battery staple"  # tests/factories.py UserFactory
LICENSE_TEXT = (
    "Llama Lite Research License\n\n"
    "You may use these weights for research on model safety only. You may not redistribute them."
)
ARTIFACTS = {
    "config.json": b'{"hidden_size": 64, "num_hidden_layers": 2}\n',
    "model.safetensors": bytes(range(256)) * 24,
}
RECEIVED_SUBJECT = "Your application for Llama Lite (Researchers) was received"
APPROVED_SUBJECT = "Your application for Llama Lite (Researchers) was approved"


def subjects_to(address: str) -> list[str]:
    return [message.subject for message in mail.outbox if message.to == [address]]


@pytest.fixture
def application_tier_with_files(s3, owner, model) -> Tier:
    """A published release of acme/llama-lite whose two files are real objects in SeaweedFS, and an
    open tier by application with manual review and one extra question."""
    release = release_create(model=model, version="v1.0", actor=owner)
    for path, body in ARTIFACTS.items():
        stored = s3.put(s3.key(path), body)
        artifact_add(
            release=release,
            path=path,
            size=stored.size,
            sha256=stored.sha256,
            storage_key=stored.key,
            object_version=stored.version_id or "",
            actor=owner,
        )
    release_publish(release=release, actor=owner)
    license = license_create(
        organization=model.organization, name="Llama Lite Research License", text=LICENSE_TEXT, actor=owner
    )
    tier = tier_create(
        release=release,
        name="Researchers",
        gate=Tier.Gate.APPLICATION,
        approval=Tier.Approval.MANUAL,
        opens_at=timezone.now() - timedelta(hours=1),
        artifacts=list(release.artifacts.all()),
        license=license,
        review_days=14,
        questions=[{"name": "orcid", "label": "ORCID iD", "type": "text", "required": True}],
        actor=owner,
    )
    tier_open(tier_id=tier.pk, actor=owner)
    return tier


def test_researcher_signs_up_applies_is_approved_and_downloads_verified_files(
    live_server, celery_worker, new_page, s3, application_tier_with_files, reviewer, tmp_path
):
    site = live_server.url
    tier = application_tier_with_files

    # Journey 1: sign up, verify the e-mail address from the link in the message.
    researcher = new_page()
    researcher.goto(f"{site}/accounts/signup/")
    researcher.fill("input[name=email]", EMAIL)
    researcher.fill("input[name=full_name]", FULL_NAME)
    researcher.fill("input[name=password1]", PASSWORD)
    researcher.fill("input[name=password2]", PASSWORD)
    researcher.get_by_role("button", name="Sign Up").click()
    expect(researcher.get_by_role("heading", name="Verify Your Email Address")).to_be_visible()

    verification = [message for message in mail.outbox if message.to == [EMAIL]]
    assert len(verification) == 1
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", verification[0].body)
    assert link, verification[0].body
    researcher.goto(link.group(0))
    researcher.get_by_role("button", name="Confirm").click()
    expect(researcher.get_by_role("button", name="Sign out")).to_be_visible()

    # Find the model, read the license before applying.
    researcher.goto(f"{site}/")
    researcher.get_by_role("link", name="acme/llama-lite").click()
    researcher.get_by_role("link", name="Researchers").click()
    expect(researcher.locator("#license-text")).to_contain_text("research on model safety only")
    expect(researcher.locator("#standing")).to_have_attribute("data-code", "not_requested")
    researcher.locator("#apply-link").click()

    # Apply: affiliation, intended use, the tier's question, and the full name that accepts the license.
    expect(researcher.locator(".license")).to_contain_text("You may not redistribute them.")
    researcher.fill("[name=affiliation]", "University of Examples")
    researcher.fill("[name=intended_use]", "Measure refusal rates on a public red-teaming benchmark.")
    researcher.fill("[name=q_orcid]", "0000-0002-1825-0097")
    researcher.fill("[name=typed_name]", FULL_NAME)
    researcher.get_by_role("button", name="Submit application").click()

    expect(researcher.locator("#application-status")).to_have_text("Pending review")
    application = Application.objects.get(user__email=EMAIL, tier=tier)
    expected_by = application.submitted_at + timedelta(days=14)
    expect(researcher.locator("main")).to_contain_text(f"Decision expected by {expected_by:%Y-%m-%d}")
    assert application.license_acceptance.typed_name == FULL_NAME
    wait_for(lambda: RECEIVED_SUBJECT in subjects_to(EMAIL), what="the submission e-mail")

    # Journey 2: the reviewer, in a browser of their own, opens the queue and approves.
    desk = new_page()
    desk.goto(f"{site}/accounts/login/")
    desk.fill("input[name=login]", reviewer.email)
    desk.fill("input[name=password]", REVIEWER_PASSWORD)
    desk.get_by_role("button", name="Sign In").click()
    expect(desk.get_by_role("button", name="Sign out")).to_be_visible()
    desk.goto(f"{site}/review/")
    expect(desk.locator("#queue")).to_contain_text(EMAIL)
    desk.get_by_role("link", name=f"#{application.pk}").click()
    expect(desk.locator("main")).to_contain_text("0000-0002-1825-0097")
    desk.get_by_role("button", name="Approve").click()
    expect(desk.locator(".messages")).to_contain_text(f"Application #{application.pk} approved.")
    expect(desk.locator("#queue")).to_contain_text("Nothing is waiting for review.")

    # The worker e-mails the researcher, once.
    wait_for(lambda: APPROVED_SUBJECT in subjects_to(EMAIL), what="the approval e-mail")
    celery_worker.wait_until_idle()
    assert sorted(subjects_to(EMAIL)) == sorted([verification[0].subject, RECEIVED_SUBJECT, APPROVED_SUBJECT])

    researcher.reload()
    expect(researcher.locator("#application-status")).to_have_text("Approved")
    researcher.goto(f"{site}/tiers/{tier.pk}/")
    expect(researcher.locator("#standing")).to_have_attribute("data-code", "approved")

    # Journey 3: the files with their sha256, each downloaded from object storage and checked.
    researcher.get_by_role("link", name="Download the files").click()
    rows = researcher.locator("#files tbody tr")
    expect(rows).to_have_count(len(ARTIFACTS))
    shown = {
        rows.nth(index).locator("a.download").get_attribute("data-path"): rows.nth(index)
        .locator(".sha256")
        .inner_text()
        .strip()
        for index in range(len(ARTIFACTS))
    }
    assert shown == {path: sha256(body) for path, body in ARTIFACTS.items()}

    for path, body in ARTIFACTS.items():
        with researcher.expect_download() as started:
            researcher.locator(f"a.download[data-path='{path}']").click()
        download = started.value
        assert download.failure() is None
        assert download.suggested_filename == path
        # The bytes came straight from the object store, not through the portal.
        assert download.url.startswith(f"{s3.endpoint_url}/{s3.bucket}/"), download.url
        saved = tmp_path / path
        download.save_as(saved)
        assert sha256(saved.read_bytes()) == sha256(body)

    assert DownloadEvent.objects.filter(user__email=EMAIL, tier=tier).count() == len(ARTIFACTS)
