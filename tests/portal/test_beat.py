"""Real ``celery beat`` processes: one sends, a second stands by and takes over; the heartbeat feeds /readyz.

The beats send to a queue of this test's own that no worker consumes, so the messages they sent can be
read back from the broker, each naming the process that published it (the ``origin`` header).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from portal.beat import HEARTBEAT_CACHE_KEY, LOCK_KEY, heartbeat_age_seconds
from portal.celery import app as celery_app
from portal.redis_clients import broker_redis
from tests.processes import CeleryProcess, start_celery, test_database_url
from tests.worker_plugin import wait_for

pytestmark = pytest.mark.worker

SENDING = "Scheduler: Sending due task "
HOLDING = "beat: holding the beat lock"
STANDBY = "beat: standby, another beat"


def messages(beat: CeleryProcess) -> list[str]:
    return [json.loads(line)["message"] for line in beat.log().splitlines() if line.startswith("{")]


def sent(beat: CeleryProcess) -> int:
    return sum(1 for message in messages(beat) if message.startswith(SENDING))


def said(beat: CeleryProcess, prefix: str) -> bool:
    return beat.running() and any(message.startswith(prefix) for message in messages(beat))


@dataclass
class Beats:
    queue: str
    env: dict[str, str]
    log_dir: Path
    started: list[CeleryProcess] = field(default_factory=list)

    def start(self, name: str) -> CeleryProcess:
        """A beat with a schedule file of its own, as on another host."""
        arguments = ["beat", "--schedule", str(self.log_dir / f"{name}-schedule")]
        beat = start_celery(name, arguments, self.env, self.log_dir)
        self.started.append(beat)
        return beat

    def publishers(self) -> set[int]:
        """The process ids that published the messages waiting in our queue."""
        raw_messages = broker_redis().lrange(self.queue, 0, -1)
        return {
            int(json.loads(raw)["headers"]["origin"].split("@")[0].removeprefix("gen"))
            for raw in raw_messages
        }


def forget_beat_state() -> None:
    broker_redis().delete(LOCK_KEY)
    cache.delete(HEARTBEAT_CACHE_KEY)


@pytest.fixture
def beats(tmp_path) -> Iterator[Beats]:
    queue = f"gatehouse-beat-{uuid.uuid4().hex[:12]}"
    running = Beats(
        queue=queue,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings_worker",
            "PYTHONPATH": str(settings.BASE_DIR),
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "GATEHOUSE_TEST_QUEUE": queue,
            "ROLLOUT_SCAN_SECONDS": "1",
            # A standby beat retries every second and takes over three seconds after the holder died.
            "BEAT_LOCK_TTL_SECONDS": "3",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
        },
        log_dir=tmp_path,
    )
    forget_beat_state()
    try:
        yield running
    finally:
        for beat in running.started:
            beat.stop()
        # A beat killed outright leaves its lock until it expires: the next test's beat must not wait.
        forget_beat_state()
        with celery_app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)


def test_a_second_beat_stands_by_and_sends_nothing(beats):
    first = beats.start("beat-first")
    wait_for(lambda: said(first, HOLDING) and sent(first) > 0, timeout=30, what="the first beat to send")

    second = beats.start("beat-second")
    wait_for(lambda: said(second, STANDBY), timeout=30, what="the second beat to stand by")
    # Several scans later (and as many attempts of the second beat to take the lock)...
    sent_when_second_stood_by = sent(first)
    wait_for(lambda: sent(first) >= sent_when_second_stood_by + 3, timeout=30, what="three more scans")

    assert second.running() and sent(second) == 0
    assert not said(second, HOLDING)
    assert beats.publishers() == {first.process.pid}
    assert "portal.beat.GatehouseScheduler" in first.log()


def test_a_standby_beat_takes_over_when_the_first_dies_or_stops(beats):
    first = beats.start("beat-first")
    wait_for(lambda: said(first, HOLDING) and sent(first) > 0, timeout=30, what="the first beat to send")
    second = beats.start("beat-second")
    wait_for(lambda: said(second, STANDBY), timeout=30, what="the second beat to stand by")

    # Killed outright: its lock expires, and the second beat takes over.
    first.kill()
    wait_for(lambda: said(second, HOLDING) and sent(second) > 0, timeout=30, what="the second beat to send")

    # Stopped cleanly: it releases the lock on its way out.
    third = beats.start("beat-third")
    wait_for(lambda: said(third, STANDBY), timeout=30, what="the third beat to stand by")
    second.stop()
    assert "beat: released the beat lock" in messages(second)
    # (A beat logs "Sending due task" just before it publishes.)
    wait_for(
        lambda: third.process.pid in beats.publishers(), timeout=30, what="the third beat's first message"
    )

    assert beats.publishers() == {first.process.pid, second.process.pid, third.process.pid}


def test_the_heartbeat_of_a_running_beat_makes_readyz_ready(beats, client, db, s3):
    assert client.get("/readyz").json()["checks"]["beat"]["ok"] is False

    first = beats.start("beat-first")
    wait_for(lambda: first.running() and heartbeat_age_seconds() is not None, timeout=30, what="a heartbeat")

    response = client.get("/readyz")
    assert response.status_code == 200
    beat_check = response.json()["checks"]["beat"]
    assert beat_check["ok"] is True
    assert beat_check["age_seconds"] < settings.BEAT_HEARTBEAT_MAX_AGE_SECONDS
