"""Structured logs: one JSON object per line, each carrying the id of the request it belongs to.

The request id:

- ``RequestIdMiddleware`` (first in MIDDLEWARE) takes the caller's ``X-Request-ID`` when it looks safe
  (``REQUEST_ID_PATTERN``: a proxy's or client's id can then be followed through our logs) and makes one
  up (uuid4 hex) otherwise; it keeps the id in ``request_id_var`` and answers it in ``X-Request-ID``.
  The id is forgotten on ``request_finished``, not when the middleware returns, because Django logs a
  4xx/5xx response ("Not Found: /x") after the middleware chain has returned.
- ``RequestIdFilter``, on the log handler, copies the current id onto every record.
- Celery: ``before_task_publish`` puts the id into the headers of every task enqueued while it is set,
  ``task_prerun`` restores it in the worker process running the task and ``task_postrun`` clears it, so
  that what a task logs (and what Celery logs about it) carries the id of the request that asked for it.

Workers and beat log through Django's LOGGING too: ``celery_logging_is_django`` answers Celery's
``setup_logging`` signal, which tells Celery to leave logging alone (Django configured it when Celery's
Django fix-up ran ``django.setup()``). The ``--loglevel`` and ``--logfile`` options of ``celery worker``
and ``beat`` are then ignored (LOG_LEVEL decides, and every process logs to stderr), and ``print()`` is no
longer turned into log records.

Why our own formatter instead of python-json-logger or structlog: the format is a dozen lines on
``json.dumps``, and a new dependency (pinned with hashes, audited, upgraded) would buy nothing more.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

import sentry_sdk
from celery import signals as celery_signals
from django.core.signals import request_finished

REQUEST_ID_HEADER = "X-Request-ID"
# Ids from outside are copied into logs and response headers: no spaces, quotes or control characters.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{8,128}")
# The message header that carries the id from the request to the worker.
TASK_HEADER = "gatehouse_request_id"

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged as a field,
# but for the request object Django attaches for its admin e-mails: its repr holds the query string.
_NOT_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "request"}


def safe_request_id(value: object) -> str | None:
    """``value`` if it is an acceptable request id, else None."""
    if isinstance(value, str) and REQUEST_ID_PATTERN.fullmatch(value):
        return value
    return None


class RequestIdMiddleware:
    """Give every request an id (the caller's, if safe) for the logs, the response and its tasks."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = safe_request_id(request.headers.get(REQUEST_ID_HEADER)) or uuid.uuid4().hex
        request.request_id = request_id
        request_id_var.set(request_id)
        _tag_error_reports(request_id)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


def _tag_error_reports(request_id: str) -> None:
    """Sentry reports of this request carry its id (a no-op while Sentry is not initialised)."""
    sentry_sdk.set_tag("request_id", request_id)


def _forget_request_id(**kwargs) -> None:
    request_id_var.set(None)


request_finished.connect(_forget_request_id, dispatch_uid="portal.logs.forget_request_id")


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (None outside a request or task) to every record passing the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp (ISO 8601, UTC), level, logger, message, request_id,
    exc_info and stack_info when present, and the fields passed with ``extra=``. Values JSON cannot
    represent are logged as their ``str()``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _NOT_FIELDS and key not in entry:
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For a developer's terminal (LOG_FORMAT=text): the classic line, with the request id when set."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [request_id={request_id}]" if request_id else line


def logging_config(*, log_format: str, level: str) -> dict:
    """Django's LOGGING: everything to stderr through one handler, in ``log_format`` ("json", "text")."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "portal.logs.RequestIdFilter"}},
        "formatters": {
            "json": {"()": "portal.logs.JsonFormatter"},
            "text": {"()": "portal.logs.TextFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "filters": ["request_id"],
                "formatter": log_format,
            }
        },
        "root": {"handlers": ["console"], "level": level},
    }


# --- Celery ----------------------------------------------------------------------------------------


def celery_logging_is_django(**kwargs) -> None:
    """Answer ``setup_logging``: its having a receiver stops Celery from replacing the handlers."""


def add_request_id_header(headers=None, **kwargs) -> None:
    request_id = request_id_var.get()
    if request_id is not None and headers is not None:
        headers[TASK_HEADER] = request_id


def restore_request_id(task=None, **kwargs) -> None:
    # An eager task runs inside the caller, whose id is already current: leave it alone.
    if task is None or task.request.is_eager:
        return
    request_id_var.set(safe_request_id(getattr(task.request, TASK_HEADER, None)))


def clear_request_id(task=None, **kwargs) -> None:
    if task is None or task.request.is_eager:
        return
    request_id_var.set(None)


def connect_celery_signals() -> None:
    """Called by portal/celery.py; idempotent."""
    celery_signals.setup_logging.connect(celery_logging_is_django, dispatch_uid="portal.logs.setup")
    celery_signals.before_task_publish.connect(add_request_id_header, dispatch_uid="portal.logs.publish")
    celery_signals.task_prerun.connect(restore_request_id, dispatch_uid="portal.logs.prerun")
    celery_signals.task_postrun.connect(clear_request_id, dispatch_uid="portal.logs.postrun")
