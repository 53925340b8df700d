"""A fixed-window request limit per token (or per signed-in user) in the shared cache.

Fixed one-minute windows are coarse (a client may send up to twice the limit across a
window boundary) but cost one cache round trip per request, and every web process sees
the same counters because the cache is Redis. On Redis the count is one pipelined round
trip (INCR, then EXPIRE ... NX so the first request of a window sets its expiry); Django's
``cache.incr`` would take two (EXISTS, then INCRBY) and cannot set an expiry. The demo's
file or in-memory cache goes through Django's cache API.
"""

from __future__ import annotations

import functools
import time

import redis
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
    count = _redis_count(key) if settings.CACHE_URL.startswith("redis") else _cache_count(key)
    if count > limit:
        retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now))
        raise ApiError(
            429,
            "rate_limited",
            f"More than {limit} requests in a minute; try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


def _redis_count(key: str) -> int:
    pipeline = _redis(settings.CACHE_URL).pipeline(transaction=False)
    pipeline.incr(f"{settings.CACHES['default']['KEY_PREFIX']}:{key}")
    pipeline.expire(f"{settings.CACHES['default']['KEY_PREFIX']}:{key}", WINDOW_SECONDS * 2, nx=True)
    count, _ = pipeline.execute()
    return count


@functools.lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    # One connection pool per process (and per URL, for tests that point the cache elsewhere).
    return redis.Redis.from_url(url)


def _cache_count(key: str) -> int:
    try:
        return cache.incr(key)
    except ValueError:
        # First request of the window. add() loses to a concurrent first request; count again.
        if cache.add(key, 1, timeout=WINDOW_SECONDS * 2):
            return 1
        return cache.incr(key)
