"""A fixed-window request limit per token (or per signed-in user) in the shared cache.

Fixed one-minute windows are coarse (a client may send up to twice the limit across a
window boundary) but cost one cache round trip per request, and every web process sees
the same counters because the cache is Redis.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

from api.errors import ApiError

WINDOW_SECONDS = 60


def rate_limit_check(subject: str) -> None:
    """Count one request for ``subject`` (e.g. ``token:12``); ApiError 429 past the limit."""
    limit = settings.API_RATE_LIMIT_PER_MINUTE
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    key = f"api-rate:{subject}:{window}"
    try:
        count = cache.incr(key)
    except ValueError:
        # First request of the window. add() loses to a concurrent first request; count again.
        if cache.add(key, 1, timeout=WINDOW_SECONDS * 2):
            count = 1
        else:
            count = cache.incr(key)
    if count > limit:
        retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now))
        raise ApiError(
            429,
            "rate_limited",
            f"More than {limit} requests in a minute; try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )
