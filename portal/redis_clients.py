"""Plain redis-py clients, for the few things that need Redis itself rather than Django's cache API.

Beat's singleton lock (portal/beat.py), the cluster-wide count of failed tasks and the depth of Celery's
queues (portal/metrics.py) live in the broker's Redis: beat and the workers talk to it anyway, and a beat
that cannot reach it could not send a task either. ``/readyz`` pings the cache's and the broker's Redis.

One client (with its connection pool) per URL and process; redis-py makes a pool opened before a fork
start afresh in the child. Short timeouts: a health check or a scrape must answer even when Redis hangs.
"""

from __future__ import annotations

import functools

import redis
from django.conf import settings

REDIS_SCHEMES = ("redis://", "rediss://")
TIMEOUT_SECONDS = 2


@functools.lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS, health_check_interval=30
    )


def broker_redis() -> redis.Redis | None:
    """The broker's Redis, or None when the broker is not Redis (the demo's filesystem broker)."""
    url = settings.CELERY_BROKER_URL
    return redis_client(url) if url.startswith(REDIS_SCHEMES) else None


def redis_urls() -> dict[str, str]:
    """The Redis servers this process depends on, by role ("cache", "broker"); one entry if shared."""
    urls: dict[str, str] = {}
    cache_url = settings.CACHE_URL
    if cache_url.startswith(REDIS_SCHEMES):
        urls["cache"] = cache_url
    broker_url = settings.CELERY_BROKER_URL
    if broker_url.startswith(REDIS_SCHEMES) and broker_url not in urls.values():
        urls["broker"] = broker_url
    return urls
