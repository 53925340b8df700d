"""How fast the portal issues download URLs, next to a bare Django view that only presigns one URL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gatehouse .venv/bin/python bench/download_urls.py \
        [--threads 2] [--connections 16] [--duration 15] [--warmup 3] [--workers 2] [--revision main]

Needs `wrk` (Debian's package; `make bench-downloads` installs it), PostgreSQL and Redis (REDIS_URL).
It starts SeaweedFS in a temporary directory, creates a throwaway database next to DATABASE_URL's
(``<name>_bench_download_urls``, migrated, dropped at the end) and sets the scene through the
services: an organization, a published release whose one file is a real object in SeaweedFS, an
application tier opened, a researcher with a verified e-mail address whose application was approved,
and their token with the read and download scopes. Then one gunicorn, configured by
deploy/gunicorn.conf.py as in production (``--workers`` sync workers, on 127.0.0.1), serves the
production settings with bench/download_urls_settings.py's URLconf, and wrk loads, one after the
other with the same threads, connections and duration:

    bare  GET  /bench/bare-presign: presigns one URL and answers 302 (bench/download_urls_site.py)
    api   POST /api/v1/artifacts/{id}/download-url with the token: JSON {url, expires_at}
    hub   GET  /{org}/{model}/resolve/{revision}/{path} with the token: 302 to the presigned URL

Each route gets a warm-up run first (not counted), so that every worker has its database
connection and S3 client. Requests/s, p50 and p99 come from wrk's ``done()`` hook (exact latency
percentiles in microseconds, not its rounded text). The API rate limit is raised to a billion a
minute: every request still counts in Redis, as in production, but none is refused.

Queries per issued URL are counted in this process, with the same settings and URLconf, through
Django's test client and CaptureQueriesContext: one request per route after one warm-up request,
i.e. the steady state (a token's ``last_used_at`` is written at most once a minute, one more query
then). "queries/URL" counts SQL statements; "round trips" adds any BEGIN and COMMIT (the routes
now send none: their one write is its own transaction).
Each probe's URL is fetched from SeaweedFS and its sha256 compared with the artifact's. A hub route
that does not exist yet (its path resolves to nothing) is skipped with a message, not failed.

Each counted run also reads, from /proc, the CPU the machine and each program spent per request:
gunicorn (its process group), PostgreSQL and Redis. They share the CPUs, so the target leaves a real
route at most 1/0.7 of the bare view's whole CPU per request; the report prints that budget.

Checks, which fail the run: every response 2xx/3xx (wrk counts the others apart), no socket error,
and for the real routes one DownloadEvent per successful response. Requests the server finished
after wrk stopped reading (at most one per connection) have their event but no counted response;
the check allows exactly that many more events. The targets (real routes at least 70% of the bare
view's requests/s, at most 5 queries per URL) are printed with whether they were met; other
processes on the machine move the timings, so they are reported, not asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

# Both need the project on sys.path.
from bench.download_urls_load import (  # noqa: E402
    PROGRAMS,
    Gunicorn,
    WrkResult,
    cpu_sample,
    wrk_run,
    wrk_script,
)
from portal.seaweedfs import SeaweedFS  # noqa: E402

SETTINGS_MODULE = "bench.download_urls_settings"
BUCKET = "gatehouse-bench"
RATIO_TARGET = 0.70
QUERIES_TARGET = 5
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


@dataclass
class Route:
    name: str
    label: str
    method: str
    path: str
    status: int
    token: str | None = None
    skipped: str = ""
    statements: list[str] = field(default_factory=list)  # everything sent to PostgreSQL for one URL
    result: WrkResult | None = None
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU per request: machine and programs

    @property
    def records_event(self) -> bool:
        return self.name != "bare"

    @property
    def queries(self) -> int:
        return sum(1 for sql in self.statements if not sql.startswith(TRANSACTION_CONTROL))

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c")
    parser.add_argument("--duration", type=int, default=15, help="seconds of measured load per route")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of uncounted load per route first")
    parser.add_argument("--timeout", type=int, default=5, help="wrk --timeout, seconds")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument(
        "--revision",
        default="main",
        choices=("main", "commit"),
        help="hub route: main or the release's commit",
    )
    parser.add_argument("--show-wrk", action="store_true", help="print wrk's own report of each run")
    parser.add_argument("--show-queries", action="store_true", help="print the SQL of each probe")
    arguments = parser.parse_args()
    if arguments.duration < 1:
        parser.error("--duration must be at least 1 second")
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (make bench-downloads does it).")

    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as scratch:
        scratch = Path(scratch)
        seaweedfs = SeaweedFS(
            scratch / "seaweedfs",
            access_key=f"bench-{secrets.token_hex(8)}",
            secret_key=secrets.token_hex(20),
        )
        print("Starting SeaweedFS ...", flush=True)
        with seaweedfs:
            os.environ.update(
                DJANGO_SETTINGS_MODULE=SETTINGS_MODULE,
                DEBUG="false",
                LOG_LEVEL="WARNING",
                # The test client's host name, for the in-process probes.
                ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
                API_RATE_LIMIT_PER_MINUTE=str(10**9),
                S3_ENDPOINT_URL=seaweedfs.endpoint_url,
                S3_BUCKET=BUCKET,
                S3_ACCESS_KEY_ID=seaweedfs.access_key,
                S3_SECRET_ACCESS_KEY=seaweedfs.secret_key,
                S3_REGION="us-east-1",
                S3_ADDRESSING_STYLE="path",
            )
            os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-that-is-long-enough")
            os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
            import django

            django.setup()
            from django.db import connection

            name = connection.settings_dict["NAME"]
            connection.settings_dict["TEST"]["NAME"] = f"{name}_bench_download_urls"
            print(
                f"Creating the throwaway database {connection.settings_dict['TEST']['NAME']} ...", flush=True
            )
            connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
            try:
                failures = run(arguments, scratch)
            finally:
                connection.creation.destroy_test_db(name, verbosity=0)
    if failures:
        sys.exit("FAILED:\n  " + "\n  ".join(failures))


def run(arguments, scratch: Path) -> list[str]:
    from access.models import DownloadEvent

    artifact, raw_token, revision = scene(arguments.revision)
    model = artifact.release.model
    routes = [
        Route("bare", "bare view: presign + 302", "GET", "/bench/bare-presign", 302),
        Route("api", "API POST download-url", "POST", f"/api/v1/artifacts/{artifact.pk}/download-url", 200),
        Route(
            "hub",
            "hub GET resolve",
            "GET",
            f"/{model.organization.slug}/{model.slug}/resolve/{revision}/{artifact.path}",
            302,
        ),
    ]
    for route in routes[1:]:
        route.token = raw_token
    failures = [
        failure for route in routes for failure in probe(route, artifact.sha256, arguments.show_queries)
    ]
    if failures:
        return failures

    server = Gunicorn(
        workers=arguments.workers, env={"DATABASE_URL": database_url()}, log_path=scratch / "gunicorn.log"
    )
    server.start()
    print(f"Started gunicorn, {arguments.workers} sync workers, on 127.0.0.1:{server.port}", flush=True)
    try:
        for route in routes:
            if route.skipped:
                continue
            print(
                f"Loading {route.label} ({arguments.warmup} s warm-up, {arguments.duration} s) ...",
                flush=True,
            )
            script = wrk_script(scratch / f"{route.name}.lua", method=route.method, headers=route.headers())
            for seconds, counted in ((arguments.warmup, False), (arguments.duration, True)):
                if seconds <= 0:
                    continue
                before = DownloadEvent.objects.count()
                cpu_before = cpu_sample(server.process.pid)
                result = wrk_run(
                    server.url(route.path),
                    script,
                    seconds=seconds,
                    threads=arguments.threads,
                    connections=arguments.connections,
                    timeout=arguments.timeout,
                    show=arguments.show_wrk,
                )
                cpu_after = cpu_sample(server.process.pid)
                events = settled_event_count() - before if route.records_event else None
                failures += check(route, result, events, arguments.connections)
                if counted:
                    route.result = result
                    if cpu_before and cpu_after:
                        route.cpu_ms = cpu_after.per_request_ms(cpu_before, result.requests)
    finally:
        server.stop()
    report(routes, arguments)
    return failures


def scene(revision: str):
    """The researcher's approved access to a one-file release, built through the services."""
    from datetime import timedelta

    from allauth.account.models import EmailAddress
    from django.test.utils import override_settings

    from access.models import User
    from access.services.licenses import license_create
    from access.services.tokens import token_create
    from bench.download_urls_site import BARE_FILENAME, BARE_KEY
    from portal import storage
    from portal.celery import app as celery_app
    from releases.models import Tier
    from releases.rollout import tier_create, tier_open_now
    from releases.services import (
        artifact_add,
        model_create,
        organization_create,
        release_create,
        release_publish,
    )
    from tests.scenes import approved_grant

    storage.ensure_bucket()
    stored = storage.put_object(key=BARE_KEY, body=os.urandom(64 * 1024))
    owner = User.objects.create_user(email="owner@bench.example", password=None, full_name="Bench Owner")
    researcher = User.objects.create_user(
        email="researcher@bench.example", password=None, full_name="Bench Researcher"
    )
    EmailAddress.objects.create(user=researcher, email=researcher.email, primary=True, verified=True)
    organization = organization_create(name="Bench", slug="bench", owner=owner)
    model = model_create(organization=organization, slug="model", name="Bench Model", actor=owner)
    release = release_create(model=model, version="v1", actor=owner)
    artifact = artifact_add(
        release=release,
        path=BARE_FILENAME,
        size=stored.size,
        sha256=stored.sha256,
        storage_key=stored.key,
        object_version=stored.version_id or "",
        actor=owner,
    )
    license = license_create(organization=organization, name="Bench license", text="Be nice.", actor=owner)
    tier = tier_create(
        release=release,
        name="Researchers",
        gate=Tier.Gate.APPLICATION,
        license=license,
        opens_after=timedelta(0),
        artifact_patterns=["*"],
        actor=owner,
    )
    release = release_publish(release=release, actor=owner)
    tier = tier_open_now(tier=tier, actor=owner)
    # The applicant's e-mails: sent at once and kept in memory, not queued for a worker that never comes.
    celery_app.conf.task_always_eager = True
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        approved_grant(researcher, tier, owner)
    celery_app.conf.task_always_eager = False
    _, raw_token = token_create(user=researcher, name="bench", scopes=["read", "download"])
    artifact.refresh_from_db()
    return artifact, raw_token, release.revision if revision == "commit" else revision


def probe(route: Route, sha256: str, show_sql: bool) -> list[str]:
    """Ask the route twice in this process; keep the second request's SQL and fetch the URL it issued."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import Resolver404, resolve

    client = Client()
    request_logger = logging.getLogger("django.request")
    request_logger.disabled = True  # a missing hub route would log "Not Found" twice
    try:
        client.generic(route.method, route.path, headers=route.headers())
        with CaptureQueriesContext(connection) as captured:
            response = client.generic(route.method, route.path, headers=route.headers())
    finally:
        request_logger.disabled = False
    if response.status_code == 404 and route.name == "hub":
        try:
            resolve(route.path)
        except Resolver404:
            route.skipped = "hub route not available (404)"
            print(f"Skipping {route.label}: {route.skipped}", flush=True)
            return []
    if response.status_code != route.status:
        return [
            f"{route.label}: {route.path} answered {response.status_code}, not {route.status}: "
            f"{response.content[:500]!r}"
        ]
    route.statements = [query["sql"] for query in captured.captured_queries]
    if show_sql:
        print(
            f"-- {route.label}: {len(route.statements)} statements", *route.statements, sep="\n", flush=True
        )
    url = response.json()["url"] if route.status == 200 else response["Location"]
    with urllib.request.urlopen(url, timeout=10) as fetched:  # noqa: S310 - our own SeaweedFS
        body = fetched.read()
    if hashlib.sha256(body).hexdigest() != sha256:
        return [f"{route.label}: the URL it issued did not return the artifact's bytes"]
    return []


def database_url() -> str:
    """The bench database's URL, for the server's processes."""
    from django.db import connection

    database = connection.settings_dict
    password = f":{quote(database['PASSWORD'], safe='')}" if database.get("PASSWORD") else ""
    return (
        f"postgres://{quote(database['USER'] or '', safe='')}{password}"
        f"@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"
    )


def settled_event_count() -> int:
    """The DownloadEvent count once the server has worked off the requests left in its queue."""
    from access.models import DownloadEvent

    count, stable_since = DownloadEvent.objects.count(), time.monotonic()
    while time.monotonic() - stable_since < 0.5:
        time.sleep(0.1)
        now = DownloadEvent.objects.count()
        if now != count:
            count, stable_since = now, time.monotonic()
    return count


def check(route: Route, result: WrkResult, events: int | None, connections: int) -> list[str]:
    failures = []
    if result.status_errors:
        failures.append(f"{route.label}: {result.status_errors} responses were not 2xx or 3xx")
    if result.socket_errors:
        failures.append(f"{route.label}: socket errors {result.socket_errors}")
    if events is not None:
        # When wrk stops, each connection may have one request in the server's queue or in a worker:
        # it is served, and recorded, after nobody reads the answer any more. So are timed-out ones.
        most = result.successes + connections + result.timeout
        print(f"  {result.successes} URLs answered, {events} download events recorded", flush=True)
        if not result.successes <= events <= most:
            failures.append(
                f"{route.label}: {events} download events for {result.successes} URLs answered "
                f"(expected {result.successes} to {most})"
            )
    for failure in failures:
        print(f"  FAILED: {failure}", flush=True)
    return failures


def report(routes: list[Route], arguments) -> None:
    bare = routes[0].result
    print(
        f"\ngunicorn {arguments.workers} sync workers; wrk -t{arguments.threads} -c{arguments.connections} "
        f"-d{arguments.duration}s after a {arguments.warmup} s warm-up; {os.cpu_count()} CPUs"
    )
    print(
        f"{'route':<26}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'vs bare':>9}{'queries/URL':>13}"
        f"{'round trips':>13}{'non-2xx/3xx':>13}"
    )
    for route in routes:
        if route.result is None:
            print(f"{route.label:<26}  skipped: {route.skipped}")
            continue
        result = route.result
        print(
            f"{route.label:<26}{result.requests_per_second:>8.0f}{result.p50_us / 1000:>9.2f}"
            f"{result.p99_us / 1000:>9.2f}{result.requests_per_second / bare.requests_per_second:>9.0%}"
            f"{route.queries:>13}{len(route.statements):>13}{result.status_errors:>13}"
        )
    report_cpu(routes)
    print()
    for route in routes[1:]:
        if route.result is None:
            continue
        ratio = route.result.requests_per_second / bare.requests_per_second
        print(
            f"target {route.name}: >= {RATIO_TARGET:.0%} of bare's req/s: {ratio:.0%} "
            f"{'met' if ratio >= RATIO_TARGET else 'NOT met'}; <= {QUERIES_TARGET} queries per URL: "
            f"{route.queries} {'met' if route.queries <= QUERIES_TARGET else 'NOT met'}"
        )


def report_cpu(routes: list[Route]) -> None:
    """Where each request's CPU went, and what the throughput target leaves for a real route.

    The server, PostgreSQL and Redis share the machine's CPUs, which the bare view keeps busy on its own:
    at the target a real route may spend at most 1/0.7 of the bare view's CPU per request, all of it.
    """
    measured = [route for route in routes if route.cpu_ms]
    if not measured:
        print("\n(no CPU accounting: /proc is not readable here)")
        return
    names = {"machine": "machine", "server": "gunicorn", "postgres": "PostgreSQL", "redis-server": "Redis"}
    print(f"\nCPU ms per request  {''.join(f'{names[name]:>12}' for name in ('machine', *PROGRAMS))}")
    for route in measured:
        cells = "".join(f"{route.cpu_ms[name]:>12.2f}" for name in ("machine", *PROGRAMS))
        print(f"{route.label:<20}{cells}")
    bare = routes[0].cpu_ms
    if bare:
        budget = bare["machine"] / RATIO_TARGET
        print(
            f"budget at {RATIO_TARGET:.0%} of bare: {budget:.2f} ms of CPU per URL, everything included "
            f"(bare: {bare['machine']:.2f})"
        )


if __name__ == "__main__":
    main()
