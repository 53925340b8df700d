"""Licenses, their versions, and accepting one exact text."""

from __future__ import annotations

from django.db import transaction

from access.audit import audit_record
from access.errors import InvalidInput
from access.models import License, LicenseAcceptance, LicenseVersion

MAX_LICENSE_TEXT_LENGTH = 100_000
MAX_TYPED_NAME_LENGTH = 200
MAX_LICENSE_NAME_LENGTH = 200


def license_create(*, organization, name: str, text: str, actor=None) -> License:
    name = name.strip()
    if not name:
        raise InvalidInput("A license needs a name.")
    if len(name) > MAX_LICENSE_NAME_LENGTH:
        raise InvalidInput(f"A license name may have at most {MAX_LICENSE_NAME_LENGTH} characters.")
    with transaction.atomic():
        license = License.objects.create(organization=organization, name=name)
        license_version_publish(license=license, text=text, actor=actor)
    return license


def license_version_publish(
    *, license: License, text: str, requires_reacceptance: bool = False, actor=None
) -> LicenseVersion:
    """Add a new version of a license. Versions are numbered from 1 and never change.

    With ``requires_reacceptance``, holders of grants whose acceptance is of an earlier
    version cannot download (policy code ``license_changed``) until they accept this one;
    without it (a wording fix) existing grants carry on under the text they accepted.
    """
    if not text.strip():
        raise InvalidInput("A license needs a text.")
    if len(text) > MAX_LICENSE_TEXT_LENGTH:
        raise InvalidInput(f"A license text may have at most {MAX_LICENSE_TEXT_LENGTH} characters.")
    text_sha256 = LicenseVersion.hash_text(text)
    with transaction.atomic():
        License.objects.select_for_update().get(pk=license.pk)
        current = license.versions.order_by("-number").first()
        if current is not None and current.text_sha256 == text_sha256:
            raise InvalidInput(
                f"This text is the same as version {current.number}; change it to publish a new version.",
                code="license_unchanged",
            )
        version = LicenseVersion.objects.create(
            license=license,
            number=(current.number if current else 0) + 1,
            text=text,
            text_sha256=text_sha256,
            # Version 1 has no earlier acceptances to supersede.
            requires_reacceptance=bool(requires_reacceptance) and current is not None,
        )
        audit_record(
            action="license.version_published",
            target=version,
            actor=actor,
            payload={
                "license_id": license.pk,
                "number": version.number,
                "text_sha256": version.text_sha256,
                "requires_reacceptance": version.requires_reacceptance,
            },
        )
    return version


def _normalise_name(name: str) -> str:
    return " ".join(name.split()).casefold()


def license_accept(
    *, user, license_version: LicenseVersion, typed_name: str, seen_text_sha256: str, ip_address: str | None
) -> LicenseAcceptance:
    """Record that ``user`` accepted this exact text by typing their full name.

    Runs inside the caller's transaction. ``seen_text_sha256`` is the hash of the text
    the user was shown: if the license changed in between, the acceptance is refused.
    """
    typed_name = typed_name.strip()
    if not typed_name:
        raise InvalidInput("Type your full name to accept the license.", code="typed_name_missing")
    if len(typed_name) > MAX_TYPED_NAME_LENGTH:
        raise InvalidInput(
            f"A name may have at most {MAX_TYPED_NAME_LENGTH} characters.", code="typed_name_too_long"
        )
    if user.full_name and _normalise_name(typed_name) != _normalise_name(user.full_name):
        raise InvalidInput(
            f"Type your full name exactly as on your account ({user.full_name}).", code="typed_name_mismatch"
        )
    if seen_text_sha256 != license_version.text_sha256:
        raise InvalidInput(
            "The license changed while you were reading it. Read the new text and accept it again.",
            code="license_changed",
        )
    acceptance = LicenseAcceptance.objects.create(
        user=user,
        license_version=license_version,
        text_sha256=license_version.text_sha256,
        typed_name=typed_name,
        ip_address=ip_address,
    )
    audit_record(
        action="license.accepted",
        target=acceptance,
        actor=user,
        ip_address=ip_address,
        payload={"license_version_id": license_version.pk, "text_sha256": license_version.text_sha256},
    )
    return acceptance
