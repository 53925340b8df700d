"""Issuing download URLs: authorise, record, presign. The portal never streams weight bytes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from access import download_policy, policy
from access.audit import audit_record_with_row
from access.errors import NotAllowed
from access.models import AccessToken, DownloadEvent, Grant
from portal import storage
from portal.storage_probe import storage_unavailable_reason
from releases.models import Artifact, Tier

logger = logging.getLogger(__name__)


class DownloadRefused(NotAllowed):
    def __init__(self, decision: download_policy.DownloadDecision):
        super().__init__(decision.message, code=decision.code)
        self.decision = decision


class DownloadsUnavailable(Exception):
    """The user may download, but the object storage failed its last check: no URL, nothing recorded.

    Routes answer 503 with ``message`` and ``RETRY_AFTER_SECONDS``; ``reason`` (what the check saw, which may
    name internal hosts) goes to the log, not to the user.
    """

    code = "storage_unavailable"
    message = (
        "Downloads are paused because the file storage is not answering. Nothing was recorded; "
        "please try again in a minute."
    )
    RETRY_AFTER_SECONDS = 60

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class IssuedDownload:
    url: str
    expires_at: datetime
    event: DownloadEvent


def download_issue(
    *,
    user,
    artifact: Artifact,
    tiers: list[Tier] | None = None,
    grants: list[Grant] | None = None,
    ip_address: str | None = None,
    access_token: AccessToken | None = None,
) -> IssuedDownload:
    """Check the user's access at this moment, record a download event and its audit
    row, and return a presigned URL for the artifact's exact object version.

    Raises DownloadRefused (with the policy's decision) when access is refused. Callers
    that loaded the artifact's tiers with it (``access.selectors.downloadable_artifacts``)
    pass them, and the issue then costs two statements on PostgreSQL: the grants, and
    one that writes the event with its audit row.
    Presigning needs no round trip to the store, so the store's health comes from a
    per-process probe (portal/storage_probe.py): while its last check failed, raises
    DownloadsUnavailable and records nothing, rather than hand out a URL that cannot be fetched.
    """
    decision = download_policy.download_decision(user, artifact, tiers=tiers, grants=grants)
    if not decision.allowed:
        raise DownloadRefused(decision)
    return _issue(
        user=user, artifact=artifact, decision=decision, ip_address=ip_address, access_token=access_token
    )


def download_issue_newest(
    *,
    user,
    candidates: list[tuple[Artifact, list[Tier]]],
    ip_address: str | None = None,
    access_token: AccessToken | None = None,
) -> IssuedDownload:
    """Issue a URL for the first of ``candidates`` (newest first) the user may download now.

    For a path asked at a moving revision (the hub's ``main``): the same file in several
    releases, the user's grants read once for all of them. Refused with the newest
    candidate's reason when none may be downloaded.
    """
    if not candidates:
        raise ValueError("download_issue_newest needs at least one candidate")
    all_tiers = [tier for _, tiers in candidates for tier in tiers if tier.is_open]
    needs_grants = all_tiers and not any(tier.gate == Tier.Gate.OPEN for tier in all_tiers)
    grants = (
        list(download_policy.download_grants(user, all_tiers))
        if needs_grants and policy.has_verified_email(user)
        else []
    )
    first_refusal = None
    for artifact, tiers in candidates:
        decision = download_policy.download_decision(user, artifact, tiers=tiers, grants=grants)
        if decision.allowed:
            return _issue(
                user=user,
                artifact=artifact,
                decision=decision,
                ip_address=ip_address,
                access_token=access_token,
            )
        first_refusal = first_refusal or decision
    raise DownloadRefused(first_refusal)


def _issue(
    *, user, artifact: Artifact, decision: download_policy.DownloadDecision, ip_address, access_token
) -> IssuedDownload:
    unavailable = storage_unavailable_reason()
    if unavailable is not None:
        logger.warning(
            "Download of artifact %s refused: object storage unavailable: %s", artifact.pk, unavailable
        )
        raise DownloadsUnavailable(unavailable)
    lifetime = settings.DOWNLOAD_URL_LIFETIME_SECONDS
    # Presigning is local computation; it runs before the transaction so that a
    # failure leaves no event behind, and no network I/O happens inside it.
    url = storage.presign_download(
        key=artifact.storage_key,
        version_id=artifact.object_version or None,
        filename=artifact.filename,
        lifetime_seconds=lifetime,
    )
    now = timezone.now()
    grant = decision.grant
    event = DownloadEvent(
        user=user,
        artifact=artifact,
        tier=decision.tier,
        grant=grant,
        license_version_id=grant.license_acceptance.license_version_id if grant else None,
        access_token=access_token,
        created_at=now,
        url_expires_at=now + timedelta(seconds=lifetime),
        ip_address=ip_address,
    )
    # One statement writes the event and its audit row together (its own transaction unless
    # the caller is in one): no URL leaves without both.
    audit_record_with_row(
        row=event,
        action="artifact.downloaded",
        actor=user,
        ip_address=ip_address,
        payload={
            "artifact_id": artifact.pk,
            "tier_id": decision.tier.pk,
            "grant_id": grant.pk if grant else None,
            "token_id": access_token.pk if access_token else None,
        },
    )
    return IssuedDownload(url=url, expires_at=event.url_expires_at, event=event)
