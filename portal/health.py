"""``/healthz`` (is the process alive?) and ``/readyz`` (can it do its work?), for probes and monitors.

Both answer JSON to anyone, without a session or a database row being written, are never cached, and
are not rate-limited; SECURE_REDIRECT_EXEMPT keeps them on plain HTTP for a load balancer's probe when
SECURE_SSL_REDIRECT is on. Like every page they need a Host header in ALLOWED_HOSTS.

- ``/healthz``: 200 ``{"status": "ok"}``, touching neither the database nor Redis, so that a restart is
  only ever triggered by the process itself being stuck, never by a dependency's outage.
- ``/readyz``: 200 when every check passes, 503 otherwise, with ``{"status": "ok"|"unavailable",
  "checks": {name: {"ok": bool, ...}}}``. Checks: ``database`` (``SELECT 1``), ``redis`` (PING of the
  cache's and the broker's Redis), ``storage`` (``portal.storage.bucket_check``, one quick HEAD of the
  bucket), ``beat`` (age of the active beat's heartbeat, portal/beat.py, at most
  BEAT_HEARTBEAT_MAX_AGE_SECONDS). A failed check says which kind of failure it was; the details, which
  may name internal hosts, go to the log (with the request id) rather than to an anonymous caller.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from portal import storage
from portal.beat import heartbeat_age_seconds
from portal.redis_clients import redis_client, redis_urls

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request):
    checks = {
        "database": check_database(),
        "redis": check_redis(),
        "storage": check_storage(),
        "beat": check_beat(),
    }
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        logger.warning("readyz: the database did not answer: %s", error)
        return {"ok": False, "error": f"database did not answer ({type(error).__name__})"}
    return {"ok": True}


def check_redis() -> dict:
    urls = redis_urls()
    if not urls:
        return {"ok": True, "skipped": "no Redis configured"}
    failed = []
    for role, url in urls.items():
        try:
            redis_client(url).ping()
        except Exception as error:  # redis-py raises its own errors and OSError subclasses
            logger.warning("readyz: the %s Redis did not answer: %s", role, error)
            failed.append(f"{role} Redis did not answer ({type(error).__name__})")
    return {"ok": False, "error": "; ".join(failed)} if failed else {"ok": True}


def check_storage() -> dict:
    try:
        storage.bucket_check()
    except storage.StorageUnavailable as error:
        logger.warning("readyz: %s", error)
        return {"ok": False, "error": "object storage failed the bucket check"}
    return {"ok": True}


def check_beat() -> dict:
    max_age = settings.BEAT_HEARTBEAT_MAX_AGE_SECONDS
    try:
        age = heartbeat_age_seconds()
    except Exception as error:  # the cache backend's own errors
        logger.warning("readyz: could not read beat's heartbeat: %s", error)
        return {"ok": False, "age_seconds": None, "error": "could not read the heartbeat"}
    if age is None:
        return {"ok": False, "age_seconds": None, "error": "no heartbeat from beat"}
    result = {"ok": age <= max_age, "age_seconds": round(age, 1)}
    if not result["ok"]:
        result["error"] = f"beat's last heartbeat is older than {max_age} s"
    return result
