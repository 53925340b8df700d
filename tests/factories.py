"""factory_boy factories: rows in legal states, built without going through services.

Tests of a transition call the service; factories only set the scene.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import timedelta

import factory
from allauth.account.models import EmailAddress
from django.contrib.auth.hashers import make_password
from django.utils import timezone

from access.models import Application, Grant, License, LicenseAcceptance, LicenseVersion, User
from releases.models import Artifact, Membership, Model, Organization, Release, Tier

PASSWORD = "correct horse battery staple"  # noqa: S105


@functools.cache
def _password_hash() -> str:
    return make_password(PASSWORD)


LICENSE_TEXT = "Use these weights for research only. Do not use them to cause harm."


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.org")
    full_name = factory.Faker("name")
    # Argon2 takes a noticeable fraction of a second per hash: hash the shared password once.
    password = factory.LazyFunction(lambda: _password_hash())

    @factory.post_generation
    def verified(user, create, extracted, **kwargs):
        # Accounts are verified unless a test asks otherwise (verified=False).
        if create:
            EmailAddress.objects.create(
                user=user, email=user.email, primary=True, verified=extracted is not False
            )


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Lab {n}")
    slug = factory.Sequence(lambda n: f"lab-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.REVIEWER


class ModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Model

    organization = factory.SubFactory(OrganizationFactory)
    slug = factory.Sequence(lambda n: f"model-{n}")
    name = factory.Sequence(lambda n: f"Model {n}")
    card = "# A model\n\nIt predicts the next token."


class ReleaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Release

    model = factory.SubFactory(ModelFactory)
    version = factory.Sequence(lambda n: f"v1.{n}")
    status = Release.Status.PUBLISHED
    revision = factory.Sequence(lambda n: hashlib.sha1(str(n).encode()).hexdigest())  # noqa: S324
    published_at = factory.LazyFunction(timezone.now)


class ArtifactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Artifact

    release = factory.SubFactory(ReleaseFactory)
    path = factory.Sequence(lambda n: f"shard-{n:05d}.safetensors")
    size = 4
    sha256 = factory.LazyFunction(lambda: hashlib.sha256(b"test").hexdigest())
    storage_key = factory.LazyAttribute(lambda a: f"test/{a.path}")


class LicenseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = License
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    name = "Research license"

    @factory.post_generation
    def text(license, create, extracted, **kwargs):
        if create:
            text = extracted or LICENSE_TEXT
            LicenseVersion.objects.create(
                license=license, number=1, text=text, text_sha256=LicenseVersion.hash_text(text)
            )


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier
        skip_postgeneration_save = True

    release = factory.SubFactory(ReleaseFactory)
    name = factory.Sequence(lambda n: f"Tier {n}")
    gate = Tier.Gate.APPLICATION
    license = factory.LazyAttribute(lambda t: LicenseFactory(organization=t.release.model.organization))
    opens_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    opened_at = factory.LazyAttribute(lambda t: t.opens_at if t.opens_at <= timezone.now() else None)
    grant_duration_days = 365

    @factory.post_generation
    def artifacts(tier, create, extracted, **kwargs):
        if create:
            tier.artifacts.set(
                extracted if extracted is not None else [ArtifactFactory(release=tier.release)]
            )


class LicenseAcceptanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LicenseAcceptance

    user = factory.SubFactory(UserFactory)
    license_version = factory.LazyFunction(lambda: LicenseFactory().current_version)
    text_sha256 = factory.LazyAttribute(lambda a: a.license_version.text_sha256)
    typed_name = factory.LazyAttribute(lambda a: a.user.full_name)


class ApplicationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Application

    user = factory.SubFactory(UserFactory)
    tier = factory.SubFactory(TierFactory)
    status = Application.Status.PENDING
    affiliation = "University of Example"
    intended_use = "Measure how often the model refuses harmful requests."
    license_acceptance = factory.LazyAttribute(
        lambda a: LicenseAcceptanceFactory(user=a.user, license_version=a.tier.license.current_version)
    )
    submitted_at = factory.LazyFunction(timezone.now)
    decision_due_at = factory.LazyAttribute(lambda a: a.submitted_at + timedelta(days=a.tier.review_days))


class GrantFactory(factory.django.DjangoModelFactory):
    """An active grant on an open tier; pass status/expires_at/revoked_at for other states."""

    class Meta:
        model = Grant

    user = factory.SubFactory(UserFactory)
    tier = factory.SubFactory(TierFactory)
    license_acceptance = factory.LazyAttribute(
        lambda g: LicenseAcceptanceFactory(user=g.user, license_version=g.tier.license.current_version)
    )
    status = Grant.Status.ACTIVE
    granted_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda g: g.granted_at + timedelta(days=365))
