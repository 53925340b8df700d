"""Fixtures of the releases app's tests: a publisher of ``organization`` (erin), a draft release of
``model``, and the body of a file uploaded in three parts."""

from __future__ import annotations

import pytest

from releases.models import Membership, Release
from tests.factories import MembershipFactory, UserFactory
from tests.releases.uploading import THREE_PARTS, draft_release, random_bytes


@pytest.fixture
def publisher(organization):
    user = UserFactory(email="erin@acme.example", full_name="Erin Publisher")
    MembershipFactory(organization=organization, user=user, role=Membership.Role.PUBLISHER)
    return user


@pytest.fixture
def draft(model) -> Release:
    return draft_release(model)


@pytest.fixture
def content() -> bytes:
    return random_bytes(THREE_PARTS)
