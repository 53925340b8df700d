"""Settings of the Celery worker and beat processes started by tests/releases/test_exactly_once_processes.py.

The test settings, sending e-mail over SMTP (to the test's sink, EMAIL_PORT) through a backend
with test-only brakes: see tests/smtp_sink.PausingEmailBackend.
"""

from portal.env import env_int, env_str
from portal.settings_test import *  # noqa: F403

EMAIL_BACKEND = "tests.smtp_sink.PausingEmailBackend"
GATEHOUSE_TEST_PAUSE_AFTER_EMAILS = env_int("GATEHOUSE_TEST_PAUSE_AFTER_EMAILS", 0, minimum=0)
GATEHOUSE_TEST_SEND_DELAY_SECONDS = float(env_str("GATEHOUSE_TEST_SEND_DELAY_SECONDS", "0"))
# The test's own queue, for the tasks beat sends: nothing else on the broker reaches these workers.
CELERY_TASK_DEFAULT_QUEUE = env_str("GATEHOUSE_TEST_QUEUE", "celery")
