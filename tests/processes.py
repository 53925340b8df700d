"""Real ``celery -A portal`` processes for the tests that need a worker or beat of their own.

``start_celery`` runs one (a worker, beat) with this interpreter, in its own process group, logging to
a file; ``CeleryProcess`` reads that log and stops or kills the whole group. ``test_database_url`` is
the ``DATABASE_URL`` that points such a process at the test database pytest-django created.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

ROLLOUT_TICK = "releases.tasks.rollout_tick"


@dataclass
class CeleryProcess:
    name: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        """True while the process runs; fails the test, with its log, once it has exited."""
        if self.process.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
        return True

    def ready(self) -> bool:
        """A worker that is running and has said it is ready to consume."""
        return self.running() and " ready." in self.log()

    def ticks_done(self) -> int:
        return sum(
            1
            for line in self.log().splitlines()
            if f"Task {ROLLOUT_TICK}[" in line and " succeeded in " in line
        )

    def kill(self) -> None:
        """SIGKILL the whole process group, main process and pool children: nothing gets to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int | None:
        """SIGTERM (a warm shutdown), then SIGKILL after ten seconds; the exit status, None if it
        would not die."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.poll()


def start_celery(name: str, arguments: list[str], env: dict[str, str], log_dir: Path) -> CeleryProcess:
    """``celery -A portal <arguments>`` at INFO level, its output in ``<log_dir>/<name>.log``."""
    log_path = log_dir / f"{name}.log"
    command = [sys.executable, "-m", "celery", "-A", "portal", *arguments, "--loglevel", "INFO"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() and kill() reach the pool's children
        )
    return CeleryProcess(name, process, log_path)


def test_database_url() -> str:
    database = connection.settings_dict
    password = f":{quote(database['PASSWORD'], safe='')}" if database.get("PASSWORD") else ""
    return (
        f"postgres://{quote(database['USER'] or '', safe='')}{password}"
        f"@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"
    )


test_database_url.__test__ = False  # type: ignore[attr-defined]
