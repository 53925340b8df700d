"""How long opening a tier with N watchers takes, from the moment it is due to the last e-mail handed
to the mail server.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gatehouse .venv/bin/python bench/tier_opening.py \
        [--watchers 10000] [--batch-size 500] [--workers 0]

It creates a throwaway database next to DATABASE_URL's (``<name>_bench_tier_opening``, dropped at the
end), a published release with one click-through tier and N watchers, and an SMTP sink in a child
process (tests/smtp_sink.py). Then it makes the tier due and runs the real opening path: the rollout
tick in this process (``--workers 0``), or K ``celery -A portal worker`` processes each given a tick
at once (``--workers K``, broker CELERY_BROKER_URL, default Redis database 12), as overlapping beat
runs would. In production add up to ROLLOUT_SCAN_SECONDS (15 s) for beat's next scan.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from tests.smtp_sink import SinkProcess  # noqa: E402 - needs the project on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500, help="WATCH_NOTIFY_BATCH_SIZE")
    parser.add_argument("--workers", type=int, default=0, help="Celery worker processes; 0: in this process")
    arguments = parser.parse_args()

    with SinkProcess() as sink:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="portal.settings",
            EMAIL_DELIVERY="smtp",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(sink.port),
            EMAIL_USE_TLS="false",
            WATCH_NOTIFY_BATCH_SIZE=str(arguments.batch_size),
            LOG_LEVEL="WARNING",
        )
        os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-that-is-long-enough")
        os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
        import django

        django.setup()
        from django.db import connection

        name = connection.settings_dict["NAME"]
        connection.settings_dict["TEST"]["NAME"] = f"{name}_bench_tier_opening"
        print(f"Creating the throwaway database {connection.settings_dict['TEST']['NAME']} ...", flush=True)
        bench_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            run(arguments, sink, bench_name)
        finally:
            connection.creation.destroy_test_db(name, verbosity=0)


def run(arguments, sink: SinkProcess, database_name: str) -> None:
    from django.conf import settings
    from django.db import connection

    from releases.models import Tier

    tier = scene(arguments.watchers)
    workers = start_workers(arguments.workers, database_name) if arguments.workers else []
    try:
        due_at = time.time()
        Tier.objects.filter(pk=tier.pk).update(opens_at=due_from(due_at))
        batches = None
        if workers:
            queue = workers[0][1]
            from releases.tasks import rollout_tick

            for _ in workers:
                rollout_tick.apply_async(queue=queue)
            while not Tier.objects.filter(pk=tier.pk, watchers_notified_at__isnull=False).exists():
                time.sleep(0.05)
        else:
            from releases.rollout import rollout_tick

            batches = rollout_tick().batches
        tier.refresh_from_db()
    finally:
        for process, _ in workers:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    stats = sink.stats()
    connection.close()

    elapsed = stats["last_at"] - due_at
    sending = stats["last_at"] - stats["first_at"]
    print(f"watchers                      {arguments.watchers}")
    print(f"batch size                    {settings.WATCH_NOTIFY_BATCH_SIZE}")
    print(f"claim lease                   {settings.WATCH_CLAIM_LEASE_SECONDS} s")
    print(
        f"run by                        {f'{len(workers)} worker processes' if workers else 'this process'}"
    )
    print(f"due -> tier opened            {tier.opened_at.timestamp() - due_at:.3f} s")
    print(f"due -> first e-mail           {stats['first_at'] - due_at:.3f} s")
    print(f"due -> last e-mail handed     {elapsed:.3f} s")
    print(f"e-mails/s (due -> last)       {stats['messages'] / elapsed:.0f}")
    print(f"e-mails/s (first -> last)     {stats['messages'] / sending:.0f}" if sending else "")
    print(f"batches (SMTP connections)    {batches if batches is not None else '-'} ({stats['sessions']})")
    print(f"e-mails, recipients, repeats  {stats['messages']}, {stats['recipients']}, {stats['duplicates']}")
    if stats["messages"] != arguments.watchers or stats["duplicates"]:
        sys.exit("FAILED: not exactly one e-mail per watcher")


def due_from(moment: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(moment, tz=UTC)


def scene(watcher_count: int):
    """A published release with a scheduled click-through tier and ``watcher_count`` watchers, made in
    bulk (watch_start one by one would only time the set-up)."""
    from datetime import timedelta

    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from access.models import User
    from access.services.licenses import license_create
    from releases.models import Release, Tier, Watch
    from releases.services import (
        artifact_add,
        model_create,
        organization_create,
        release_create,
        release_publish,
        tier_create,
    )

    owner = User.objects.create_user(email="owner@bench.example", password=None, full_name="Bench Owner")
    organization = organization_create(name="Bench", slug="bench", owner=owner)
    model = model_create(organization=organization, slug="model", name="Bench Model", actor=owner)
    release = release_create(model=model, version="v1", actor=owner)
    artifact_add(
        release=release, path="model.safetensors", size=1, sha256="0" * 64, storage_key="k", actor=owner
    )
    release = release_publish(release=release, actor=owner)
    release = Release.objects.get(pk=release.pk)
    tier = tier_create(
        release=release,
        name="Public",
        gate=Tier.Gate.CLICK_THROUGH,
        license=license_create(organization=organization, name="Bench license", text="Be nice.", actor=owner),
        opens_at=timezone.now() + timedelta(days=1),
        artifact_patterns=["*"],
        actor=owner,
    )
    unusable = make_password(None)
    users = User.objects.bulk_create(
        User(email=f"watcher{index:06d}@bench.example", full_name=f"Watcher {index}", password=unusable)
        for index in range(watcher_count)
    )
    Watch.objects.bulk_create(Watch(user=user, tier=tier) for user in users)
    print(f"{watcher_count} watchers of {tier}", flush=True)
    return tier


def start_workers(count: int, database_name: str) -> list[tuple[subprocess.Popen, str]]:
    """Prefork workers with one pool process each, on a queue of their own; returns once all are ready."""
    import tempfile

    from django.db import connection

    queue = f"gatehouse-bench-{uuid.uuid4().hex[:12]}"
    database = connection.settings_dict
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    env = {
        **os.environ,
        "PYTHONPATH": str(BASE_DIR),
        "DATABASE_URL": f"postgres://{database['USER']}{password}@{database['HOST']}:{database['PORT']}/{database_name}",
        "LOG_LEVEL": "INFO",
    }
    started, logs = [], []
    for index in range(count):
        command = [sys.executable, "-m", "celery", "-A", "portal", "worker", "--hostname", f"bench{index}@%h"]
        command += ["--queues", queue, "--concurrency", "1", "--without-gossip", "--without-mingle"]
        command += ["--without-heartbeat", "--loglevel", "INFO"]
        log = tempfile.NamedTemporaryFile(prefix="bench-worker-", suffix=".log", delete=False)  # noqa: SIM115
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        started.append((process, queue))
        logs.append(Path(log.name))
    deadline = time.monotonic() + 60
    while not all(" ready." in path.read_text(errors="replace") for path in logs):
        if time.monotonic() > deadline or any(process.poll() is not None for process, _ in started):
            sys.exit("A worker did not start; see " + ", ".join(map(str, logs)))
        time.sleep(0.1)
    for path in logs:
        path.unlink()
    return started


if __name__ == "__main__":
    main()
