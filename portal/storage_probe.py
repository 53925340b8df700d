"""Is the object storage answering? A per-process answer, refreshed at most every few seconds.

Presigning a download URL needs no round trip to the store, so without this a portal whose store is down
would go on handing out URLs (and recording downloads) that cannot be fetched. The download routes ask
``storage_unavailable_reason()`` before they record anything: the bucket is checked at most once per
``STORAGE_PROBE_INTERVAL_SECONDS`` in each process, so the hot path pays nothing between checks, and an
outage is noticed within that interval. ``/readyz`` checks the bucket itself, every time.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings

from portal import storage

_lock = threading.Lock()
_checked_at: float | None = None
_reason: str | None = None


def storage_unavailable_reason() -> str | None:
    """None while the bucket answered its last check; otherwise what went wrong."""
    global _checked_at, _reason
    now = time.monotonic()
    if _checked_at is not None and now - _checked_at < settings.STORAGE_PROBE_INTERVAL_SECONDS:
        return _reason
    with _lock:
        if _checked_at is None or time.monotonic() - _checked_at >= settings.STORAGE_PROBE_INTERVAL_SECONDS:
            try:
                storage.bucket_check()
                _reason = None
            except storage.StorageUnavailable as error:
                _reason = str(error)
            _checked_at = time.monotonic()
        return _reason


def storage_probe_forget() -> None:
    """Check again on the next call (tests that stop or move the store; settings changes)."""
    global _checked_at, _reason
    with _lock:
        _checked_at = None
        _reason = None
