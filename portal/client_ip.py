"""The client's IP address, by the rule django-allauth follows for its rate limits.

Behind ``ALLAUTH_TRUSTED_PROXY_COUNT`` reverse proxies (the TRUSTED_PROXY_COUNT variable; 1 behind
deploy/nginx), each proxy appends the address it received the request from to X-Forwarded-For, so the
client is the entry that many places from the right: entries further left are whatever the client
chose to send. With 0 proxies the header is ignored and REMOTE_ADDR is the client. One rule for the
license acceptances, download events and audit rows Gatehouse records and for allauth's limits, so an
address in the audit log is the one that was rate-limited.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, or None when the request does not carry a usable one.

    None rather than a guess when X-Forwarded-For has fewer entries than there are trusted proxies
    (the request did not come through them all: REMOTE_ADDR would be a proxy's or a stranger's
    address) or when the entry is not an IP address.
    """
    proxy_count = settings.ALLAUTH_TRUSTED_PROXY_COUNT
    if proxy_count > 0:
        forwarded = [entry.strip() for entry in request.headers.get("X-Forwarded-For", "").split(",")]
        forwarded = [entry for entry in forwarded if entry]
        if len(forwarded) < proxy_count:
            return None
        return _ip_address(forwarded[-proxy_count])
    return _ip_address(request.META.get("REMOTE_ADDR", ""))


def _ip_address(text: str) -> str | None:
    # The address columns are GenericIPAddressField: only a valid address may reach them.
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None
