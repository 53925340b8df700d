"""The Content-Security-Policy header: settings.CONTENT_SECURITY_POLICY plus the object storage's origin.

Publishers' browsers PUT upload parts straight to the bucket through presigned URLs
(releases/static/releases/upload.js), so connect-src must name the storage's origin. That origin is
the one the presigned URLs actually use, which depends on the endpoint, the addressing style (path or
virtual-hosted bucket) and, on AWS, the region: rather than re-deriving boto3's rules, it is read off a
presigned URL (signing is local, no request is sent), once per storage configuration. It is taken
from the settings at response time, so a test that points the S3_* settings at its own server gets a
policy that names it.
"""

from __future__ import annotations

import functools
import logging
from urllib.parse import urlsplit

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from portal import storage

logger = logging.getLogger(__name__)


def storage_origin() -> str | None:
    """``scheme://host[:port]`` of the presigned URLs, or None when none can be signed."""
    return _storage_origin(
        settings.S3_ENDPOINT_URL,
        settings.S3_BUCKET,
        settings.S3_REGION,
        settings.S3_ADDRESSING_STYLE,
        bool(settings.S3_ACCESS_KEY_ID),
    )


@functools.lru_cache(maxsize=8)
def _storage_origin(*storage_configuration) -> str | None:
    try:
        url = storage.presign_download(
            key="content-security-policy", version_id=None, filename="origin", lifetime_seconds=1
        )
    except Exception as error:  # noqa: BLE001 - whatever stops signing (no credentials found, no bucket)
        # Uploads cannot work without signing either; the pages still get their policy. Logged once per
        # storage configuration (the answer is cached).
        logger.warning("No presigned URL to take the storage origin from (%s): connect-src omits it", error)
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, with the storage origin added to connect-src of every policy."""

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        origin = None if report_only else storage_origin()
        if origin:
            update = dict(parts.update or {})
            sources = update.get("connect-src") or []
            update["connect-src"] = [*([sources] if isinstance(sources, str) else sources), origin]
            parts.update = update
        return parts
