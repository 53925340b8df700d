"""The download bench's CPU accounting (bench/download_urls_load.py) reads what processes really spent."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.download_urls_load import CpuSample, cpu_sample

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads Linux's /proc")


def spin(seconds: float) -> None:
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass


def test_cpu_spent_by_the_server_group_is_counted_there_and_in_the_machine():
    # This test's own process group stands in for the server's.
    before = cpu_sample(os.getpgrp())
    spin(0.3)
    after = cpu_sample(os.getpgrp())

    per_request = after.per_request_ms(before, requests=3)

    assert per_request["server"] >= 0.25 * 1000 / 3
    assert per_request["machine"] >= per_request["server"] * 0.9
    assert set(per_request) == {"machine", "server", "postgres", "redis-server"}


def test_a_child_that_exited_in_between_still_counts():
    """As a recycled gunicorn worker or a closed PostgreSQL backend does: reaped, it shows in its parent."""
    before = cpu_sample(os.getpgrp())
    spinner = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", spinner], check=True)
    after = cpu_sample(os.getpgrp())

    assert after.by_program["server"] - before.by_program["server"] >= 0.25


def test_another_group_is_not_counted_as_the_server():
    before = cpu_sample(os.getpgrp() + 10**7)
    spin(0.2)
    after = cpu_sample(os.getpgrp() + 10**7)

    assert after.by_program["server"] == before.by_program["server"] == 0


def test_per_request_is_the_difference_over_the_requests():
    before = CpuSample(machine=10.0, by_program={"server": 4.0, "postgres": 1.0})
    after = CpuSample(machine=12.0, by_program={"server": 5.0, "postgres": 1.5, "redis-server": 0.1})

    assert after.per_request_ms(before, requests=1000) == pytest.approx(
        {"machine": 2.0, "server": 1.0, "postgres": 0.5, "redis-server": 0.1}
    )
    assert after.per_request_ms(before, requests=0) == {}
