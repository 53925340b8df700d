"""Fixtures shared by the whole suite.

The people every permission test needs: ``owner`` (alice) and ``reviewer`` (bob)
belong to ``organization``; ``outsider`` (charlie) belongs to another; ``researcher``
(dana) applies for access. ``celery_eager`` and ``emails`` run the tasks a test enqueues
in-process; ``smtp_sink`` receives what worker processes send over SMTP.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from access.models import LicenseVersion
from portal.celery import app as celery_app
from releases.models import Membership, Tier
from tests.factories import (
    MembershipFactory,
    ModelFactory,
    OrganizationFactory,
    ReleaseFactory,
    TierFactory,
    UserFactory,
)
from tests.smtp_sink import SMTPSink

pytest_plugins = ["tests.storage_plugin", "tests.worker_plugin"]


@pytest.fixture
def organization(db):
    return OrganizationFactory(name="Acme AI", slug="acme")


@pytest.fixture
def owner(organization):
    user = UserFactory(email="alice@acme.example", full_name="Alice Owner")
    MembershipFactory(organization=organization, user=user, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def reviewer(organization):
    user = UserFactory(email="bob@acme.example", full_name="Bob Reviewer")
    MembershipFactory(organization=organization, user=user, role=Membership.Role.REVIEWER)
    return user


@pytest.fixture
def outsider(db):
    user = UserFactory(email="charlie@other.example", full_name="Charlie Outsider")
    MembershipFactory(user=user, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def researcher(db):
    return UserFactory(email="dana@university.example", full_name="Dana Researcher")


@pytest.fixture
def model(organization):
    return ModelFactory(organization=organization, slug="llama-lite", name="Llama Lite")


@pytest.fixture
def release(model):
    return ReleaseFactory(model=model, version="v1.0")


@pytest.fixture
def application_tier(release):
    """An open tier, by application with manual review."""
    return TierFactory(release=release, name="Researchers", gate=Tier.Gate.APPLICATION)


@pytest.fixture
def click_through_tier(release):
    return TierFactory(release=release, name="Public", gate=Tier.Gate.CLICK_THROUGH)


@pytest.fixture
def celery_eager() -> Iterator[None]:
    """Run enqueued tasks in-process, raising their errors. Unit tests of task logic only."""
    conf = celery_app.conf
    previous = (conf.task_always_eager, conf.task_eager_propagates)
    conf.task_always_eager = True
    conf.task_eager_propagates = True
    yield
    conf.task_always_eager, conf.task_eager_propagates = previous


@pytest.fixture
def emails(celery_eager, mailoutbox, django_capture_on_commit_callbacks):
    """E-mails sent by tasks enqueued on commit: ``with emails.on_commit(): ...``, then ``emails.outbox``."""

    class Emails:
        outbox = mailoutbox

        @staticmethod
        def on_commit():
            return django_capture_on_commit_callbacks(execute=True)

        @property
        def subjects(self) -> list[str]:
            return [message.subject for message in mailoutbox]

    return Emails()


@pytest.fixture
def smtp_sink() -> Iterator[SMTPSink]:
    """A local SMTP server (tests/smtp_sink.py) for processes that send real e-mail; ``smtp_sink.port``."""
    with SMTPSink() as sink:
        yield sink


def license_text_sha256(tier: Tier) -> str:
    version: LicenseVersion = tier.license.current_version
    return version.text_sha256
