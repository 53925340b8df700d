"""Structured logs: JSON lines carrying the request id, from the web process into the tasks it enqueues."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from portal.celery import app as celery_app
from portal.logs import JsonFormatter, RequestIdFilter, request_id_var
from tests import scenes
from tests.processes import CeleryProcess, start_celery, test_database_url
from tests.worker_plugin import wait_for

REQUEST_ID = "trace-4f1c2b7a"


@celery_app.task(name="tests.portal.test_logs.current_request_id")
def current_request_id() -> str | None:
    return request_id_var.get()


def json_lines(text: str) -> list[dict]:
    """The JSON objects among ``text``'s lines (a worker also prints its banner)."""
    entries = []
    for line in text.splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


# --- The formatter and the filter ------------------------------------------------------------------


@pytest.fixture
def json_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger(f"tests.json.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.removeHandler(handler)


def test_a_record_is_one_json_line_with_the_request_id_and_extra_fields(json_logger):
    logger, stream = json_logger
    token = request_id_var.set(REQUEST_ID)
    try:
        logger.info("Issued %s URLs", 3, extra={"artifact_id": 42, "path": Path("/weights")})
    finally:
        request_id_var.reset(token)

    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "Issued 3 URLs"
    assert entry["level"] == "INFO"
    assert entry["logger"] == logger.name
    assert entry["request_id"] == REQUEST_ID
    assert entry["timestamp"].endswith("+00:00")
    # Extra fields, and str() of what JSON cannot represent.
    assert entry["artifact_id"] == 42
    assert entry["path"] == "/weights"
    assert "exc_info" not in entry


def test_an_exception_is_logged_with_its_traceback(json_logger):
    logger, stream = json_logger
    try:
        raise ZeroDivisionError("no weights")
    except ZeroDivisionError:
        logger.exception("Verification failed")

    entry = json.loads(stream.getvalue())
    assert entry["level"] == "ERROR"
    assert entry["request_id"] is None
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert entry["exc_info"].endswith("ZeroDivisionError: no weights")


# --- The request id --------------------------------------------------------------------------------


def test_a_safe_request_id_from_the_caller_is_kept(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=REQUEST_ID)

    assert response["X-Request-ID"] == REQUEST_ID


@pytest.mark.parametrize(
    "unsafe",
    ["short", "has space-in-it", "newline\ninjected-header", 'quote"d-value-here', "x" * 129, "ünïcode-id-1"],
)
def test_an_unsafe_request_id_is_replaced(client, unsafe):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=unsafe)

    assert response["X-Request-ID"] != unsafe
    assert len(response["X-Request-ID"]) == 32
    int(response["X-Request-ID"], 16)


def test_each_request_gets_an_id_of_its_own(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]

    assert first != second
    # Nothing is left behind for whatever this thread logs next.
    assert request_id_var.get() is None


def test_an_eager_task_keeps_the_callers_request_id(celery_eager):
    token = request_id_var.set(REQUEST_ID)
    try:
        assert current_request_id.apply().get() == REQUEST_ID
        assert request_id_var.get() == REQUEST_ID
    finally:
        request_id_var.reset(token)


LOG_A_REQUEST = """
import logging, django
django.setup()
from django.test import Client
Client().get("/no/such/page/", HTTP_X_REQUEST_ID="{request_id}")
logging.getLogger("after").warning("after the request")
"""


def run_django(script: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings_test",
            "ALLOWED_HOSTS": "testserver",
            "LOG_LEVEL": "INFO",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_line_a_request_logs_is_json_with_its_id(db):
    result = run_django(
        LOG_A_REQUEST.format(request_id=REQUEST_ID), LOG_FORMAT="json", DATABASE_URL=test_database_url()
    )
    assert result.returncode == 0, result.stderr

    lines = result.stderr.strip().splitlines()
    entries = [json.loads(line) for line in lines]  # every line, not just some
    # Django logs the 404 after the middleware chain returned: the id is still there.
    [not_found] = [entry for entry in entries if entry["logger"] == "django.request"]
    assert not_found["message"] == "Not Found: /no/such/page/"
    assert not_found["level"] == "WARNING"
    assert not_found["request_id"] == REQUEST_ID
    assert not_found["status_code"] == 404
    assert "request" not in not_found  # its repr would carry the query string
    # And forgotten once the response is finished.
    [after] = [entry for entry in entries if entry["logger"] == "after"]
    assert after["request_id"] is None


def test_text_format_for_a_developers_terminal(db):
    result = run_django(
        LOG_A_REQUEST.format(request_id=REQUEST_ID), LOG_FORMAT="text", DATABASE_URL=test_database_url()
    )
    assert result.returncode == 0, result.stderr

    [not_found] = [line for line in result.stderr.splitlines() if "django.request" in line]
    assert not_found.endswith(f"WARNING django.request: Not Found: /no/such/page/ [request_id={REQUEST_ID}]")
    assert not result.stderr.lstrip().startswith("{")


# --- Into the tasks a request enqueues -------------------------------------------------------------


@pytest.fixture
def worker_process(transactional_db, smtp_sink, tmp_path) -> Iterator[CeleryProcess]:
    """A real ``celery worker`` process logging JSON, on a queue of its own, which this process
    publishes to."""
    queue = f"gatehouse-logs-{uuid.uuid4().hex[:12]}"
    previous_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_worker",
        "PYTHONPATH": str(settings.BASE_DIR),
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_sink.port),
        "GATEHOUSE_TEST_QUEUE": queue,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    arguments = ["worker", "--hostname", f"logs-{queue[-12:]}@%h", "--queues", queue]
    arguments += ["--pool", "prefork", "--concurrency", "1"]
    arguments += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = start_celery("worker", arguments, env, tmp_path)
    try:
        wait_for(worker.ready, timeout=30, what="the worker")
        yield worker
    finally:
        worker.stop()
        celery_app.conf.task_default_queue = previous_queue
        with celery_app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)


@pytest.mark.worker
def test_a_task_enqueued_by_a_request_logs_that_requests_id(
    worker_process, client, researcher, reviewer, application_tier
):
    # Enqueued outside any request: the submission's screening and e-mail.
    application = scenes.submit(researcher, application_tier)
    client.force_login(reviewer)

    response = client.post(
        reverse("review-application", kwargs={"application_id": application.pk}),
        {"decision": "approve"},
        HTTP_X_REQUEST_ID=REQUEST_ID,
    )
    assert response.status_code == 302
    assert response["X-Request-ID"] == REQUEST_ID

    def approval_email_done() -> list[dict]:
        return [
            entry
            for entry in json_lines(worker_process.log())
            if "access.tasks.send_application_email[" in entry["message"]
            and " succeeded in " in entry["message"]
            and entry["request_id"] == REQUEST_ID
        ]

    [done] = wait_for(approval_email_done, timeout=30, what="the approval e-mail task's log line")
    assert done["level"] == "INFO"
    assert done["logger"] == "celery.app.trace"
    # The tasks the submission enqueued outside a request carry no id, not the next request's.
    screened = [
        entry
        for entry in json_lines(worker_process.log())
        if "access.tasks.screen_application[" in entry["message"] and " succeeded in " in entry["message"]
    ]
    assert screened and all(entry["request_id"] is None for entry in screened)
