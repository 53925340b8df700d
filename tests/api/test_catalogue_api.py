"""GET /api/v1/models and /api/v1/models/{org}/{model}: the public catalogue, each tier with the
caller's gate status, flat query counts, and the refusals of bad tokens and bad pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from access.models import AccessToken
from access.services.tokens import token_create, token_revoke
from releases.models import Release, Tier
from tests.factories import ModelFactory, ReleaseFactory, TierFactory, UserFactory
from tests.scenes import approved_grant, submit

MODELS = "/api/v1/models"


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def read_token(user, scopes=("read",)) -> str:
    return token_create(user=user, name="script", scopes=list(scopes))[1]


@pytest.fixture(autouse=True)
def fresh_rate_limit_counters():
    cache.clear()


def count_queries(client, url: str, **extra) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, **extra).status_code == 200
    return len(captured)


# --- The list ---------------------------------------------------------------------------------


def test_anonymous_caller_lists_models_with_a_published_release(client, release, model, organization):
    ReleaseFactory(
        model=ModelFactory(organization=organization, slug="secret"),
        status=Release.Status.DRAFT,
        published_at=None,
        revision="",
    )

    response = client.get(MODELS)

    body = response.json()
    assert response.status_code == 200
    assert (body["count"], body["limit"], body["offset"]) == (1, 50, 0)
    [item] = body["items"]
    assert item["repo_id"] == "acme/llama-lite"
    assert item["organization"] == {"slug": "acme", "name": "Acme AI"}
    assert item["published_releases"] == 1
    assert item["api_url"] == "http://testserver/api/v1/models/acme/llama-lite"
    assert item["web_url"] == "http://testserver/models/acme/llama-lite/"


def test_pages_walk_the_catalogue_in_slug_order(client, organization):
    for slug in ("c-model", "a-model", "b-model"):
        ReleaseFactory(model=ModelFactory(organization=organization, slug=slug))

    first = client.get(MODELS, {"limit": 2}).json()
    second = client.get(MODELS, {"limit": 2, "offset": 2}).json()

    assert [item["slug"] for item in first["items"]] == ["a-model", "b-model"]
    assert [item["slug"] for item in second["items"]] == ["c-model"]
    assert first["count"] == second["count"] == 3


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"offset": 100_001}])
def test_out_of_range_page_answers_400(client, db, query):
    response = client.get(MODELS, query)

    assert response.status_code == 400
    assert response.json()["error"] == "pagination_out_of_range"


def test_list_query_count_is_flat(client, organization, researcher):
    raw = read_token(researcher)
    ReleaseFactory(model=ModelFactory(organization=organization))
    client.get(MODELS, **bearer(raw))  # The token's first use records last_used_at once.
    one = count_queries(client, MODELS, **bearer(raw))
    for _ in range(12):
        ReleaseFactory(model=ModelFactory(organization=organization))

    many = count_queries(client, MODELS, **bearer(raw))

    assert many == one


# --- One model --------------------------------------------------------------------------------


def test_model_shows_card_and_published_releases_newest_first(client, model):
    older = ReleaseFactory(model=model, version="v1", published_at=timezone.now() - timedelta(days=30))
    newer = ReleaseFactory(model=model, version="v2")
    ReleaseFactory(
        model=model, version="v3-draft", status=Release.Status.DRAFT, published_at=None, revision=""
    )
    tier = TierFactory(release=newer, name="Researchers", gate=Tier.Gate.APPLICATION)

    response = client.get(f"{MODELS}/acme/llama-lite")

    body = response.json()
    assert response.status_code == 200
    assert body["card"] == model.card
    assert [release["version"] for release in body["releases"]] == ["v2", "v1"]
    assert body["releases"][0]["revision"] == newer.revision
    assert body["releases"][1]["revision"] == older.revision
    [tier_out] = body["releases"][0]["tiers"]
    assert (tier_out["id"], tier_out["name"], tier_out["gate"], tier_out["approval"]) == (
        tier.pk,
        "Researchers",
        "application",
        "manual",
    )
    assert tier_out["api_url"] == f"http://testserver/api/v1/tiers/{tier.pk}"
    # Anyone may see that the tier takes applications; the page to act on is the tier's.
    assert tier_out["gate_status"]["status"] == "not_requested"
    assert tier_out["gate_status"]["action_url"] == f"http://testserver/tiers/{tier.pk}/"


def test_each_tier_carries_the_callers_gate_status(client, release, researcher, reviewer):
    open_tier = TierFactory(release=release, name="Everyone", gate=Tier.Gate.OPEN, license=None)
    later = TierFactory(release=release, name="Later", opens_at=timezone.now() + timedelta(days=10))
    applied = TierFactory(release=release, name="Applied")
    granted = TierFactory(release=release, name="Granted")
    application = submit(researcher, applied)
    grant = approved_grant(researcher, granted, reviewer)

    body = client.get(f"{MODELS}/acme/llama-lite", **bearer(read_token(researcher))).json()

    statuses = {tier["name"]: tier["gate_status"] for tier in body["releases"][0]["tiers"]}
    assert statuses["Everyone"]["status"] == "open"
    assert statuses["Everyone"]["can_download"] is True
    assert statuses["Later"]["status"] == "not_open"
    assert statuses["Later"]["opens_at"].startswith(later.opens_at.strftime("%Y-%m-%dT%H:%M"))
    assert statuses["Applied"]["status"] == "pending"
    assert statuses["Applied"]["decision_expected_at"].startswith(
        application.decision_due_at.strftime("%Y-%m-%dT%H:%M")
    )
    assert statuses["Granted"]["status"] == "approved"
    assert statuses["Granted"]["expires_at"].startswith(grant.expires_at.strftime("%Y-%m-%dT%H:%M"))
    assert open_tier.pk in {tier["id"] for tier in body["releases"][0]["tiers"]}


@pytest.mark.parametrize("path", ["acme/unknown", "nobody/llama-lite"])
def test_unknown_model_answers_404(client, release, path):
    response = client.get(f"{MODELS}/{path}")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_model_without_a_published_release_answers_404(client, organization):
    ReleaseFactory(
        model=ModelFactory(organization=organization, slug="upcoming"),
        status=Release.Status.DRAFT,
        published_at=None,
        revision="",
    )

    response = client.get(f"{MODELS}/acme/upcoming")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_model_query_count_is_flat_in_tiers_and_releases(client, model, researcher, reviewer):
    raw = read_token(researcher)
    first = ReleaseFactory(model=model)
    submit(researcher, TierFactory(release=first))
    url = f"{MODELS}/acme/llama-lite"
    client.get(url, **bearer(raw))
    one = count_queries(client, url, **bearer(raw))
    for _ in range(3):
        release = ReleaseFactory(model=model)
        submit(researcher, TierFactory(release=release))
        approved_grant(researcher, TierFactory(release=release), reviewer)
        TierFactory(release=release, gate=Tier.Gate.INVITATION)

    many = count_queries(client, url, **bearer(raw))

    assert many == one


# --- Tokens -------------------------------------------------------------------------------------


def test_expired_token_is_refused_rather_than_read_as_anonymous(client, release, researcher):
    token, raw = token_create(user=researcher, name="old", scopes=["read"], lifetime_days=1)
    AccessToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client.get(MODELS, **bearer(raw))

    assert response.status_code == 401
    assert response.json()["error"] == "token_expired"


def test_revoked_token_is_refused(client, release, researcher):
    token, raw = token_create(user=researcher, name="leaked", scopes=["read"])
    token_revoke(token_id=token.pk, user=researcher)

    response = client.get(f"{MODELS}/acme/llama-lite", **bearer(raw))

    assert response.status_code == 401
    assert response.json()["error"] == "token_revoked"


def test_token_without_read_scope_is_refused(client, release):
    raw = read_token(UserFactory(), scopes=("download",))

    response = client.get(MODELS, **bearer(raw))

    assert response.status_code == 403
    assert response.json()["error"] == "token_scope_missing"
