"""Scenes for the view tests: a user's standing on a tier, set up through the services.

Factories build publisher-side rows; a researcher's applications and grants are
created here by calling the same services the pages call, so that the rows (and
their license acceptances and audit events) are the ones real use leaves behind.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from datetime import timedelta

from django.utils import timezone

from access.models import AccessToken, Application, Grant, LicenseAcceptance
from access.services.applications import application_approve, application_reject, application_submit
from access.services.grants import grant_revoke, tier_license_accept
from access.services.tokens import token_create
from releases.models import Artifact, Release, Tier


def submit(user, tier: Tier, **fields) -> Application:
    """A pending application of ``user`` for ``tier``, with its license acceptance."""
    arguments = {
        "affiliation": "University of Examples",
        "intended_use": "Evaluating robustness of the model.",
        "answers": {},
        "typed_name": user.full_name,
        "seen_text_sha256": tier.license.current_version.text_sha256,
        "ip_address": "192.0.2.10",
    }
    arguments.update(fields)
    return application_submit(user=user, tier=tier, **arguments)


def approve(application: Application, reviewer) -> Grant:
    application_approve(application_id=application.pk, reviewer=reviewer)
    return Grant.objects.get(application=application)


def reject(application: Application, reviewer, reason: str) -> Application:
    return application_reject(application_id=application.pk, reviewer=reviewer, reason=reason)


def approved_grant(user, tier: Tier, reviewer) -> Grant:
    """An active grant of ``user`` on ``tier``: by application and approval, or by accepting the license."""
    if tier.gate == Tier.Gate.APPLICATION:
        return approve(submit(user, tier), reviewer)
    return tier_license_accept(
        user=user,
        tier=tier,
        typed_name=user.full_name,
        seen_text_sha256=tier.license.current_version.text_sha256,
        ip_address="192.0.2.10",
    )


def make_expired(grant: Grant) -> Grant:
    """A grant whose date has passed (the periodic task may not have marked it yet)."""
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(days=1))
    grant.refresh_from_db()
    return grant


def revoke(grant: Grant, actor, reason: str = "Shared the weights publicly.") -> Grant:
    return grant_revoke(grant_id=grant.pk, actor=actor, reason=reason)


def acceptance_for(user, tier: Tier) -> LicenseAcceptance:
    """A bare license acceptance, for scenes that need many rows fast."""
    version = tier.license.current_version
    return LicenseAcceptance.objects.create(
        user=user, license_version=version, text_sha256=version.text_sha256, typed_name=user.full_name
    )


def new_token(user, name: str = "laptop", scopes=("read", "download", "manage")) -> tuple[AccessToken, str]:
    return token_create(user=user, name=name, scopes=scopes)


def upload_artifact(s3, release: Release, path: str, body: bytes) -> Artifact:
    """Put real bytes in SeaweedFS and record them as an artifact of ``release``."""
    info = s3.put(s3.key(path.rsplit("/", 1)[-1]), body)
    return Artifact.objects.create(
        release=release,
        path=path,
        size=info.size,
        sha256=info.sha256,
        storage_key=info.key,
        object_version=info.version_id or "",
    )


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET ``url`` as a download client would; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - local test servers
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
