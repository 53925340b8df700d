"""/healthz and /readyz: JSON for anyone, no session; /readyz names the dependency that failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.core.cache import cache

from portal import storage
from portal.beat import HEARTBEAT_CACHE_KEY
from portal.storage_probe import storage_probe_forget

CLOSED_PORT_URL = "127.0.0.1:1"


@pytest.fixture
def beat_heartbeat():
    """Beat's heartbeat, written just now; ``beat_heartbeat(seconds_ago)`` to age it."""

    def write(seconds_ago: float = 0.0) -> None:
        cache.set(HEARTBEAT_CACHE_KEY, time.time() - seconds_ago, timeout=None)

    write()
    yield write
    cache.delete(HEARTBEAT_CACHE_KEY)


@pytest.fixture
def storage_down(settings, s3):
    settings.S3_ENDPOINT_URL = f"http://{CLOSED_PORT_URL}"
    storage.clear_client_cache()
    storage_probe_forget()


def test_healthz_is_ok_without_database_redis_or_session(client, settings):
    # No ``db`` fixture: any query would fail the test. Redis and the store are unreachable.
    settings.CELERY_BROKER_URL = f"redis://{CLOSED_PORT_URL}/0"
    settings.S3_ENDPOINT_URL = f"http://{CLOSED_PORT_URL}"

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    assert not response.cookies
    assert len(response["X-Request-ID"]) == 32


def test_healthz_refuses_post(client):
    assert client.post("/healthz").status_code == 405


def test_readyz_is_ok_when_every_dependency_answers(
    client, db, s3, beat_heartbeat, django_assert_num_queries
):
    with django_assert_num_queries(1):
        response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "redis": True,
        "storage": True,
        "beat": True,
    }
    assert 0 <= body["checks"]["beat"]["age_seconds"] < settings.BEAT_HEARTBEAT_MAX_AGE_SECONDS
    assert "no-store" in response["Cache-Control"]
    assert not response.cookies


def test_readyz_fails_without_a_heartbeat_from_beat(client, db, s3):
    cache.delete(HEARTBEAT_CACHE_KEY)

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["beat"] == {"ok": False, "age_seconds": None, "error": "no heartbeat from beat"}
    assert body["checks"]["database"]["ok"] and body["checks"]["storage"]["ok"]


def test_readyz_fails_when_the_heartbeat_is_too_old(client, db, s3, beat_heartbeat, settings):
    settings.BEAT_HEARTBEAT_MAX_AGE_SECONDS = 120
    beat_heartbeat(seconds_ago=500)

    response = client.get("/readyz")

    assert response.status_code == 503
    beat = response.json()["checks"]["beat"]
    assert beat["ok"] is False
    assert beat["age_seconds"] >= 500
    assert beat["error"] == "beat's last heartbeat is older than 120 s"


def test_readyz_fails_when_the_object_storage_is_down(client, db, storage_down, beat_heartbeat):
    response = client.get("/readyz")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["storage"] == {"ok": False, "error": "object storage failed the bucket check"}
    assert checks["database"]["ok"] and checks["redis"]["ok"] and checks["beat"]["ok"]
    # What failed, with its address, goes to the log, not to an anonymous caller.
    assert CLOSED_PORT_URL not in response.content.decode()


def test_readyz_fails_when_the_broker_redis_is_down(client, db, s3, beat_heartbeat, settings):
    settings.CELERY_BROKER_URL = f"redis://{CLOSED_PORT_URL}/0"

    response = client.get("/readyz")

    assert response.status_code == 503
    redis_check = response.json()["checks"]["redis"]
    assert redis_check["ok"] is False
    assert redis_check["error"].startswith("broker Redis did not answer")
    assert "cache" not in redis_check["error"]


READYZ_SCRIPT = """
import json, django
django.setup()
from django.test import Client
response = Client().get("/readyz")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


def test_readyz_fails_when_the_database_is_down(s3, beat_heartbeat):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings_test",
        "DATABASE_URL": f"postgres://postgres@{CLOSED_PORT_URL}/gatehouse",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "S3_ENDPOINT_URL": s3.endpoint_url,
        "S3_BUCKET": s3.bucket,
        "S3_ACCESS_KEY_ID": settings.S3_ACCESS_KEY_ID,
        "S3_SECRET_ACCESS_KEY": settings.S3_SECRET_ACCESS_KEY,
        "ALLOWED_HOSTS": "testserver",
    }
    result = subprocess.run(
        [sys.executable, "-c", READYZ_SCRIPT],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])

    assert answer["status"] == 503
    checks = answer["body"]["checks"]
    assert checks["database"] == {"ok": False, "error": "database did not answer (OperationalError)"}
    assert checks["redis"]["ok"] and checks["storage"]["ok"] and checks["beat"]["ok"]


def test_probes_are_not_redirected_to_https(client, db, s3, beat_heartbeat, settings):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/").status_code == 301
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_readyz_fails_cleanly_when_the_store_has_no_credentials(
    client, db, s3, beat_heartbeat, settings, monkeypatch
):
    # Empty keys let boto3 look for credentials elsewhere; with none anywhere, it cannot even sign.
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings.S3_ACCESS_KEY_ID = settings.S3_SECRET_ACCESS_KEY = ""
    storage.clear_client_cache()

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["storage"]["ok"] is False
