"""Celery beat, with a heartbeat for ``/readyz`` and a lock that keeps a second beat from sending.

``GatehouseScheduler`` (CELERY_BEAT_SCHEDULER) is Celery's PersistentScheduler with two additions, both
checked on every tick:

- **Singleton lock.** Before sending anything, beat takes or renews a lock in the broker's Redis
  (``SET NX`` with an expiry of BEAT_LOCK_TTL_SECONDS, renewed only by its holder). A second beat, started
  by mistake or by a deployment that briefly overlaps the old and the new, cannot take it: it sends
  nothing, says once that it is on standby, and tries again every third of the TTL. It takes over when the
  first beat stops (the lock is released on close) or dies (the lock expires). A beat that finds the lock
  taken from it (it stalled past the TTL) goes on standby at once. Ticks are capped at a third of the TTL
  so that a holder renews well before expiry. The tasks themselves stay safe to run twice (tier openings
  are exactly-once in the database), so the lock is what stops duplicate work, not what guards correctness.
  When the broker is not Redis (the one-machine demo, filesystem broker) there is no lock.
- **Heartbeat.** The beat holding the lock writes the time into the cache (``HEARTBEAT_CACHE_KEY``) at most
  every ``HEARTBEAT_EVERY_SECONDS``; ``/readyz`` reports its age (``heartbeat_age_seconds``) and fails
  once it passes BEAT_HEARTBEAT_MAX_AGE_SECONDS. A beat on standby writes none: the heartbeat says that
  tasks are being sent, not that a process is running.

A beat that took over starts from its own schedule file: interval entries due in its file are sent at
once (one extra scan, harmless), the daily digest at its next hour.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

import redis
from celery.beat import PersistentScheduler
from django.conf import settings
from django.core.cache import cache

from portal.redis_clients import broker_redis

logger = logging.getLogger(__name__)

HEARTBEAT_CACHE_KEY = "beat:heartbeat"
HEARTBEAT_EVERY_SECONDS = 5.0
LOCK_KEY = "gatehouse:beat:lock"

# Extend the lock only while we hold it; a plain PEXPIRE could extend another beat's lock.
_RENEW_SCRIPT = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_SCRIPT = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
"""


def heartbeat_age_seconds() -> float | None:
    """Seconds since the active beat's last heartbeat; None if there is none. Raises what the cache
    raises when it cannot be read."""
    beat_time = cache.get(HEARTBEAT_CACHE_KEY)
    if beat_time is None:
        return None
    return max(0.0, time.time() - float(beat_time))


class BeatLock:
    """A lock in Redis held by one owner at a time, until released or ``ttl_seconds`` without renewal."""

    def __init__(self, client: redis.Redis, *, owner: str, ttl_seconds: float, key: str = LOCK_KEY):
        self.client = client
        self.owner = owner
        self.key = key
        self.ttl_milliseconds = int(ttl_seconds * 1000)
        self._renew = client.register_script(_RENEW_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)

    def hold(self) -> bool:
        """Renew the lock if we hold it, else take it if it is free; True if we hold it now."""
        if self._renew(keys=[self.key], args=[self.owner, self.ttl_milliseconds]):
            return True
        return bool(self.client.set(self.key, self.owner, nx=True, px=self.ttl_milliseconds))

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if value is not None else None

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.owner])


class GatehouseScheduler(PersistentScheduler):
    """PersistentScheduler that sends only while it holds the beat lock, and writes a heartbeat."""

    def __init__(self, *args, **kwargs):
        self._lock: BeatLock | None = None
        self._sending: bool | None = None  # None until the first tick
        self._heartbeat_written_at = float("-inf")
        self._check_every = max(1.0, settings.BEAT_LOCK_TTL_SECONDS / 3)
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs) -> float:
        if not self._may_send():
            return self._check_every
        self._write_heartbeat()
        return min(super().tick(*args, **kwargs), self._check_every, HEARTBEAT_EVERY_SECONDS)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._lock is not None and self._sending:
                try:
                    self._lock.release()
                    logger.info("beat: released the beat lock")
                except redis.RedisError:
                    logger.warning(
                        "beat: could not release the beat lock; it expires by itself", exc_info=True
                    )
                self._sending = False

    def _may_send(self) -> bool:
        client = broker_redis()
        if client is None:
            if self._sending is None:
                logger.info("beat: the broker is not Redis, so there is no beat lock: run one beat only")
            self._sending = True
            return True
        if self._lock is None:
            owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            self._lock = BeatLock(client, owner=owner, ttl_seconds=settings.BEAT_LOCK_TTL_SECONDS)
        try:
            holding = self._lock.hold()
            holder = None if holding else self._lock.holder()
        except redis.RedisError as error:
            # Without the broker nothing could be sent anyway; say so once, retry on the next tick.
            if self._sending is not False:
                logger.warning("beat: cannot reach the broker's Redis for the beat lock: %s", error)
            self._sending = False
            return False
        if holding and not self._sending:
            logger.info("beat: holding the beat lock as %s; sending scheduled tasks", self._lock.owner)
        elif not holding and self._sending is not False:
            logger.warning(
                "beat: standby, another beat (%s) holds the beat lock; sending nothing; retry in %.0f s",
                holder,
                self._check_every,
            )
        self._sending = holding
        return holding

    def _write_heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._heartbeat_written_at < HEARTBEAT_EVERY_SECONDS:
            return
        try:
            cache.set(HEARTBEAT_CACHE_KEY, time.time(), timeout=None)
        except Exception:  # the cache's own errors vary by backend; beat must keep sending regardless
            logger.warning("beat: could not write the heartbeat", exc_info=True)
            return
        self._heartbeat_written_at = now
