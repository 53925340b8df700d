"""Fixtures for the browser tests: headless Chromium (Debian's package) driven by Playwright.

Playwright's own browser download cannot reach the network here, so it launches the system
``/usr/bin/chromium`` through ``executable_path``. ``bucket_cors`` lets the pages upload straight to
the test bucket.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.db import connections
from playwright.sync_api import Browser, sync_playwright

from portal import storage

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Generous for a loaded CI machine; a test still finishes in seconds when all is well.
DEFAULT_TIMEOUT_MS = 15_000


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    """A fresh Chromium per test. Function-scoped so that Playwright's event loop is gone after the
    test and other tests in the session run in a thread without one."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium`")
    # Playwright's sync API runs an asyncio event loop in the test's own thread (the test code runs in
    # a greenlet beside it). Django sees that running loop and refuses ORM calls from the test
    # (SynchronousOnlyOperation), although nothing here is async. Setting up scenes and asserting on
    # rows from the test thread is safe: allow it, for as long as this browser runs only (monkeypatch
    # restores the variable after this fixture's teardown), so the check stays on for other tests.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
            # While Playwright's loop runs, Django keeps this thread's connections in a separate,
            # context-local slot (asgiref's Local); close the ones the test opened there now, or they
            # outlive the test and hold up dropping the test database.
            connections.close_all()


@pytest.fixture
def new_page(browser: Browser):
    """``new_page()`` opens a page in a new browser context: a separate person with their own cookies."""

    def open_page():
        context = browser.new_context(accept_downloads=True)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        return context.new_page()

    return open_page


@pytest.fixture
def bucket_cors(s3, live_server) -> Iterator[None]:
    """The bucket lets the live portal's origin PUT parts, as `manage.py bucket_cors` would set it."""
    storage.ensure_bucket_cors([live_server.url])
    yield
    storage.get_client().delete_bucket_cors(Bucket=s3.bucket)
