"""The smoke's moving parts: the processes it starts from deploy/, and the scratch state it makes and removes.

``Supervisor`` starts each long-running process (nginx, deploy/bin/web, two deploy/bin/worker, beat)
in a process group of its own with its output in a log file, notices when one exits (``check``), and stops
them all: TERM to each group, KILL after a grace period. ``SmokeFailure`` carries the log tails a failure
must show. The rest are small helpers: free loopback ports, a self-signed certificate made with the openssl
command, nginx's main configuration around the rendered site, the smoke's own database and Redis numbers.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from portal.seaweedfs import die_with_parent

REPO_DIR = Path(__file__).resolve().parents[2]
DEPLOY_BIN = REPO_DIR / "deploy" / "bin"
HOST = "127.0.0.1"
STOP_GRACE_SECONDS = 15.0
LOG_TAIL_LINES = 40


class SmokeFailure(Exception):
    """The smoke found something wrong; the message says what, ``details`` holds the logs that show why."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Supervisor:
    """Long-running processes of the smoke, each leading its own process group."""

    log_dir: Path
    environment: dict[str, str]
    services: list[Service] = field(default_factory=list)

    def start(
        self, name: str, command: list[str], extra_environment: dict[str, str] | None = None
    ) -> Service:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - the deploy scripts and nginx, with our arguments
                command,
                cwd=REPO_DIR,
                env={**self.environment, **(extra_environment or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own group: the stop reaches gunicorn's and Celery's children too, and Ctrl-C in a
                # terminal reaches only the smoke, which then stops everything in order.
                start_new_session=True,
                # If the smoke itself is killed outright, the kernel sends TERM to the process it started.
                preexec_fn=die_with_parent,
            )
        service = Service(name, process, log_path)
        self.services.append(service)
        return service

    def run(self, name: str, command: list[str], timeout: float = 120) -> str:
        """Run a command to the end (deploy/bin/release, bucket_cors); a non-zero exit fails the smoke."""
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            completed = subprocess.run(  # noqa: S603 - the deploy scripts with our arguments
                command,
                cwd=REPO_DIR,
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if completed.returncode != 0:
            raise SmokeFailure(f"{name} exited with {completed.returncode}", log_tail(log_path))
        return log_path.read_text(errors="replace")

    def check(self) -> None:
        """Fail, with its log tail, if any process has exited: none of them may stop by itself."""
        for service in self.services:
            code = service.process.poll()
            if code is not None:
                raise SmokeFailure(f"{service.name} exited with {code}", log_tail(service.log_path))

    def wait_for(self, condition: Callable[[], object], *, what: str, timeout: float = 60.0) -> object:
        """Poll ``condition`` until it is truthy, checking all along that every process still runs."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise SmokeFailure(f"gave up waiting {timeout:.0f} s for {what}")
            time.sleep(0.2)

    def stop_all(self) -> list[str]:
        """TERM every group at once, then KILL what is left after the grace period; newest first.

        Returns a line per process that had to be killed (a clean stop is part of what the smoke checks).
        """
        for service in reversed(self.services):
            if service.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.process.pid, signal.SIGTERM)
        killed = []
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for service in reversed(self.services):
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed.append(f"{service.name} did not stop within {STOP_GRACE_SECONDS:.0f} s: killed")
            # The group may outlive its leader (a pool child): make sure nothing of it is left.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=5)
        return killed


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held open together so that none is handed out twice)."""
    held = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            held.append(sock)
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (as its subjectAltName), made with the openssl command, and its key."""
    certificate, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(  # noqa: S603
        [
            shutil.which("openssl") or "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={HOST}",
            "-addext",
            f"subjectAltName=IP:{HOST}",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    return certificate, key


def nginx_binary() -> str:
    """Debian puts nginx in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        raise SmokeFailure("nginx is not installed: run `make nginx` (make smoke does).")
    return found


def nginx_main_config(directory: Path, site_config: Path) -> Path:
    """nginx's main file for a private nginx: its pid, logs and temporary files under ``directory``, in the
    foreground, with the rendered site included in http {} as a server's conf.d/ would include it.

    Run as root, nginx's workers switch to nobody, who must be able to read the static files (the smoke's
    scratch directory is made world-readable) and write the temporary directories (nginx makes those
    itself, owned by its worker user).
    """
    user = ""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        user = f"user {nobody.pw_name} {grp.getgrgid(nobody.pw_gid).gr_name};\n"
    config = directory / "nginx.conf"
    config.write_text(
        f"""{user}daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {site_config};
}}
"""
    )
    return config


def nginx_command(config: Path, directory: Path) -> list[str]:
    # -e: the error log from the very start (the compiled-in /var/log/nginx may not be writable).
    return [nginx_binary(), "-c", str(config), "-p", str(directory), "-e", str(directory / "error.log")]


def recreate_database(admin_url: str, name: str) -> None:
    """Drop the database ``name`` if a failed run left it, and create it empty."""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis(*urls: str) -> None:
    """Empty the smoke's own Redis databases: no task or cache entry of an earlier run may leak in."""
    for url in urls:
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()
