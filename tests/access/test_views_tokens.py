"""Personal access tokens on the account pages: shown once, stored hashed, named, limited, revocable."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.forms.models import model_to_dict
from django.urls import reverse
from django.utils import timezone

from access.models import AccessToken, AuditEvent
from tests.factories import UserFactory
from tests.helpers import nothing_changes
from tests.scenes import new_token


def token_form(name, scopes=("read", "download"), lifetime_days=30):
    return {"name": name, "scopes": list(scopes), "lifetime_days": lifetime_days}


def shown_token(response) -> str:
    match = re.search(r'<pre id="new-token">([^<]+)</pre>', response.content.decode())
    assert match, "the new token is not on the page"
    return match.group(1)


def revoke_url(token) -> str:
    return reverse("token-revoke", kwargs={"token_id": token.pk})


def test_new_token_is_shown_once_then_only_its_hint(client, researcher):
    client.force_login(researcher)

    created = client.post(reverse("token-list"), token_form("cluster login node"))

    assert created.status_code == 200
    assert created["Cache-Control"] == "no-store"
    raw = shown_token(created)
    assert raw.startswith("gh_")
    assert "it will not be shown again" in created.content.decode()
    token = AccessToken.objects.get(user=researcher)
    assert token.name == "cluster login node"

    listed = client.get(reverse("token-list")).content.decode()
    assert raw not in listed
    assert "cluster login node" in listed
    assert f"{token.hint}…" in listed
    assert raw.startswith(token.hint)
    assert 'id="new-token"' not in listed


def test_token_is_stored_hashed_and_the_raw_value_appears_nowhere(client, researcher):
    client.force_login(researcher)

    raw = shown_token(client.post(reverse("token-list"), token_form("laptop")))

    token = AccessToken.objects.get()
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    stored = " ".join(str(value) for value in model_to_dict(token).values())
    assert raw not in stored
    assert raw[len(token.hint) :] not in stored
    audit = AuditEvent.objects.get(action="token.created")
    assert raw not in str(audit.payload)


def test_revoking_a_token(client, researcher):
    token, _ = new_token(researcher, name="old laptop")
    client.force_login(researcher)

    response = client.post(revoke_url(token), follow=True)

    token.refresh_from_db()
    assert token.revoked_at is not None
    content = response.content.decode()
    assert "Token “old laptop” revoked." in content
    assert "No tokens." in content

    again = client.post(revoke_url(token), follow=True).content.decode()
    assert "This token is already revoked." in again
    assert AuditEvent.objects.filter(action="token.revoked").count() == 1


def test_revoke_needs_a_post(client, researcher):
    token, _ = new_token(researcher)
    client.force_login(researcher)

    assert client.get(revoke_url(token)).status_code == 405
    token.refresh_from_db()
    assert token.revoked_at is None


def test_another_users_token_is_not_found(client, researcher, outsider):
    token, _ = new_token(researcher)
    client.force_login(outsider)

    assert client.post(revoke_url(token)).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert "laptop" not in client.get(reverse("token-list")).content.decode()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x" * 101, "Ensure this value has at most 100 characters (it has 101)."),
        ("", "This field is required."),
    ],
)
def test_bad_token_name_is_refused(client, researcher, name, message):
    client.force_login(researcher)

    response = client.post(reverse("token-list"), token_form(name))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'id="new-token"' not in response.content.decode()
    assert AccessToken.objects.count() == 0


def test_per_user_token_limit_is_enforced(client, settings, researcher):
    settings.MAX_ACCESS_TOKENS_PER_USER = 2
    client.force_login(researcher)
    client.post(reverse("token-list"), token_form("one"))
    client.post(reverse("token-list"), token_form("two"))

    refused = client.post(reverse("token-list"), token_form("three"))

    assert refused.status_code == 400
    assert "You already have 2 tokens; revoke one first." in refused.content.decode()
    assert 'id="new-token"' not in refused.content.decode()
    assert sorted(AccessToken.objects.values_list("name", flat=True)) == ["one", "two"]

    client.post(revoke_url(AccessToken.objects.get(name="one")))
    assert shown_token(client.post(reverse("token-list"), token_form("three"))).startswith("gh_")


def test_limit_counts_only_the_users_own_live_tokens(client, settings, researcher, outsider):
    settings.MAX_ACCESS_TOKENS_PER_USER = 1
    new_token(outsider)
    client.force_login(researcher)

    assert client.post(reverse("token-list"), token_form("mine")).status_code == 200


def test_unverified_account_cannot_create_a_token(client, db):
    unverified = UserFactory(verified=False)
    client.force_login(unverified)

    response = client.post(reverse("token-list"), token_form("laptop"))

    assert response.status_code == 400
    assert "Verify your e-mail address before creating a token." in response.content.decode()
    assert AccessToken.objects.count() == 0


def test_anonymous_visitor_is_sent_to_sign_in(client, db):
    response = client.post(reverse("token-list"), token_form("laptop"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))
    assert AccessToken.objects.count() == 0


def test_token_gets_the_chosen_scopes_and_expiry(client, researcher):
    client.force_login(researcher)
    before = timezone.now()
    client.post(reverse("token-list"), token_form("ci", scopes=["manage"], lifetime_days=7))

    token = AccessToken.objects.get(user=researcher, name="ci")
    assert token.scopes == ["manage"]
    assert before + timedelta(days=7) <= token.expires_at <= timezone.now() + timedelta(days=7)


@pytest.mark.parametrize(
    "form",
    [
        token_form("x", scopes=["admin"]),
        token_form("x", scopes=[]),
        token_form("x", lifetime_days=0),
        token_form("x", lifetime_days=366),
    ],
    ids=["unknown-scope", "no-scope", "zero-days", "over-a-year"],
)
def test_bad_scopes_or_lifetime_create_nothing(client, researcher, form):
    client.force_login(researcher)
    with nothing_changes():
        response = client.post(reverse("token-list"), form)
    assert response.status_code == 400
