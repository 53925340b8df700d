"""Error reports to Sentry (or any Sentry-compatible service, e.g. GlitchTip), when SENTRY_DSN is set.

settings.py calls ``sentry_init`` at the end of the settings, so the web processes, the workers and beat
all report: Django's integration sends the exceptions of requests (tagged with the request id,
portal/logs.py), Celery's those of tasks, and the logging integration ERROR log records. Nothing is
initialised without a DSN.

No personal data (``send_default_pii=False``): no cookies, no user's e-mail or IP, no request body. Tracing
samples SENTRY_TRACES_SAMPLE_RATE of transactions (default 0: errors only).
"""

from __future__ import annotations

import sentry_sdk
from django.core.exceptions import ImproperlyConfigured
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.utils import BadDsn, Dsn


def sentry_init(*, dsn: str, environment: str, traces_sample_rate: float) -> None:
    """Start reporting to ``dsn``; raises ImproperlyConfigured naming SENTRY_DSN if it is not a DSN."""
    try:
        Dsn(dsn)
    except BadDsn as error:
        raise ImproperlyConfigured(f"SENTRY_DSN is not a valid Sentry DSN: {error}") from None
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
        integrations=[DjangoIntegration(), CeleryIntegration()],
    )
