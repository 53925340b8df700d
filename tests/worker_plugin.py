"""Pytest plugin: a real Celery worker, in a thread of the test process, consuming from Redis.

``celery_worker`` (function): starts ``celery.contrib.testing.worker.start_worker`` on the portal's app
with a thread pool of two (so that two deliveries of a task can really overlap), on a queue of its own,
and yields a ``RunningWorker``. Use it with ``transactional_db`` (or ``live_server``): the worker's threads
open their own database connections and only see committed rows, as a real worker does.

The broker is the test settings' Redis (database 9). The queue name is unique to the test session and
purged before each worker starts, so the worker never runs a message another test, another test session
on the same machine or a crashed earlier run left behind, and nobody else consumes ours.

E-mail: the locmem outbox (``django.core.mail.outbox``) is a module-level list, so the messages the
worker's threads send land in the test's outbox.

Enable it from tests/conftest.py with ``pytest_plugins = ["tests.worker_plugin"]``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import after_task_publish, task_postrun
from django.db import connections

from portal.celery import app as celery_app

WORKER_QUEUE = f"gatehouse-test-{uuid.uuid4().hex[:12]}"
DEFAULT_TIMEOUT_SECONDS = 10.0


def wait_for(predicate: Callable[[], object], *, timeout: float = DEFAULT_TIMEOUT_SECONDS, what: str = ""):
    """Poll ``predicate`` every 50 ms until it returns something truthy; return that, or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.05)


@dataclass
class RunningWorker:
    """The embedded worker, and the ids of the tasks published to it and finished by it."""

    queue: str
    published: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record_published(self, task_id: str) -> None:
        with self._lock:
            self.published.append(task_id)

    def record_finished(self, task_id: str) -> None:
        with self._lock:
            self.finished.append(task_id)

    def idle(self) -> bool:
        with self._lock:
            return set(self.published) <= set(self.finished)

    def wait_until_idle(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        """Wait until every task published to the worker so far has run.

        After this, the outbox holds everything the tasks sent: a test can assert that an e-mail was
        *not* sent, or sent once, without sleeping and hoping.
        """
        wait_for(self.idle, timeout=timeout, what=f"the worker to run every task on {self.queue}")


@pytest.fixture
def celery_worker(transactional_db) -> Iterator[RunningWorker]:
    running = RunningWorker(queue=WORKER_QUEUE)

    def on_publish(sender=None, headers=None, routing_key=None, **kwargs):
        if routing_key == running.queue and headers:
            running.record_published(headers["id"])

    def on_postrun(sender=None, task_id=None, **kwargs):
        # A worker thread keeps its connection otherwise, and the test database could not be flushed
        # or dropped while it is open.
        connections.close_all()
        running.record_finished(task_id)

    conf = celery_app.conf
    overridden = {
        "task_default_queue": running.queue,
        "task_always_eager": False,
        # Keep pytest's logging handlers, and skip the remote-control queue nobody here uses.
        "worker_hijack_root_logger": False,
        "worker_enable_remote_control": False,
    }
    previous = {name: conf[name] for name in overridden}
    conf.update(overridden)
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(running.queue)
    after_task_publish.connect(on_publish, weak=False)
    task_postrun.connect(on_postrun, weak=False)
    try:
        with start_worker(
            celery_app,
            pool="threads",
            concurrency=2,
            perform_ping_check=False,
            queues=[running.queue],
            shutdown_timeout=15,
        ):
            yield running
    finally:
        after_task_publish.disconnect(on_publish)
        task_postrun.disconnect(on_postrun)
        conf.update(previous)
