"""Exactly-once opening and announcing, proven with real `celery -A portal worker` processes.

Each worker is a prefork worker in its own process group, consuming a queue of its own on the test
session's broker (CELERY_BROKER_URL), with the test database pytest-django created (committed rows:
``transactional_db``) and e-mail over SMTP to a sink in this process (tests/smtp_sink.py), which counts
what each recipient got and which worker process sent it. Beat is played by the test: it enqueues
``releases.tasks.rollout_tick`` as beat would, several at once to make the scans overlap.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from access.models import AuditEvent
from portal.celery import app as celery_app
from releases.models import Tier, Watch
from releases.rollout import watch_start
from releases.tasks import rollout_tick
from tests.factories import TierFactory, UserFactory
from tests.processes import CeleryProcess, start_celery, test_database_url
from tests.smtp_sink import WORKER_HEADER, SMTPSink
from tests.worker_plugin import wait_for

pytestmark = pytest.mark.worker

BASE_DIR = Path(settings.BASE_DIR)
LEASE_SECONDS = 3


@dataclass
class Workers:
    """Worker processes on one queue of their own, and the ticks enqueued for them."""

    queue: str
    env: dict[str, str]
    log_dir: Path
    started: list[CeleryProcess] = field(default_factory=list)
    enqueued: int = 0
    # Ticks that a killed worker took with it (redelivered only after the visibility timeout).
    lost: int = 0

    def start(self, *names: str, **extra_env: str) -> list[CeleryProcess]:
        """Start the workers at once, then wait until each is ready."""
        new = []
        for name in names:
            arguments = ["worker", "--hostname", f"{name}@%h", "--queues", self.queue]
            arguments += ["--pool", "prefork", "--concurrency", "1"]
            arguments += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
            new.append(start_celery(f"worker-{name}", arguments, {**self.env, **extra_env}, self.log_dir))
        self.started.extend(new)
        for worker in new:
            wait_for(worker.ready, timeout=30, what=f"{worker.name} to be ready")
        return new

    def start_beat(self, scan_seconds: int) -> CeleryProcess:
        """The one beat process, scanning every ``scan_seconds``; its tasks go to our queue."""
        arguments = ["beat", "--schedule", str(self.log_dir / "celerybeat-schedule")]
        env = {**self.env, "ROLLOUT_SCAN_SECONDS": str(scan_seconds)}
        beat = start_celery("beat", arguments, env, self.log_dir)
        self.started.append(beat)
        return beat

    def tick(self, count: int = 1) -> None:
        for _ in range(count):
            rollout_tick.apply_async(queue=self.queue)
        self.enqueued += count

    def wait_until_idle(self, timeout: float = 30) -> None:
        """Every tick enqueued so far (but the lost ones) has run to the end."""

        def idle() -> bool:
            return sum(worker.ticks_done() for worker in self.started) >= self.enqueued - self.lost

        wait_for(idle, timeout=timeout, what="the workers to run every tick")


@pytest.fixture
def workers(transactional_db, smtp_sink, tmp_path) -> Iterator[Workers]:
    queue = f"gatehouse-exactly-once-{uuid.uuid4().hex[:12]}"
    running = Workers(
        queue=queue,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings_worker",
            "PYTHONPATH": str(BASE_DIR),
            "DATABASE_URL": test_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_sink.port),
            "WATCH_CLAIM_LEASE_SECONDS": str(LEASE_SECONDS),
            "WATCH_NOTIFY_BATCH_SIZE": "10",
            "GATEHOUSE_TEST_QUEUE": queue,
        },
        log_dir=tmp_path,
    )
    with celery_app.connection_for_write() as broker:
        broker.default_channel.queue_purge(running.queue)
    try:
        yield running
    finally:
        for worker in running.started:
            worker.stop()
        with celery_app.connection_for_write() as broker:
            broker.default_channel.queue_purge(running.queue)
            forget_unacknowledged(broker.default_channel.client, running.queue)


def forget_unacknowledged(redis, queue: str) -> None:
    """Drop the deliveries a killed worker never acknowledged, which Redis would otherwise hand back
    to our (by then unconsumed) queue after the visibility timeout, for ever."""
    for tag, delivery in redis.hscan_iter("unacked"):
        message, _exchange, routing_key = json.loads(delivery)
        if routing_key == queue:
            redis.hdel("unacked", tag)
            redis.zrem("unacked_index", tag)


def scheduled_tier_with_watchers(release, count: int):
    tier = TierFactory(
        release=release,
        name="Public",
        gate=Tier.Gate.CLICK_THROUGH,
        opens_at=timezone.now() + timedelta(days=1),
    )
    people = [UserFactory(email=f"watcher{index:03d}@example.org") for index in range(count)]
    for user in people:
        watch_start(user=user, tier=tier)
    return tier, people


def make_due(tier) -> None:
    Tier.objects.filter(pk=tier.pk).update(opens_at=timezone.now() - timedelta(seconds=1))


def senders(sink: SMTPSink) -> Counter:
    """How many messages each worker process handed over."""
    return Counter(message.headers[WORKER_HEADER] for message in sink.messages)


def test_two_workers_and_overlapping_scans_open_once_and_tell_each_watcher_once(workers, smtp_sink, release):
    tier, people = scheduled_tier_with_watchers(release, 60)
    # Every message takes 20 ms, so that the two workers really send batches at the same time.
    workers.start("one", "two", GATEHOUSE_TEST_SEND_DELAY_SECONDS="0.02")
    make_due(tier)

    workers.tick(6)
    wait_for(
        lambda: Tier.objects.filter(pk=tier.pk, watchers_notified_at__isnull=False).exists(), what="the end"
    )
    workers.wait_until_idle()

    tier.refresh_from_db()
    assert tier.opened_at is not None
    assert AuditEvent.objects.filter(action="tier.opened", target_type="tier", target_id=tier.pk).count() == 1
    assert smtp_sink.count_by_recipient() == {user.email: 1 for user in people}
    # Batches of ten, one SMTP connection each, and both workers sent some of them.
    assert smtp_sink.sessions >= 6
    assert all(count <= 10 for count in Counter(message.session for message in smtp_sink.messages).values())
    assert len(senders(smtp_sink)) == 2, senders(smtp_sink)
    assert not Watch.objects.filter(notified_at__isnull=True).exists()


def test_a_worker_killed_while_sending_is_taken_over_after_its_lease(workers, smtp_sink, release):
    tier, people = scheduled_tier_with_watchers(release, 30)
    [doomed] = workers.start("doomed", GATEHOUSE_TEST_PAUSE_AFTER_EMAILS="7")
    make_due(tier)

    workers.tick()
    # It opened the tier, claimed its first batch of ten, sent seven and hangs before the eighth.
    wait_for(lambda: Watch.objects.filter(notified_at__isnull=False).count() == 7, what="seven e-mails")
    stranded = list(Watch.objects.filter(notified_at__isnull=True, claimed_until__isnull=False))
    doomed.kill()
    workers.lost += 1

    assert len(stranded) == 3
    assert len(smtp_sink.messages) == 7
    [rescuer] = workers.start("rescuer")
    # Beat, every half second, until every watcher has been told.
    deadline = time.monotonic() + 30
    while not Tier.objects.filter(pk=tier.pk, watchers_notified_at__isnull=False).exists():
        assert time.monotonic() < deadline, rescuer.log()
        workers.tick()
        time.sleep(0.5)
    workers.wait_until_idle()

    assert AuditEvent.objects.filter(action="tier.opened", target_type="tier", target_id=tier.pk).count() == 1
    assert smtp_sink.count_by_recipient() == {user.email: 1 for user in people}
    assert sorted(senders(smtp_sink).values()) == [7, 23]
    # The dead worker's claim was honoured until it lapsed.
    for watch in stranded:
        taken_over = Watch.objects.get(pk=watch.pk)
        assert taken_over.notified_at >= watch.claimed_until


def test_with_beat_running_a_tier_opens_by_itself_and_its_watcher_is_told(workers, smtp_sink, release):
    tier = TierFactory(
        release=release,
        name="Public",
        gate=Tier.Gate.CLICK_THROUGH,
        opens_at=timezone.now() + timedelta(days=1),
    )
    watcher = UserFactory(email="watcher@example.org")
    watch_start(user=watcher, tier=tier)
    workers.start("one")
    workers.start_beat(scan_seconds=1)
    Tier.objects.filter(pk=tier.pk).update(opens_at=timezone.now() + timedelta(seconds=2))

    wait_for(lambda: smtp_sink.messages, timeout=20, what="the announcement")

    tier.refresh_from_db()
    assert tier.opened_at >= tier.opens_at
    [message] = smtp_sink.messages
    assert message.recipients == (watcher.email,)
    assert message.headers["Subject"] == "Public of Llama Lite v1.0 is open"
    event = AuditEvent.objects.get(action="tier.opened", target_id=tier.pk)
    assert (event.actor, event.payload["scheduled"]) == (None, True)
