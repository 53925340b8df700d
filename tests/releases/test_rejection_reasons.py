"""Preset rejection reasons: owners and publishers manage them; reviewers pick from them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.models import AuditEvent, RejectionReason
from access.services.reasons import (
    MAX_ACTIVE_REJECTION_REASONS,
    MAX_REJECTION_REASON_LENGTH,
    rejection_reason_create,
    rejection_reason_set_active,
)
from releases.models import Membership
from tests.access.queue_scenes import bulk_pending
from tests.factories import MembershipFactory, UserFactory


def reasons_url(organization) -> str:
    return reverse("publish-rejection-reasons", kwargs={"org_slug": organization.slug})


def active_url(organization, reason) -> str:
    return reverse(
        "publish-rejection-reason-active", kwargs={"org_slug": organization.slug, "reason_id": reason.pk}
    )


def texts(organization, **filters) -> list[str]:
    return list(
        RejectionReason.objects.filter(organization=organization, **filters)
        .order_by("text")
        .values_list("text", flat=True)
    )


@pytest.mark.parametrize("person", ["owner", "publisher"])
def test_owner_and_publisher_add_a_reason_that_reviewers_then_pick(
    client, request, organization, reviewer, application_tier, person
):
    bulk_pending(application_tier, 1)
    actor = request.getfixturevalue(person)
    client.force_login(actor)

    response = client.post(reasons_url(organization), {"text": "  Affiliation   could not be verified. "})

    assert response.status_code == 302
    assert texts(organization) == ["Affiliation could not be verified."]
    page = client.get(reasons_url(organization)).content.decode()
    assert "Preset reason added: “Affiliation could not be verified.”" in page
    event = AuditEvent.objects.get(action="rejection_reason.created")
    assert (event.actor, event.payload) == (actor, {"text": "Affiliation could not be verified."})
    client.force_login(reviewer)
    queue = client.get(reverse("review-queue", kwargs={"org_slug": organization.slug})).content.decode()
    assert ">Affiliation could not be verified.</option>" in queue


@pytest.mark.parametrize("person", ["reviewer", "auditor", "outsider", "researcher"])
def test_anyone_else_gets_404_and_changes_nothing(client, request, organization, person):
    if person == "auditor":
        user = UserFactory()
        MembershipFactory(organization=organization, user=user, role=Membership.Role.AUDITOR)
    else:
        user = request.getfixturevalue(person)
    reason = RejectionReason.objects.create(organization=organization, text="Not a researcher.")
    client.force_login(user)

    assert client.get(reasons_url(organization)).status_code == 404
    assert client.post(reasons_url(organization), {"text": "Another."}).status_code == 404
    assert client.post(active_url(organization, reason), {"active": "0"}).status_code == 404
    assert texts(organization, active=True) == ["Not a researcher."]


def test_a_reason_of_another_organization_is_404(client, organization, owner, outsider):
    theirs = RejectionReason.objects.create(
        organization=Membership.objects.get(user=outsider).organization, text="Theirs."
    )
    client.force_login(owner)

    assert client.post(active_url(organization, theirs), {"active": "0"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.active


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "This field is required."),
        ("   ", "This field is required."),
        ("x" * (MAX_REJECTION_REASON_LENGTH + 1), "Ensure this value has at most 500 characters"),
        ("not a researcher.", "This reason already exists."),
    ],
)
def test_a_bad_reason_answers_400_and_changes_nothing(client, organization, owner, text, error):
    RejectionReason.objects.create(organization=organization, text="Not a researcher.")
    client.force_login(owner)

    response = client.post(reasons_url(organization), {"text": text})

    assert response.status_code == 400
    assert error in response.content.decode()
    assert texts(organization) == ["Not a researcher."]
    assert not AuditEvent.objects.exists()


def test_a_reason_of_exactly_500_characters_is_taken(organization, owner):
    reason = rejection_reason_create(organization=organization, text="x" * 500, actor=owner)

    assert len(reason.text) == MAX_REJECTION_REASON_LENGTH == 500


def test_at_most_100_reasons_are_in_use(organization, owner):
    assert MAX_ACTIVE_REJECTION_REASONS == 100
    RejectionReason.objects.bulk_create(
        RejectionReason(organization=organization, text=f"Reason {n}") for n in range(99)
    )
    rejection_reason_create(organization=organization, text="The hundredth.", actor=owner)

    with pytest.raises(InvalidInput) as error:
        rejection_reason_create(organization=organization, text="One too many.", actor=owner)

    assert error.value.code == "too_many"
    assert RejectionReason.objects.count() == 100
    retired = RejectionReason.objects.get(text="Reason 0")
    rejection_reason_set_active(organization=organization, reason_id=retired.pk, active=False, actor=owner)
    rejection_reason_create(organization=organization, text="One too many.", actor=owner)
    with pytest.raises(InvalidInput):
        rejection_reason_set_active(organization=organization, reason_id=retired.pk, active=True, actor=owner)


def test_a_retired_reason_leaves_the_picker_and_can_be_restored(
    client, organization, owner, application_tier
):
    bulk_pending(application_tier, 1)
    reason = RejectionReason.objects.create(organization=organization, text="Not a researcher.")
    client.force_login(owner)
    queue_url = reverse("review-queue", kwargs={"org_slug": organization.slug})

    response = client.post(active_url(organization, reason), {"active": "0"}, follow=True)

    assert "Preset reason retired: “Not a researcher.”" in response.content.decode()
    assert texts(organization, active=False) == ["Not a researcher."]
    queue = client.get(queue_url).content.decode()
    assert 'name="preset_reason"' in queue
    assert "Not a researcher." not in queue
    assert AuditEvent.objects.filter(action="rejection_reason.retired", target_id=reason.pk).count() == 1

    response = client.post(active_url(organization, reason), {"active": "0"}, follow=True)
    assert "This reason is already retired." in response.content.decode()
    assert AuditEvent.objects.filter(action="rejection_reason.retired").count() == 1

    client.post(active_url(organization, reason), {"active": "1"})
    assert texts(organization, active=True) == ["Not a researcher."]
    assert ">Not a researcher.</option>" in client.get(queue_url).content.decode()


def test_a_duplicate_of_a_retired_reason_says_to_restore_it(organization, owner):
    RejectionReason.objects.create(organization=organization, text="Not a researcher.", active=False)

    with pytest.raises(InvalidTransition) as error:
        rejection_reason_create(organization=organization, text="NOT a researcher.", actor=owner)

    assert error.value.message == "This reason already exists. It is retired: restore it instead."


@pytest.mark.parametrize("value", ["", "yes", "2"])
def test_an_unclear_retire_or_restore_changes_nothing(client, organization, owner, value):
    reason = RejectionReason.objects.create(organization=organization, text="Not a researcher.")
    client.force_login(owner)

    response = client.post(active_url(organization, reason), {"active": value}, follow=True)

    assert "Say whether to retire or restore the reason." in response.content.decode()
    reason.refresh_from_db()
    assert reason.active


def test_the_service_refuses_a_reviewer(organization, reviewer):
    with pytest.raises(NotAllowed):
        rejection_reason_create(organization=organization, text="Not a researcher.", actor=reviewer)

    assert not RejectionReason.objects.exists()


def test_the_workspace_links_to_the_reasons(client, organization, owner):
    client.force_login(owner)

    page = client.get(
        reverse("publish-organization", kwargs={"org_slug": organization.slug})
    ).content.decode()

    assert f'href="{reasons_url(organization)}"' in page
