"""Licenses, their versions, and accepting one exact text."""

from __future__ import annotations

import hashlib

import pytest
from django.db import transaction

from access.errors import InvalidInput
from access.models import AuditEvent, LicenseAcceptance, LicenseVersion
from access.services.licenses import license_accept, license_create, license_version_publish
from tests.factories import LicenseFactory, UserFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes

TEXT = "You may use these weights for research.\nYou may not use them to harm anyone.\n"


def test_creating_a_license_publishes_version_one_with_the_sha256_of_its_text(organization, owner):
    since = last_audit_id()

    license = license_create(organization=organization, name="Acme research license", text=TEXT, actor=owner)

    version = license.current_version
    assert version.number == 1
    assert version.text == TEXT
    assert version.text_sha256 == hashlib.sha256(TEXT.encode("utf-8")).hexdigest()
    assert audit_actions(since) == ["license.version_published"]
    event = AuditEvent.objects.get(pk__gt=since)
    assert event.actor == owner
    assert event.payload == {
        "license_id": license.pk,
        "number": 1,
        "text_sha256": version.text_sha256,
        "requires_reacceptance": False,
    }


def test_versions_are_numbered_in_order_and_the_newest_is_current(organization):
    license = LicenseFactory(organization=organization)

    second = license_version_publish(license=license, text="Second text.")
    third = license_version_publish(license=license, text="Third text.")

    assert (second.number, third.number) == (2, 3)
    assert license.current_version == third
    assert list(license.versions.values_list("number", flat=True)) == [3, 2, 1]


@pytest.mark.parametrize("text", ["", "  \n ", "x" * 100_001])
def test_a_license_text_must_be_present_and_not_too_long(organization, text):
    license = LicenseFactory(organization=organization)

    with nothing_changes(), pytest.raises(InvalidInput):
        license_version_publish(license=license, text=text)

    assert LicenseVersion.objects.filter(license=license).count() == 1


def test_creating_a_license_without_text_leaves_no_license_behind(organization):
    with nothing_changes(), pytest.raises(InvalidInput):
        license_create(organization=organization, name="Empty", text="")

    assert not organization.licenses.exists()


def _accept(user, version, **overrides):
    arguments = {
        "typed_name": user.full_name,
        "seen_text_sha256": version.text_sha256,
        "ip_address": "2001:DB8::7",
    }
    arguments.update(overrides)
    with transaction.atomic():
        return license_accept(user=user, license_version=version, **arguments)


def test_accepting_records_the_exact_text_the_name_and_the_address(researcher, organization):
    version = LicenseFactory(organization=organization).current_version
    since = last_audit_id()

    acceptance = _accept(researcher, version)

    acceptance.refresh_from_db()
    assert acceptance.user == researcher
    assert acceptance.license_version == version
    assert acceptance.text_sha256 == version.text_sha256
    assert acceptance.typed_name == "Dana Researcher"
    assert acceptance.ip_address == "2001:db8::7"
    assert audit_actions(since) == ["license.accepted"]


def test_the_typed_name_may_differ_in_case_and_spacing_only(researcher, organization):
    version = LicenseFactory(organization=organization).current_version

    assert _accept(researcher, version, typed_name="DANA  researcher")

    with nothing_changes(), pytest.raises(InvalidInput) as error:
        _accept(researcher, version, typed_name="Dana Researchers")
    assert error.value.code == "typed_name_mismatch"


def test_a_user_without_a_full_name_may_type_any_name(organization):
    user = UserFactory(full_name="")
    version = LicenseFactory(organization=organization).current_version

    assert _accept(user, version, typed_name="Anon Y. Mous").typed_name == "Anon Y. Mous"


@pytest.mark.parametrize(
    ("typed_name", "code"), [("", "typed_name_missing"), ("x" * 201, "typed_name_too_long")]
)
def test_the_typed_name_must_be_present_and_not_too_long(organization, typed_name, code):
    user = UserFactory(full_name="")
    version = LicenseFactory(organization=organization).current_version

    with nothing_changes(), pytest.raises(InvalidInput) as error:
        _accept(user, version, typed_name=typed_name)

    assert error.value.code == code


@pytest.mark.parametrize("seen", ["", "0" * 64, "stale"])
def test_accepting_a_text_other_than_the_version_is_refused(researcher, organization, seen):
    version = LicenseFactory(organization=organization).current_version

    with nothing_changes(), pytest.raises(InvalidInput) as error:
        _accept(researcher, version, seen_text_sha256=seen)

    assert error.value.code == "license_changed"
    assert not LicenseAcceptance.objects.filter(user=researcher).exists()
