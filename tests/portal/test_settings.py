"""The settings module refuses to start on a bad value and names the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GOOD_ENV = {"SECRET_KEY": "x" * 40, "PATH": os.environ["PATH"]}


PRINT_SETTING = "import django; django.setup(); from django.conf import settings; print(settings.{})"


def print_setting(name: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A fresh interpreter that loads the production settings with ``env`` and prints one of them."""
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTING.format(name)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_django(**env: str) -> subprocess.CompletedProcess:
    return print_setting("DEBUG", {**GOOD_ENV, "DJANGO_SETTINGS_MODULE": "portal.settings", **env})


def test_it_starts_with_good_settings():
    result = start_django()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DOWNLOAD_URL_LIFETIME_SECONDS", "604801"),
        ("DOWNLOAD_URL_LIFETIME_SECONDS", "0"),
        ("DOWNLOAD_URL_LIFETIME_SECONDS", "ten"),
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "mysql://db/gatehouse"),
        ("REDIS_URL", "localhost:6379"),
        ("S3_ADDRESSING_STYLE", "sideways"),
        ("EMAIL_PORT", "70000"),
        ("WATCH_NOTIFY_BATCH_SIZE", "0"),
        ("WATCH_CLAIM_LEASE_SECONDS", "soon"),
        ("SITE_URL", "gatehouse.example.org"),
        ("SECRET_KEY", "short"),
        # Observability (portal/logs.py, metrics.py, beat.py, sentry.py)
        ("LOG_FORMAT", "xml"),
        ("METRICS_TOKEN", "too-short"),
        ("BEAT_HEARTBEAT_MAX_AGE_SECONDS", "0"),
        ("BEAT_HEARTBEAT_MAX_AGE_SECONDS", "two minutes"),
        ("BEAT_LOCK_TTL_SECONDS", "1"),
        ("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/gatehouse-metrics"),
        ("SENTRY_DSN", "https://o1.ingest.sentry.io/1"),
        ("SENTRY_ENVIRONMENT", ""),
        ("SENTRY_TRACES_SAMPLE_RATE", "1.5"),
        ("SENTRY_TRACES_SAMPLE_RATE", "half"),
        ("SENTRY_TRACES_SAMPLE_RATE", "nan"),
    ],
)
def test_it_refuses_a_bad_value_and_names_the_variable(variable, value):
    result = start_django(**{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr


def test_it_refuses_to_start_without_a_secret_key_in_production():
    env = {key: value for key, value in GOOD_ENV.items() if key != "SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "portal.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_it_reads_a_secret_from_a_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("s" * 50 + "\n")
    env = {**GOOD_ENV, "DJANGO_SETTINGS_MODULE": "portal.settings", "SECRET_KEY_FILE": str(secret_file)}
    del env["SECRET_KEY"]
    result = print_setting("SECRET_KEY", env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "s" * 50


def test_a_url_with_a_password_may_come_from_a_file_and_is_still_checked(tmp_path):
    url_file = tmp_path / "database_url"
    url_file.write_text("postgres://gatehouse:s3cret@db.internal:5432/gatehouse\n")
    env = {**GOOD_ENV, "DJANGO_SETTINGS_MODULE": "portal.settings", "DATABASE_URL_FILE": str(url_file)}
    env.pop("DATABASE_URL", None)

    read = print_setting("DATABASE_URL", env)
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "postgres://gatehouse:s3cret@db.internal:5432/gatehouse"
    url_file.write_text("mysql://gatehouse@db.internal/gatehouse\n")
    refused = print_setting("DATABASE_URL", env)
    assert refused.returncode != 0
    assert "DATABASE_URL must be a URL starting with one of" in refused.stderr


def test_static_root_comes_from_the_environment(tmp_path):
    env = {**GOOD_ENV, "DJANGO_SETTINGS_MODULE": "portal.settings", "STATIC_ROOT": str(tmp_path / "static")}
    result = print_setting("STATIC_ROOT", env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "static")
