"""Scenes for the review-queue tests: many applications made in bulk, reviewers, ages.

The queue and the bulk decisions only read and decide applications, so the thousands of rows
these tests need are inserted with bulk_create (users with unusable passwords, bare license
acceptances); the few applications whose submission matters are made through the services.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from access.models import Application, LicenseAcceptance, User
from releases.models import Membership, Organization, Tier
from tests.factories import MembershipFactory, UserFactory


def member(organization: Organization, role: str, email: str, full_name: str) -> User:
    user = UserFactory(email=email, full_name=full_name)
    MembershipFactory(organization=organization, user=user, role=role)
    return user


def bulk_pending(
    tier: Tier, count: int, *, age_days: float = 1.0, domain: str = "example.org", **fields
) -> list[Application]:
    """``count`` pending applications from distinct new users, oldest first, made in three inserts."""
    now = timezone.now()
    batch = uuid.uuid4().hex[:8]
    users = User.objects.bulk_create(
        User(email=f"applicant-{batch}-{n}@{domain}", full_name=f"Applicant {n}", password="!")
        for n in range(count)
    )
    version = tier.license.current_version
    acceptances = LicenseAcceptance.objects.bulk_create(
        LicenseAcceptance(
            user=user, license_version=version, text_sha256=version.text_sha256, typed_name=user.full_name
        )
        for user in users
    )
    submitted = [now - timedelta(days=age_days, seconds=count - n) for n in range(count)]
    return Application.objects.bulk_create(
        Application(
            user=user,
            tier=tier,
            affiliation=f"Lab {n}",
            intended_use="Research.",
            license_acceptance=acceptance,
            submitted_at=submitted[n],
            decision_due_at=submitted[n] + timedelta(days=tier.review_days),
            **fields,
        )
        for n, (user, acceptance) in enumerate(zip(users, acceptances, strict=True))
    )


def assign(application: Application, user: User) -> Application:
    Application.objects.filter(pk=application.pk).update(assigned_to=user, assigned_at=timezone.now())
    application.refresh_from_db()
    return application


def aged(application: Application, days: float) -> Application:
    submitted_at = timezone.now() - timedelta(days=days)
    Application.objects.filter(pk=application.pk).update(submitted_at=submitted_at)
    application.refresh_from_db()
    return application


REVIEWER = Membership.Role.REVIEWER
OWNER = Membership.Role.OWNER
