"""Issuing download URLs: authorise, record, presign. The portal never streams weight bytes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from access import policy
from access.audit import audit_record
from access.errors import NotAllowed
from access.models import AccessToken, DownloadEvent
from portal import storage
from releases.models import Artifact


class DownloadRefused(NotAllowed):
    def __init__(self, decision: policy.DownloadDecision):
        super().__init__(decision.message, code=decision.code)
        self.decision = decision


@dataclass(frozen=True)
class IssuedDownload:
    url: str
    expires_at: datetime
    event: DownloadEvent


def download_issue(
    *, user, artifact: Artifact, ip_address: str | None = None, access_token: AccessToken | None = None
) -> IssuedDownload:
    """Check the user's access at this moment, record a download event and its audit
    row, and return a presigned URL for the artifact's exact object version.

    Raises DownloadRefused (with the policy's decision) when access is refused.
    Presigning needs no round trip to the store, so an unreachable store does not
    stop a URL from being issued; the fetch from storage then fails for the client.
    """
    decision = policy.download_decision(user, artifact)
    if not decision.allowed:
        raise DownloadRefused(decision)
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
    with transaction.atomic():
        event = DownloadEvent.objects.create(
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
        audit_record(
            action="artifact.downloaded",
            target=event,
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
