"""Issuing a download URL as JSON: the same policy, event and audit row as the pages.

POST, because every URL issued is recorded: a GET that changes state would be retried and
prefetched by clients and proxies. A script asks, then fetches ``url`` from object storage
itself before ``expires_at``; the portal never carries the bytes.
"""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema

from access.selectors import downloadable_artifacts
from access.services.downloads import DownloadRefused, DownloadsUnavailable, download_issue
from access.views.common import client_ip
from api.auth import DOWNLOAD
from api.errors import ERROR_RESPONSES, ApiError
from portal.metrics import download_url_issued

router = Router()


class DownloadUrlOut(Schema):
    url: str
    expires_at: datetime
    path: str
    size: int | None
    sha256: str


@router.post(
    "/artifacts/{artifact_id}/download-url",
    response={200: DownloadUrlOut, **ERROR_RESPONSES},
    auth=DOWNLOAD,
)
def download_url(request: HttpRequest, artifact_id: int):
    """A presigned URL for this file's exact stored version, valid until ``expires_at``.

    Refusals say why and what to do: ``not_open``, ``email_unverified``, ``no_grant``,
    ``pending``, ``expired``, ``revoked``, ``license_changed`` (403, with ``action_url``);
    503 ``storage_unavailable`` while the object storage is down (nothing recorded).
    Four statements with a token (five when the token's last use is recorded, at most once a
    minute), whatever the number of tiers and grants.
    """
    found = downloadable_artifacts(pk=artifact_id)
    if not found:
        raise ApiError(404, "not_found", "No such file, or no tier includes it.")
    [(artifact, tiers)] = found
    try:
        issued = download_issue(
            user=request.auth.user,
            artifact=artifact,
            tiers=tiers,
            ip_address=client_ip(request),
            access_token=request.auth.token,
        )
    except DownloadRefused as refused:
        decision = refused.decision
        action_url = request.build_absolute_uri(decision.action_url) if decision.action_url else ""
        raise ApiError(403, decision.code, decision.message, action_url=action_url) from None
    except DownloadsUnavailable as unavailable:
        raise ApiError(
            503,
            unavailable.code,
            unavailable.message,
            headers={"Retry-After": str(unavailable.RETRY_AFTER_SECONDS)},
        ) from None
    download_url_issued("api")
    return {
        "url": issued.url,
        "expires_at": issued.expires_at,
        "path": artifact.path,
        "size": artifact.size,
        "sha256": artifact.sha256,
    }
