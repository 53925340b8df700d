"""``python -m tests.smoke`` (``make smoke``): the deploy/ files run for real, and a journey through them.

1. Prepare: a fresh PostgreSQL database ``gatehouse_smoke``, Redis databases 13 (cache) and 14 (broker)
   emptied, SeaweedFS (portal.seaweedfs) on free ports, an SMTP sink, a self-signed certificate for
   127.0.0.1 made with openssl, the secrets as files read through ``*_FILE``.
2. Release and start: ``deploy/bin/release`` (check --deploy, migrate, collectstatic), ``manage.py
   bucket_cors``, the nginx site rendered by ``deploy/bin/render-nginx``; then nginx (a private instance),
   ``deploy/bin/web`` (gunicorn with ``deploy/gunicorn.conf.py``, 2 workers), two ``deploy/bin/worker`` and
   one ``deploy/bin/beat``, all on loopback, with TRUSTED_PROXY_COUNT=1 and SITE_URL=https://127.0.0.1:<nginx's
   TLS port>; wait for /healthz and /readyz through nginx.
3. Seed the publisher's side (seed.py), walk the journey through nginx (journey.py), check the edge (edge.py),
   then wait for the scheduled tier to open by itself, exactly once.
4. Stop every process it started (TERM to each process group, KILL after a grace period; also on failure,
   Ctrl-C or TERM), drop the database, empty its Redis databases, remove the scratch directory, print a
   summary with timings. A process that exits by itself, or does not stop cleanly, fails the smoke with
   the tail of its log; so does a traceback in any of their logs.

Not collected by pytest (no test_*.py here): it owns ports, a database and processes for about a minute.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import django
import httpx2

from portal.seaweedfs import SeaweedFS
from tests.smoke import edge, stack
from tests.smoke.environment import (
    BROKER_REDIS,
    CACHE_REDIS,
    DATABASE,
    POSTGRES,
    WEB_WORKERS,
    nginx_site_environment,
    smoke_environment,
    web_environment,
)
from tests.smoke.stack import DEPLOY_BIN, SmokeFailure, Supervisor, log_tail
from tests.smoke.web import Site, expect
from tests.smtp_sink import SMTPSink

SCHEDULED_TIER_OPENS_IN_SECONDS = 10
WORKER_NAMES = ("worker-one", "worker-two")
TRACEBACK = "Traceback (most recent call last)"


class Smoke:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.phases: list[tuple[str, float]] = []
        # World-readable: run as root, nginx's workers are nobody and read the static files in here.
        self.scratch = Path(tempfile.mkdtemp(prefix="gatehouse-smoke-"))
        self.scratch.chmod(0o755)
        for folder in ("logs", "tls", "nginx", "var"):
            (self.scratch / folder).mkdir()
        self.resources = contextlib.ExitStack()
        self.supervisor: Supervisor | None = None
        self.notes: list[str] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"==> {name}", flush=True)
        began = time.monotonic()
        try:
            yield
        finally:
            self.phases.append((name, time.monotonic() - began))

    # -- 1 and 2 -------------------------------------------------------------------------------------------

    def start(self) -> tuple[Site, SMTPSink, Path]:
        ports = dict(zip(("http", "https", "gunicorn"), stack.free_ports(3), strict=True))
        with self.phase("prepare: database, Redis, SeaweedFS, SMTP sink"):
            stack.recreate_database(f"{POSTGRES}/postgres", DATABASE)
            stack.flush_redis(CACHE_REDIS, BROKER_REDIS)
            seaweed = SeaweedFS(
                self.scratch / "seaweedfs", access_key="smoke", secret_key=os.urandom(16).hex()
            )
            self.resources.enter_context(seaweed)
            sink = self.resources.enter_context(SMTPSink())
            environment = smoke_environment(
                scratch=self.scratch, ports=ports, seaweed=seaweed, sink_port=sink.port
            )
        # The smoke seeds and checks through the ORM with the very same settings as the processes it starts.
        os.environ.clear()
        os.environ.update(environment)
        django.setup()
        # The smoke's own INFO lines (every request of httpx2, the services' logs) would bury its report;
        # the processes it started keep their logs in their own files.
        logging.disable(logging.INFO)
        from django.conf import settings

        from portal import storage

        self.supervisor = supervisor = Supervisor(self.scratch / "logs", environment)
        with self.phase("deploy/bin/release and manage.py bucket_cors"):
            supervisor.run("release", [str(DEPLOY_BIN / "release")])
            storage.ensure_bucket()
            supervisor.run("bucket_cors", [sys.executable, "manage.py", "bucket_cors"])
        static_root = Path(settings.STATIC_ROOT)
        if static_root != self.scratch / "static":
            raise SmokeFailure("STATIC_ROOT from the environment was not used", f"went to {static_root}")
        site_environment = nginx_site_environment(scratch=self.scratch, ports=ports, static_root=static_root)
        site_config = self.scratch / "nginx" / "gatehouse.conf"
        rendered = _render_site(site_environment)
        site_config.write_text(rendered)
        nginx_config = stack.nginx_main_config(self.scratch / "nginx", site_config)

        site = Site(
            https_port=ports["https"],
            http_port=ports["http"],
            certificate=Path(site_environment["GATEHOUSE_TLS_CERT"]),
        )
        with self.phase("start nginx, web, 2 workers, beat; wait for /readyz"):
            supervisor.start("nginx", stack.nginx_command(nginx_config, self.scratch / "nginx"))
            web = supervisor.start("web", [str(DEPLOY_BIN / "web")], web_environment(self.scratch))
            workers = [
                supervisor.start(name, [str(DEPLOY_BIN / "worker")], {"CELERY_WORKER_NAME": name})
                for name in WORKER_NAMES
            ]
            supervisor.start("beat", [str(DEPLOY_BIN / "beat")])
            with site.client("127.0.0.1") as client:
                for path in ("/healthz", "/readyz"):
                    supervisor.wait_for(
                        lambda path=path: _answers(client, path), what=f"{path} through nginx"
                    )
            for worker in workers:
                supervisor.wait_for(
                    lambda worker=worker: " ready." in worker.log(), what=f"{worker.name} to be ready"
                )
            booted = web.log().count("Booting worker with pid")
            expect(booted == WEB_WORKERS, f"gunicorn booted {booted} workers, not {WEB_WORKERS}", web.log())
        return site, sink, Path(site_environment["GATEHOUSE_ACCESS_LOG"])

    # -- 3 -------------------------------------------------------------------------------------------------

    def journey(self, site: Site, sink: SMTPSink, access_log: Path) -> None:
        from tests.smoke.journey import Journey
        from tests.smoke.seed import seed

        assert self.supervisor is not None
        with self.phase("seed the publisher's side"):
            seeded = seed(opens_in_seconds=SCHEDULED_TIER_OPENS_IN_SECONDS)
        journey = Journey(site=site, sink=sink, supervisor=self.supervisor, seeded=seeded)
        try:
            with self.phase("researcher signs up, confirms, applies, watches"):
                journey.sign_up_and_confirm()
                journey.apply()
                journey.watch_scheduled_tier()
            with self.phase("reviewer approves; the worker e-mails"):
                journey.reviewer_approves()
            with self.phase("download through the redirect, sha256"):
                journey.download()
                journey.recorded_addresses()
                self.notes.append(
                    f"downloaded {seeded.artifact_size:,} bytes through the 302 to SeaweedFS, "
                    f"sha256 {seeded.artifact_sha256[:16]}... as the portal shows"
                )
            with self.phase("edge: headers, redirects, static, metrics, limits"):
                edge.security_headers(site, access_log)
                edge.plain_http(site)
                edge.static_files(site)
                edge.metrics(site, Path(os.environ["METRICS_TOKEN_FILE"]).read_text())
                edge.api_body_limit(site, seeded.application_tier_id)
                edge.login_rate_limit(site)
                edge.download_rate_limit(site, seeded.artifact_id, seeded.model_path, seeded.revision)
            with self.phase("scheduled tier opens by itself, once"):
                lateness = journey.scheduled_tier_opens_once()
                self.notes.append(
                    f"the scheduled tier opened {lateness:.1f} s after its date, once; both watchers were "
                    "e-mailed once"
                )
        finally:
            journey.close()
        self.supervisor.check()
        for service in self.supervisor.services:
            expect(
                TRACEBACK not in service.log(),
                f"a traceback in {service.name}'s log",
                log_tail(service.log_path, 80),
            )

    # -- 4 -------------------------------------------------------------------------------------------------

    def stop(self, passed: bool) -> bool:
        """Stop everything, whatever happened. Returns whether every process stopped cleanly."""
        clean = True
        with self.phase("stop everything, drop the database"):
            if self.supervisor is not None:
                if not passed:
                    for service in self.supervisor.services:
                        print(
                            f"\n--- {service.name}.log (last lines) ---\n{log_tail(service.log_path)}",
                            file=sys.stderr,
                        )
                problems = self.supervisor.stop_all()
                problems += [
                    f"{service.name} exited with {service.process.returncode} when stopped:\n"
                    + log_tail(service.log_path)
                    for service in self.supervisor.services
                    if service.process.returncode != 0
                ]
                if problems:
                    clean = False
                    print("\nNot every process stopped cleanly:\n" + "\n".join(problems), file=sys.stderr)
            self.resources.close()
            if django.apps.apps.ready:
                from django.db import connections

                connections.close_all()
            stack.drop_database(f"{POSTGRES}/postgres", DATABASE)
            stack.flush_redis(CACHE_REDIS, BROKER_REDIS)
            shutil.rmtree(self.scratch, ignore_errors=True)
        return clean

    def report(self) -> str:
        rows = [f"  {name:<52}{seconds:6.1f} s" for name, seconds in self.phases]
        rows.append(f"  {'total':<52}{time.monotonic() - self.started:6.1f} s")
        return "\n".join([*(f"  note: {note}" for note in self.notes), *rows])


def _render_site(site_environment: dict[str, str]) -> str:
    completed = subprocess.run(  # noqa: S603 - our own script
        [str(DEPLOY_BIN / "render-nginx")],
        env={**os.environ, **site_environment},
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SmokeFailure("deploy/bin/render-nginx failed", completed.stderr)
    return completed.stdout


def _answers(client: httpx2.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx2.TransportError:
        return False


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    smoke = Smoke()
    passed = False
    status = 1
    try:
        site, sink, access_log = smoke.start()
        smoke.journey(site, sink, access_log)
        passed = True
    except SmokeFailure as failure:
        print(f"\nSMOKE FAILED: {failure}", file=sys.stderr)
        if failure.details:
            print(failure.details, file=sys.stderr)
    except KeyboardInterrupt:
        print("\nSmoke interrupted: stopping everything it started.", file=sys.stderr)
        status = 130
    finally:
        clean = smoke.stop(passed)
    if passed and clean:
        print(f"\nSmoke passed.\n{smoke.report()}", flush=True)
        return 0
    print(f"\n{smoke.report()}", file=sys.stderr)
    return status
