"""Personal access tokens: creating, revoking, authenticating."""

from __future__ import annotations

import hashlib

import pytest

from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.models import AccessToken
from access.services.tokens import TOKEN_PATTERN, token_authenticate, token_create, token_revoke
from tests.factories import UserFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes


def test_it_creates_a_token_and_stores_only_its_sha256(researcher):
    since = last_audit_id()

    token, raw = token_create(user=researcher, name="  laptop  ")

    assert TOKEN_PATTERN.match(raw)
    token.refresh_from_db()
    assert token.name == "laptop"
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.hint == raw[:7]
    assert raw not in {token.name, token.token_hash, token.hint}
    assert token.last_used_at is None and token.revoked_at is None
    assert audit_actions(since) == ["token.created"]


def test_each_token_is_different(researcher):
    _, first = token_create(user=researcher, name="one")
    _, second = token_create(user=researcher, name="two")

    assert first != second


@pytest.mark.parametrize("name", ["", "   ", "n" * 101])
def test_a_token_needs_a_name_of_reasonable_length(researcher, name):
    with nothing_changes(), pytest.raises(InvalidInput) as error:
        token_create(user=researcher, name=name)

    assert error.value.code == "token_name"


def test_an_unverified_user_cannot_create_a_token(db):
    unverified = UserFactory(verified=False)

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        token_create(user=unverified, name="cli")

    assert error.value.code == "email_unverified"


def test_a_user_may_hold_a_limited_number_of_live_tokens(researcher, settings):
    settings.MAX_ACCESS_TOKENS_PER_USER = 2
    first, _ = token_create(user=researcher, name="one")
    token_create(user=researcher, name="two")

    with nothing_changes(), pytest.raises(InvalidInput) as error:
        token_create(user=researcher, name="three")
    assert error.value.code == "token_limit"

    # Revoked tokens do not count.
    token_revoke(token_id=first.pk, user=researcher)
    token, _ = token_create(user=researcher, name="three")
    assert token.name == "three"


def test_the_limit_is_per_user(researcher, reviewer, settings):
    settings.MAX_ACCESS_TOKENS_PER_USER = 1
    token_create(user=researcher, name="mine")

    token, _ = token_create(user=reviewer, name="theirs")

    assert token.user == reviewer


def test_revoking_a_token_records_the_time_and_an_audit_event(researcher):
    token, _ = token_create(user=researcher, name="cli")
    since = last_audit_id()

    token_revoke(token_id=token.pk, user=researcher)

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert audit_actions(since) == ["token.revoked"]


def test_revoking_twice_is_refused(researcher):
    token, _ = token_create(user=researcher, name="cli")
    token_revoke(token_id=token.pk, user=researcher)

    with nothing_changes(), pytest.raises(InvalidTransition):
        token_revoke(token_id=token.pk, user=researcher)


def test_nobody_else_can_revoke_a_token(researcher, owner):
    token, _ = token_create(user=researcher, name="cli")

    with nothing_changes(), pytest.raises(AccessToken.DoesNotExist):
        token_revoke(token_id=token.pk, user=owner)

    token.refresh_from_db()
    assert token.revoked_at is None


def test_authenticating_returns_the_token_with_its_user_and_marks_it_used(
    researcher, django_assert_num_queries
):
    token, raw = token_create(user=researcher, name="cli")

    with django_assert_num_queries(2):
        authenticated = token_authenticate(raw)

    assert authenticated.pk == token.pk
    assert authenticated.user == researcher
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert token.last_used_at == authenticated.last_used_at


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "gh_",
        "gh_short",
        "xx_" + "a" * 43,
        "gh_" + "a" * 42,
        "gh_" + "a" * 44,
        "gh_" + "a" * 42 + "!",
        " gh_" + "a" * 43,
    ],
)
def test_a_malformed_token_is_refused_without_a_lookup(db, raw, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(InvalidInput) as error:
        token_authenticate(raw)

    assert error.value.code == "token_malformed"


def test_an_unknown_token_is_refused(researcher):
    token_create(user=researcher, name="cli")

    with pytest.raises(InvalidInput) as error:
        token_authenticate("gh_" + "A" * 43)

    assert error.value.code == "token_invalid"


def test_a_revoked_token_is_refused_and_not_marked_used(researcher):
    token, raw = token_create(user=researcher, name="cli")
    token_revoke(token_id=token.pk, user=researcher)

    with pytest.raises(InvalidInput) as error:
        token_authenticate(raw)

    assert error.value.code == "token_revoked"
    token.refresh_from_db()
    assert token.last_used_at is None


def test_the_token_of_a_deactivated_user_is_refused(researcher):
    _, raw = token_create(user=researcher, name="cli")
    researcher.is_active = False
    researcher.save(update_fields=["is_active"])

    with pytest.raises(InvalidInput) as error:
        token_authenticate(raw)

    assert error.value.code == "token_invalid"
