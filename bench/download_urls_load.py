"""The load side of bench/download_urls.py: the gunicorn it measures and the wrk runs against it.

``Gunicorn`` runs ``portal.wsgi`` with N sync workers on a free loopback port, in a process group of
its own that dies with the bench. ``wrk_run`` loads one URL and returns wrk's summary as numbers:
the Lua script it is given ends with a ``done()`` hook that prints them as one line of JSON, so
the latency percentiles are wrk's exact microseconds rather than its rounded text.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from portal.seaweedfs import die_with_parent

BASE_DIR = Path(__file__).resolve().parent.parent
RESULT_MARKER = "BENCH_RESULT "
LUA_DONE = """
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"status_errors":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, errors.status, errors.connect, errors.read, errors.write,
    errors.timeout, math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
    math.floor(latency.max)))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int  # responses received, whatever their status
    duration_us: int
    status_errors: int  # responses that were not 2xx or 3xx
    connect: int
    read: int
    write: int
    timeout: int
    p50_us: int
    p99_us: int
    max_us: int

    @property
    def requests_per_second(self) -> float:
        return self.requests / (self.duration_us / 1_000_000)

    @property
    def successes(self) -> int:
        return self.requests - self.status_errors

    @property
    def socket_errors(self) -> dict[str, int]:
        counts = {"connect": self.connect, "read": self.read, "write": self.write, "timeout": self.timeout}
        return {kind: count for kind, count in counts.items() if count}


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far (user + system): the whole machine's, and by the programs measured."""

    machine: float
    by_program: dict[str, float]

    def per_request_ms(self, before: CpuSample, requests: int) -> dict[str, float]:
        """Milliseconds of CPU per request between ``before`` and this sample, machine and programs."""
        if requests <= 0:
            return {}
        spent = {"machine": self.machine - before.machine}
        spent |= {name: self.by_program.get(name, 0) - before.by_program.get(name, 0) for name in PROGRAMS}
        return {name: 1000 * seconds / requests for name, seconds in spent.items()}


# What the bench's CPU is split into: the application server (its process group), then by process name.
PROGRAMS = ("server", "postgres", "redis-server")


def cpu_sample(server_group: int) -> CpuSample | None:
    """Read /proc (Linux): None where there is none.

    Each process counts with its reaped children (cutime, cstime): gunicorn recycles a worker after
    ~20,000 requests and PostgreSQL ends a backend with its connection, and their CPU then shows in
    the master's and the postmaster's totals rather than vanishing between two samples.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        # user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
        times = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    by_program = dict.fromkeys(PROGRAMS, 0.0)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited while we looked
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on: see proc(5)
        seconds = sum(int(value) for value in fields[11:15]) / ticks  # utime, stime, cutime, cstime
        if int(fields[2]) == server_group:  # pgrp
            by_program["server"] += seconds
        elif name in PROGRAMS:
            by_program[name] += seconds
    return CpuSample(machine=(sum(times) - times[3] - times[4]) / ticks, by_program=by_program)


def wrk_script(path: Path, *, method: str, headers: dict[str, str]) -> Path:
    """Write the Lua script of one route; readable by its owner only, as it may hold a token."""
    lines = [f"wrk.method = {json.dumps(method)}"]
    lines += [f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}" for name, value in headers.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as script:
        script.write("\n".join(lines) + "\n" + LUA_DONE)
    return path


def wrk_run(
    url: str, script: Path, *, seconds: int, threads: int, connections: int, timeout: int, show: bool
) -> WrkResult:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout}s"]
    command += ["--latency", "-s", str(script), url]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if show:
        print(completed.stdout, completed.stderr, sep="", flush=True)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not lines:
        sys.exit(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    return WrkResult(**json.loads(lines[-1].removeprefix(RESULT_MARKER)))


class Gunicorn:
    """deploy/gunicorn.conf.py's server with ``workers`` workers, this environment plus ``env``."""

    def __init__(self, *, workers: int, env: dict[str, str], log_path: Path):
        self.workers = workers
        self.env = env
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, timeout: float = 30) -> None:
        """Start it and return once it listens; exits the bench, with the server's log, if it cannot."""
        # The production configuration (deploy/gunicorn.conf.py: sync workers, preload, access log), with
        # the worker count and address given the way an operator gives them.
        command = [sys.executable, "-m", "gunicorn", "-c", str(BASE_DIR / "deploy" / "gunicorn.conf.py")]
        command += ["portal.wsgi:application", "--chdir", str(BASE_DIR)]
        server_env = {"WEB_CONCURRENCY": str(self.workers), "GUNICORN_BIND": f"127.0.0.1:{self.port}"}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                command,
                cwd=BASE_DIR,
                env={**os.environ, "PYTHONPATH": str(BASE_DIR), **self.env, **server_env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Only calls prctl(2): a bench killed outright leaves no server behind.
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"gunicorn exited while starting:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        sys.exit(f"gunicorn did not listen within {timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM the group (gunicorn stops its workers and their database connections), then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
