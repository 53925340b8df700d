"""/metrics: only for the scraper's token; counters from where things happen, the rest read at scrape time."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from portal.celery import app as celery_app
from portal.metrics import TASK_FAILURES_KEY, download_url_issued
from portal.redis_clients import broker_redis
from tests import scenes
from tests.factories import TierFactory, UserFactory
from tests.processes import test_database_url

TOKEN = "scraper-token-" + "x" * 20


@celery_app.task(name="tests.portal.test_metrics.always_fails", max_retries=0)
def always_fails():
    raise RuntimeError("this task always fails")


@pytest.fixture
def metrics_token(settings) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client) -> dict[tuple[str, frozenset], float]:
    """The samples of one scrape, by name and labels."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse(response.content.decode())


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def requests_counted(samples, *, route: str, status: str, method: str = "GET") -> float:
    labels = frozenset({"method": method, "route": route, "status": status}.items())
    return samples.get(("gatehouse_http_requests_total", labels), 0.0)


# --- Who may scrape --------------------------------------------------------------------------------


def test_metrics_are_off_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token-of-some-length", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x"]
)
def test_metrics_refuse_a_missing_or_wrong_token(client, metrics_token, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    response = client.get("/metrics", **headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"gatehouse_" not in response.content


# --- Counted where it happens ----------------------------------------------------------------------


def test_requests_are_counted_by_method_route_and_status_class(client, db, metrics_token):
    before = scrape(client)

    client.get("/healthz")
    client.get("/healthz")
    client.get("/no/such/page/")
    client.generic("BREW", "/healthz")
    after = scrape(client)

    assert requests_counted(after, route="healthz", status="2xx") == (
        requests_counted(before, route="healthz", status="2xx") + 2
    )
    # Unknown paths and methods all fall into one series each: label values stay a closed set.
    assert requests_counted(after, route="unmatched", status="4xx") == (
        requests_counted(before, route="unmatched", status="4xx") + 1
    )
    assert requests_counted(after, route="healthz", status="4xx", method="other") == (
        requests_counted(before, route="healthz", status="4xx", method="other") + 1
    )
    # The first scrape itself was counted by the time of the second.
    assert requests_counted(after, route="metrics", status="2xx") >= 1


def test_download_urls_issued_are_counted_by_route(client, db, metrics_token):
    def issued(samples, route):
        return samples.get(("gatehouse_download_urls_issued_total", frozenset({"route": route}.items())), 0.0)

    before = scrape(client)
    download_url_issued("api")
    download_url_issued("api")
    download_url_issued("hub")
    after = scrape(client)

    assert issued(after, "api") == issued(before, "api") + 2
    assert issued(after, "hub") == issued(before, "hub") + 1
    assert issued(after, "page") == issued(before, "page")


def test_download_url_route_must_be_known():
    with pytest.raises(ValueError, match="route must be one of page, api, hub"):
        download_url_issued("ftp")


def test_task_failures_are_counted_in_redis_for_the_whole_cluster(celery_worker, client, metrics_token):
    broker_redis().hdel(TASK_FAILURES_KEY, always_fails.name)
    task_labels = frozenset({"task": always_fails.name}.items())

    always_fails.delay()
    always_fails.delay()
    celery_worker.wait_until_idle()

    assert scrape(client)[("gatehouse_celery_task_failures_total", task_labels)] == 2
    assert int(broker_redis().hget(TASK_FAILURES_KEY, always_fails.name)) == 2
    broker_redis().hdel(TASK_FAILURES_KEY, always_fails.name)


# --- Read at scrape time ---------------------------------------------------------------------------


def test_applications_by_state_and_tier_openings_cost_one_query_each(
    client, metrics_token, reviewer, application_tier, django_assert_max_num_queries
):
    applications = [scenes.submit(UserFactory(), application_tier) for _ in range(3)]
    scenes.approve(applications[0], reviewer)
    scenes.reject(applications[1], reviewer, "Not a research use.")
    TierFactory(release=application_tier.release, opens_at=timezone.now() + timedelta(days=30))

    with django_assert_max_num_queries(2):
        samples = scrape(client)

    by_state = {
        dict(labels)["state"]: value
        for (name, labels), value in samples.items()
        if name == "gatehouse_applications"
    }
    assert by_state == {
        "pending": 1,
        "returned": 0,
        "appealed": 0,
        "approved": 1,
        "rejected": 1,
        "withdrawn": 0,
        "expired": 0,
    }
    assert samples[("gatehouse_tier_openings_total", frozenset())] == 1

    # Twice the data, the same queries.
    for _ in range(3):
        scenes.submit(UserFactory(), application_tier)
    TierFactory(release=application_tier.release)
    with django_assert_max_num_queries(2):
        samples = scrape(client)
    assert samples[("gatehouse_applications", frozenset({"state": "pending"}.items()))] == 4
    assert samples[("gatehouse_tier_openings_total", frozenset())] == 2


@pytest.fixture
def quiet_queue():
    """The default queue, renamed to one no worker consumes, emptied before and after."""
    queue = f"gatehouse-metrics-{uuid.uuid4().hex[:12]}"
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)
    yield queue
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)
    celery_app.conf.task_default_queue = previous


def test_queue_length_counts_the_messages_waiting_at_every_priority(client, db, metrics_token, quiet_queue):
    labels = frozenset({"queue": quiet_queue}.items())
    assert scrape(client)[("gatehouse_celery_queue_length", labels)] == 0

    always_fails.delay()
    always_fails.delay()
    always_fails.apply_async(priority=5)

    assert scrape(client)[("gatehouse_celery_queue_length", labels)] == 3


# --- Several processes -----------------------------------------------------------------------------

SERVE_REQUESTS = """
import django
django.setup()
from django.test import Client
from portal.metrics import download_url_issued
for _ in range(3):
    assert Client().get("/healthz").status_code == 200
download_url_issued("hub")
"""

SCRAPE = """
import django
django.setup()
from django.test import Client
response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer {token}")
assert response.status_code == 200, response.status_code
print(response.content.decode())
"""


def test_multiprocess_mode_adds_up_the_counts_of_every_process(db, tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings_test",
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "ALLOWED_HOSTS": "testserver",
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }

    def run(script: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    # Two gunicorn workers, as far as prometheus_client can tell: one serves, the other is scraped.
    run(SERVE_REQUESTS)
    samples = parse(run(SCRAPE.format(token=TOKEN)))

    assert requests_counted(samples, route="healthz", status="2xx") == 3
    assert samples[("gatehouse_download_urls_issued_total", frozenset({"route": "hub"}.items()))] == 1
    assert samples[("gatehouse_applications", frozenset({"state": "pending"}.items()))] == 0


PRINT_TOKEN = "import django; django.setup(); from django.conf import settings; print(settings.METRICS_TOKEN)"


def test_the_token_can_come_from_a_file(tmp_path):
    token_file = tmp_path / "metrics-token"
    token_file.write_text(TOKEN + "\n")
    env = {
        "PATH": os.environ["PATH"],
        "SECRET_KEY": "x" * 40,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "METRICS_TOKEN_FILE": str(token_file),
    }
    result = subprocess.run(
        [sys.executable, "-c", PRINT_TOKEN],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == TOKEN
