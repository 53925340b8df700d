"""Settings for the test suite: the production module with test-only overrides."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-that-is-long-enough-for-the-check")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gatehouse")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
# The broker gets a database of its own: tests that clear the cache must not drop queued tasks.
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/10")

from portal.settings import *  # noqa: E402, F403

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# The test session shares one Redis with whatever else runs on the machine: its own keys.
CACHES["default"]["KEY_PREFIX"] = "gatehouse-test"  # noqa: F405
ACCOUNT_RATE_LIMITS = False
# S3's smallest part size: multipart uploads of a few parts stay a few megabytes.
UPLOAD_PART_SIZE_BYTES = 5 * 1024 * 1024
