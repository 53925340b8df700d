"""The reviewers' queue and decisions, for owner, reviewer, outsider and researcher."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from access.models import Application, AuditEvent, Grant, Review, User
from releases.models import Membership, Tier
from tests.factories import (
    MembershipFactory,
    ModelFactory,
    OrganizationFactory,
    ReleaseFactory,
    TierFactory,
    UserFactory,
)
from tests.scenes import acceptance_for, submit

# Measured: session, user, the organization, its tiers, the count and one page, the page's reviews and
# its assignees' memberships, the preset reasons of the bulk form, and the header's "Publish" link.
QUEUE_MAX_QUERIES = 10


def queue_url(organization, **query) -> str:
    url = reverse("review-queue", kwargs={"org_slug": organization.slug})
    if query:
        url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return url


def review_url(application) -> str:
    return reverse("review-application", kwargs={"application_id": application.pk})


def queue_ids(response) -> list[int]:
    """The application numbers in the queue table, top to bottom."""
    return [int(number) for number in re.findall(r">#(\d+)</a></td>", response.content.decode())]


def aged(application, days: int) -> Application:
    Application.objects.filter(pk=application.pk).update(submitted_at=timezone.now() - timedelta(days=days))
    return application


@pytest.fixture
def applicants(db):
    return [UserFactory(full_name=f"Applicant {n}") for n in range(3)]


# --- The queue -------------------------------------------------------------------------------


@pytest.mark.parametrize("person", ["owner", "reviewer"])
def test_owner_and_reviewer_see_the_queue_oldest_first(
    client, request, organization, application_tier, applicants, person
):
    newest = aged(submit(applicants[0], application_tier), days=1)
    oldest = aged(submit(applicants[1], application_tier), days=9)
    middle = aged(submit(applicants[2], application_tier), days=4)
    decided = aged(submit(UserFactory(), application_tier), days=20)
    Application.objects.filter(pk=decided.pk).update(status=Application.Status.WITHDRAWN)
    client.force_login(request.getfixturevalue(person))

    response = client.get(queue_url(organization))

    assert response.status_code == 200
    assert queue_ids(response) == [oldest.pk, middle.pk, newest.pk]
    assert "3 awaiting a decision, oldest first." in response.content.decode()


def test_review_home_sends_a_single_organization_reviewer_to_its_queue(client, organization, reviewer):
    client.force_login(reviewer)

    response = client.get(reverse("review-home"))

    assert response.status_code == 302
    assert response.url == queue_url(organization)


def test_queue_filters_by_tier(client, organization, release, application_tier, reviewer, applicants):
    other_tier = TierFactory(release=release, name="Partners", gate=Tier.Gate.APPLICATION)
    in_tier = submit(applicants[0], application_tier)
    submit(applicants[1], other_tier)
    client.force_login(reviewer)

    response = client.get(queue_url(organization, tier=application_tier.pk))

    assert response.status_code == 200
    assert queue_ids(response) == [in_tier.pk]
    assert f'<option value="{application_tier.pk}" selected>' in response.content.decode()


@pytest.mark.parametrize("tier_param", ["foreign", "not-a-number"])
def test_queue_filter_with_a_tier_of_another_organization_is_not_found(
    client, organization, reviewer, tier_param
):
    foreign_tier = TierFactory(gate=Tier.Gate.APPLICATION)
    client.force_login(reviewer)

    value = foreign_tier.pk if tier_param == "foreign" else tier_param
    assert client.get(queue_url(organization, tier=value)).status_code == 404


@pytest.mark.parametrize("person", ["outsider", "researcher"])
def test_outsider_and_researcher_get_404_on_the_queue_and_an_application(
    client, request, organization, application_tier, applicants, person
):
    application = submit(applicants[0], application_tier)
    client.force_login(request.getfixturevalue(person))

    assert client.get(queue_url(organization)).status_code == 404
    assert client.get(review_url(application)).status_code == 404
    assert client.post(review_url(application), {"decision": "approve"}).status_code == 404
    application.refresh_from_db()
    assert application.status == Application.Status.PENDING
    assert Grant.objects.count() == 0


def test_publisher_without_review_role_gets_404(client, organization, application_tier, applicants):
    publisher = UserFactory()
    MembershipFactory(organization=organization, user=publisher, role=Membership.Role.PUBLISHER)
    application = submit(applicants[0], application_tier)
    client.force_login(publisher)

    assert client.get(queue_url(organization)).status_code == 404
    assert client.get(review_url(application)).status_code == 404


def test_anonymous_visitor_is_sent_to_sign_in(client, organization, application_tier, applicants):
    application = submit(applicants[0], application_tier)

    for url in (queue_url(organization), review_url(application)):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("account_login"))


# --- Deciding --------------------------------------------------------------------------------


def test_reviewer_sees_the_application_with_answers_and_license(
    client, application_tier, reviewer, researcher
):
    application = submit(researcher, application_tier, affiliation="Institute of Safety")
    client.force_login(reviewer)

    content = client.get(review_url(application)).content.decode()

    assert "Institute of Safety" in content
    assert researcher.email in content
    assert f"accepted by “{researcher.full_name}”" in content
    assert 'value="approve"' in content


def test_approving_creates_the_grant(client, organization, application_tier, reviewer, researcher):
    application = submit(researcher, application_tier)
    client.force_login(reviewer)

    response = client.post(review_url(application), {"decision": "approve", "reason": "Known lab."})

    assert response.status_code == 302
    assert response.url == queue_url(organization)
    application.refresh_from_db()
    assert application.status == Application.Status.APPROVED
    grant = Grant.objects.get(application=application)
    assert (grant.user, grant.tier, grant.status) == (researcher, application_tier, Grant.Status.ACTIVE)
    assert grant.license_acceptance == application.license_acceptance
    assert Review.objects.get(application=application).reviewer == reviewer
    assert f"Application #{application.pk} approved." in client.get(response.url).content.decode()


def test_rejecting_with_a_reason_shows_it_to_the_applicant(client, application_tier, reviewer, researcher):
    application = submit(researcher, application_tier)
    client.force_login(reviewer)

    client.post(
        review_url(application), {"decision": "reject", "reason": "Affiliation could not be verified."}
    )

    application.refresh_from_db()
    assert application.status == Application.Status.REJECTED
    assert Grant.objects.count() == 0
    client.force_login(researcher)
    content = client.get(
        reverse("application-detail", kwargs={"application_id": application.pk})
    ).content.decode()
    assert "Reviewer's note: Affiliation could not be verified." in content


def test_rejecting_without_a_reason_is_refused_and_changes_nothing(
    client, application_tier, reviewer, researcher
):
    application = submit(researcher, application_tier)
    client.force_login(reviewer)
    events_before = AuditEvent.objects.count()

    response = client.post(review_url(application), {"decision": "reject", "reason": "   "})

    assert response.status_code == 400
    assert "Give the applicant a reason for the rejection." in response.content.decode()
    application.refresh_from_db()
    assert application.status == Application.Status.PENDING
    assert Review.objects.count() == 0
    assert AuditEvent.objects.count() == events_before


def test_unknown_decision_is_refused(client, application_tier, reviewer, researcher):
    application = submit(researcher, application_tier)
    client.force_login(reviewer)

    response = client.post(review_url(application), {"decision": "maybe"})

    assert response.status_code == 400
    assert "Select a valid choice." in response.content.decode()
    application.refresh_from_db()
    assert application.status == Application.Status.PENDING


def test_reviewer_cannot_decide_their_own_application(client, application_tier, reviewer):
    application = submit(reviewer, application_tier)
    client.force_login(reviewer)

    page = client.get(review_url(application)).content.decode()
    assert "This is your own application; another reviewer must decide it." in page
    assert 'value="approve"' not in page

    response = client.post(review_url(application), {"decision": "approve"})

    assert response.status_code == 400
    assert "You cannot decide your own application." in response.content.decode()
    application.refresh_from_db()
    assert application.status == Application.Status.PENDING
    assert Grant.objects.count() == 0
    assert Review.objects.count() == 0


def test_deciding_an_already_decided_application_is_refused(
    client, application_tier, owner, reviewer, researcher
):
    application = submit(researcher, application_tier)
    client.force_login(reviewer)
    client.post(review_url(application), {"decision": "approve"})
    client.force_login(owner)

    response = client.post(review_url(application), {"decision": "reject", "reason": "Too late."})

    assert response.status_code == 400
    assert "This application is already approved." in response.content.decode()
    application.refresh_from_db()
    assert application.status == Application.Status.APPROVED
    assert Grant.objects.get(application=application).status == Grant.Status.ACTIVE
    assert Review.objects.count() == 1


# --- Query count -----------------------------------------------------------------------------


def add_pending(tier, count):
    """Pending applications from distinct people, created directly: the queue only reads them."""
    now = timezone.now()
    for n in range(count):
        # A bare row with an unusable password: hashing 60 passwords with Argon2 would take seconds.
        user = User.objects.create(
            email=f"applicant-{uuid.uuid4().hex}@example.org", full_name=f"A {n}", password="!"
        )
        Application.objects.create(
            user=user,
            tier=tier,
            affiliation=f"Lab {n}",
            intended_use="Research.",
            license_acceptance=acceptance_for(user, tier),
            submitted_at=now - timedelta(minutes=count - n),
            decision_due_at=now + timedelta(days=14),
        )


def test_queue_query_count_stays_flat_from_5_to_60_applications(
    client, organization, release, reviewer, django_assert_max_num_queries
):
    tiers = [TierFactory(release=release, gate=Tier.Gate.APPLICATION) for _ in range(3)]
    other_model_tier = TierFactory(
        release=ReleaseFactory(model=ModelFactory(organization=organization)), gate=Tier.Gate.APPLICATION
    )
    client.force_login(reviewer)
    for tier in tiers[:2] + [other_model_tier]:
        add_pending(tier, 2 if tier is not other_model_tier else 1)
    with django_assert_max_num_queries(QUEUE_MAX_QUERIES) as with_five:
        response = client.get(queue_url(organization))
    assert len(queue_ids(response)) == 5

    for tier in tiers:
        add_pending(tier, 18)
    add_pending(other_model_tier, 1)
    with django_assert_max_num_queries(QUEUE_MAX_QUERIES) as with_sixty:
        response = client.get(queue_url(organization))

    assert "60 awaiting a decision, oldest first." in response.content.decode()
    assert len(queue_ids(response)) == 50
    assert len(with_five) == len(with_sixty)


def test_other_organizations_applications_are_not_in_the_queue(client, organization, reviewer, researcher):
    foreign_tier = TierFactory(release=ReleaseFactory(model=ModelFactory(organization=OrganizationFactory())))
    foreign = submit(researcher, foreign_tier)
    client.force_login(reviewer)

    response = client.get(queue_url(organization))

    assert foreign.pk not in queue_ids(response)
    assert "Nothing is waiting for review." in response.content.decode()
