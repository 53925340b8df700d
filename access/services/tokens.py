"""Personal access tokens for command-line downloads.

A token is shown once, at creation; only its sha256 is stored. Tokens carry 256
bits of randomness, so a plain (unsalted) sha256 is enough to make the stored hash
useless to an attacker, and it allows a direct indexed lookup.
"""

from __future__ import annotations

import re
import secrets

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from access import policy
from access.audit import audit_record
from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.models import AccessToken

MAX_TOKEN_NAME_LENGTH = 100
TOKEN_PATTERN = re.compile(r"gh_[A-Za-z0-9_-]{43}")


def token_create(*, user, name: str) -> tuple[AccessToken, str]:
    """Create a token; returns the row and the raw token, which is never stored."""
    name = name.strip()
    if not name or len(name) > MAX_TOKEN_NAME_LENGTH:
        raise InvalidInput(
            f"Name the token, in at most {MAX_TOKEN_NAME_LENGTH} characters.", code="token_name"
        )
    if not policy.has_verified_email(user):
        raise NotAllowed("Verify your e-mail address before creating a token.", code="email_unverified")
    with transaction.atomic():
        active = AccessToken.objects.select_for_update().filter(user=user, revoked_at__isnull=True)
        if len(active) >= settings.MAX_ACCESS_TOKENS_PER_USER:
            raise InvalidInput(
                f"You already have {settings.MAX_ACCESS_TOKENS_PER_USER} tokens; revoke one first.",
                code="token_limit",
            )
        raw = AccessToken.PREFIX + secrets.token_urlsafe(32)
        token = AccessToken.objects.create(
            user=user,
            name=name,
            token_hash=AccessToken.hash_token(raw),
            hint=raw[: len(AccessToken.PREFIX) + 4],
        )
        audit_record(action="token.created", target=token, actor=user, payload={"name": name})
    return token, raw


def token_revoke(*, token_id: int, user) -> AccessToken:
    with transaction.atomic():
        token = AccessToken.objects.select_for_update().get(pk=token_id, user=user)
        if token.revoked_at is not None:
            raise InvalidTransition("This token is already revoked.")
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(action="token.revoked", target=token, actor=user)
    return token


def token_authenticate(raw: str) -> AccessToken:
    """The live token for ``raw``, with its user; raises InvalidInput with a code that
    says what is wrong (malformed, unknown, revoked)."""
    if not TOKEN_PATTERN.fullmatch(raw):
        raise InvalidInput("The access token is malformed.", code="token_malformed")
    token = AccessToken.objects.select_related("user").filter(token_hash=AccessToken.hash_token(raw)).first()
    if token is None or not token.user.is_active:
        raise InvalidInput("The access token is not valid.", code="token_invalid")
    if token.revoked_at is not None:
        raise InvalidInput(
            "The access token was revoked. Create a new one on your account page.", code="token_revoked"
        )
    now = timezone.now()
    AccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now
    return token
