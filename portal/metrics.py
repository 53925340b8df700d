"""Prometheus metrics, served at ``/metrics`` to scrapers holding METRICS_TOKEN.

The endpoint is off (404) while METRICS_TOKEN is unset, and answers 401 to a request without
``Authorization: Bearer <METRICS_TOKEN>``: metrics name routes and volumes nobody outside needs to see.

What is measured, and where it comes from:

- ``gatehouse_http_requests_total{method, route, status}``: counted by ``RequestMetricsMiddleware`` as each
  response leaves. ``route`` is the matched URL pattern's view name (``tier-detail``, ``api-v1:…``) or
  ``unmatched``, ``status`` the class (``2xx``…), ``method`` one of ``HTTP_METHODS`` or ``other``: the
  label values are a closed set whatever callers send.
- ``gatehouse_download_urls_issued_total{route}``: ``download_url_issued(route)``, called where a
  presigned download URL is handed out (the page, the API, the hub routes).

  These two are counted in the process that served the request. Under gunicorn with several workers,
  set PROMETHEUS_MULTIPROC_DIR: prometheus_client then keeps each process's counts in files in that
  directory, and a scrape (answered by any one worker) adds them all up. The directory must be emptied
  when gunicorn starts, and gunicorn's ``child_exit`` hook must call
  ``prometheus_client.multiprocess.mark_process_dead(worker.pid)``. Without the variable, each process
  counts for itself and a scrape sees only the counts of the worker that answered it.
- ``gatehouse_celery_task_failures_total{task}``: the ``task_failure`` signal adds one to a hash in the
  broker's Redis (``TASK_FAILURES_KEY``), so the count covers every worker on every host.
- Read from the database or the broker at scrape time, each with one query or one Redis round trip,
  so a scrape costs the same however much data there is:
  ``gatehouse_applications{state}`` (every state, zeros included), ``gatehouse_tier_openings_total``
  (tiers that have opened: each opens once, ``opened_at`` is never cleared),
  ``gatehouse_celery_queue_length{queue}`` (messages waiting in each Celery queue, all priorities).
  When Redis does not answer, its metrics are left out of the scrape (and ``/readyz`` says why).
"""

from __future__ import annotations

import hmac
import logging
import os

import redis
from django.conf import settings
from django.db.models import Count
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as RedisChannel
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from portal.redis_clients import broker_redis

logger = logging.getLogger(__name__)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
DOWNLOAD_ROUTES = ("page", "api", "hub")
TASK_FAILURES_KEY = "gatehouse:metrics:task_failures"

# Not in prometheus_client's default registry: each scrape builds the registry it answers from.
REQUESTS = Counter(
    "gatehouse_http_requests",
    "HTTP requests answered, by method, route (URL pattern) and status class.",
    ["method", "route", "status"],
    registry=None,
)
DOWNLOAD_URLS = Counter(
    "gatehouse_download_urls_issued",
    "Presigned download URLs handed out, by route (page, api, hub).",
    ["route"],
    registry=None,
)


def multiprocess_mode() -> bool:
    """True when prometheus_client keeps counts in PROMETHEUS_MULTIPROC_DIR (it reads the variable itself)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def download_url_issued(route: str) -> None:
    """Count one presigned download URL handed out by ``route``: "page", "api" or "hub"."""
    if route not in DOWNLOAD_ROUTES:
        raise ValueError(f"route must be one of {', '.join(DOWNLOAD_ROUTES)}, not {route!r}")
    DOWNLOAD_URLS.labels(route=route).inc()


class RequestMetricsMiddleware:
    """Counts every response, including those other middleware answered (placed near the top)."""

    def __init__(self, get_response):
        self.get_response = get_response
        # The download series exist (at zero) from the web process's start, so rate() sees the first one.
        for route in DOWNLOAD_ROUTES:
            DOWNLOAD_URLS.labels(route=route)

    def __call__(self, request):
        response = self.get_response(request)
        method = request.method if request.method in HTTP_METHODS else "other"
        match = getattr(request, "resolver_match", None)
        route = match.view_name if match is not None else "unmatched"
        REQUESTS.labels(method=method, route=route, status=f"{response.status_code // 100}xx").inc()
        return response


# --- Read at scrape time ---------------------------------------------------------------------------


class ScrapeTimeCollector:
    """The metrics read from the database and Redis when Prometheus asks."""

    def collect(self):
        yield _applications_by_state()
        yield _tier_openings()
        client = broker_redis()
        if client is None:
            return
        try:
            yield _queue_lengths(client)
            yield _task_failures(client)
        except redis.RedisError as error:
            logger.warning("metrics: the broker's Redis did not answer, its metrics are left out: %s", error)


def _applications_by_state() -> GaugeMetricFamily:
    from access.models import Application

    rows = Application.objects.values("status").annotate(count=Count("pk")).order_by()
    counts = {row["status"]: row["count"] for row in rows}
    family = GaugeMetricFamily("gatehouse_applications", "Applications, by state.", labels=["state"])
    for state in Application.Status.values:
        family.add_metric([state], counts.get(state, 0))
    return family


def _tier_openings() -> CounterMetricFamily:
    from releases.models import Tier

    return CounterMetricFamily(
        "gatehouse_tier_openings",
        "Tiers that have opened (each opens once).",
        value=Tier.objects.opened().count(),
    )


def celery_queue_names() -> list[str]:
    """The default queue and any declared in CELERY_TASK_QUEUES."""
    from portal.celery import app

    names = {app.conf.task_default_queue}
    names.update(queue.name for queue in app.conf.task_queues or ())
    return sorted(names)


def _queue_lengths(client: redis.Redis) -> GaugeMetricFamily:
    names = celery_queue_names()
    # kombu keeps each priority level of a queue in a list of its own: the bare name, then name + sep + level.
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            for priority in PRIORITY_STEPS:
                pipe.llen(f"{name}{RedisChannel.sep}{priority}" if priority else name)
        lengths = pipe.execute()
    family = GaugeMetricFamily(
        "gatehouse_celery_queue_length", "Messages waiting in each Celery queue.", labels=["queue"]
    )
    steps = len(PRIORITY_STEPS)
    for index, name in enumerate(names):
        family.add_metric([name], sum(lengths[index * steps : (index + 1) * steps]))
    return family


def _task_failures(client: redis.Redis) -> CounterMetricFamily:
    family = CounterMetricFamily(
        "gatehouse_celery_task_failures",
        "Celery tasks that failed (after their retries), by task.",
        labels=["task"],
    )
    for task, count in sorted(client.hgetall(TASK_FAILURES_KEY).items()):
        family.add_metric([task.decode()], int(count))
    return family


def count_task_failure(sender=None, **kwargs) -> None:
    """``task_failure`` receiver (portal/celery.py): one more failure of ``sender`` in Redis."""
    client = broker_redis()
    if client is None or sender is None:
        return
    try:
        client.hincrby(TASK_FAILURES_KEY, sender.name, 1)
    except redis.RedisError as error:
        logger.warning("metrics: could not count the failure of %s: %s", sender.name, error)


def connect_celery_signals() -> None:
    """Called by portal/celery.py; idempotent."""
    from celery.signals import task_failure

    task_failure.connect(count_task_failure, dispatch_uid="portal.metrics.task_failure")


# --- The endpoint ----------------------------------------------------------------------------------


def metrics_registry() -> CollectorRegistry:
    """What one scrape reports: this process's counters (or, in multiprocess mode, every process's)
    and the scrape-time metrics."""
    registry = CollectorRegistry()
    if multiprocess_mode():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
        registry.register(DOWNLOAD_URLS)
    registry.register(ScrapeTimeCollector())
    return registry


def _authorised(request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = settings.METRICS_TOKEN.encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)


@never_cache
@require_GET
def metrics_view(request):
    if not settings.METRICS_TOKEN:
        raise Http404("Metrics are off.")
    if not _authorised(request):
        response = JsonResponse(
            {"error": "unauthorized", "message": "Send Authorization: Bearer <METRICS_TOKEN>."}, status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
