"""Error reports reach the Sentry DSN's server (a local one here), only when SENTRY_DSN is set.

Each case runs the portal in a process of its own, because Sentry is initialised from the settings.
This module doubles as that process's URLconf: ``/boom/`` raises.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.urls import path

from tests.processes import test_database_url

REQUEST_ID = "sentry-probe-8c1e"


class SentryProbeError(Exception):
    pass


def boom(request):
    raise SentryProbeError("raised on purpose by tests/portal/test_sentry.py")


urlpatterns = [path("boom/", boom)]


class SentryServer:
    """An HTTP server that accepts what the Sentry SDK sends and keeps the envelopes."""

    def __init__(self):
        self.envelopes: list[tuple[str, bytes]] = []
        received = self.envelopes

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                received.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self) -> list[dict]:
        """The error events among the envelopes' items."""
        found = []
        for _path, body in self.envelopes:
            lines = body.split(b"\n")
            for item_header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(item_header).get("type") == "event":
                    found.append(json.loads(payload))
        return found


@pytest.fixture
def sentry_server() -> Iterator[SentryServer]:
    server = SentryServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


REQUEST_THAT_FAILS = f"""
import django, sentry_sdk
django.setup()
from django.test import Client
from django.test.utils import override_settings
with override_settings(ROOT_URLCONF="tests.portal.test_sentry"):
    response = Client(raise_request_exception=False).get("/boom/", HTTP_X_REQUEST_ID="{REQUEST_ID}")
print(response.status_code, sentry_sdk.get_client().is_active())
sentry_sdk.flush(timeout=10)
"""


def run_failing_request(**env: str) -> str:
    base = {key: value for key, value in os.environ.items() if not key.startswith("SENTRY_")}
    result = subprocess.run(
        [sys.executable, "-c", REQUEST_THAT_FAILS],
        cwd=settings.BASE_DIR,
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "portal.settings_test",
            "DATABASE_URL": test_database_url(),
            "ALLOWED_HOSTS": "testserver",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_an_exception_in_a_view_is_reported_to_the_dsn(db, sentry_server):
    output = run_failing_request(
        SENTRY_DSN=f"http://public@127.0.0.1:{sentry_server.port}/1", SENTRY_ENVIRONMENT="staging-test"
    )

    assert output == "500 True"
    assert all(path == "/api/1/envelope/" for path, _ in sentry_server.envelopes)
    [event] = sentry_server.events()
    assert event["exception"]["values"][-1]["type"] == "SentryProbeError"
    assert event["environment"] == "staging-test"
    assert event["tags"]["request_id"] == REQUEST_ID
    # send_default_pii=False: no address of the visitor, no cookies.
    assert "ip_address" not in event.get("user", {})
    assert "Cookie" not in event["request"].get("headers", {})


def test_nothing_is_initialised_without_a_dsn(db, sentry_server):
    output = run_failing_request()

    assert output == "500 False"
    assert sentry_server.envelopes == []
