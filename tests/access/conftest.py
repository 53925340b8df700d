"""Fixtures for the access app's unit tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from access.models import Application
from access.services.applications import application_submit
from releases.models import Tier
from tests.factories import TierFactory


@pytest.fixture
def submit() -> Callable[..., Application]:
    """Submit an application the way the apply form does, with overridable fields."""

    def submit_application(user, tier: Tier, **overrides) -> Application:
        arguments = {
            "affiliation": "University of Example",
            "intended_use": "Measure how often the model refuses harmful requests.",
            "answers": {},
            "typed_name": user.full_name,
            "seen_text_sha256": tier.license.current_version.text_sha256,
            "ip_address": "192.0.2.10",
        }
        arguments.update(overrides)
        return application_submit(user=user, tier=tier, **arguments)

    return submit_application


@pytest.fixture
def auto_tier(release):
    return TierFactory(
        release=release, name="Students", gate=Tier.Gate.APPLICATION, approval=Tier.Approval.AUTO
    )


@pytest.fixture
def invitation_tier(release):
    return TierFactory(release=release, name="Red team", gate=Tier.Gate.INVITATION)


@pytest.fixture
def pending_application(researcher, application_tier, submit) -> Application:
    return submit(researcher, application_tier)
