"""schemathesis drives every operation of /api/v1/ from its own OpenAPI schema, with a valid
token of a user who is both a reviewer and an applicant, and finds no server error and no
response outside the schema (status codes, content types and bodies as documented)."""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from access.services.tokens import token_create
from releases.models import Tier
from tests.factories import TierFactory
from tests.scenes import approved_grant, submit

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def wsgi_in_test_transaction():
    # Django's WSGI handler closes the database connection at the end of each request when it
    # sees an open transaction, which would end the test's own; the test client does the same.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_headers(
    wsgi_in_test_transaction, django_settings_override, owner, researcher, application_tier, release
):
    """A world with something in every list: an application, a grant, files; the owner reviews."""
    submit(owner, application_tier)
    approved_grant(researcher, TierFactory(release=release, gate=Tier.Gate.APPLICATION), owner)
    _, raw = token_create(user=owner, name="schemathesis", scopes=["read", "download", "manage"])
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def django_settings_override(settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 1_000_000
    settings.ALLOWED_HOSTS = ["*"]


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("SCHEMATHESIS_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_every_operation_answers_within_its_schema(case, api_headers):
    case.call_and_validate(headers=api_headers, checks=CHECKS)
