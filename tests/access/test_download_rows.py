"""The hand-written SQL of the download hot path (access/download_rows.py) gives exactly what the
ORM reference queries give: the same rows, the same field values, the same annotations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.utils import timezone

from access import download_rows
from access.download_policy import download_grants_orm
from access.models import AccessToken, Grant
from access.selectors import downloadable_artifacts_orm
from access.services.licenses import license_version_publish
from access.services.tokens import token_create, token_with_user_orm
from releases.models import Release, Tier
from tests.factories import ArtifactFactory, ReleaseFactory, TierFactory, UserFactory
from tests.scenes import approved_grant, revoke


def fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


@pytest.fixture
def two_releases(model, release):
    """The same path in an older and a newer release, a file in no tier, and a draft release."""
    newer = ReleaseFactory(model=model, version="v2.0", published_at=timezone.now() + timedelta(hours=1))
    draft = ReleaseFactory(model=model, version="v3.0-draft", status=Release.Status.DRAFT, published_at=None)
    old_file = ArtifactFactory(release=release, path="weights.bin")
    new_file = ArtifactFactory(release=newer, path="weights.bin")
    ArtifactFactory(release=newer, path="in-no-tier.bin")
    draft_file = ArtifactFactory(release=draft, path="weights.bin")
    tiers = [
        TierFactory(release=release, gate=Tier.Gate.APPLICATION, artifacts=[old_file]),
        TierFactory(release=newer, gate=Tier.Gate.APPLICATION, artifacts=[new_file]),
        TierFactory(release=newer, gate=Tier.Gate.OPEN, artifacts=[new_file]),
        TierFactory(release=draft, gate=Tier.Gate.OPEN, artifacts=[draft_file]),
    ]
    return tiers


def as_comparable(candidates):
    return [
        (
            fields(artifact),
            fields(artifact.release),
            fields(artifact.release.model),
            fields(artifact.release.model.organization),
            [fields(tier) for tier in tiers],
        )
        for artifact, tiers in candidates
    ]


@pytest.mark.parametrize(
    "lookups",
    [
        lambda model: {"path": "weights.bin", "release__model": model},
        lambda model: {
            "release__model__organization__slug": model.organization.slug,
            "release__model__slug": model.slug,
            "path": "weights.bin",
        },
        lambda model: {"release__model": model},
        lambda model: {"path": "no-such-file"},
    ],
    ids=["path-in-model", "by-slugs", "whole-model", "nothing"],
)
def test_candidates_match_the_orm(model, two_releases, lookups):
    filters = lookups(model)

    hand_written = download_rows.candidates(**filters)

    assert as_comparable(hand_written) == as_comparable(downloadable_artifacts_orm(**filters))
    if filters.get("path") == "weights.bin":
        assert [artifact.release.version for artifact, _ in hand_written] == ["v2.0", "v1.0"]


def test_candidate_by_id_matches_the_orm(two_releases):
    artifact = two_releases[1].artifacts.get()

    assert as_comparable(download_rows.candidates(pk=artifact.pk)) == as_comparable(
        downloadable_artifacts_orm(pk=artifact.pk)
    )


def test_unknown_filter_is_refused(db):
    with pytest.raises(ValueError, match="filters on"):
        download_rows.candidates(release__version="v1.0")


def test_grants_match_the_orm_with_license_state(release, researcher, reviewer):
    tiers = [TierFactory(release=release, gate=Tier.Gate.APPLICATION) for _ in range(3)]
    approved_grant(researcher, tiers[0], reviewer)
    revoke(approved_grant(researcher, tiers[1], reviewer), reviewer)
    approved_grant(researcher, tiers[2], reviewer)
    approved_grant(UserFactory(), tiers[0], reviewer)  # someone else's grant stays out
    license_version_publish(
        license=tiers[2].license, text="Stricter.", requires_reacceptance=True, actor=reviewer
    )

    hand_written = download_rows.grants(researcher, tiers)
    reference = list(download_grants_orm(researcher, tiers))

    assert [fields(grant) for grant in hand_written] == [fields(grant) for grant in reference]
    assert [grant.license_outdated for grant in hand_written] == [
        grant.license_outdated for grant in reference
    ]
    assert sorted(grant.license_outdated for grant in hand_written) == [False, False, True]
    assert [fields(grant.license_acceptance) for grant in hand_written] == [
        fields(grant.license_acceptance) for grant in reference
    ]
    assert {grant.status for grant in hand_written} == {Grant.Status.ACTIVE, Grant.Status.REVOKED}


@pytest.mark.parametrize("verified", [True, False])
def test_token_with_user_matches_the_orm(researcher, verified):
    token, raw = token_create(user=researcher, name="script", scopes=["read", "manage"])
    # An address stored in another case still counts, as allauth compares without case.
    EmailAddress.objects.filter(user=researcher).update(verified=verified, email=researcher.email.upper())

    hand_written, hand_written_verified = download_rows.token_with_user(AccessToken.hash_token(raw))
    reference = token_with_user_orm(AccessToken.hash_token(raw))

    assert fields(hand_written) == fields(reference) == fields(token)
    assert hand_written.scopes == ["manage", "read"]
    assert fields(hand_written.user) == fields(reference.user)
    assert hand_written_verified is reference.user_email_verified is verified
    assert download_rows.token_with_user("0" * 64) is None
