"""Downloads: the files page and the download URL, checked at every request, against a real SeaweedFS.

The portal answers 302 to a presigned URL; these tests follow it with urllib to SeaweedFS, which
checks the signature and the expiry, and compare the bytes that come back by their sha256.
"""

from __future__ import annotations

import html
import os
import socket
import time
import urllib.parse
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse
from django.utils import timezone

from access.models import AuditEvent, DownloadEvent
from access.services.tokens import token_revoke
from portal import storage
from portal.storage_probe import storage_probe_forget
from releases.models import Release, Tier
from tests.factories import ArtifactFactory, ReleaseFactory, TierFactory
from tests.helpers import download_urls_counted
from tests.scenes import (
    approved_grant,
    fetch,
    make_expired,
    new_token,
    revoke,
    sha256,
    submit,
    upload_artifact,
)

# Measured: session and user, or with a token the token with its user and verified e-mail;
# the artifact, its tiers, (for a session) the verified e-mail, the user's grants with their
# acceptances; then, in a savepoint (the test's own transaction), the chain head locked with
# the event's id drawn, and one statement inserting the event and its audit row.
DOWNLOAD_MAX_QUERIES = 10
TOKEN_DOWNLOAD_MAX_QUERIES = 8

BODY = os.urandom(200_000)


@pytest.fixture
def artifact(s3, release):
    return upload_artifact(s3, release, "weights/model-00001.safetensors", BODY)


@pytest.fixture
def tier(release, artifact):
    return TierFactory(release=release, name="Researchers", gate=Tier.Gate.APPLICATION, artifacts=[artifact])


@pytest.fixture
def grant(tier, researcher, reviewer):
    return approved_grant(researcher, tier, reviewer)


def download_url(artifact) -> str:
    return reverse("artifact-download", kwargs={"artifact_id": artifact.pk})


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def refusal_code(response) -> str:
    content = response.content.decode()
    marker = 'class="refusal" data-code="'
    assert marker in content, content
    return content.split(marker, 1)[1].split('"', 1)[0]


# --- The files page --------------------------------------------------------------------------


def test_approved_researcher_sees_each_file_with_size_and_sha256(client, tier, grant, researcher, artifact):
    client.force_login(researcher)

    response = client.get(reverse("tier-files", kwargs={"tier_id": tier.pk}))

    content = response.content.decode()
    assert response.status_code == 200
    assert "weights/model-00001.safetensors" in content
    assert "(200,000 bytes)" in content
    assert f'<td class="mono sha256">{sha256(BODY)}</td>' in content
    assert download_url(artifact) in content
    assert reverse("tier-manifest", kwargs={"tier_id": tier.pk}) in content
    assert f"http://testserver/tiers/{tier.pk}/download.sh" in content


def test_files_page_without_a_grant_says_why(client, tier, researcher):
    client.force_login(researcher)

    response = client.get(reverse("tier-files", kwargs={"tier_id": tier.pk}))

    assert response.status_code == 403
    assert refusal_code(response) == "no_grant"
    assert sha256(BODY) not in response.content.decode()


# --- The download URL ------------------------------------------------------------------------


def test_download_redirects_to_a_presigned_url_of_the_exact_version(
    client, settings, s3, grant, researcher, artifact
):
    client.force_login(researcher)

    response = client.get(download_url(artifact))

    assert response.status_code == 302
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer"
    location = response["Location"]
    assert location.startswith(f"{s3.endpoint_url}/{s3.bucket}/")
    query = query_of(location)
    assert query["versionId"] == artifact.object_version
    assert query["response-content-disposition"] == 'attachment; filename="model-00001.safetensors"'
    assert query["X-Amz-Expires"] == str(settings.DOWNLOAD_URL_LIFETIME_SECONDS)

    status, headers, body = fetch(location)

    assert status == 200
    assert sha256(body) == artifact.sha256 == sha256(BODY)
    assert headers["Content-Disposition"] == 'attachment; filename="model-00001.safetensors"'


def test_download_serves_the_published_version_after_the_key_is_overwritten(
    client, s3, grant, researcher, artifact
):
    s3.put(artifact.storage_key, b"replaced behind the portal's back")
    client.force_login(researcher)

    status, _, body = fetch(client.get(download_url(artifact))["Location"])

    assert status == 200
    assert sha256(body) == artifact.sha256


def test_download_records_a_download_event_and_its_audit_event(
    client, settings, grant, researcher, artifact, tier
):
    client.force_login(researcher)
    before = timezone.now()

    client.get(download_url(artifact))

    event = DownloadEvent.objects.get()
    assert (event.user, event.artifact, event.tier, event.grant) == (researcher, artifact, tier, grant)
    assert event.license_version == grant.license_acceptance.license_version
    assert event.ip_address == "127.0.0.1"
    assert event.access_token is None
    assert before + timedelta(seconds=settings.DOWNLOAD_URL_LIFETIME_SECONDS) <= event.url_expires_at
    audit = AuditEvent.objects.get(action="artifact.downloaded")
    assert (audit.target_type, audit.target_id, audit.actor) == ("downloadevent", event.pk, researcher)
    assert audit.payload == {
        "artifact_id": artifact.pk,
        "tier_id": tier.pk,
        "grant_id": grant.pk,
        "token_id": None,
    }


def test_url_is_refused_by_storage_once_its_lifetime_has_passed(
    client, settings, grant, researcher, artifact
):
    settings.DOWNLOAD_URL_LIFETIME_SECONDS = 1
    client.force_login(researcher)
    location = client.get(download_url(artifact))["Location"]
    assert query_of(location)["X-Amz-Expires"] == "1"

    time.sleep(2.5)
    status, _, body = fetch(location)

    assert status == 403
    assert b"Request has expired" in body
    assert sha256(body) != artifact.sha256


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda q: {**q, "X-Amz-Signature": q["X-Amz-Signature"][::-1]}, id="signature"),
        pytest.param(lambda q: {**q, "versionId": "another-version"}, id="version"),
        pytest.param(
            lambda q: {**q, "response-content-disposition": 'attachment; filename="x.exe"'}, id="disposition"
        ),
        pytest.param(lambda q: {**q, "X-Amz-Expires": "604800"}, id="expiry"),
    ],
)
def test_tampered_url_is_refused_by_storage(client, grant, researcher, artifact, tamper):
    client.force_login(researcher)
    location = client.get(download_url(artifact))["Location"]
    parts = urllib.parse.urlsplit(location)
    tampered = urllib.parse.urlunsplit(
        parts._replace(query=urllib.parse.urlencode(tamper(query_of(location))))
    )
    assert tampered != location

    status, _, body = fetch(tampered)

    assert status == 403
    assert sha256(body) != artifact.sha256


# --- Refusals --------------------------------------------------------------------------------


def test_revocation_stops_the_very_next_request(client, grant, researcher, reviewer, artifact, tier):
    client.force_login(researcher)
    assert client.get(download_url(artifact)).status_code == 302

    revoke(grant, reviewer, reason="The weights appeared on a file-sharing site.")
    response = client.get(download_url(artifact))

    assert response.status_code == 403
    assert response["Cache-Control"] == "no-store"
    assert "Location" not in response
    assert refusal_code(response) == "revoked"
    content = response.content.decode()
    assert (
        "Your access to Researchers was revoked. Reason: The weights appeared on a file-sharing site."
        in content
    )
    assert "Contact the publisher if you think this is wrong." in content
    assert f'href="/tiers/{tier.pk}/"' in content
    assert DownloadEvent.objects.count() == 1


def test_revoked_grant_answers_json_to_a_token_client(client, grant, researcher, reviewer, artifact, tier):
    _, raw = new_token(researcher)
    revoke(grant, reviewer, reason="Policy violation.")

    response = client.get(download_url(artifact), **bearer(raw))

    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "revoked"
    assert "was revoked. Reason: Policy violation." in body["message"]
    assert body["action_url"] == f"http://testserver/tiers/{tier.pk}/"
    assert DownloadEvent.objects.count() == 0


def test_expired_grant_is_refused(client, grant, researcher, artifact):
    make_expired(grant)
    client.force_login(researcher)

    response = client.get(download_url(artifact))

    assert response.status_code == 403
    assert refusal_code(response) == "expired"
    assert f"expired on {grant.expires_at:%Y-%m-%d}. Apply again to renew it." in response.content.decode()
    assert DownloadEvent.objects.count() == 0


def test_no_grant_is_refused_even_with_a_pending_application(client, tier, researcher, artifact):
    submit(researcher, tier)
    client.force_login(researcher)

    response = client.get(download_url(artifact))

    assert response.status_code == 403
    assert refusal_code(response) == "no_grant"
    assert "Request access on the tier's page." in html.unescape(response.content.decode())
    assert DownloadEvent.objects.count() == 0


def test_grant_on_another_tier_of_the_release_does_not_cover_the_file(
    client, release, tier, researcher, reviewer, s3
):
    other_file = upload_artifact(s3, release, "red-team-only.bin", b"restricted")
    TierFactory(release=release, name="Red team", gate=Tier.Gate.INVITATION, artifacts=[other_file])
    approved_grant(researcher, tier, reviewer)
    client.force_login(researcher)

    response = client.get(download_url(other_file))

    assert response.status_code == 403
    assert refusal_code(response) == "no_grant"


def test_unverified_account_is_refused_despite_a_grant(client, grant, researcher, artifact):
    EmailAddress.objects.filter(user=researcher).update(verified=False)
    client.force_login(researcher)

    response = client.get(download_url(artifact))

    assert response.status_code == 403
    assert refusal_code(response) == "email_unverified"
    assert DownloadEvent.objects.count() == 0


def test_open_tier_downloads_without_a_grant(client, release, s3, researcher):
    readme = upload_artifact(s3, release, "README.md", b"# Llama Lite\n")
    open_tier = TierFactory(release=release, gate=Tier.Gate.OPEN, license=None, artifacts=[readme])
    client.force_login(researcher)

    response = client.get(download_url(readme))

    assert response.status_code == 302
    status, _, body = fetch(response["Location"])
    assert (status, body) == (200, b"# Llama Lite\n")
    event = DownloadEvent.objects.get()
    assert (event.tier, event.grant, event.license_version) == (open_tier, None, None)


def test_file_of_a_tier_that_is_not_open_yet_is_refused(client, release, s3, researcher):
    later = upload_artifact(s3, release, "later.bin", b"later")
    TierFactory(
        release=release, gate=Tier.Gate.OPEN, opens_at=timezone.now() + timedelta(days=3), artifacts=[later]
    )
    client.force_login(researcher)

    response = client.get(download_url(later))

    assert response.status_code == 403
    assert refusal_code(response) == "not_open"


def test_anonymous_browser_is_sent_to_sign_in_and_a_json_client_gets_401(client, grant, artifact):
    browser = client.get(download_url(artifact))
    api = client.get(download_url(artifact), HTTP_ACCEPT="application/json")

    assert browser.status_code == 302
    assert browser.url.startswith(reverse("account_login"))
    assert api.status_code == 401
    assert api.json()["error"] == "auth_required"
    assert DownloadEvent.objects.count() == 0


def test_artifact_of_a_draft_release_is_not_found(client, model, researcher, reviewer):
    draft = ReleaseFactory(
        model=model, version="v2.0", status=Release.Status.DRAFT, published_at=None, revision=""
    )
    draft_file = ArtifactFactory(release=draft)
    TierFactory(release=draft, gate=Tier.Gate.OPEN, artifacts=[draft_file])
    client.force_login(researcher)

    assert client.get(download_url(draft_file)).status_code == 404
    assert DownloadEvent.objects.count() == 0


def test_unknown_artifact_is_not_found(client, researcher):
    client.force_login(researcher)

    assert client.get(reverse("artifact-download", kwargs={"artifact_id": 987654})).status_code == 404


# --- Query count -----------------------------------------------------------------------------


def test_download_query_count_stays_flat_from_1_to_20_granted_tiers(
    client, release, artifact, tier, researcher, reviewer, django_assert_max_num_queries
):
    approved_grant(researcher, tier, reviewer)
    client.force_login(researcher)
    with django_assert_max_num_queries(DOWNLOAD_MAX_QUERIES) as with_one:
        assert client.get(download_url(artifact)).status_code == 302

    for _ in range(19):
        approved_grant(
            researcher,
            TierFactory(release=release, gate=Tier.Gate.APPLICATION, artifacts=[artifact]),
            reviewer,
        )
    with django_assert_max_num_queries(DOWNLOAD_MAX_QUERIES) as with_twenty:
        assert client.get(download_url(artifact)).status_code == 302

    assert artifact.tiers.count() == 20
    assert len(with_one) == len(with_twenty)


def test_token_download_query_count_stays_flat_from_1_to_20_granted_tiers(
    client, release, artifact, tier, researcher, reviewer, django_assert_max_num_queries
):
    approved_grant(researcher, tier, reviewer)
    _, raw = new_token(researcher)
    # The first use of a token records last_used_at; later ones within a minute do not.
    assert client.get(download_url(artifact), **bearer(raw)).status_code == 302
    with django_assert_max_num_queries(TOKEN_DOWNLOAD_MAX_QUERIES) as with_one:
        assert client.get(download_url(artifact), **bearer(raw)).status_code == 302

    for _ in range(19):
        approved_grant(
            researcher,
            TierFactory(release=release, gate=Tier.Gate.APPLICATION, artifacts=[artifact]),
            reviewer,
        )
    with django_assert_max_num_queries(TOKEN_DOWNLOAD_MAX_QUERIES) as with_twenty:
        assert client.get(download_url(artifact), **bearer(raw)).status_code == 302

    assert len(with_one) == len(with_twenty)


# --- Personal access tokens ------------------------------------------------------------------


def test_bearer_token_downloads_and_is_recorded(client, grant, researcher, artifact):
    token, raw = new_token(researcher)

    response = client.get(download_url(artifact), **bearer(raw))

    assert response.status_code == 302
    status, _, body = fetch(response["Location"])
    assert status == 200
    assert sha256(body) == artifact.sha256
    event = DownloadEvent.objects.get()
    assert (event.user, event.access_token) == (researcher, token)
    assert AuditEvent.objects.get(action="artifact.downloaded").payload["token_id"] == token.pk
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Bearer not-a-token", "token_malformed"),
        ("Bearer gh_short", "token_malformed"),
        ("Bearer gh_" + "A" * 43, "token_invalid"),
        ("Basic dXNlcjpwYXNz", "auth_malformed"),
        ("Bearer ", "auth_malformed"),
    ],
)
def test_bad_token_answers_401_and_records_nothing(client, grant, artifact, header, code):
    audit_before = AuditEvent.objects.count()

    response = client.get(download_url(artifact), HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json()["error"] == code
    assert "Location" not in response
    assert DownloadEvent.objects.count() == 0
    assert AuditEvent.objects.count() == audit_before


def test_revoked_token_answers_401_token_revoked_and_records_nothing(client, grant, researcher, artifact):
    token, raw = new_token(researcher)
    token_revoke(token_id=token.pk, user=researcher)
    audit_before = AuditEvent.objects.count()

    response = client.get(download_url(artifact), **bearer(raw))

    assert response.status_code == 401
    assert response.json() == {
        "error": "token_revoked",
        "message": "The access token was revoked. Create a new one on your account page.",
    }
    assert DownloadEvent.objects.count() == 0
    assert AuditEvent.objects.count() == audit_before


# --- Storage down ----------------------------------------------------------------------------


def test_unreachable_storage_answers_503_and_records_nothing(client, settings, grant, researcher, artifact):
    """Presigning needs no request to the store, so the portal checks the bucket (at most every few
    seconds per process) and, while it is down, answers 503 with an explanation instead of a URL that
    cannot be fetched, and records no download."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.S3_ENDPOINT_URL = f"http://127.0.0.1:{closed_port}"
    storage.clear_client_cache()
    storage_probe_forget()
    client.force_login(researcher)
    audit_rows = AuditEvent.objects.count()

    response = client.get(download_url(artifact))

    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert "Location" not in response
    assert b"file storage is not answering" in response.content
    assert DownloadEvent.objects.count() == 0
    assert AuditEvent.objects.count() == audit_rows


def test_downloads_resume_once_the_store_answers_again(client, settings, s3, grant, researcher, artifact):
    """The check is remembered for STORAGE_PROBE_INTERVAL_SECONDS only: once it passes, URLs flow again."""
    endpoint = settings.S3_ENDPOINT_URL
    settings.S3_ENDPOINT_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    storage.clear_client_cache()
    storage_probe_forget()
    client.force_login(researcher)
    assert client.get(download_url(artifact)).status_code == 503

    settings.S3_ENDPOINT_URL = endpoint
    storage.clear_client_cache()
    storage_probe_forget()  # what the end of STORAGE_PROBE_INTERVAL_SECONDS does, without waiting
    response = client.get(download_url(artifact))

    assert response.status_code == 302
    assert DownloadEvent.objects.count() == 1


def test_a_redirect_counts_one_issued_url_for_the_metrics(client, grant, researcher, artifact):
    before = download_urls_counted("page")
    client.force_login(researcher)
    assert client.get(download_url(artifact)).status_code == 302

    assert download_urls_counted("page") == before + 1
