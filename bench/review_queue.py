"""How long the reviewers' queue page takes with 100,000 applications in the database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gatehouse .venv/bin/python bench/review_queue.py \
        [--applications 100000] [--requests 200]

It creates a throwaway database next to DATABASE_URL's (``<name>_bench_review_queue``, dropped at
the end), one organization with five reviewers, three application tiers and N applications spread
over them: 90% awaiting a decision (a tenth of those appealed), the rest decided, a third of the
open ones assigned round the reviewers, submitted over the past year. It runs ANALYZE, as
autovacuum would in production, then requests the queue page through Django's test client (the
whole request in this process: URL routing, session and authentication middleware, queries and
template rendering; no HTTP server or network) as a signed-in reviewer, and prints the p50 and p95
of each view of the queue: the default page (50 oldest awaiting a decision), filtered by tier,
assigned to me, older than 180 days, and the 1,000-row page a bulk action works on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

BATCH = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--applications", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="requests per view of the queue")
    parser.add_argument(
        "--explain", action="store_true", help="print the plans of each view's slowest queries"
    )
    arguments = parser.parse_args()

    os.environ.update(DJANGO_SETTINGS_MODULE="portal.settings", LOG_LEVEL="WARNING", EMAIL_DELIVERY="console")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-that-is-long-enough")
    # The test client's host name.
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    import django

    django.setup()
    from django.db import connection

    name = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = f"{name}_bench_review_queue"
    print(f"Creating the throwaway database {connection.settings_dict['TEST']['NAME']} ...", flush=True)
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        run(arguments)
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


def run(arguments) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    organization, reviewer, tiers = scene(arguments.applications)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    client = Client()
    client.force_login(reviewer)
    base = reverse("review-queue", kwargs={"org_slug": organization.slug})
    views = {
        "default (50 oldest awaiting)": "",
        "one tier": f"?tier={tiers[1].pk}",
        "assigned to me": "?assigned=me",
        "older than 180 days": "?older_than_days=180",
        "all open, 1,000 per page": "?status=open&per_page=1000",
    }
    print(f"applications                  {arguments.applications}")
    print(f"requests per view             {arguments.requests} (Django test client, in process)")
    print(f"{'view':<30}{'p50 ms':>8}{'p95 ms':>8}{'queries':>9}{'rows':>9}")
    for label, query in views.items():
        url = base + query
        for _ in range(5):
            client.get(url)  # warm-up: templates compiled, connection and plans cached
        timings = []
        for _ in range(arguments.requests):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                sys.exit(f"FAILED: {url} answered {response.status_code}")
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        rows = response.content.decode().count('<tr id="application-')
        if arguments.explain:
            explain(queries.captured_queries)
        p50 = statistics.median(timings)
        p95 = statistics.quantiles(timings, n=20)[-1]
        print(f"{label:<30}{p50:>8.1f}{p95:>8.1f}{len(queries):>9}{rows:>9}")


def explain(captured: list[dict]) -> None:
    from django.db import connection

    for query in captured:
        if "access_application" not in query["sql"] or not query["sql"].startswith("SELECT"):
            continue
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN ANALYZE " + query["sql"])
            print("\n".join(row[0] for row in cursor.fetchall()), end="\n\n")


def scene(count: int):
    """One organization, five reviewers, three tiers and ``count`` applications, made in bulk."""
    from datetime import timedelta

    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from access.models import Application, LicenseAcceptance, User
    from access.services.licenses import license_create
    from releases.models import Membership, Tier
    from releases.rollout import tier_create
    from releases.services import (
        artifact_add,
        model_create,
        organization_create,
        release_create,
        release_publish,
    )

    owner = User.objects.create_user(email="owner@bench.example", password=None, full_name="Bench Owner")
    organization = organization_create(name="Bench", slug="bench", owner=owner)
    reviewers = []
    for index in range(5):
        user = User.objects.create_user(
            email=f"reviewer{index}@bench.example", password=None, full_name=f"Reviewer {index}"
        )
        Membership.objects.create(organization=organization, user=user, role=Membership.Role.REVIEWER)
        reviewers.append(user)
    model = model_create(organization=organization, slug="model", name="Bench Model", actor=owner)
    release = release_create(model=model, version="v1", actor=owner)
    artifact_add(
        release=release, path="model.safetensors", size=1, sha256="0" * 64, storage_key="k", actor=owner
    )
    license = license_create(organization=organization, name="Bench license", text="Be nice.", actor=owner)
    tiers = [
        tier_create(
            release=release,
            name=f"Tier {index}",
            gate=Tier.Gate.APPLICATION,
            license=license,
            opens_after=timedelta(0),
            artifact_patterns=["*"],
            position=index,
            actor=owner,
        )
        for index in range(3)
    ]
    release_publish(release=release, actor=owner)
    Tier.objects.filter(release=release).update(opened_at=timezone.now())
    version = license.current_version
    unusable = make_password(None)
    now = timezone.now()
    statuses = ["pending"] * 8 + ["appealed", "approved"]
    made = 0
    while made < count:
        size = min(BATCH, count - made)
        users = User.objects.bulk_create(
            User(email=f"applicant{made + n:07d}@lab{n % 500}.example", full_name=f"A {n}", password=unusable)
            for n in range(size)
        )
        acceptances = LicenseAcceptance.objects.bulk_create(
            LicenseAcceptance(
                user=user, license_version=version, text_sha256=version.text_sha256, typed_name=user.full_name
            )
            for user in users
        )
        applications = []
        for n, (user, acceptance) in enumerate(zip(users, acceptances, strict=True)):
            index = made + n
            status = statuses[index % len(statuses)]
            submitted_at = now - timedelta(minutes=(index * 5) % (365 * 24 * 60))
            applications.append(
                Application(
                    user=user,
                    tier=tiers[index % 3],
                    status=status,
                    affiliation=f"Lab {index % 500}",
                    intended_use="Research.",
                    license_acceptance=acceptance,
                    submitted_at=submitted_at,
                    decision_due_at=submitted_at + timedelta(days=14),
                    decided_at=submitted_at + timedelta(days=3) if status == "approved" else None,
                    assigned_to=reviewers[index % 5] if status != "approved" and index % 3 == 0 else None,
                )
            )
        Application.objects.bulk_create(applications)
        made += size
        print(f"  {made} applications", flush=True)
    return organization, reviewers[0], tiers


if __name__ == "__main__":
    main()
