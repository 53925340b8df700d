"""Who may do what: a user's standing on a tier, and whether a download is allowed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from access import download_policy, policy
from access.models import Application, Grant, Invitation
from releases.models import Release, Tier
from tests.factories import (
    ApplicationFactory,
    ArtifactFactory,
    GrantFactory,
    ReleaseFactory,
    TierFactory,
    UserFactory,
)

# --- tier_standing --------------------------------------------------------------------------


def test_a_tier_not_open_yet_says_when_it_opens(researcher, release):
    opens_at = timezone.now() + timedelta(days=30)
    tier = TierFactory(release=release, opens_at=opens_at)

    standing = policy.tier_standing(researcher, tier)

    assert standing.code == "not_open"
    assert standing.date == opens_at
    assert f"{opens_at:%Y-%m-%d %H:%M}" in standing.detail
    assert not standing.can_download


def test_an_open_tier_is_open_to_everyone_even_anonymous(release):
    tier = TierFactory(release=release, gate=Tier.Gate.OPEN, license=None)

    standing = policy.tier_standing(AnonymousUser(), tier)

    assert standing.code == "open"
    assert standing.can_download


def test_an_anonymous_visitor_is_asked_to_sign_in(application_tier):
    standing = policy.tier_standing(AnonymousUser(), application_tier)

    assert standing.code == "not_requested"
    assert "Sign in" in standing.label


def test_a_user_who_has_not_asked_has_not_requested(researcher, application_tier):
    standing = policy.tier_standing(researcher, application_tier)

    assert standing.code == "not_requested"
    assert not standing.can_download


def test_a_pending_application_shows_when_a_decision_is_due(researcher, application_tier):
    application = ApplicationFactory(user=researcher, tier=application_tier)

    standing = policy.tier_standing(researcher, application_tier)

    assert standing.code == "pending"
    assert standing.application == application
    assert standing.date == application.decision_due_at
    assert f"decision expected by {application.decision_due_at:%Y-%m-%d}" in standing.detail
    assert not standing.can_download


def test_an_approved_user_sees_until_when(researcher, application_tier):
    grant = GrantFactory(user=researcher, tier=application_tier)

    standing = policy.tier_standing(researcher, application_tier)

    assert standing.code == "approved"
    assert standing.grant == grant
    assert standing.date == grant.expires_at
    assert standing.detail == f"Access until {grant.expires_at:%Y-%m-%d}"
    assert standing.can_download


def test_a_grant_without_end_says_so(researcher, application_tier):
    GrantFactory(user=researcher, tier=application_tier, expires_at=None)

    standing = policy.tier_standing(researcher, application_tier)

    assert (standing.code, standing.detail) == ("approved", "Access with no end date")


def test_a_rejected_application_shows_its_reason(researcher, application_tier):
    ApplicationFactory(
        user=researcher,
        tier=application_tier,
        status=Application.Status.REJECTED,
        decision_reason="No ORCID iD.",
    )

    standing = policy.tier_standing(researcher, application_tier)

    assert (standing.code, standing.detail) == ("rejected", "No ORCID iD.")


def test_a_withdrawn_application_leaves_the_user_not_requested(researcher, application_tier):
    ApplicationFactory(user=researcher, tier=application_tier, status=Application.Status.WITHDRAWN)

    assert policy.tier_standing(researcher, application_tier).code == "not_requested"


def test_an_expired_grant_is_expired(researcher, application_tier):
    GrantFactory(user=researcher, tier=application_tier, status=Grant.Status.EXPIRED)

    standing = policy.tier_standing(researcher, application_tier)

    assert standing.code == "expired"
    assert not standing.can_download


def test_a_grant_past_its_date_is_expired_before_the_expiry_task_runs(researcher, application_tier):
    now = timezone.now()
    grant = GrantFactory(user=researcher, tier=application_tier, granted_at=now - timedelta(days=2))
    Grant.objects.filter(pk=grant.pk).update(expires_at=now - timedelta(seconds=1))

    assert policy.tier_standing(researcher, application_tier, now=now).code == "expired"


def test_a_revoked_grant_shows_the_reason(researcher, reviewer, application_tier):
    revoked_at = timezone.now()
    GrantFactory(
        user=researcher,
        tier=application_tier,
        status=Grant.Status.REVOKED,
        revoked_at=revoked_at,
        revoked_by=reviewer,
        revoke_reason="Shared the weights.",
    )

    standing = policy.tier_standing(researcher, application_tier)

    assert (standing.code, standing.detail, standing.date) == ("revoked", "Shared the weights.", revoked_at)


def test_a_renewal_application_after_expiry_is_pending(researcher, application_tier):
    now = timezone.now()
    GrantFactory(
        user=researcher,
        tier=application_tier,
        status=Grant.Status.EXPIRED,
        granted_at=now - timedelta(days=400),
    )
    renewal = ApplicationFactory(user=researcher, tier=application_tier, submitted_at=now)

    standing = policy.tier_standing(researcher, application_tier)

    assert standing.code == "pending"
    assert standing.application == renewal


def test_an_old_application_does_not_hide_the_live_grant(researcher, application_tier):
    grant = GrantFactory(
        user=researcher, tier=application_tier, granted_at=timezone.now() - timedelta(days=1)
    )
    ApplicationFactory(
        user=researcher,
        tier=application_tier,
        status=Application.Status.REJECTED,
        submitted_at=timezone.now(),
    )

    assert policy.tier_standing(researcher, application_tier).grant == grant


def test_an_invitation_tier_is_invitation_only_for_others(researcher, release):
    tier = TierFactory(release=release, gate=Tier.Gate.INVITATION)

    assert policy.tier_standing(researcher, tier).code == "invitation_only"


def test_an_invited_user_is_told_to_accept_the_license(researcher, reviewer, release):
    tier = TierFactory(release=release, gate=Tier.Gate.INVITATION)
    Invitation.objects.create(tier=tier, email="DANA@university.example", invited_by=reviewer)

    assert policy.tier_standing(researcher, tier).code == "invited"


def test_standing_uses_the_rows_the_caller_prefetched(
    researcher, application_tier, django_assert_num_queries
):
    # Prefetched the way callers read them: with the license state annotated (see standings_for_tiers).
    grant = Grant.objects.with_license_state().get(pk=GrantFactory(user=researcher, tier=application_tier).pk)

    with django_assert_num_queries(0):
        standing = policy.tier_standing(researcher, application_tier, applications=[], grants=[grant])

    assert standing.code == "approved"


# --- download_decision ----------------------------------------------------------------------


@pytest.fixture
def artifact(application_tier):
    return application_tier.artifacts.get()


def test_a_file_in_an_open_tier_may_be_downloaded_by_anyone(release):
    tier = TierFactory(release=release, gate=Tier.Gate.OPEN, license=None)
    artifact = tier.artifacts.get()

    decision = download_policy.download_decision(AnonymousUser(), artifact)

    assert (decision.allowed, decision.code, decision.tier) == (True, "open", tier)


def test_an_approved_user_may_download_under_their_grant(researcher, application_tier, artifact):
    grant = GrantFactory(user=researcher, tier=application_tier)

    decision = download_policy.download_decision(researcher, artifact)

    assert (decision.allowed, decision.code, decision.tier, decision.grant) == (
        True,
        "approved",
        application_tier,
        grant,
    )


def test_the_decision_takes_three_queries_whatever_the_number_of_tiers(
    researcher, release, django_assert_num_queries
):
    artifact = ArtifactFactory(release=release)
    tiers = [TierFactory(release=release, artifacts=[artifact]) for _ in range(4)]
    for tier in tiers[:3]:
        GrantFactory(user=researcher, tier=tier, status=Grant.Status.EXPIRED)
    GrantFactory(user=researcher, tier=tiers[3])
    artifact = type(artifact).objects.get(pk=artifact.pk)

    with django_assert_num_queries(3):
        decision = download_policy.download_decision(researcher, artifact)

    assert decision.allowed


def test_an_expired_grant_is_refused_with_a_way_to_renew(researcher, application_tier, artifact):
    grant = GrantFactory(user=researcher, tier=application_tier, status=Grant.Status.EXPIRED)

    decision = download_policy.download_decision(researcher, artifact)

    assert (decision.allowed, decision.code, decision.grant) == (False, "expired", grant)
    assert f"expired on {grant.expires_at:%Y-%m-%d}" in decision.message
    assert decision.action_url == f"/tiers/{application_tier.pk}/"


def test_a_grant_past_its_date_is_refused_at_once(researcher, application_tier, artifact):
    now = timezone.now()
    grant = GrantFactory(user=researcher, tier=application_tier, granted_at=now - timedelta(days=1))
    Grant.objects.filter(pk=grant.pk).update(expires_at=now)

    assert download_policy.download_decision(researcher, artifact, now=now).code == "expired"
    assert (
        download_policy.download_decision(researcher, artifact, now=now - timedelta(seconds=1)).code
        == "approved"
    )


def test_a_revoked_grant_is_refused_with_its_reason(researcher, reviewer, application_tier, artifact):
    GrantFactory(
        user=researcher,
        tier=application_tier,
        status=Grant.Status.REVOKED,
        revoked_at=timezone.now(),
        revoked_by=reviewer,
        revoke_reason="Shared the weights.",
    )

    decision = download_policy.download_decision(researcher, artifact)

    assert (decision.allowed, decision.code) == (False, "revoked")
    assert "Reason: Shared the weights." in decision.message


def test_a_user_without_a_grant_is_sent_to_the_tier_page(researcher, application_tier, artifact):
    decision = download_policy.download_decision(researcher, artifact)

    assert (decision.allowed, decision.code) == (False, "no_grant")
    assert decision.action_url == f"/tiers/{application_tier.pk}/"


def test_someone_elses_grant_does_not_count(researcher, application_tier, artifact):
    GrantFactory(user=UserFactory(), tier=application_tier)

    assert download_policy.download_decision(researcher, artifact).code == "no_grant"


def test_an_unverified_user_is_asked_to_verify_first(application_tier, artifact):
    user = UserFactory(verified=False)
    GrantFactory(user=user, tier=application_tier)

    decision = download_policy.download_decision(user, artifact)

    assert (decision.allowed, decision.code) == (False, "email_unverified")
    assert decision.action_url == "/accounts/email/"


def test_a_file_whose_tiers_are_not_open_is_refused(researcher, release):
    tier = TierFactory(release=release, opens_at=timezone.now() + timedelta(days=1))
    GrantFactory(user=researcher, tier=tier)

    decision = download_policy.download_decision(researcher, tier.artifacts.get())

    assert (decision.allowed, decision.code) == (False, "not_open")


def test_a_file_of_a_draft_release_is_refused(researcher, model):
    draft = ReleaseFactory(model=model, status=Release.Status.DRAFT, revision="", published_at=None)
    tier = TierFactory(release=draft, opens_at=timezone.now() + timedelta(days=1))

    assert download_policy.download_decision(researcher, tier.artifacts.get()).code == "not_open"


def test_a_grant_on_one_tier_does_not_open_files_of_another(researcher, release, application_tier):
    other = TierFactory(release=release, gate=Tier.Gate.CLICK_THROUGH)
    GrantFactory(user=researcher, tier=other)

    assert download_policy.download_decision(researcher, application_tier.artifacts.get()).code == "no_grant"


# --- deciding -------------------------------------------------------------------------------


def test_only_reviewers_other_than_the_applicant_may_decide(owner, reviewer, outsider, application_tier):
    application = ApplicationFactory(user=reviewer, tier=application_tier)

    assert policy.can_decide(owner, application)
    assert not policy.can_decide(reviewer, application)
    assert not policy.can_decide(outsider, application)
