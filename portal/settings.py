"""Gatehouse settings: every knob is read from the environment (see README.md).

A bad value stops the process at start-up with ImproperlyConfigured naming the
variable. Production needs SECRET_KEY; everything else has a default that suits a
developer machine with PostgreSQL and Redis on localhost.
"""

from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from portal.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_int_set,
    env_list,
    env_secret,
    env_str,
    env_url,
)
from portal.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret("SECRET_KEY", "insecure-development-key" if DEBUG else None)
if not DEBUG and len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long outside DEBUG")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
SITE_URL = env_url("SITE_URL", "http://127.0.0.1:8000", ("http", "https")).rstrip("/")
CSRF_TRUSTED_ORIGINS = [SITE_URL]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    # django-ninja: the REST API's OpenAPI schema and its Swagger UI, served from its own static files.
    "ninja",
    "portal",
    "releases",
    "access",
]

MIDDLEWARE = [
    # First: every later middleware's logs and responses (redirects, refusals) carry the request id,
    # and the metrics count them too (portal/logs.py, portal/metrics.py).
    "portal.logs.RequestIdMiddleware",
    "portal.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "portal.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "api.limits.ApiRequestLimits",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gatehouse", ("postgres", "postgresql", "sqlite")
)
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The download routes prepare their few fixed statements on the server (portal/prepared.py); off
# behind a transaction-mode pooler that cannot hold prepared statements. psycopg prepares nothing on a
# connection whose prepare_threshold is None (Django's default); Django's own cursors bind on the client
# and never prepare whatever the threshold, so setting it only lets portal/prepared.py's cursor work.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
if DATABASE_PREPARED_STATEMENTS and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5

# --- Redis: cache (rate limits) and Celery broker -------------------------------------------
REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", ("redis", "rediss"))
CACHE_URL = env_url("CACHE_URL", REDIS_URL, ("redis", "rediss", "file", "locmem"))
if CACHE_URL.startswith("redis"):
    _cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
elif CACHE_URL.startswith("file"):
    _cache = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": CACHE_URL[7:]}
else:
    _cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
CACHES = {"default": {**_cache, "KEY_PREFIX": "gatehouse"}}

CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", REDIS_URL, ("redis", "rediss", "filesystem"))
if CELERY_BROKER_URL.startswith("filesystem"):
    # The demo's server-less broker: messages are files in a shared folder.
    _broker_folder = Path(env_str("CELERY_BROKER_FOLDER", str(BASE_DIR / "var" / "broker")))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_folder),
        "data_folder_out": str(_broker_folder),
        "processed_folder": str(_broker_folder / "processed"),
        # Exchange bindings (the worker's remote-control queue); kombu's default is relative to the cwd.
        "control_folder": str(_broker_folder / "control"),
        "store_processed": False,
    }
else:
    # A task redelivered after a worker dies waits this long; keep it above the longest task.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60)
    }
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The hour (UTC) of the daily notification digest; it carries what arrived before that hour.
NOTIFICATION_DIGEST_HOUR_UTC = env_int("NOTIFICATION_DIGEST_HOUR_UTC", 7, minimum=0, maximum=23)
CELERY_BEAT_SCHEDULE = {
    # Opens the tiers that are due and finishes telling their watchers (releases/rollout.py).
    "rollout-tick": {
        "task": "releases.tasks.rollout_tick",
        "schedule": env_int("ROLLOUT_SCAN_SECONDS", 15),
    },
    "expire-due-grants": {"task": "access.tasks.expire_due_grants", "schedule": 60.0},
    # Reminds assignees before a decision date and tells owners once it passed (access/reminders.py).
    "send-review-reminders": {"task": "access.tasks.send_review_reminders", "schedule": 300.0},
    # Expires applications left pending or returned past their tier's stale_after_days.
    "expire-stale-applications": {"task": "access.tasks.expire_stale_applications", "schedule": 3600.0},
    # Tells grant holders GRANT_EXPIRY_REMINDER_DAYS before expiry, each reminder once.
    "send-grant-expiry-reminders": {"task": "access.tasks.send_grant_expiry_reminders", "schedule": 3600.0},
    # Aborts multipart uploads nobody finished (releases/uploads/cleanup.py, uploads_abort_abandoned).
    "abort-abandoned-uploads": {"task": "releases.tasks.abort_abandoned_uploads", "schedule": 3600.0},
    # One e-mail a day to each user who chose the digest (access/inbox.py, notification_digests_send).
    "send-notification-digests": {
        "task": "access.tasks.send_notification_digests",
        "schedule": crontab(minute=0, hour=NOTIFICATION_DIGEST_HOUR_UTC),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(BASE_DIR / "var" / "celerybeat-schedule")
# Beat with a singleton lock and a heartbeat for /readyz (portal/beat.py).
CELERY_BEAT_SCHEDULER = "portal.beat:GatehouseScheduler"

# --- Object storage -------------------------------------------------------------------------
# Empty or unset: AWS S3 (boto3 finds the endpoint from the region).
S3_ENDPOINT_URL = (
    env_url("S3_ENDPOINT_URL", None, ("http", "https")) if env_str("S3_ENDPOINT_URL", "") else None
)
S3_BUCKET = env_str("S3_BUCKET", "gatehouse")
S3_ACCESS_KEY_ID = env_secret("S3_ACCESS_KEY_ID", "")
S3_SECRET_ACCESS_KEY = env_secret("S3_SECRET_ACCESS_KEY", "")
S3_REGION = env_str("S3_REGION", "us-east-1")
S3_ADDRESSING_STYLE = env_choice("S3_ADDRESSING_STYLE", "path", ("path", "virtual", "auto"))
# Download routes refuse with 503 while the bucket failed its last check; each process checks it at most
# this often (portal/storage_probe.py).
STORAGE_PROBE_INTERVAL_SECONDS = env_int("STORAGE_PROBE_INTERVAL_SECONDS", 5, minimum=1, maximum=300)
# S3 refuses presigned URLs valid for more than 7 days.
DOWNLOAD_URL_LIFETIME_SECONDS = env_int(
    "DOWNLOAD_URL_LIFETIME_SECONDS", 600, minimum=1, maximum=7 * 24 * 3600
)
# Publishers' uploads (releases/uploads/): the smallest part size handed out (S3 allows 5 MiB to 5 GiB;
# bigger files get bigger parts to stay within 10,000), how long a part's PUT URL lives, after how many
# hours without a new part an upload counts as abandoned, and how long verifying one file may take. A
# task running past the broker's visibility timeout is delivered twice (harmless, but twice the work).
UPLOAD_PART_SIZE_BYTES = env_int(
    "UPLOAD_PART_SIZE_BYTES", 64 * 1024 * 1024, minimum=5 * 1024 * 1024, maximum=5 * 1024 * 1024 * 1024
)
UPLOAD_PART_URL_LIFETIME_SECONDS = env_int(
    "UPLOAD_PART_URL_LIFETIME_SECONDS", 3600, minimum=60, maximum=7 * 24 * 3600
)
UPLOAD_ABANDONED_AFTER_HOURS = env_int("UPLOAD_ABANDONED_AFTER_HOURS", 24, minimum=1)
ARTIFACT_VERIFY_TIME_LIMIT_SECONDS = env_int(
    "ARTIFACT_VERIFY_TIME_LIMIT_SECONDS",
    max(60, CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600) - 300),
    minimum=60,
)

# --- E-mail ---------------------------------------------------------------------------------
EMAIL_BACKEND = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
}[env_choice("EMAIL_DELIVERY", "smtp", ("smtp", "console"))]
EMAIL_HOST = env_str("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Gatehouse <gatehouse@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Watchers of an opened tier are e-mailed this many per SMTP connection; a worker holds the batch it
# claimed this long, after which another worker may take over what a crashed one left unsent.
WATCH_NOTIFY_BATCH_SIZE = env_int("WATCH_NOTIFY_BATCH_SIZE", 500, minimum=1, maximum=10_000)
WATCH_CLAIM_LEASE_SECONDS = env_int("WATCH_CLAIM_LEASE_SECONDS", 120, minimum=1, maximum=3600)
# Days before a grant's expiry on which its holder is reminded (each once), e.g. "30,7"; empty: never.
GRANT_EXPIRY_REMINDER_DAYS = env_int_set("GRANT_EXPIRY_REMINDER_DAYS", "30,7", minimum=1, maximum=365)
# Hours before an application's decision date at which its assigned reviewer is reminded, once.
REVIEW_REMINDER_HOURS_BEFORE_DUE = env_int("REVIEW_REMINDER_HOURS_BEFORE_DUE", 24, minimum=1, maximum=720)

# --- Accounts -------------------------------------------------------------------------------
AUTH_USER_MODEL = "access.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_SIGNUP_FORM_CLASS = "access.forms.SignupExtraForm"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Gatehouse] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if SITE_URL.startswith("https") else "http"
# allauth keeps its rate-limit counters in the default cache (Redis outside the demo).
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
}
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/"

# --- Security -------------------------------------------------------------------------------
# `manage.py check --deploy --fail-level WARNING` passes with SITE_URL on https and the defaults below.
_HTTPS = SITE_URL.startswith("https://")
# TLS ends at the reverse proxy (deploy/nginx), which sets X-Forwarded-Proto on every request. Django
# believes that header, so the app must be reachable only through the proxy: anyone who could reach
# gunicorn directly could claim https.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Plain-http requests are redirected to https (default: on when SITE_URL is https). Health and metrics
# probes come from inside the network over plain http, so they are exempt.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|metrics)/?$"]
# HSTS: browsers use only https for this host for SECURE_HSTS_SECONDS (default a year on https, else 0:
# off). SECURE_HSTS_INCLUDE_SUBDOMAINS covers hosts under SITE_URL's host, not its siblings.
# SECURE_HSTS_PRELOAD adds the "preload" token, which matters only if someone submits the domain to the
# browsers' preload list; both default to on so that the deploy check passes.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if _HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", _HTTPS)
SESSION_COOKIE_SECURE = _HTTPS
CSRF_COOKIE_SECURE = _HTTPS
# No script reads the session cookie. (The CSRF cookie stays readable: hiding it protects nothing.)
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content Security Policy (django-csp, sent by portal.csp.ContentSecurityPolicyMiddleware): scripts and
# styles from the site's own static files only, no inline code. The middleware adds the object storage's
# origin to connect-src, because publishers' browsers PUT upload parts straight to the bucket.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
# How many reverse proxies in front of the app append to X-Forwarded-For (1 behind deploy/nginx). The
# client's address is the entry that many places from the right; with 0 the header is ignored (anyone
# can send it) and REMOTE_ADDR is the client. allauth's rate limits and Gatehouse's records
# (portal.client_ip) both follow it.
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=5)
# Django refuses a form of more than 1,000 fields; the review queue's bulk form posts up to 1,000
# application ids (access.services.decisions.BULK_DECISION_MAX) plus its own few fields.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1100

# --- Internationalisation and static files --------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Where collectstatic (deploy/bin/release) gathers the static files nginx serves.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "var" / "static")))

# --- Product limits -------------------------------------------------------------------------
# Personal access tokens a user may hold at once; a leaked-token clean-up stays manageable.
MAX_ACCESS_TOKENS_PER_USER = 20
# Every new token expires; its owner picks a lifetime up to the maximum.
MAX_ACCESS_TOKEN_LIFETIME_DAYS = 365
ACCESS_TOKEN_DEFAULT_LIFETIME_DAYS = env_int(
    "ACCESS_TOKEN_DEFAULT_LIFETIME_DAYS", 90, minimum=1, maximum=MAX_ACCESS_TOKEN_LIFETIME_DAYS
)

# --- API (/api/v1/ and the huggingface_hub routes) -------------------------------------------
# Requests per token (or per signed-in user) per minute, counted in the shared cache.
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 600, minimum=1)
# A JSON body larger than this is refused with 413 before it is read.
API_MAX_BODY_BYTES = 64 * 1024
# Pagination: ?limit= from 1 to the maximum (default page size below), ?offset= from 0.
API_PAGE_SIZE_DEFAULT = 50
API_PAGE_SIZE_MAX = 100

# --- Observability: logs, health, metrics, error reports ------------------------------------
# Every process (web, worker, beat) logs to stderr: one JSON object per line, with the request id
# (portal/logs.py), or classic text lines for a developer's terminal.
LOG_FORMAT = env_choice("LOG_FORMAT", "text" if DEBUG else "json", ("json", "text"))
LOGGING = logging_config(
    log_format=LOG_FORMAT, level=env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING"))
)
# /readyz fails once beat's last heartbeat is older than this; beat writes one every few seconds.
BEAT_HEARTBEAT_MAX_AGE_SECONDS = env_int("BEAT_HEARTBEAT_MAX_AGE_SECONDS", 120, minimum=10, maximum=86_400)
# A beat that dies without releasing its lock is replaced by a standby beat after this long.
BEAT_LOCK_TTL_SECONDS = env_int("BEAT_LOCK_TTL_SECONDS", 30, minimum=3, maximum=600)
# /metrics answers 404 while this is unset, 401 without "Authorization: Bearer <METRICS_TOKEN>".
METRICS_TOKEN = env_secret("METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters long (or unset: metrics off)")
# Set for gunicorn with several workers (portal/metrics.py); prometheus_client reads it itself.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR must be an existing directory: {PROMETHEUS_MULTIPROC_DIR!r}"
    )
# Error reports (portal/sentry.py): off without a DSN.
SENTRY_DSN = env_secret("SENTRY_DSN", "")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "production")
if not SENTRY_ENVIRONMENT.strip():
    raise ImproperlyConfigured("SENTRY_ENVIRONMENT must not be empty")
SENTRY_TRACES_SAMPLE_RATE = env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0, minimum=0.0, maximum=1.0)
if SENTRY_DSN:
    from portal.sentry import sentry_init

    sentry_init(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)
