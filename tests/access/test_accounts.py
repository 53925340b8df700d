"""Accounts through django-allauth: e-mail login, mandatory verification, Argon2, rate limits, reset."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.cache import cache

from access.models import User
from tests.factories import PASSWORD as PASSWORD_OF_FACTORY_USERS

PASSWORD = "a long enough passphrase 42"


def sign_up(client, email="new@university.example"):
    return client.post(
        "/accounts/signup/",
        {"email": email, "full_name": "Nora New", "password1": PASSWORD, "password2": PASSWORD},
    )


@pytest.mark.django_db
def test_signup_sends_a_verification_link_and_keeps_the_account_unverified(client):
    response = sign_up(client)
    assert response.status_code == 302
    user = User.objects.get(email="new@university.example")
    assert user.full_name == "Nora New"
    assert not EmailAddress.objects.get(user=user).verified
    assert len(mail.outbox) == 1
    assert re.search(r"/accounts/confirm-email/\S+/", mail.outbox[0].body)


@pytest.mark.django_db
def test_an_unverified_account_cannot_sign_in_until_it_follows_the_link(client):
    sign_up(client)
    client.logout()
    response = client.post("/accounts/login/", {"login": "new@university.example", "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    assert response.status_code == 302 and "confirm-email" in response["Location"]

    link = re.search(r"(/accounts/confirm-email/\S+/)", mail.outbox[-1].body).group(1)
    client.post(link)
    assert EmailAddress.objects.get(email="new@university.example").verified
    client.logout()
    client.post("/accounts/login/", {"login": "new@university.example", "password": PASSWORD})
    assert client.session["_auth_user_id"] == str(User.objects.get(email="new@university.example").pk)


@pytest.mark.django_db
def test_passwords_are_hashed_with_argon2(client):
    sign_up(client)
    assert User.objects.get(email="new@university.example").password.startswith("argon2")


@pytest.mark.django_db
def test_failed_logins_are_rate_limited_in_the_cache(client, settings, researcher):
    settings.ACCOUNT_RATE_LIMITS = {"login_failed": "3/m/ip"}
    cache.clear()
    try:
        pages = [
            client.post("/accounts/login/", {"login": researcher.email, "password": "wrong password"})
            for _ in range(4)
        ]
        assert all("Too many failed login attempts" not in page.content.decode() for page in pages[:3])
        assert "Too many failed login attempts" in pages[3].content.decode()
        # Even the right password is refused while the limit holds.
        client.post("/accounts/login/", {"login": researcher.email, "password": PASSWORD_OF_FACTORY_USERS})
        assert "_auth_user_id" not in client.session
    finally:
        cache.clear()


@pytest.mark.django_db
def test_password_reset_sends_a_link(client, researcher):
    response = client.post("/accounts/password/reset/", {"email": researcher.email})
    assert response.status_code == 302
    assert mail.outbox[-1].to == [researcher.email]
    assert "/accounts/password/reset/key/" in mail.outbox[-1].body
