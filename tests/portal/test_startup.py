"""Every real entry point refuses to start on a bad configuration, and says which variable is wrong.

tests/portal/test_settings.py checks the readers through ``django.setup()``; these start the
processes an operator runs: ``manage.py`` (migrate, check), a Celery worker, and gunicorn. gunicorn
imports the application in its worker, not in its master, unless given ``--preload``; either way it
exits at once (status 3, "Worker failed to boot", without --preload) with the worker's error in its
log, rather than serving errors.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import pytest
from django.conf import settings

from tests.portal.server import base_env, free_port

# Each process fails within a second or two; the limit only stops a test that would hang forever.
EXIT_DEADLINE_SECONDS = 120


def entry_points() -> dict[str, list[str]]:
    return {
        "manage.py check": ["manage.py", "check"],
        "celery worker": ["-m", "celery", "-A", "portal", "worker", "--loglevel", "INFO", "--pool", "solo"],
        "gunicorn": ["-m", "gunicorn", "portal.wsgi:application", "--bind", f"127.0.0.1:{free_port()}"],
        "gunicorn --preload": [
            "-m",
            "gunicorn",
            "portal.wsgi:application",
            "--preload",
            "--bind",
            f"127.0.0.1:{free_port()}",
        ],
    }


@dataclass
class Exited:
    status: int
    output: str


def start(arguments: list[str], env: dict[str, str]) -> Exited:
    """Run ``python <arguments>`` until it exits; a process still running at the deadline (it started
    despite the bad value) is killed with its children and fails the test."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, *arguments],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=EXIT_DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"python {' '.join(arguments)} kept running with a bad configuration:\n{output}")
    return Exited(process.returncode, output)


def good_env(**extra: str) -> dict[str, str]:
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1/gatehouse")
    return base_env(**{"DATABASE_URL": database_url, **extra})


BAD_CONFIGURATIONS = {
    # name: (variables to set, variables to remove, what the error must say)
    "no secret key": ({}, ["SECRET_KEY"], "SECRET_KEY must be set"),
    "not an integer": (
        {"API_RATE_LIMIT_PER_MINUTE": "abc"},
        [],
        "API_RATE_LIMIT_PER_MINUTE must be an integer",
    ),
    "unsupported database": ({"DATABASE_URL": "mysql://db/gatehouse"}, [], "DATABASE_URL must be a URL"),
    "unreadable secret file": (
        {"SECRET_KEY_FILE": "/nonexistent/gatehouse-secret"},
        ["SECRET_KEY"],
        "SECRET_KEY_FILE points at an unreadable file",
    ),
    "storage endpoint without scheme": (
        {"S3_ENDPOINT_URL": "objects.example.net:9000"},
        [],
        "S3_ENDPOINT_URL must be a URL",
    ),
    "negative proxy count": ({"TRUSTED_PROXY_COUNT": "-1"}, [], "TRUSTED_PROXY_COUNT must be at least 0"),
    "HSTS not a number": ({"SECURE_HSTS_SECONDS": "a year"}, [], "SECURE_HSTS_SECONDS must be an integer"),
}


@pytest.mark.parametrize("entry_point", list(entry_points()))
@pytest.mark.parametrize("configuration", list(BAD_CONFIGURATIONS))
def test_it_refuses_to_start_and_names_the_variable(entry_point, configuration):
    variables, removed, explanation = BAD_CONFIGURATIONS[configuration]
    env = good_env(**variables)
    for name in removed:
        env.pop(name)

    exited = start(entry_points()[entry_point], env)

    assert exited.status != 0
    assert "ImproperlyConfigured" in exited.output
    assert explanation in exited.output


def test_the_same_environment_with_good_values_passes_the_check():
    """The control: the environment the refusals start from is otherwise complete."""
    exited = start(entry_points()["manage.py check"], good_env())

    assert exited.status == 0, exited.output
    assert "System check identified no issues" in exited.output
