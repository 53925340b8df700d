"""The publisher's side of the smoke, made through the services in the smoke's own process.

The smoke process has the same environment as the processes it started (portal.settings, the smoke's
database, Redis and SeaweedFS), so these rows and the stored object are exactly what the deployed site sees.
What researchers do, they do through nginx (tests/smoke/journey.py); this is what a publisher would have
prepared beforehand: an organization with a reviewer, a model, a published release whose one file is in
the bucket with its sha256, a tier open by application (manual review, one question, a license), and a
click-through tier that opens by itself a few seconds from now, with a watcher waiting for it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from access.services.licenses import license_create
from portal import storage
from releases.announcements import watch_start
from releases.members import invitation_accept, membership_invite
from releases.models import Membership, Tier
from releases.rollout import tier_create, tier_open_now
from releases.services import artifact_add, model_create, organization_create, release_create, release_publish

ORGANIZATION_SLUG = "smoke-ai"
MODEL_SLUG = "smoke-lm"
ARTIFACT_PATH = "model.safetensors"
QUESTION_NAME = "orcid"
LICENSE_TEXT = "Smoke Test License\n\nUse the weights for research only. Do not redistribute them."


@dataclass(frozen=True)
class Person:
    email: str
    full_name: str
    password: str


@dataclass(frozen=True)
class Seeded:
    reviewer: Person
    watcher: Person
    application_tier_id: int
    scheduled_tier_id: int
    scheduled_opens_at: datetime
    artifact_id: int
    artifact_sha256: str
    artifact_size: int
    model_path: str
    revision: str


def _account(person: Person):
    """A user with a verified primary address, as if they had signed up and confirmed it."""
    user = get_user_model().objects.create_user(
        email=person.email, password=person.password, full_name=person.full_name
    )
    EmailAddress.objects.create(user=user, email=person.email, verified=True, primary=True)
    return user


def _person(name: str, full_name: str) -> Person:
    return Person(f"{name}@smoke.example", full_name, f"smoke-{secrets.token_urlsafe(12)}")


def artifact_bytes() -> bytes:
    """A few hundred kilobytes that are not all one byte: a truncated download shows in the sha256."""
    return b"".join(hashlib.sha256(str(index).encode()).digest() for index in range(12_000))


def seed(*, opens_in_seconds: float) -> Seeded:
    publisher_person = _person("publisher", "Pat Publisher")
    reviewer_person = _person("reviewer", "Robin Reviewer")
    watcher_person = _person("watcher", "Wendy Watcher")
    with transaction.atomic():
        publisher = _account(publisher_person)
        reviewer = _account(reviewer_person)
        watcher = _account(watcher_person)

    organization = organization_create(name="Smoke AI", slug=ORGANIZATION_SLUG, owner=publisher)
    invitation = membership_invite(
        organization=organization, email=reviewer.email, role=Membership.Role.REVIEWER, actor=publisher
    )
    invitation_accept(invitation=invitation, user=reviewer)
    model = model_create(
        organization=organization, slug=MODEL_SLUG, name="Smoke LM", summary="For the smoke.", actor=publisher
    )
    license = license_create(
        organization=organization, name="Smoke Test License", text=LICENSE_TEXT, actor=publisher
    )
    release = release_create(model=model, version="v1.0", actor=publisher)

    # Storage calls outside any transaction, as the services require.
    storage.ensure_bucket()
    body = artifact_bytes()
    stored = storage.put_object(key=f"{ORGANIZATION_SLUG}/{MODEL_SLUG}/v1.0/{ARTIFACT_PATH}", body=body)
    artifact = artifact_add(
        release=release,
        path=ARTIFACT_PATH,
        size=stored.size,
        sha256=stored.sha256,
        storage_key=stored.key,
        object_version=stored.version_id or "",
        actor=publisher,
    )
    release = release_publish(release=release, actor=publisher)

    now = timezone.now()
    researchers = tier_create(
        release=release,
        name="Researchers",
        gate=Tier.Gate.APPLICATION,
        approval=Tier.Approval.MANUAL,
        position=0,
        opens_at=now,
        artifacts=[artifact],
        license=license,
        review_days=7,
        questions=[{"name": QUESTION_NAME, "label": "ORCID iD", "type": "text", "required": True}],
        actor=publisher,
    )
    tier_open_now(tier=researchers, actor=publisher)
    public = tier_create(
        release=release,
        name="Public",
        gate=Tier.Gate.CLICK_THROUGH,
        position=1,
        opens_at=now + timedelta(seconds=opens_in_seconds),
        artifacts=[artifact],
        license=license,
        actor=publisher,
    )
    watch_start(user=watcher, tier=public)
    return Seeded(
        reviewer=reviewer_person,
        watcher=watcher_person,
        application_tier_id=researchers.pk,
        scheduled_tier_id=public.pk,
        scheduled_opens_at=public.opens_at,
        artifact_id=artifact.pk,
        artifact_sha256=stored.sha256,
        artifact_size=stored.size,
        model_path=f"{ORGANIZATION_SLUG}/{MODEL_SLUG}",
        revision=release.revision,
    )
