"""Personal access tokens for command-line downloads.

A token is shown once, at creation; only its sha256 is stored. Tokens carry 256
bits of randomness, so a plain (unsalted) sha256 is enough to make the stored hash
useless to an attacker, and it allows a direct indexed lookup.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from access import download_rows, policy
from access.audit import audit_record
from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.models import AccessToken

MAX_TOKEN_NAME_LENGTH = 100
TOKEN_PATTERN = re.compile(r"gh_[A-Za-z0-9_-]{43}")
DEFAULT_TOKEN_SCOPES = (AccessToken.Scope.READ, AccessToken.Scope.DOWNLOAD)
# last_used_at is written at most once per this interval, so that a script issuing
# thousands of download URLs does not rewrite the token row on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def clean_scopes(scopes) -> list[str]:
    """The scopes as a sorted list of known values; InvalidInput names an unknown one."""
    known = set(AccessToken.Scope.values)
    unknown = sorted({str(scope) for scope in scopes} - known)
    if unknown:
        raise InvalidInput(
            f"Unknown scope {', '.join(unknown)}; use {', '.join(AccessToken.Scope.values)}.",
            code="token_scope_unknown",
        )
    if not scopes:
        raise InvalidInput("Give the token at least one scope.", code="token_scope_missing")
    return sorted(set(scopes))


def clean_lifetime_days(days: int) -> int:
    if not 1 <= days <= settings.MAX_ACCESS_TOKEN_LIFETIME_DAYS:
        raise InvalidInput(
            f"A token lives between 1 and {settings.MAX_ACCESS_TOKEN_LIFETIME_DAYS} days.",
            code="token_lifetime",
        )
    return days


def token_create(
    *,
    user,
    name: str,
    scopes=DEFAULT_TOKEN_SCOPES,
    lifetime_days: int | None = None,
) -> tuple[AccessToken, str]:
    """Create a token; returns the row and the raw token, which is never stored.

    Every new token expires: after ``lifetime_days`` (1 to MAX_ACCESS_TOKEN_LIFETIME_DAYS),
    by default ACCESS_TOKEN_DEFAULT_LIFETIME_DAYS.
    """
    name = name.strip()
    if not name or len(name) > MAX_TOKEN_NAME_LENGTH:
        raise InvalidInput(
            f"Name the token, in at most {MAX_TOKEN_NAME_LENGTH} characters.", code="token_name"
        )
    scopes = clean_scopes(scopes)
    if lifetime_days is None:
        lifetime_days = settings.ACCESS_TOKEN_DEFAULT_LIFETIME_DAYS
    lifetime_days = clean_lifetime_days(lifetime_days)
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
        now = timezone.now()
        token = AccessToken.objects.create(
            user=user,
            name=name,
            token_hash=AccessToken.hash_token(raw),
            hint=raw[: len(AccessToken.PREFIX) + 4],
            scopes=scopes,
            created_at=now,
            expires_at=now + timedelta(days=lifetime_days),
        )
        audit_record(
            action="token.created",
            target=token,
            actor=user,
            payload={"name": name, "scopes": scopes, "expires_at": token.expires_at.isoformat()},
        )
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


def _token_with_user(token_hash: str) -> AccessToken | None:
    """The token with its user and ``user_email_verified``. Every API request asks, so on
    PostgreSQL it is hand-written SQL (access/download_rows.py); this ORM query is the reference."""
    if connection.vendor == "postgresql":
        found = download_rows.token_with_user(token_hash)
        if found is None:
            return None
        token, verified = found
        token.user_email_verified = verified
        return token
    return token_with_user_orm(token_hash)


def token_with_user_orm(token_hash: str) -> AccessToken | None:
    verified = EmailAddress.objects.filter(
        user_id=OuterRef("user_id"), email__iexact=OuterRef("user__email"), verified=True
    )
    return (
        AccessToken.objects.select_related("user")
        .annotate(user_email_verified=Exists(verified))
        .filter(token_hash=token_hash)
        .first()
    )


def token_authenticate(raw: str) -> AccessToken:
    """The live token for ``raw``, with its user; raises InvalidInput with a code that
    says what is wrong (malformed, unknown, revoked, expired).

    One query: the user and whether their e-mail address is verified come with the token,
    and the answer is remembered on the user for the policy (``policy.has_verified_email``).
    """
    if not TOKEN_PATTERN.fullmatch(raw):
        raise InvalidInput("The access token is malformed.", code="token_malformed")
    token = _token_with_user(AccessToken.hash_token(raw))
    if token is None or not token.user.is_active:
        raise InvalidInput("The access token is not valid.", code="token_invalid")
    if token.revoked_at is not None:
        raise InvalidInput(
            "The access token was revoked. Create a new one on your account page.", code="token_revoked"
        )
    now = timezone.now()
    if token.expires_at is not None and token.expires_at <= now:
        raise InvalidInput(
            f"The access token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC. "
            "Create a new one on your account page.",
            code="token_expired",
        )
    policy.remember_email_verified(token.user, token.user_email_verified)
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        AccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def token_from_header(header: str, *, scope: str) -> AccessToken:
    """The live token of an ``Authorization: Bearer <token>`` header, which must carry ``scope``.

    Raises InvalidInput for a malformed header or a token that is not live (answered 401), and
    NotAllowed ``token_scope_missing`` for a live token without the scope (answered 403). The
    pages' token routes and the API authenticate through it.
    """
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise InvalidInput("Use 'Authorization: Bearer <token>'.", code="auth_malformed")
    token = token_authenticate(raw.strip())
    if not token.has_scope(scope):
        raise NotAllowed(
            f"This token lacks the '{scope}' scope; create a token with it on your account page.",
            code="token_scope_missing",
        )
    return token
