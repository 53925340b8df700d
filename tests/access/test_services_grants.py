"""Click-through grants, invitations, revocation and expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.models import AuditEvent, Grant
from access.services.grants import grant_revoke, grants_expire_due, invitation_create, tier_license_accept
from access.services.licenses import license_version_publish
from access.tasks import expire_due_grants
from releases.models import Tier
from tests.factories import GrantFactory, TierFactory, UserFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes


def accept(user, tier, **overrides):
    arguments = {
        "typed_name": user.full_name,
        "seen_text_sha256": tier.license.current_version.text_sha256,
        "ip_address": "198.51.100.7",
    }
    arguments.update(overrides)
    return tier_license_accept(user=user, tier=tier, **arguments)


# --- Click-through --------------------------------------------------------------------------


def test_accepting_a_click_through_license_grants_access(researcher, click_through_tier):
    since = last_audit_id()

    grant = accept(researcher, click_through_tier)

    grant.refresh_from_db()
    assert grant.user == researcher
    assert grant.status == Grant.Status.ACTIVE
    assert grant.application is None
    assert grant.expires_at == grant.granted_at + timedelta(days=365)
    acceptance = grant.license_acceptance
    assert acceptance.text_sha256 == click_through_tier.license.current_version.text_sha256
    assert acceptance.ip_address == "198.51.100.7"
    assert audit_actions(since) == ["license.accepted", "grant.created"]
    created = AuditEvent.objects.get(action="grant.created", target_id=grant.pk)
    assert created.actor == researcher
    assert created.payload["license_version_id"] == acceptance.license_version_id


def test_a_tier_without_a_grant_duration_grants_access_without_end(researcher, release):
    tier = TierFactory(release=release, gate=Tier.Gate.CLICK_THROUGH, grant_duration_days=None)

    assert accept(researcher, tier).expires_at is None


def test_accepting_twice_is_refused(researcher, click_through_tier):
    accept(researcher, click_through_tier)

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        accept(researcher, click_through_tier)

    assert error.value.code == "already_granted"


def test_accepting_again_after_expiry_renews_access(researcher, click_through_tier):
    old = GrantFactory(
        user=researcher,
        tier=click_through_tier,
        granted_at=timezone.now() - timedelta(days=400),
        status="expired",
    )

    grant = accept(researcher, click_through_tier)

    assert grant.pk != old.pk
    assert grant.status == Grant.Status.ACTIVE


def test_accepting_after_the_date_but_before_the_expiry_task_ran_renews_access(
    researcher, click_through_tier
):
    old = accept(researcher, click_through_tier)
    Grant.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    since = last_audit_id()

    new = accept(researcher, click_through_tier)

    old.refresh_from_db()
    assert old.status == Grant.Status.EXPIRED
    assert new.status == Grant.Status.ACTIVE
    assert audit_actions(since) == ["license.accepted", "grant.expired", "grant.created"]


def test_a_revoked_user_cannot_accept_the_license_again(researcher, reviewer, click_through_tier):
    grant = accept(researcher, click_through_tier)
    grant_revoke(grant_id=grant.pk, actor=reviewer, reason="Misuse.")

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        accept(researcher, click_through_tier)

    assert error.value.code == "revoked"


@pytest.mark.parametrize(
    ("tier_kwargs", "code"),
    [
        ({"gate": Tier.Gate.APPLICATION}, "no_click_through"),
        ({"gate": Tier.Gate.OPEN, "license": None}, "no_click_through"),
        ({"gate": Tier.Gate.CLICK_THROUGH, "opens_at": timezone.now() + timedelta(days=3)}, "not_open"),
    ],
)
def test_accepting_is_refused_where_the_tier_does_not_allow_it(researcher, release, tier_kwargs, code):
    tier = TierFactory(release=release, **tier_kwargs)

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        tier_license_accept(
            user=researcher, tier=tier, typed_name=researcher.full_name, seen_text_sha256="0" * 64
        )

    assert error.value.code == code


def test_accepting_is_refused_to_an_unverified_user(click_through_tier):
    unverified = UserFactory(full_name="Una Verified", verified=False)

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        accept(unverified, click_through_tier)

    assert error.value.code == "email_unverified"


def test_accepting_with_a_wrong_name_is_refused(researcher, click_through_tier):
    with nothing_changes(), pytest.raises(InvalidInput) as error:
        accept(researcher, click_through_tier, typed_name="Mallory")

    assert error.value.code == "typed_name_mismatch"


def test_accepting_a_license_text_that_changed_meanwhile_is_refused(researcher, click_through_tier):
    text_read = click_through_tier.license.current_version.text_sha256
    license_version_publish(license=click_through_tier.license, text="Version 2, with new terms.")

    with nothing_changes(), pytest.raises(InvalidInput) as error:
        accept(researcher, click_through_tier, seen_text_sha256=text_read)

    assert error.value.code == "license_changed"


# --- Invitations ----------------------------------------------------------------------------


def test_a_reviewer_invites_an_address_to_an_invitation_tier(reviewer, invitation_tier):
    since = last_audit_id()

    invitation = invitation_create(tier=invitation_tier, email=" Dana@University.example ", actor=reviewer)

    assert invitation.email == "dana@university.example"
    assert invitation.invited_by == reviewer
    assert invitation.accepted_at is None
    assert audit_actions(since) == ["invitation.created"]


def test_inviting_the_same_address_twice_is_refused(reviewer, invitation_tier):
    invitation_create(tier=invitation_tier, email="dana@university.example", actor=reviewer)

    with nothing_changes(), pytest.raises(InvalidTransition):
        invitation_create(tier=invitation_tier, email="DANA@university.example", actor=reviewer)


def test_an_outsider_cannot_invite(outsider, invitation_tier):
    with nothing_changes(), pytest.raises(NotAllowed):
        invitation_create(tier=invitation_tier, email="dana@university.example", actor=outsider)


def test_only_invitation_tiers_take_invitations(reviewer, click_through_tier):
    with nothing_changes(), pytest.raises(InvalidInput):
        invitation_create(tier=click_through_tier, email="dana@university.example", actor=reviewer)


def test_an_uninvited_user_cannot_accept_an_invitation_tier(researcher, invitation_tier):
    with nothing_changes(), pytest.raises(NotAllowed) as error:
        accept(researcher, invitation_tier)

    assert error.value.code == "not_invited"


def test_an_invited_user_gets_access_by_accepting_the_license(researcher, reviewer, invitation_tier):
    invitation = invitation_create(tier=invitation_tier, email="DANA@university.example", actor=reviewer)

    grant = accept(researcher, invitation_tier)

    assert grant.status == Grant.Status.ACTIVE
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    # The invitation is used up: after a revocation it does not let the user back in.
    grant_revoke(grant_id=grant.pk, actor=reviewer, reason="Left the red team.")
    with nothing_changes(), pytest.raises(NotAllowed) as error:
        accept(researcher, invitation_tier)
    assert error.value.code == "not_invited"


def test_an_invitation_for_another_address_does_not_admit(researcher, reviewer, invitation_tier):
    invitation_create(tier=invitation_tier, email="someone@else.example", actor=reviewer)

    with nothing_changes(), pytest.raises(NotAllowed):
        accept(researcher, invitation_tier)


# --- Revoking -------------------------------------------------------------------------------


@pytest.fixture
def grant(researcher, click_through_tier):
    return accept(researcher, click_through_tier)


def test_a_reviewer_revokes_a_grant_with_a_reason(reviewer, grant):
    since = last_audit_id()

    grant_revoke(grant_id=grant.pk, actor=reviewer, reason="  Shared the weights.  ")

    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED
    assert grant.revoked_at is not None
    assert grant.revoked_by == reviewer
    assert grant.revoke_reason == "Shared the weights."
    assert audit_actions(since) == ["grant.revoked"]
    assert not Grant.objects.active().filter(pk=grant.pk).exists()


def test_an_owner_may_revoke(owner, grant):
    assert grant_revoke(grant_id=grant.pk, actor=owner, reason="Policy").status == Grant.Status.REVOKED


@pytest.mark.parametrize("reason", ["", "   ", "x" * 2001])
def test_a_revocation_needs_a_reason_of_reasonable_length(reviewer, grant, reason):
    with nothing_changes(), pytest.raises(InvalidInput):
        grant_revoke(grant_id=grant.pk, actor=reviewer, reason=reason)

    grant.refresh_from_db()
    assert grant.status == Grant.Status.ACTIVE


def test_an_outsider_cannot_revoke(outsider, grant):
    with nothing_changes(), pytest.raises(NotAllowed):
        grant_revoke(grant_id=grant.pk, actor=outsider, reason="Because.")

    grant.refresh_from_db()
    assert grant.status == Grant.Status.ACTIVE


def test_the_grantee_cannot_revoke_their_own_grant(researcher, grant):
    with nothing_changes(), pytest.raises(NotAllowed):
        grant_revoke(grant_id=grant.pk, actor=researcher, reason="Oops.")


def test_revoking_twice_is_refused(reviewer, owner, grant):
    grant_revoke(grant_id=grant.pk, actor=reviewer, reason="First.")

    with nothing_changes(), pytest.raises(InvalidTransition):
        grant_revoke(grant_id=grant.pk, actor=owner, reason="Second.")

    grant.refresh_from_db()
    assert (grant.revoked_by, grant.revoke_reason) == (reviewer, "First.")


def test_an_expired_grant_cannot_be_revoked(reviewer, researcher, click_through_tier):
    expired = GrantFactory(user=researcher, tier=click_through_tier, status=Grant.Status.EXPIRED)

    with nothing_changes(), pytest.raises(InvalidTransition):
        grant_revoke(grant_id=expired.pk, actor=reviewer, reason="Too late.")


# --- Expiring -------------------------------------------------------------------------------


def test_grants_past_their_date_are_expired_once_with_an_audit_event(researcher, click_through_tier, release):
    now = timezone.now()
    past = GrantFactory(user=researcher, tier=click_through_tier, granted_at=now - timedelta(days=40))
    Grant.objects.filter(pk=past.pk).update(expires_at=now - timedelta(minutes=1))
    other_tier = TierFactory(release=release, gate=Tier.Gate.CLICK_THROUGH)
    current = GrantFactory(user=researcher, tier=other_tier, expires_at=now + timedelta(days=1))
    endless = GrantFactory(tier=click_through_tier, expires_at=None)
    since = last_audit_id()

    assert grants_expire_due(now=now) == 1

    past.refresh_from_db()
    current.refresh_from_db()
    endless.refresh_from_db()
    assert past.status == Grant.Status.EXPIRED
    assert current.status == Grant.Status.ACTIVE
    assert endless.status == Grant.Status.ACTIVE
    assert audit_actions(since) == ["grant.expired"]
    assert AuditEvent.objects.get(action="grant.expired").target_id == past.pk

    with nothing_changes():
        assert grants_expire_due(now=now) == 0


def test_a_revoked_grant_past_its_date_stays_revoked(reviewer, grant):
    grant_revoke(grant_id=grant.pk, actor=reviewer, reason="Misuse.")
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(days=1))

    with nothing_changes():
        assert grants_expire_due() == 0

    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED


def test_the_expiry_task_expires_due_grants(researcher, click_through_tier, celery_eager):
    due = GrantFactory(user=researcher, tier=click_through_tier)
    Grant.objects.filter(pk=due.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert expire_due_grants.delay().get() == 1
    assert expire_due_grants.delay().get() == 0

    due.refresh_from_db()
    assert due.status == Grant.Status.EXPIRED
