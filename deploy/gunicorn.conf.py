"""gunicorn configuration of the Gatehouse web process (``deploy/bin/web`` passes it with ``-c``).

Every knob comes from the environment, like the Django settings, and a bad value stops the master at once
with a message naming the variable:

``GUNICORN_BIND``            address to listen on (default ``127.0.0.1:8000``; nginx proxies to it)
``WEB_CONCURRENCY``          sync worker processes (default 2; about one per core is a good start). gunicorn
                             reads it too, before this file: a non-number stops it with its own traceback
``GUNICORN_TIMEOUT``         seconds a request may take before its worker is killed and restarted (default 30)
``FORWARDED_ALLOW_IPS``      addresses whose X-Forwarded-* headers gunicorn believes (default loopback: nginx
                             on the same host; ``*`` where only the proxy can reach the port, as in compose)
``PROMETHEUS_MULTIPROC_DIR`` if set, the directory where each worker's metrics live (prometheus_client's
                             multiprocess mode): emptied when the master starts, a dead worker's files marked
``GUNICORN_CONTROL_SOCKET``  if set, the path of gunicorn's control socket (``gunicornc``); off otherwise

Why these choices:

- ``preload_app``: Django and its settings load in the master before any worker forks, so a bad variable
  stops the process at once with the settings' ImproperlyConfigured message, instead of a crash loop of
  workers each failing on its own; workers also share the loaded code's memory.
- Sync workers: every request is short (pages, a presign-and-redirect, JSON); nginx buffers slow clients, so
  a worker is never held by a slow network. The bench (``make bench-downloads``) measures this setup.
- ``max_requests`` with jitter: each worker is replaced after about 20,000 requests (not all at once), so
  a slow leak can never grow for ever; with preload the new worker is a cheap fork.
- The control socket (new in gunicorn 25) defaults to one fixed path per user: two gunicorns on one host (a
  second site, the benchmark, the smoke) would fight over it, so it is off unless a path is given.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def _integer(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RuntimeError(f"{name} must be a whole number, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise RuntimeError(f"{name} must be between {minimum} and {maximum}, not {value}")
    return value


proc_name = "gatehouse-web"
bind = [address.strip() for address in os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")]
workers = _integer("WEB_CONCURRENCY", 2, 1, 64)
worker_class = "sync"
timeout = _integer("GUNICORN_TIMEOUT", 30, 5, 600)
# A TERM lets running requests finish for this long (systemd's TimeoutStopSec and compose's stop_grace_period
# give a little more).
graceful_timeout = 30
preload_app = True
# Not lower: a new worker opens its database, Redis and S3 clients again (about 0.1 s), and at a
# thousand requests a worker recycled every few seconds under a release-day load (the bench showed it).
max_requests = 20000
max_requests_jitter = 2000

# nginx on loopback by default; X-Forwarded-Proto from these addresses makes wsgi.url_scheme https.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Logs go to the process's own output: the journal under systemd, `docker logs` in a container.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "INFO").lower()
# The request id nginx made ($request_id, sent as X-Request-ID) ties this line to nginx's and Django's.
access_log_format = (
    '%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}i)s forwarded_for="%({x-forwarded-for}i)s"'
)

# Workers' heartbeat files: in memory where there is /dev/shm (a container's /tmp may be a slow overlay).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - a fixed system directory

_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "").strip()
if _control_socket:
    control_socket = _control_socket
else:
    control_socket_disable = True


_metrics_directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
if _metrics_directory:
    # Now, while the configuration loads: with preload_app the settings (which require the directory to
    # exist) are read before on_starting runs. systemd's RuntimeDirectory and compose's tmpfs give a parent.
    Path(_metrics_directory).mkdir(parents=True, exist_ok=True)


def on_starting(server) -> None:
    """Start the metrics directory empty: files of the previous run's workers would be summed with ours.

    Runs once in the master, before any worker is forked; the app loaded by preload has counted nothing.
    """
    if not _metrics_directory:
        return
    path = Path(_metrics_directory)
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    server.log.info("Prometheus multiprocess directory %s is empty", path)


def child_exit(server, worker) -> None:
    """A worker is gone: its live gauges must not be summed any more (prometheus_client's rule)."""
    if not _metrics_directory:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
