"""The Celery application.

Reliability settings live in settings.py under CELERY_*: late acknowledgement with
reject-on-worker-lost and a prefetch of one, so that a task whose worker dies is
redelivered rather than lost. Tasks subclass DjangoTask, whose ``delay_on_commit``
enqueues only once the surrounding transaction has committed.
"""

import os
from smtplib import SMTPException

from celery import Celery

from portal import logs, metrics

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

# One e-mail handed to the mail server: retried with backoff when SMTP fails. Both time limits:
# the project-wide soft limit (CELERY_TASK_SOFT_TIME_LIMIT, 240 s) above a 60 s hard limit makes
# Celery refuse to enqueue the task at all.
EMAIL_TASK_OPTIONS = {
    "autoretry_for": (SMTPException, OSError),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
    "soft_time_limit": 50,
    "time_limit": 60,
}

app = Celery("gatehouse", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Workers and beat log through Django's LOGGING, tasks carry the id of the request that enqueued them
# (portal/logs.py), and failed tasks are counted for the metrics (portal/metrics.py).
logs.connect_celery_signals()
metrics.connect_celery_signals()
