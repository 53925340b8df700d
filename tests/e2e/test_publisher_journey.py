"""PRODUCT.md journey 4 in headless Chromium, with a real Celery worker and a real beat process.

A publisher opens a draft release in the workspace, uploads a file through the browser (straight to
SeaweedFS), sees the worker verify it, defines a two-tier plan in the tier form (the first tier at
day zero, the second on a date a few seconds away) and publishes the release. A watcher, in a browser
of their own, asks to be told when the second tier opens. Nobody touches anything after that: beat's
rollout tick opens the tier on its date, once, and the worker e-mails the watcher, once, over SMTP to
a sink in this process (tests/smtp_sink.py).

The worker and beat are ``celery -A portal`` processes (tests/settings_worker.py) on the test
database, on a Redis database and queue of their own; the portal in this process (``live_server``)
publishes its verification task there too.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from access.models import AuditEvent
from access.services.licenses import license_create
from portal.celery import app as celery_app
from releases.models import Release, Tier
from tests.factories import PASSWORD, UserFactory
from tests.helpers import sha256
from tests.processes import CeleryProcess, start_celery, test_database_url
from tests.releases.uploading import draft_release, random_bytes
from tests.worker_plugin import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker]

BASE_DIR = Path(settings.BASE_DIR)
# Not the test settings' broker (database 10), which other tests and test sessions share.
BROKER_DATABASE = 12
SCAN_SECONDS = 1
# Long enough for publishing and the watcher's visit, short enough to wait for.
SECOND_TIER_DELAY = timedelta(seconds=15)
OPENING_TIMEOUT_SECONDS = 30
WEIGHTS = "model.safetensors"
WATCHER_EMAIL = "wendy@university.example"


# --- The processes --------------------------------------------------------------------------


@pytest.fixture
def broker() -> Iterator[tuple[str, str]]:
    """Point this process's Celery app (the live server's task publishing) at a Redis database and a
    queue of its own; yield both. Celery reads CELERY_BROKER_URL from the environment before its
    settings, and keeps its connection pools: both are switched and switched back."""
    url = urlunsplit(urlsplit(settings.CELERY_BROKER_URL)._replace(path=f"/{BROKER_DATABASE}"))
    queue = f"gatehouse-publisher-journey-{uuid.uuid4().hex[:12]}"
    previous_url = os.environ.get("CELERY_BROKER_URL")
    previous_queue = celery_app.conf.task_default_queue

    def switch(broker_url: str | None, default_queue: str) -> None:
        if broker_url is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = broker_url
        celery_app.conf.task_default_queue = default_queue
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    switch(url, queue)
    try:
        yield url, queue
    finally:
        with celery_app.connection_for_write() as redis:
            channel = redis.default_channel
            channel.queue_delete(queue)
            # Celery's default exchange for a queue is named after it: drop its bindings too.
            channel.client.delete(f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        switch(previous_url, previous_queue)


@dataclass
class Background:
    worker: CeleryProcess
    beat: CeleryProcess

    def stop(self) -> dict[str, int | None]:
        # Beat first, so that no tick is sent to a stopped worker.
        return {process.name: process.stop() for process in (self.beat, self.worker)}


@pytest.fixture
def background(live_server, s3, smtp_sink, broker, tmp_path) -> Iterator[Background]:
    """A worker and the one beat process, on the test database, the test's S3 bucket and the sink."""
    broker_url, queue = broker
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_worker",
        "PYTHONPATH": str(BASE_DIR),
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": broker_url,
        "GATEHOUSE_TEST_QUEUE": queue,
        "ROLLOUT_SCAN_SECONDS": str(SCAN_SECONDS),
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_sink.port),
        "SITE_URL": live_server.url,
        "S3_ENDPOINT_URL": settings.S3_ENDPOINT_URL,
        "S3_BUCKET": settings.S3_BUCKET,
        "S3_ACCESS_KEY_ID": settings.S3_ACCESS_KEY_ID,
        "S3_SECRET_ACCESS_KEY": settings.S3_SECRET_ACCESS_KEY,
        "S3_REGION": settings.S3_REGION,
        "S3_ADDRESSING_STYLE": settings.S3_ADDRESSING_STYLE,
    }
    worker_arguments = ["worker", "--hostname", f"journey-{queue[-12:]}@%h", "--queues", queue]
    worker_arguments += ["--pool", "prefork", "--concurrency", "1"]
    worker_arguments += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = start_celery("worker", worker_arguments, env, tmp_path)
    beat_arguments = ["beat", "--schedule", str(tmp_path / "celerybeat-schedule")]
    beat = start_celery("beat", beat_arguments, env, tmp_path)
    running = Background(worker, beat)
    try:
        wait_for(worker.ready, timeout=30, what="the worker")
        wait_for(lambda: beat.running() and worker.ticks_done() > 0, timeout=30, what="beat's first tick")
        yield running
    finally:
        running.stop()


# --- The scene ------------------------------------------------------------------------------


@pytest.fixture
def signed_in(new_page, live_server):
    def open_page(user):
        page = new_page()
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=login]", user.email)
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Sign In").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        return page

    return open_page


def fill_tier_form(page, *, name: str, gate: str, license_name: str | None = None) -> None:
    page.get_by_role("link", name="Add a tier").click()
    expect(page.get_by_role("heading", name="New tier")).to_be_visible()
    page.fill("[name=name]", name)
    page.select_option("[name=gate]", gate)
    if license_name:
        page.select_option("[name=license]", label=license_name)
    page.check("[name=selection][value=files]")
    page.get_by_label(WEIGHTS).check()


def test_a_publisher_uploads_plans_and_publishes_and_the_second_tier_opens_by_itself(
    live_server, bucket_cors, background, smtp_sink, s3, owner, model, signed_in
):
    site = live_server.url
    draft = draft_release(model)
    license_create(
        organization=model.organization,
        name="Llama Lite Community License",
        text="Use these weights for research only.",
        actor=owner,
    )
    watcher = UserFactory(email=WATCHER_EMAIL, full_name="Wendy Watcher")

    # The publisher finds the draft in the workspace and uploads its file.
    publisher = signed_in(owner)
    publisher.goto(f"{site}/publish/")
    publisher.get_by_role("link", name="Acme AI").click()
    publisher.get_by_role("link", name=draft.version).click()
    expect(publisher.locator("#release-status")).to_have_text("Draft")
    publisher.locator("#upload-link").click()
    weights = random_bytes(256 * 1024)
    publisher.set_input_files(
        "#upload-files", [{"name": WEIGHTS, "mimeType": "application/octet-stream", "buffer": weights}]
    )
    publisher.get_by_role("button", name="Upload").click()
    row = publisher.locator(f'#upload-table tr[data-path="{WEIGHTS}"]')
    expect(row.locator("[data-role=status]")).to_have_text("Verified", timeout=30_000)
    expect(row.locator("[data-role=sha256]")).to_have_text(sha256(weights))

    # The plan: an open tier at day zero, then a click-through tier on a date a few seconds away.
    publisher.get_by_role("link", name=f"{model.full_slug} {draft.version}").click()
    fill_tier_form(publisher, name="Preview", gate=Tier.Gate.OPEN)
    publisher.check("[name=opening][value=relative]")
    publisher.fill("[name=opens_after_days]", "0")
    publisher.fill("[name=opens_after_hours]", "0")
    publisher.get_by_role("button", name="Add the tier").click()
    expect(publisher.locator(".messages")).to_contain_text("Tier Preview added.")

    fill_tier_form(
        publisher, name="Public", gate=Tier.Gate.CLICK_THROUGH, license_name="Llama Lite Community License"
    )
    publisher.check("[name=opening][value=date]")
    opens_at = (timezone.now() + SECOND_TIER_DELAY).replace(microsecond=0)
    publisher.fill("[name=opens_at]", f"{opens_at:%Y-%m-%dT%H:%M:%S}")
    publisher.get_by_role("button", name="Add the tier").click()
    expect(publisher.locator(".messages")).to_contain_text("Tier Public added.")
    expect(publisher.locator("#tiers tbody tr")).to_have_count(2)

    publisher.get_by_role("button", name=f"Publish {draft.version}").click()
    expect(publisher.locator("#release-status")).to_have_text("Published")
    draft.refresh_from_db()
    assert draft.status == Release.Status.PUBLISHED
    second = Tier.objects.get(release=draft, name="Public")
    assert (second.opens_at, second.opened_at) == (opens_at, None)

    # The watcher, in a browser of their own, asks to be told when Public opens.
    visitor = signed_in(watcher)
    visitor.goto(f"{site}{model.get_absolute_url()}")
    visitor.locator(f"tr[data-tier='{second.pk}']").get_by_role("link", name="Coming soon").click()
    expect(visitor.get_by_role("heading", name="Public: coming soon")).to_be_visible()
    coming_soon_url = visitor.url
    visitor.get_by_role("button", name="Tell me when it opens").click()
    expect(visitor.locator(".messages")).to_contain_text(
        f"We will e-mail {WATCHER_EMAIL} once, when Public opens."
    )
    expect(visitor.get_by_role("button", name="Stop telling me")).to_be_visible()
    assert timezone.now() < opens_at, "the watch came after the opening date: raise SECOND_TIER_DELAY"

    # Nobody does anything now: beat's tick opens the tier on its date.
    deadline = time.monotonic() + OPENING_TIMEOUT_SECONDS
    while not visitor.url.endswith(f"/tiers/{second.pk}/"):
        assert time.monotonic() < deadline, f"Public did not open:\n{background.worker.log()[-3000:]}"
        time.sleep(0.5)
        visitor.goto(coming_soon_url)
    expect(visitor.locator("#standing")).not_to_have_attribute("data-code", "not_open")
    expect(visitor.get_by_role("button", name="I accept the license")).to_be_visible()

    # One e-mail to the watcher, and no second one from the ticks that follow.
    wait_for(
        lambda: Tier.objects.filter(pk=second.pk, watchers_notified_at__isnull=False).exists(),
        what="the watchers to be told",
    )
    ticks = background.worker.ticks_done()
    wait_for(lambda: background.worker.ticks_done() >= ticks + 2, what="two more ticks")
    [message] = smtp_sink.messages
    assert message.recipients == (WATCHER_EMAIL,)
    assert message.headers["Subject"] == f"Public of Llama Lite {draft.version} is open"
    assert f"{site}/tiers/{second.pk}/" in message.data.decode()

    second.refresh_from_db()
    assert second.opened_at >= opens_at
    [opened] = AuditEvent.objects.filter(action="tier.opened", target_type="tier", target_id=second.pk)
    assert (opened.actor, opened.payload["scheduled"]) == (None, True)
    assert Tier.objects.get(release=draft, name="Preview").opened_at is not None

    exits = background.stop()
    assert exits == {"beat": 0, "worker": 0}, exits
