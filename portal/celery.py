"""The Celery application.

Reliability settings live in settings.py under CELERY_*: late acknowledgement with
reject-on-worker-lost and a prefetch of one, so that a task whose worker dies is
redelivered rather than lost. Tasks subclass DjangoTask, whose ``delay_on_commit``
enqueues only once the surrounding transaction has committed.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("gatehouse", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
