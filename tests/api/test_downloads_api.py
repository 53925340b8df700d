"""POST /api/v1/artifacts/<id>/download-url: the same policy, event and audit row as the
download page, as JSON, against a real SeaweedFS; and its query budget."""

from __future__ import annotations

import os

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from access.audit import audit_verify
from access.models import AuditEvent, DownloadEvent
from access.services.licenses import license_version_publish
from access.services.tokens import token_create
from portal import storage
from portal.storage_probe import storage_probe_forget
from releases.models import Tier
from tests.factories import TierFactory
from tests.helpers import download_urls_counted, nothing_changes
from tests.scenes import approved_grant, fetch, revoke, sha256, upload_artifact

BODY = os.urandom(100_000)
# The token, the file with its tiers, the user's grants, then one statement writing the event and
# its audit row. No BEGIN or COMMIT either: that statement is its own transaction.
QUERIES_PER_URL = 4


@pytest.fixture
def artifact(s3, release):
    return upload_artifact(s3, release, "weights/model.safetensors", BODY)


@pytest.fixture
def tier(release, artifact):
    return TierFactory(release=release, name="Researchers", gate=Tier.Gate.APPLICATION, artifacts=[artifact])


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def issue(client, artifact, raw=None):
    extra = bearer(raw) if raw else {}
    return client.post(
        f"/api/v1/artifacts/{artifact.pk}/download-url", content_type="application/json", **extra
    )


def download_token(user, scopes=("download",)) -> str:
    return token_create(user=user, name="script", scopes=list(scopes))[1]


def test_granted_researcher_gets_a_url_that_serves_the_exact_bytes(
    client, tier, artifact, researcher, reviewer
):
    grant = approved_grant(researcher, tier, reviewer)
    raw = download_token(researcher)

    response = issue(client, artifact, raw)

    body = response.json()
    assert response.status_code == 200
    assert (body["path"], body["size"], body["sha256"]) == (artifact.path, len(BODY), sha256(BODY))
    status, _, fetched = fetch(body["url"])
    assert status == 200
    assert sha256(fetched) == artifact.sha256
    event = DownloadEvent.objects.get()
    assert (event.user, event.artifact, event.grant, event.access_token.name) == (
        researcher,
        artifact,
        grant,
        "script",
    )
    assert body["expires_at"].startswith(event.url_expires_at.strftime("%Y-%m-%dT%H:%M:%S"))
    audit = AuditEvent.objects.get(action="artifact.downloaded")
    assert (audit.target_type, audit.target_id, audit.actor) == ("downloadevent", event.pk, researcher)
    assert audit.payload["token_id"] == event.access_token_id
    assert audit_verify() is None


def test_session_caller_with_csrf_token_gets_a_url(tier, artifact, researcher, reviewer):
    approved_grant(researcher, tier, reviewer)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(researcher)
    secret = "a" * 32  # a CSRF cookie's secret; the header may carry it unmasked
    browser.cookies.load({"csrftoken": secret})

    response = browser.post(
        f"/api/v1/artifacts/{artifact.pk}/download-url",
        content_type="application/json",
        HTTP_X_CSRFTOKEN=secret,
    )

    assert response.status_code == 200
    assert DownloadEvent.objects.get().access_token is None


def test_one_url_costs_four_queries_whatever_the_grants(
    client, release, tier, artifact, researcher, reviewer
):
    approved_grant(researcher, tier, reviewer)
    raw = download_token(researcher)
    assert issue(client, artifact, raw).status_code == 200  # records the token's last use
    with CaptureQueriesContext(connection) as one_grant:
        assert issue(client, artifact, raw).status_code == 200
    for _ in range(19):
        approved_grant(
            researcher,
            TierFactory(release=release, gate=Tier.Gate.APPLICATION, artifacts=[artifact]),
            reviewer,
        )

    with CaptureQueriesContext(connection) as twenty_grants:
        assert issue(client, artifact, raw).status_code == 200

    # Every statement counts here, savepoints included: the service opens no transaction.
    assert len(one_grant) == QUERIES_PER_URL  # as counted in the comment above
    assert len(twenty_grants) == QUERIES_PER_URL


@pytest.mark.parametrize(
    ("arrange", "code", "action"),
    [
        (lambda tier, user, reviewer: None, "no_grant", "/tiers/"),
        (
            lambda tier, user, reviewer: revoke(approved_grant(user, tier, reviewer), reviewer),
            "revoked",
            "/tiers/",
        ),
        (
            lambda tier, user, reviewer: (
                approved_grant(user, tier, reviewer),
                license_version_publish(
                    license=tier.license, text="New terms.", requires_reacceptance=True, actor=reviewer
                ),
            ),
            "license_changed",
            "/reaccept/",
        ),
    ],
    ids=["no-grant", "revoked", "license-changed"],
)
def test_refusal_says_why_and_where_to_act_and_records_nothing(
    client, tier, artifact, researcher, reviewer, arrange, code, action
):
    arrange(tier, researcher, reviewer)
    raw = download_token(researcher)

    with nothing_changes():
        response = issue(client, artifact, raw)

    body = response.json()
    assert response.status_code == 403
    assert body["error"] == code
    assert body["action_url"].startswith("http://testserver/")
    assert action in body["action_url"]
    assert "url" not in body


def test_tier_not_open_yet_is_refused(client, release, s3, researcher):
    hidden = upload_artifact(s3, release, "later.bin", b"later")
    TierFactory(release=release, gate=Tier.Gate.OPEN, artifacts=[hidden], opened_at=None)
    raw = download_token(researcher)

    with nothing_changes():
        response = issue(client, hidden, raw)

    assert (response.status_code, response.json()["error"]) == (403, "not_open")


def test_open_tier_needs_no_grant(client, release, s3, researcher):
    public = upload_artifact(s3, release, "public.bin", b"for everyone")
    TierFactory(release=release, gate=Tier.Gate.OPEN, artifacts=[public])

    response = issue(client, public, download_token(researcher))

    assert response.status_code == 200
    assert sha256(fetch(response.json()["url"])[2]) == sha256(b"for everyone")


def test_unknown_or_unlinked_file_is_404(client, release, s3, researcher):
    unlinked = upload_artifact(s3, release, "in-no-tier.bin", b"x")
    raw = download_token(researcher)

    assert issue(client, unlinked, raw).json()["error"] == "not_found"
    assert issue(client, type(unlinked)(pk=987654), raw).status_code == 404


def test_read_only_token_cannot_issue_urls(client, tier, artifact, researcher, reviewer):
    approved_grant(researcher, tier, reviewer)
    raw = download_token(researcher, scopes=["read"])

    with nothing_changes():
        response = issue(client, artifact, raw)

    assert (response.status_code, response.json()["error"]) == (403, "token_scope_missing")


def test_store_down_is_503_with_an_explanation_and_nothing_recorded(
    client, settings, tier, artifact, researcher, reviewer
):
    approved_grant(researcher, tier, reviewer)
    raw = download_token(researcher)
    settings.S3_ENDPOINT_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    storage.clear_client_cache()
    storage_probe_forget()

    with nothing_changes():
        response = issue(client, artifact, raw)

    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert response.json()["error"] == "storage_unavailable"
    assert "not answering" in response.json()["message"]
    assert not DownloadEvent.objects.exists()


def test_issued_urls_are_counted_for_the_metrics_and_refusals_are_not(
    client, tier, artifact, researcher, reviewer, outsider
):
    before = download_urls_counted("api")
    approved_grant(researcher, tier, reviewer)
    assert issue(client, artifact, download_token(researcher)).status_code == 200
    assert issue(client, artifact, download_token(outsider)).status_code == 403

    assert download_urls_counted("api") == before + 1
