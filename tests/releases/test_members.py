"""Membership services: invitations by e-mail, roles, removal, and the last-owner rule."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from allauth.account.models import EmailAddress

from access.models import AuditEvent, SentEmail
from releases.members import (
    MembershipError,
    invitation_accept,
    invitation_email_send,
    invitation_withdraw,
    invitations_accept_for_email,
    membership_change_role,
    membership_invite,
    membership_remove,
)
from releases.models import Membership, OrganizationInvitation
from tests.factories import UserFactory
from tests.helpers import audit_actions, last_audit_id

Role = Membership.Role


def membership_of(user, organization) -> Membership:
    return Membership.objects.get(user=user, organization=organization)


def snapshot(organization) -> tuple:
    return (
        sorted(Membership.objects.filter(organization=organization).values_list("user_id", "role")),
        sorted(
            OrganizationInvitation.objects.filter(organization=organization).values_list(
                "pk", "email", "role", "accepted_at"
            )
        ),
        AuditEvent.objects.count(),
    )


@contextmanager
def nothing_changes(organization) -> Iterator[None]:
    """No membership, invitation or audit row appears, changes or disappears."""
    before = snapshot(organization)
    yield
    assert snapshot(organization) == before


# --- Inviting -------------------------------------------------------------------------------


def test_owner_invites_an_address_and_the_link_is_emailed_after_commit(organization, owner, emails):
    since = last_audit_id()

    with emails.on_commit():
        invitation = membership_invite(
            organization=organization, email="  Frank@Partner.example ", role=Role.REVIEWER, actor=owner
        )

    assert (invitation.email, invitation.role, invitation.invited_by) == (
        "frank@partner.example",
        Role.REVIEWER,
        owner,
    )
    assert invitation.accepted_at is None
    assert audit_actions(since) == ["organization.member_invited"]
    event = AuditEvent.objects.get(pk__gt=since)
    assert (event.actor, event.target_id) == (owner, invitation.pk)
    assert event.payload == {
        "organization_id": organization.pk,
        "email": "frank@partner.example",
        "role": "reviewer",
    }
    [message] = emails.outbox
    assert message.to == ["frank@partner.example"]
    assert message.subject == "[Gatehouse] Acme AI invites you as reviewer"
    assert f"http://127.0.0.1:8000/publish/invitations/{invitation.pk}/" in message.body
    assert "sign up with this address" in message.body


def test_the_invitation_email_is_sent_once_even_if_the_task_runs_twice(organization, owner, emails):
    with emails.on_commit():
        invitation = membership_invite(
            organization=organization, email="frank@partner.example", role="publisher", actor=owner
        )

    assert invitation_email_send(invitation_id=invitation.pk) is False
    assert len(emails.outbox) == 1
    assert SentEmail.objects.filter(key=f"organization-invitation:{invitation.pk}").count() == 1


def test_no_email_is_sent_for_an_invitation_withdrawn_before_the_task_ran(organization, owner, mailoutbox):
    invitation = membership_invite(
        organization=organization, email="frank@partner.example", role="publisher", actor=owner
    )
    invitation_withdraw(invitation=invitation, actor=owner)

    assert invitation_email_send(invitation_id=invitation.pk) is False
    assert mailoutbox == []


@pytest.mark.parametrize("person", ["publisher", "reviewer", "outsider", "researcher"])
def test_only_owners_invite(request, organization, person, mailoutbox):
    actor = request.getfixturevalue(person)

    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        membership_invite(
            organization=organization, email="frank@partner.example", role="reviewer", actor=actor
        )

    assert error.value.code == "not_owner"
    assert mailoutbox == []


@pytest.mark.parametrize(
    ("email", "role", "code", "message"),
    [
        ("frank@partner.example", "admin", "unknown_role", "Unknown role 'admin'"),
        ("not-an-address", "reviewer", "bad_email", "not-an-address is not an e-mail address."),
        ("", "reviewer", "bad_email", "An empty value is not an e-mail address."),
        ("f" * 250 + "@x.example", "reviewer", "bad_email", "at most 254 characters"),
        (
            "BOB@acme.example",
            "publisher",
            "already_member",
            "bob@acme.example is already a member of Acme AI.",
        ),
    ],
)
def test_a_bad_invitation_is_refused_with_a_clear_message(
    organization, owner, reviewer, email, role, code, message
):
    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        membership_invite(organization=organization, email=email, role=role, actor=owner)

    assert error.value.code == code
    assert message in error.value.message


def test_an_address_with_an_open_invitation_is_not_invited_twice(organization, owner):
    membership_invite(organization=organization, email="frank@partner.example", role="reviewer", actor=owner)

    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        membership_invite(organization=organization, email="FRANK@partner.example", role="owner", actor=owner)

    assert error.value.code == "already_invited"
    assert error.value.message == "frank@partner.example already has an open invitation to Acme AI."


# --- Accepting ------------------------------------------------------------------------------


@pytest.fixture
def invitation(organization, owner):
    return membership_invite(
        organization=organization, email="frank@partner.example", role="publisher", actor=owner
    )


@pytest.fixture
def frank(db):
    return UserFactory(email="frank@partner.example", full_name="Frank Partner")


def test_an_existing_verified_user_becomes_a_member_with_the_offered_role(organization, invitation, frank):
    since = last_audit_id()

    membership = invitation_accept(invitation=invitation, user=frank)

    assert (membership.organization, membership.user, membership.role) == (
        organization,
        frank,
        Role.PUBLISHER,
    )
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    assert audit_actions(since) == ["organization.member_joined"]
    assert AuditEvent.objects.get(pk__gt=since).payload == {
        "organization_id": organization.pk,
        "user_id": frank.pk,
        "role": "publisher",
        "invitation_id": invitation.pk,
    }


def test_an_invitation_is_taken_only_by_the_owner_of_the_verified_address(
    organization, invitation, researcher
):
    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        invitation_accept(invitation=invitation, user=researcher)

    assert error.value.code == "email_mismatch"


def test_an_unverified_address_does_not_take_the_invitation(organization, invitation):
    unverified = UserFactory(email="frank@partner.example", verified=False)

    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        invitation_accept(invitation=invitation, user=unverified)

    assert error.value.code == "email_mismatch"
    assert "verify that address" in error.value.message


def test_an_invitation_is_taken_once(organization, invitation, frank):
    invitation_accept(invitation=invitation, user=frank)

    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        invitation_accept(invitation=invitation, user=frank)

    assert error.value.code == "invitation_taken"


def test_a_member_cannot_take_a_second_role_by_invitation(organization, owner, reviewer):
    EmailAddress.objects.create(user=reviewer, email="bob@personal.example", verified=True)
    invitation = membership_invite(
        organization=organization, email="bob@personal.example", role="owner", actor=owner
    )

    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        invitation_accept(invitation=invitation, user=reviewer)

    assert error.value.code == "already_member"
    assert membership_of(reviewer, organization).role == Role.REVIEWER


def test_a_withdrawn_invitation_cannot_be_taken(organization, owner, invitation, frank):
    invitation_withdraw(invitation=invitation, actor=owner)

    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        invitation_accept(invitation=invitation, user=frank)

    assert error.value.code == "invitation_withdrawn"
    assert not Membership.objects.filter(user=frank).exists()


def test_verifying_an_address_takes_every_open_invitation_to_it(
    organization, owner, invitation, outsider, frank
):
    other = outsider.memberships.get().organization
    membership_invite(organization=other, email="frank@partner.example", role="reviewer", actor=outsider)

    memberships = invitations_accept_for_email(user=frank, email="Frank@Partner.example")

    assert sorted((m.organization.slug, m.role) for m in memberships) == sorted(
        [("acme", "publisher"), (other.slug, "reviewer")]
    )
    assert not OrganizationInvitation.objects.filter(accepted_at__isnull=True).exists()


# --- Withdrawing ----------------------------------------------------------------------------


def test_owner_withdraws_an_open_invitation(organization, owner, invitation):
    since = last_audit_id()

    invitation_withdraw(invitation=invitation, actor=owner)

    assert not OrganizationInvitation.objects.filter(pk=invitation.pk).exists()
    assert audit_actions(since) == ["organization.invitation_withdrawn"]


@pytest.mark.parametrize("person", ["publisher", "reviewer", "outsider"])
def test_only_owners_withdraw_invitations(request, organization, invitation, person):
    actor = request.getfixturevalue(person)

    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        invitation_withdraw(invitation=invitation, actor=actor)

    assert error.value.code == "not_owner"


def test_an_accepted_invitation_cannot_be_withdrawn(organization, owner, invitation, frank):
    invitation_accept(invitation=invitation, user=frank)

    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        invitation_withdraw(invitation=invitation, actor=owner)

    assert error.value.code == "invitation_taken"


# --- Roles ----------------------------------------------------------------------------------


def test_owner_changes_a_members_role(organization, owner, reviewer):
    since = last_audit_id()

    membership = membership_change_role(
        membership=membership_of(reviewer, organization), role="publisher", actor=owner
    )

    assert membership_of(reviewer, organization).role == Role.PUBLISHER == membership.role
    assert audit_actions(since) == ["organization.member_role_changed"]
    assert AuditEvent.objects.get(pk__gt=since).payload == {
        "organization_id": organization.pk,
        "user_id": reviewer.pk,
        "from": "reviewer",
        "to": "publisher",
    }


@pytest.mark.parametrize("person", ["publisher", "reviewer", "outsider", "researcher"])
def test_only_owners_change_roles(request, organization, owner, reviewer, person):
    actor = request.getfixturevalue(person)

    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        membership_change_role(membership=membership_of(reviewer, organization), role="owner", actor=actor)

    assert error.value.code == "not_owner"


def test_an_unknown_or_unchanged_role_is_refused(organization, owner, reviewer):
    membership = membership_of(reviewer, organization)

    with nothing_changes(organization), pytest.raises(MembershipError) as unknown:
        membership_change_role(membership=membership, role="superuser", actor=owner)
    with nothing_changes(organization), pytest.raises(MembershipError) as same:
        membership_change_role(membership=membership, role="reviewer", actor=owner)

    assert unknown.value.code == "unknown_role"
    assert same.value.code == "same_role"
    assert same.value.message == "Bob Reviewer is already reviewer."


def test_the_last_owner_cannot_be_demoted(organization, owner, reviewer):
    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        membership_change_role(membership=membership_of(owner, organization), role="publisher", actor=owner)

    assert error.value.code == "last_owner"
    assert error.value.message == "An organization needs at least one owner: make someone else owner first."


def test_an_owner_may_step_down_once_there_is_another_owner(organization, owner, reviewer):
    membership_change_role(membership=membership_of(reviewer, organization), role="owner", actor=owner)

    membership_change_role(membership=membership_of(owner, organization), role="publisher", actor=owner)

    assert membership_of(owner, organization).role == Role.PUBLISHER
    # Now Bob is the last owner, and Alice may no longer manage members.
    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        membership_change_role(membership=membership_of(reviewer, organization), role="reviewer", actor=owner)
    assert error.value.code == "not_owner"


# --- Removal --------------------------------------------------------------------------------


def test_owner_removes_a_member(organization, owner, reviewer):
    membership = membership_of(reviewer, organization)
    since = last_audit_id()

    membership_remove(membership=membership, actor=owner)

    assert not Membership.objects.filter(user=reviewer, organization=organization).exists()
    assert audit_actions(since) == ["organization.member_removed"]
    event = AuditEvent.objects.get(pk__gt=since)
    assert (event.target_type, event.target_id, event.actor) == ("membership", membership.pk, owner)
    assert event.payload == {"organization_id": organization.pk, "user_id": reviewer.pk, "role": "reviewer"}


@pytest.mark.parametrize("person", ["publisher", "reviewer", "outsider"])
def test_only_owners_remove_members(request, organization, owner, publisher, person):
    actor = request.getfixturevalue(person)

    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        membership_remove(membership=membership_of(publisher, organization), actor=actor)

    assert error.value.code == "not_owner"


def test_the_last_owner_cannot_be_removed(organization, owner, reviewer):
    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        membership_remove(membership=membership_of(owner, organization), actor=owner)

    assert error.value.code == "last_owner"


def test_one_of_two_owners_may_leave(organization, owner, reviewer):
    membership_change_role(membership=membership_of(reviewer, organization), role="owner", actor=owner)

    membership_remove(membership=membership_of(owner, organization), actor=owner)

    assert list(Membership.objects.filter(organization=organization).values_list("user__email", "role")) == [
        ("bob@acme.example", "owner")
    ]


def test_a_membership_removed_meanwhile_is_refused_cleanly(organization, owner, reviewer):
    membership = membership_of(reviewer, organization)
    Membership.objects.filter(pk=membership.pk).delete()

    with nothing_changes(organization), pytest.raises(MembershipError) as error:
        membership_remove(membership=membership, actor=owner)

    assert error.value.code == "not_member"


def test_invitation_email_names_the_inviter_and_the_role(organization, owner, emails):
    with emails.on_commit():
        membership_invite(organization=organization, email="frank@partner.example", role="owner", actor=owner)

    body = emails.outbox[0].body
    assert "Alice Owner invites frank@partner.example to Acme AI on Gatehouse, as owner." in body
    assert re.search(r"http://127\.0\.0\.1:8000/accounts/signup/", body)
