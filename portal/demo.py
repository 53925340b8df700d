"""``make demo``: the whole portal on one machine, with demo data, and no PostgreSQL or Redis.

``python -m portal.demo``, run from anywhere:

1. keeps its state in ``var/demo`` (``GATEHOUSE_DEMO_DIR`` moves it): the SQLite database, the file cache,
   the folders of Celery's filesystem broker, beat's schedule, SeaweedFS's data, and the secrets generated on
   the first run (Django's SECRET_KEY and the S3 keys), so that sessions and stored objects survive a restart;
2. starts SeaweedFS (portal.seaweedfs) as the S3 storage;
3. runs ``manage.py migrate`` and ``manage.py seed_demo`` (idempotent: a second run adds nothing);
4. starts ``runserver``, a Celery worker and Celery beat as child processes and prints how to sign in;
5. stops them all, SeaweedFS last, on Ctrl-C or SIGTERM, or as soon as one of them dies.

Environment: ``PORT`` (default 8000), ``GATEHOUSE_DEMO_DIR``, ``DEMO_PUBLIC_OPENS_IN_SECONDS`` (default 300).

This module imports nothing from Django, so that it can set the environment before any settings are read;
the seed command takes its account list from here.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from portal.seaweedfs import SeaweedFS, SeaweedFSError, die_with_parent

REPO_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_PUBLIC_OPENS_IN_SECONDS = 300
BUCKET = "gatehouse-demo"
REGION = "us-east-1"
# Short, so that a tier whose date has passed opens within seconds while someone watches.
ROLLOUT_SCAN_SECONDS = 5
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0

# Printed on the terminal for anyone to use: it protects nothing but a throwaway local demo.
DEMO_PASSWORD = "gatehouse-demo"  # noqa: S105


@dataclass(frozen=True, slots=True)
class DemoAccount:
    email: str
    full_name: str
    what_to_try: str


PUBLISHER = DemoAccount("publisher@demo.gatehouse", "Pat Publisher", "owner of Acme AI")
REVIEWER = DemoAccount(
    "reviewer@demo.gatehouse", "Robin Reviewer", "reviewer of Acme AI: works the review queue"
)
RESEARCHER = DemoAccount(
    "researcher@demo.gatehouse", "Sam Researcher", "a researcher: apply to the Researchers tier"
)
RED_TEAMER = DemoAccount("redteam@demo.gatehouse", "Alex Redteam", "invited to the Red team tier")
DEMO_ACCOUNTS = (PUBLISHER, REVIEWER, RESEARCHER, RED_TEAMER)

# Several processes write to one SQLite file: write-ahead logging lets readers run beside the writer,
# BEGIN IMMEDIATE takes the write lock up front (no deadlock between two upgrading readers), and a writer
# waits up to 20 s for the lock instead of failing with "database is locked".
SQLITE_OPTIONS = urllib.parse.urlencode(
    {
        "transaction_mode": "IMMEDIATE",
        "timeout": "20",
        "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
    }
)


class DemoError(Exception):
    """The demo cannot start or keep running; the message says why, for people."""


class StopRequested(Exception):
    """Ctrl-C or SIGTERM."""


@dataclass(frozen=True, slots=True)
class DemoPaths:
    root: Path

    @property
    def database(self) -> Path:
        return self.root / "db.sqlite3"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def broker(self) -> Path:
        return self.root / "broker"

    @property
    def beat_schedule(self) -> Path:
        return self.root / "celerybeat-schedule"

    @property
    def seaweedfs(self) -> Path:
        return self.root / "seaweedfs"

    @property
    def secret_key(self) -> Path:
        return self.root / "secret_key"

    @property
    def s3_credentials(self) -> Path:
        return self.root / "s3_credentials.json"

    @property
    def s3_secret_key(self) -> Path:
        return self.root / "s3_secret_key"

    def create(self) -> None:
        for folder in (self.root, self.cache, self.broker, self.broker / "processed", self.seaweedfs):
            folder.mkdir(parents=True, exist_ok=True)


def _env_int(name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DemoError(f"{name} must be a whole number, not {raw!r}.") from None
    if not minimum <= value <= maximum:
        raise DemoError(f"{name} must be between {minimum} and {maximum}, not {value}.")
    return value


def _write_private(path: Path, text: str) -> None:
    """Write a secret readable by its owner only; never rewrite an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as secret_file:
        secret_file.write(text)


def ensure_secrets(paths: DemoPaths) -> tuple[str, str]:
    """Create the SECRET_KEY and the S3 keys on the first run; return (access key, secret key)."""
    if not paths.secret_key.exists():
        _write_private(paths.secret_key, secrets.token_urlsafe(50))
    if not paths.s3_credentials.exists():
        credentials = {"access_key": f"demo-{secrets.token_hex(8)}", "secret_key": secrets.token_hex(20)}
        _write_private(paths.s3_credentials, json.dumps(credentials))
    credentials = json.loads(paths.s3_credentials.read_text())
    if not paths.s3_secret_key.exists():
        # The portal reads it through S3_SECRET_ACCESS_KEY_FILE: it never appears in a process listing.
        _write_private(paths.s3_secret_key, credentials["secret_key"])
    return credentials["access_key"], credentials["secret_key"]


def child_environment(
    *, paths: DemoPaths, port: int, s3_endpoint_url: str, s3_access_key: str
) -> dict[str, str]:
    """The environment of every Django and Celery process of the demo: settings.py reads nothing else."""
    environment = dict(os.environ)
    # Secrets come from files; a value inherited from the caller's shell must not shadow them.
    for name in ("SECRET_KEY", "S3_SECRET_ACCESS_KEY", "REDIS_URL"):
        environment.pop(name, None)
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "PYTHONUNBUFFERED": "1",
            "DEBUG": "1",
            "SECRET_KEY_FILE": str(paths.secret_key),
            "ALLOWED_HOSTS": f"{HOST},localhost",
            "SITE_URL": f"http://{HOST}:{port}",
            "DATABASE_URL": f"sqlite:///{paths.database}?{SQLITE_OPTIONS}",
            "CACHE_URL": f"file://{paths.cache}",
            "CELERY_BROKER_URL": "filesystem://",
            "CELERY_BROKER_FOLDER": str(paths.broker),
            "EMAIL_DELIVERY": "console",
            "ROLLOUT_SCAN_SECONDS": str(ROLLOUT_SCAN_SECONDS),
            "S3_ENDPOINT_URL": s3_endpoint_url,
            "S3_BUCKET": BUCKET,
            "S3_ACCESS_KEY_ID": s3_access_key,
            "S3_SECRET_ACCESS_KEY_FILE": str(paths.s3_secret_key),
            "S3_REGION": REGION,
            "S3_ADDRESSING_STYLE": "path",
        }
    )
    return environment


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


class Supervisor:
    """Starts the long-running children, notices when one dies, and stops them all.

    Each child leads a process group of its own: Ctrl-C in the terminal reaches only this process, which then
    stops the children in order, and a child's own children (the worker's pool) are stopped with it.
    """

    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = environment
        self.children: list[Child] = []

    def run_step(self, name: str, arguments: list[str]) -> None:
        """Run a command to completion (migrate, seed); a failure stops the demo."""
        print(f"==> {name}", flush=True)
        completed = subprocess.run(  # noqa: S603 - our own fixed command lines
            arguments, cwd=REPO_DIR, env=self.environment, stdin=subprocess.DEVNULL, check=False
        )
        if completed.returncode != 0:
            raise DemoError(f"`{name}` failed with exit code {completed.returncode}; see its output above.")

    def start(self, name: str, arguments: list[str]) -> Child:
        process = subprocess.Popen(  # noqa: S603 - our own fixed command lines
            arguments,
            cwd=REPO_DIR,
            env=self.environment,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # Only calls prctl(2): if this process is killed outright, the child is not left behind.
            preexec_fn=die_with_parent,
        )
        child = Child(name, process)
        self.children.append(child)
        print(f"==> started {name} (pid {process.pid})", flush=True)
        return child

    def first_dead(self) -> Child | None:
        return next((child for child in self.children if child.process.poll() is not None), None)

    def stop_all(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every child (last started first), SIGKILL what is left after the grace period."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.terminate()
        deadline = time.monotonic() + grace_seconds
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"==> {child.name} did not stop within {grace_seconds:.0f} s; killing it", flush=True)
                child.process.kill()
                child.process.wait()
            # Whatever the child left behind in its group (a pool process) goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
        self.children.clear()


def _wait_for_http(url: str, supervisor: Supervisor, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = supervisor.first_dead()
        if dead is not None:
            raise DemoError(f"{dead.name} exited with code {dead.process.returncode} while starting.")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own http://127.0.0.1 URL
                return
        except urllib.error.HTTPError:
            return  # The server answers, even if with an error page.
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise DemoError(f"The web server did not answer at {url} within {timeout:.0f} s.")


def _banner(*, site_url: str, paths: DemoPaths, seaweedfs: SeaweedFS) -> str:
    width = max(len(account.email) for account in DEMO_ACCOUNTS)
    accounts = "\n".join(f"    {account.email:<{width}}  {account.what_to_try}" for account in DEMO_ACCOUNTS)
    return f"""
========================================================================================
  Gatehouse demo: {site_url}/

  Sign in with one of these accounts; the password of each is {DEMO_PASSWORD!r}:
{accounts}

  E-mails the portal sends are printed in this terminal.
  Object storage: SeaweedFS S3 at {seaweedfs.endpoint_url}, bucket {BUCKET!r}.
  Data: {paths.root} (delete it to start afresh).
  Press Ctrl-C to stop.
========================================================================================
""".rstrip()


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise StopRequested(signal.Signals(signum).name)


def run() -> int:
    """Run the demo until it is stopped; the exit status is 0 for a requested stop, 1 otherwise."""
    port = _env_int("PORT", DEFAULT_PORT, minimum=1, maximum=65535)
    public_opens_in = _env_int(
        "DEMO_PUBLIC_OPENS_IN_SECONDS", DEFAULT_PUBLIC_OPENS_IN_SECONDS, minimum=0, maximum=365 * 24 * 3600
    )
    paths = DemoPaths(Path(os.environ.get("GATEHOUSE_DEMO_DIR") or REPO_DIR / "var" / "demo").resolve())
    site_url = f"http://{HOST}:{port}"
    if not _port_is_free(port):
        raise DemoError(
            f"Port {port} on {HOST} is already in use. Choose another with PORT=..., e.g. PORT=8001."
        )
    paths.create()
    access_key, secret_key = ensure_secrets(paths)
    seaweedfs = SeaweedFS(paths.seaweedfs, access_key=access_key, secret_key=secret_key)
    supervisor: Supervisor | None = None
    python = sys.executable
    manage = str(REPO_DIR / "manage.py")
    celery = [python, "-m", "celery", "-A", "portal"]
    try:
        print(f"==> starting SeaweedFS (data in {paths.seaweedfs})", flush=True)
        seaweedfs.start()
        supervisor = Supervisor(
            child_environment(
                paths=paths, port=port, s3_endpoint_url=seaweedfs.endpoint_url, s3_access_key=access_key
            )
        )
        supervisor.run_step("manage.py migrate", [python, manage, "migrate", "--no-input", "-v", "1"])
        supervisor.run_step(
            "manage.py seed_demo", [python, manage, "seed_demo", "--public-opens-in", str(public_opens_in)]
        )
        supervisor.start("runserver", [python, manage, "runserver", f"{HOST}:{port}", "--noreload"])
        # Gossip, mingle and heartbeats are worker-to-worker chatter: with one worker on a filesystem broker
        # they only leave message files behind.
        supervisor.start(
            "celery worker",
            [
                *celery,
                "worker",
                "--loglevel=INFO",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
        )
        supervisor.start("celery beat", [*celery, "beat", "--loglevel=INFO", "-s", str(paths.beat_schedule)])
        _wait_for_http(f"{site_url}/accounts/login/", supervisor)
        print(_banner(site_url=site_url, paths=paths, seaweedfs=seaweedfs), flush=True)
        while True:
            dead = supervisor.first_dead()
            if dead is not None:
                print(
                    f"\n==> {dead.name} exited unexpectedly with code {dead.process.returncode}: "
                    "stopping the demo.",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            if not seaweedfs.running:
                print("\n==> SeaweedFS exited unexpectedly: stopping the demo.", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.5)
    except StopRequested as stop:
        print(f"\n==> {stop}: stopping the demo.", flush=True)
        return 0
    except (DemoError, SeaweedFSError) as error:
        print(f"\n==> the demo could not run: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C must not cut the clean-up short; it is bounded by the grace periods.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if supervisor is not None:
            supervisor.stop_all()
        seaweedfs.stop()
        print("==> demo stopped: web server, worker, beat and SeaweedFS have exited.", flush=True)


def main() -> int:
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        return run()
    except (DemoError, SeaweedFSError) as error:
        print(f"==> the demo could not run: {error}", file=sys.stderr, flush=True)
        return 1
    except StopRequested:
        return 0


if __name__ == "__main__":
    sys.exit(main())
