"""The catalogue and the model page, as researchers see them."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from releases.models import Release, Tier
from tests.factories import ModelFactory, ReleaseFactory, TierFactory
from tests.scenes import approved_grant, make_expired, reject, revoke, submit

# Measured: session, user, then the catalogue count and page, or the model page's reads (model, releases,
# tiers with licenses, artifacts, and my applications, grants, invitations), whatever the number of rows;
# plus one for the header's "Publish" link (does the signed-in user publish for any organization?).
CATALOGUE_MAX_QUERIES = 5
MODEL_PAGE_MAX_QUERIES = 10


def tier_row_text(response, tier: Tier) -> str:
    """The visible text of the tier's row on the model page, whitespace collapsed."""
    match = re.search(rf'<tr data-tier="{tier.pk}">(.*?)</tr>', response.content.decode(), re.DOTALL)
    assert match, f"no row for tier {tier.pk}"
    text = html.unescape(re.sub(r"<[^>]+>", " ", match.group(1)))
    return " ".join(text.split())


def model_url(model) -> str:
    return reverse("model-detail", kwargs={"org_slug": model.organization.slug, "model_slug": model.slug})


# --- Catalogue ------------------------------------------------------------------------------


def test_catalogue_lists_models_with_a_published_release_only(client, release):
    draft_only = ModelFactory(slug="secret-model")
    ReleaseFactory(model=draft_only, status=Release.Status.DRAFT, published_at=None, revision="")
    ModelFactory(slug="empty-model")

    response = client.get(reverse("catalogue"))

    assert response.status_code == 200
    content = response.content.decode()
    assert "acme/llama-lite" in content
    assert model_url(release.model) in content
    assert "secret-model" not in content
    assert "empty-model" not in content


def test_catalogue_says_so_when_nothing_is_published(client, db):
    response = client.get(reverse("catalogue"))

    assert "No model has been published yet." in response.content.decode()


def test_catalogue_query_count_stays_flat_from_2_to_30_models(
    client, researcher, django_assert_max_num_queries
):
    client.force_login(researcher)
    for _ in range(2):
        ReleaseFactory()
    with django_assert_max_num_queries(CATALOGUE_MAX_QUERIES) as with_two:
        assert client.get(reverse("catalogue")).status_code == 200

    for _ in range(28):
        ReleaseFactory()
    with django_assert_max_num_queries(CATALOGUE_MAX_QUERIES) as with_thirty:
        response = client.get(reverse("catalogue"))

    assert response.content.decode().count('href="/models/') == 30
    assert len(with_two) == len(with_thirty)


# --- Model page: each tier with my status ----------------------------------------------------


def test_unknown_organization_or_model_is_not_found(client, release):
    assert client.get("/models/acme/no-such-model/").status_code == 404
    assert client.get("/models/no-such-org/llama-lite/").status_code == 404


def test_model_without_a_published_release_is_not_found(client, db):
    draft_only = ModelFactory(slug="unannounced")
    ReleaseFactory(model=draft_only, status=Release.Status.DRAFT, published_at=None, revision="")

    assert client.get(model_url(draft_only)).status_code == 404


def test_draft_release_of_a_published_model_is_not_shown(client, release):
    ReleaseFactory(
        model=release.model, version="v2.0-rc", status=Release.Status.DRAFT, published_at=None, revision=""
    )

    content = client.get(model_url(release.model)).content.decode()

    assert "v1.0" in content
    assert "v2.0-rc" not in content


def test_anonymous_visitor_sees_each_tier_and_is_asked_to_sign_in(client, release):
    application_tier = TierFactory(release=release, name="Researchers", gate=Tier.Gate.APPLICATION)
    open_tier = TierFactory(release=release, name="Everyone", gate=Tier.Gate.OPEN)
    opens_at = timezone.now() + timedelta(days=30)
    later_tier = TierFactory(release=release, name="Public", gate=Tier.Gate.CLICK_THROUGH, opens_at=opens_at)

    response = client.get(model_url(release.model))

    assert response.status_code == 200
    assert tier_row_text(response, application_tier).endswith("Sign in to request access License and access")
    assert "Open to everyone" in tier_row_text(response, open_tier)
    later = tier_row_text(response, later_tier)
    assert f"Not open yet Opens on {opens_at:%Y-%m-%d %H:%M} UTC" in later
    assert "License and access" not in later


def test_researcher_sees_their_own_status_on_each_tier(client, release, reviewer, researcher):
    def tier(name):
        return TierFactory(release=release, name=name, gate=Tier.Gate.APPLICATION, grant_duration_days=30)

    untouched, pending, approved, rejected, expired, revoked = (
        tier(name) for name in ("None", "Pending", "Approved", "Rejected", "Expired", "Revoked")
    )
    opens_at = timezone.now() + timedelta(days=10)
    not_open = TierFactory(release=release, name="Later", gate=Tier.Gate.APPLICATION, opens_at=opens_at)
    pending_application = submit(researcher, pending)
    approved_grant_row = approved_grant(researcher, approved, reviewer)
    reject(submit(researcher, rejected), reviewer, "Your intended use is outside the license.")
    make_expired(approved_grant(researcher, expired, reviewer))
    revoke(approved_grant(researcher, revoked, reviewer), reviewer, reason="Weights were re-shared.")
    client.force_login(researcher)

    response = client.get(model_url(release.model))

    assert "Not requested" in tier_row_text(response, untouched)
    assert tier_row_text(response, pending).endswith(
        f"Pending review Submitted on {pending_application.submitted_at:%Y-%m-%d}; "
        f"decision expected by {pending_application.decision_due_at:%Y-%m-%d} License and access"
    )
    assert f"Approved Access until {approved_grant_row.expires_at:%Y-%m-%d} Files" in tier_row_text(
        response, approved
    )
    assert "Rejected Your intended use is outside the license." in tier_row_text(response, rejected)
    assert "Expired Your access has expired." in tier_row_text(response, expired)
    assert "Revoked Weights were re-shared." in tier_row_text(response, revoked)
    assert f"Not open yet Opens on {opens_at:%Y-%m-%d %H:%M} UTC" in tier_row_text(response, not_open)


def test_another_users_standing_is_not_shown(client, release, reviewer, researcher, outsider):
    tier = TierFactory(release=release, name="Researchers", gate=Tier.Gate.APPLICATION)
    approved_grant(researcher, tier, reviewer)
    client.force_login(outsider)

    assert "Not requested" in tier_row_text(client.get(model_url(release.model)), tier)


def test_model_card_is_rendered_and_sanitised(client, release):
    model = release.model
    model.card = (
        "# Llama Lite\n\nA *small* model.\n\n<script>alert('card')</script>\n\n"
        '<img src="x.png" onerror="alert(1)">\n\n[click](javascript:alert(2))\n'
    )
    model.save()

    content = client.get(model_url(model)).content.decode()

    assert "<h1>Llama Lite</h1>" in content
    assert "<em>small</em>" in content
    # The page's own script is a static file; no other script tag may appear.
    assert content.count("<script") == content.count('<script src="/static/') == 1
    assert "alert('card')" not in content
    assert "onerror" not in content
    assert "javascript:" not in content


def test_model_page_query_count_stays_flat_from_2_to_30_tiers(
    client, release, researcher, django_assert_max_num_queries
):
    gates = [Tier.Gate.APPLICATION, Tier.Gate.CLICK_THROUGH, Tier.Gate.INVITATION, Tier.Gate.OPEN]

    def add_tiers(count):
        for position in range(count):
            tier = TierFactory(release=release, gate=gates[position % len(gates)], position=position)
            if tier.gate == Tier.Gate.APPLICATION:
                submit(researcher, tier)

    client.force_login(researcher)
    add_tiers(2)
    with django_assert_max_num_queries(MODEL_PAGE_MAX_QUERIES) as with_two:
        assert client.get(model_url(release.model)).status_code == 200

    add_tiers(28)
    with django_assert_max_num_queries(MODEL_PAGE_MAX_QUERIES) as with_thirty:
        response = client.get(model_url(release.model))

    assert response.content.decode().count("<tr data-tier=") == 30
    assert response.content.decode().count("Pending review") == 8
    assert len(with_two) == len(with_thirty)
