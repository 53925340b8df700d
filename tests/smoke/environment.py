"""The environment of the smoke's processes (and of the smoke itself), and of the nginx site it renders.

Every Django and Celery process of the smoke reads the same variables, exactly as a production host's
``/etc/gatehouse/env`` would give them: production settings (DEBUG off, SITE_URL on https, the secrets
as files through ``*_FILE``), with the smoke's own database, Redis numbers, SeaweedFS and SMTP sink.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from portal.seaweedfs import SeaweedFS
from tests.smoke.stack import HOST, self_signed_certificate

DATABASE = "gatehouse_smoke"
POSTGRES = "postgres://postgres@127.0.0.1:5432"
CACHE_REDIS = "redis://127.0.0.1:6379/13"
BROKER_REDIS = "redis://127.0.0.1:6379/14"
BUCKET = "gatehouse-smoke"
WEB_WORKERS = 2

# Variables of the caller's shell that would change what the smoke runs: it sets its own or none.
_INHERITED_NAMES = re.compile(
    r"^(DJANGO_SETTINGS_MODULE|SECRET_KEY|DATABASE_URL|REDIS_URL|CACHE_URL|CELERY_.*|S3_.*|EMAIL_.*|"
    r"SITE_URL|ALLOWED_HOSTS|DEBUG|GUNICORN_.*|WEB_CONCURRENCY|FORWARDED_ALLOW_IPS|PROMETHEUS_.*|"
    r"GATEHOUSE_.*|METRICS_.*|SENTRY_.*|TRUSTED_PROXY_COUNT|SECURE_.*|STATIC_ROOT|ROLLOUT_.*|LOG_LEVEL)"
    r"(_FILE)?$"
)


def _private_file(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as secret_file:
        secret_file.write(text)
    return path


def smoke_environment(
    *, scratch: Path, ports: dict[str, int], seaweed: SeaweedFS, sink_port: int
) -> dict[str, str]:
    secrets_dir = scratch / "secrets"
    secrets_dir.mkdir(mode=0o700)
    environment = {name: value for name, value in os.environ.items() if not _INHERITED_NAMES.match(name)}
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "PYTHONUNBUFFERED": "1",
            "DEBUG": "false",
            "SECRET_KEY_FILE": str(_private_file(secrets_dir / "secret_key", secrets.token_urlsafe(50))),
            "ALLOWED_HOSTS": HOST,
            "SITE_URL": f"https://{HOST}:{ports['https']}",
            # nginx is the one proxy: Django takes the client's address from the last X-Forwarded-For entry.
            "TRUSTED_PROXY_COUNT": "1",
            "METRICS_TOKEN_FILE": str(
                _private_file(secrets_dir / "metrics_token", secrets.token_urlsafe(24))
            ),
            "DATABASE_URL": f"{POSTGRES}/{DATABASE}",
            "REDIS_URL": CACHE_REDIS,
            "CELERY_BROKER_URL": BROKER_REDIS,
            # Beat's rollout tick every second: the scheduled tier opens within a second or two of its date.
            "ROLLOUT_SCAN_SECONDS": "1",
            "S3_ENDPOINT_URL": seaweed.endpoint_url,
            "S3_BUCKET": BUCKET,
            "S3_ACCESS_KEY_ID": seaweed.access_key,
            "S3_SECRET_ACCESS_KEY_FILE": str(_private_file(secrets_dir / "s3_secret", seaweed.secret_key)),
            "S3_REGION": "us-east-1",
            "S3_ADDRESSING_STYLE": "path",
            "EMAIL_DELIVERY": "smtp",
            "EMAIL_HOST": HOST,
            "EMAIL_PORT": str(sink_port),
            "DEFAULT_FROM_EMAIL": "Gatehouse smoke <smoke@gatehouse.example>",
            "STATIC_ROOT": str(scratch / "static"),
            "GATEHOUSE_VAR_DIR": str(scratch / "var"),
            "GUNICORN_BIND": f"{HOST}:{ports['gunicorn']}",
            "WEB_CONCURRENCY": str(WEB_WORKERS),
            "LOG_LEVEL": "INFO",
        }
    )
    return environment


def web_environment(scratch: Path) -> dict[str, str]:
    """What only the web process gets: its workers' metrics files (deploy/gunicorn.conf.py manages them)."""
    return {"PROMETHEUS_MULTIPROC_DIR": str(scratch / "prometheus")}


def nginx_site_environment(*, scratch: Path, ports: dict[str, int], static_root: Path) -> dict[str, str]:
    """The values deploy/bin/render-nginx fills in: loopback only, the smoke's ports and certificate."""
    certificate, key = self_signed_certificate(scratch / "tls")
    return {
        "GATEHOUSE_SERVER_NAME": HOST,
        "GATEHOUSE_LISTEN_ADDRESS": HOST,
        "GATEHOUSE_HTTP_PORT": str(ports["http"]),
        "GATEHOUSE_HTTPS_PORT": str(ports["https"]),
        "GATEHOUSE_TLS_CERT": str(certificate),
        "GATEHOUSE_TLS_KEY": str(key),
        "GATEHOUSE_UPSTREAM": f"{HOST}:{ports['gunicorn']}",
        "GATEHOUSE_STATIC_ROOT": str(static_root),
        "GATEHOUSE_ACCESS_LOG": str(scratch / "nginx" / "access.log"),
    }
