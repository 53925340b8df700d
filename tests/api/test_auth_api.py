"""Who may call /api/v1/: token scopes, expiry, revocation, the rate limit, CSRF for sessions,
and the limits on request bodies. Every refusal is a JSON error with a stable code."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from access.models import AccessToken
from access.services.tokens import token_create, token_revoke
from tests.helpers import nothing_changes

ME = "/api/v1/me"


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture(autouse=True)
def fresh_rate_limit_counters():
    cache.clear()


def test_token_caller_sees_themself_and_their_token(client, researcher):
    token, raw = token_create(user=researcher, name="script", scopes=["read"], lifetime_days=3)

    response = client.get(ME, **bearer(raw))

    body = response.json()
    assert response.status_code == 200
    assert body["email"] == researcher.email
    assert body["email_verified"] is True
    assert body["token_scopes"] == ["read"]
    assert body["token_expires_at"].startswith(token.expires_at.strftime("%Y-%m-%dT%H:%M"))


def test_session_caller_is_accepted_without_a_token(client, researcher):
    client.force_login(researcher)

    response = client.get(ME)

    assert response.status_code == 200
    assert response.json()["token_scopes"] is None


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "auth_required"),
        ("Basic dXNlcjpwYXNz", "auth_malformed"),
        ("Bearer not-a-token", "token_malformed"),
        ("Bearer gh_" + "A" * 43, "token_invalid"),
    ],
    ids=["anonymous", "basic-auth", "malformed", "unknown"],
)
def test_missing_or_bad_credentials_answer_401_with_a_code(client, db, header, code):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = client.get(ME, **extra)

    assert response.status_code == 401
    assert response.json()["error"] == code


def test_expired_token_is_refused(client, researcher):
    token, raw = token_create(user=researcher, name="old", scopes=["read"], lifetime_days=1)
    AccessToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client.get(ME, **bearer(raw))

    assert response.status_code == 401
    assert response.json()["error"] == "token_expired"


def test_revoked_token_is_refused(client, researcher):
    token, raw = token_create(user=researcher, name="leaked", scopes=["read"])
    token_revoke(token_id=token.pk, user=researcher)

    response = client.get(ME, **bearer(raw))

    assert response.status_code == 401
    assert response.json()["error"] == "token_revoked"


def test_token_without_the_routes_scope_is_refused(client, researcher):
    _, raw = token_create(user=researcher, name="downloads only", scopes=["download"])

    response = client.get(ME, **bearer(raw))

    assert response.status_code == 403
    assert response.json()["error"] == "token_scope_missing"


def test_rate_limit_counts_per_token_and_says_when_to_retry(client, researcher, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    _, first = token_create(user=researcher, name="one", scopes=["read"])
    _, second = token_create(user=researcher, name="two", scopes=["read"])

    statuses = [client.get(ME, **bearer(first)).status_code for _ in range(3)]
    limited = client.get(ME, **bearer(first))

    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    # Another token of the same user has its own budget.
    assert client.get(ME, **bearer(second)).status_code == 200


def test_rate_limit_counter_lives_in_the_shared_cache(client, researcher, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 2
    token, raw = token_create(user=researcher, name="one", scopes=["read"])
    client.get(ME, **bearer(raw))

    client.get(ME, **bearer(raw))

    redis_client = cache._cache.get_client()
    [counter] = [
        key for key in redis_client.keys("*api-rate:*") if f"api-rate:token:{token.pk}:".encode() in key
    ]
    assert int(redis_client.get(counter)) == 2
    # The window's first request set the expiry (two windows), and the second did not move it.
    assert 60 < redis_client.ttl(counter) <= 120


def test_session_post_without_csrf_token_is_refused(researcher, db):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(researcher)

    with nothing_changes():
        response = browser.post("/api/v1/artifacts/1/download-url", content_type="application/json")

    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"


def test_body_that_is_not_json_is_refused(client, researcher, application_tier):
    _, raw = token_create(user=researcher, name="script", scopes=["read", "download"])

    with nothing_changes():
        response = client.post(
            f"/api/v1/tiers/{application_tier.pk}/applications",
            data="affiliation=Uni",
            content_type="application/x-www-form-urlencoded",
            **bearer(raw),
        )

    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_body_over_the_limit_is_refused_before_it_is_read(client, researcher, application_tier, settings):
    _, raw = token_create(user=researcher, name="script", scopes=["read", "download"])
    body = '{"affiliation": "' + "x" * settings.API_MAX_BODY_BYTES + '"}'

    with nothing_changes():
        response = client.post(
            f"/api/v1/tiers/{application_tier.pk}/applications",
            data=body,
            content_type="application/json",
            **bearer(raw),
        )

    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_unknown_route_under_the_api_is_json(client, researcher):
    client.force_login(researcher)

    response = client.get("/api/v1/artifacts/999999/nothing-here")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_openapi_schema_and_docs_are_served(client, db):
    schema = client.get("/api/v1/openapi.json")
    docs = client.get("/api/v1/docs")

    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "Gatehouse API"
    assert "/api/v1/artifacts/{artifact_id}/download-url" in schema.json()["paths"]
    assert schema.json()["components"]["securitySchemes"]
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
