"""The review queue: assignment, claiming, filters, bulk decisions, and its cost as it grows."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from access.models import Application, AuditEvent, Grant, Notification, RejectionReason, Review
from access.services.assignment import application_claim, next_reviewer
from releases.models import Membership, Tier
from tests.access.queue_scenes import REVIEWER, aged, assign, bulk_pending, member
from tests.factories import ApplicationFactory, TierFactory, UserFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes


@pytest.fixture
def erin(organization, reviewer):
    return member(organization, REVIEWER, "erin@acme.example", "Erin Reviewer")


def queue_url(organization, query: str = "") -> str:
    return reverse("review-queue", kwargs={"org_slug": organization.slug}) + (f"?{query}" if query else "")


def decide_url(organization, query: str = "") -> str:
    return reverse("review-queue-decide", kwargs={"org_slug": organization.slug}) + (
        f"?{query}" if query else ""
    )


def claim_url(application, query: str = "") -> str:
    url = reverse("review-application-claim", kwargs={"application_id": application.pk})
    return url + (f"?{query}" if query else "")


def queue_ids(response) -> list[int]:
    return [int(number) for number in re.findall(r">#(\d+)</a></td>", response.content.decode())]


def statuses(applications) -> list[str]:
    return list(
        Application.objects.filter(pk__in=[a.pk for a in applications])
        .order_by("pk")
        .values_list("status", flat=True)
    )


# --- Round-robin assignment -----------------------------------------------------------------


def test_submissions_go_round_robin_to_the_reviewer_with_the_fewest_open_applications(
    organization, owner, reviewer, erin, application_tier, submit
):
    applicants = [UserFactory() for _ in range(4)]
    # Bob already has one application waiting for him: Erin gets the next two, then ties go to Bob (lower id).
    assign(bulk_pending(application_tier, 1)[0], reviewer)
    since = last_audit_id()

    assignees = [submit(applicant, application_tier).assigned_to for applicant in applicants]

    assert assignees == [erin, reviewer, erin, reviewer]
    assert audit_actions(since).count("application.assigned") == 4
    told = set(
        Notification.objects.filter(user=erin, kind="application_assigned").values_list("url", flat=True)
    )
    assert told == {
        reverse("review-application", kwargs={"application_id": pk})
        for pk in Application.objects.filter(assigned_to=erin).values_list("pk", flat=True)
    }


def test_round_robin_skips_the_applicant_and_falls_back_to_owners(
    organization, owner, reviewer, application_tier, submit
):
    assert submit(reviewer, application_tier).assigned_to == owner

    Membership.objects.filter(user=reviewer).delete()
    assert next_reviewer(organization=organization) == owner


def test_with_nobody_to_review_an_application_waits_unassigned(application_tier, researcher, submit):
    application = submit(researcher, application_tier)

    assert application.assigned_to is None
    assert not Notification.objects.filter(kind="application_assigned").exists()


# --- Claiming -------------------------------------------------------------------------------


def test_a_reviewer_claims_an_unassigned_application_from_the_queue(
    client, organization, reviewer, application_tier
):
    application = bulk_pending(application_tier, 1)[0]
    client.force_login(reviewer)

    response = client.post(claim_url(application, "status=open"), {"return_to": "queue"})

    assert response.status_code == 302
    assert response.url == queue_url(organization, "status=open")
    application.refresh_from_db()
    assert application.assigned_to == reviewer
    event = AuditEvent.objects.get(action="application.claimed")
    assert (event.actor, event.payload["previous_assignee_id"]) == (reviewer, None)


def test_a_reviewer_cannot_claim_an_application_assigned_to_someone_else(
    client, reviewer, erin, application_tier
):
    application = assign(bulk_pending(application_tier, 1)[0], erin)
    client.force_login(reviewer)

    with nothing_changes():
        response = client.post(claim_url(application), follow=True)

    assert "is assigned to Erin Reviewer; only an owner may take it over." in response.content.decode()
    application.refresh_from_db()
    assert application.assigned_to == erin


def test_an_owner_takes_an_application_over_and_the_previous_assignee_is_told(owner, erin, application_tier):
    application = assign(bulk_pending(application_tier, 1)[0], erin)
    Application.objects.filter(pk=application.pk).update(due_reminder_sent_at=application.submitted_at)

    application_claim(application_id=application.pk, reviewer=owner)

    application.refresh_from_db()
    assert (application.assigned_to, application.due_reminder_sent_at) == (owner, None)
    told = Notification.objects.get(user=erin, kind="application_reassigned")
    assert "Alice Owner took over application" in told.message


def test_nobody_claims_their_own_application(client, reviewer, application_tier, submit):
    application = submit(reviewer, application_tier)
    client.force_login(reviewer)

    with nothing_changes():
        response = client.post(claim_url(application), follow=True)

    assert "You cannot review your own application." in response.content.decode()


@pytest.mark.parametrize("person", ["outsider", "researcher"])
def test_outsiders_get_404_on_claim_and_bulk(client, request, organization, application_tier, person):
    application = bulk_pending(application_tier, 1)[0]
    client.force_login(request.getfixturevalue(person))

    with nothing_changes():
        assert client.post(claim_url(application)).status_code == 404
        response = client.post(
            decide_url(organization), {"application": [application.pk], "decision": "approve"}
        )
        assert response.status_code == 404


# --- Filters --------------------------------------------------------------------------------


def test_the_queue_shows_applications_awaiting_a_decision_oldest_first(
    client, organization, reviewer, application_tier
):
    newer, older = bulk_pending(application_tier, 2)
    aged(older, 5)
    appealed = ApplicationFactory(tier=application_tier, status=Application.Status.APPEALED)
    aged(appealed, 3)
    returned = ApplicationFactory(tier=application_tier, status=Application.Status.RETURNED)
    ApplicationFactory(tier=application_tier, status=Application.Status.APPROVED)
    client.force_login(reviewer)

    response = client.get(queue_url(organization))
    assert queue_ids(response) == [older.pk, appealed.pk, newer.pk]
    assert "3 awaiting a decision, oldest first." in response.content.decode()

    for status, expected in [
        ("pending", [older.pk, newer.pk]),
        ("appealed", [appealed.pk]),
        ("returned", [returned.pk]),
        ("open", [older.pk, appealed.pk, newer.pk, returned.pk]),
    ]:
        assert queue_ids(client.get(queue_url(organization, f"status={status}"))) == expected


def test_the_queue_filters_by_age_and_assignment(client, organization, reviewer, erin, application_tier):
    mine, erins, nobodys = bulk_pending(application_tier, 3)
    assign(mine, reviewer)
    assign(erins, erin)
    aged(nobodys, 10)
    aged(mine, 8)
    client.force_login(reviewer)

    assert queue_ids(client.get(queue_url(organization, "assigned=me"))) == [mine.pk]
    assert queue_ids(client.get(queue_url(organization, "assigned=unassigned"))) == [nobodys.pk]
    assert queue_ids(client.get(queue_url(organization, "older_than_days=7"))) == [nobodys.pk, mine.pk]
    assert queue_ids(client.get(queue_url(organization, "older_than_days=9&assigned=me"))) == []
    assert queue_ids(client.get(queue_url(organization, f"tier={application_tier.pk}&assigned=me"))) == [
        mine.pk
    ]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("older_than_days=0", "Ensure this value is greater than or equal to 1."),
        ("older_than_days=3651", "Ensure this value is less than or equal to 3650."),
        ("older_than_days=soon", "Enter a whole number."),
        ("status=approved", "Select a valid choice."),
        ("assigned=bob", "Select a valid choice."),
        ("per_page=5000", "Select a valid choice."),
    ],
)
def test_a_bad_filter_answers_400_with_the_error(
    client, organization, reviewer, application_tier, query, error
):
    bulk_pending(application_tier, 2)
    client.force_login(reviewer)

    response = client.get(queue_url(organization, query))

    assert response.status_code == 400
    assert error in response.content.decode()
    assert queue_ids(response) == []


def test_the_queue_row_warns_of_a_conflict_of_interest(client, organization, reviewer, application_tier):
    colleague = bulk_pending(application_tier, 1, domain="acme.example")[0]
    stranger = bulk_pending(application_tier, 1)[0]
    client.force_login(reviewer)

    content = client.get(queue_url(organization)).content.decode()

    rows = dict(re.findall(r'<tr id="application-(\d+)">(.*?)</tr>', content, re.S))
    assert "possible conflict of interest" in rows[str(colleague.pk)]
    assert "possible conflict of interest" not in rows[str(stranger.pk)]


def test_the_review_page_warns_of_a_conflict_and_shows_the_approvals(client, reviewer, erin, release, submit):
    tier = TierFactory(release=release, gate=Tier.Gate.APPLICATION, approvals_required=2)
    colleague = UserFactory(email="frank@acme.example", full_name="Frank Colleague")
    application = submit(colleague, tier)
    client.force_login(reviewer)
    url = reverse("review-application", kwargs={"application_id": application.pk})

    content = client.get(url).content.decode()
    assert (
        "Possible conflict of interest: the applicant (frank@acme.example) shares your e-mail domain."
        in content
    )
    assert '<dd id="approvals">0 of 2</dd>' in content

    response = client.post(url, {"decision": "approve"})
    assert response.status_code == 302
    page = client.get(url).content.decode()
    assert '<dd id="approvals">1 of 2 (Bob Reviewer)</dd>' in page
    assert "You have already approved this application; it needs another reviewer." in page
    assert 'value="approve"' not in page


def test_a_reviewer_who_may_not_decide_sees_why_instead_of_the_buttons(
    client, reviewer, erin, application_tier, submit
):
    application = submit(UserFactory(), application_tier)
    client.force_login(erin)
    url = reverse("review-application", kwargs={"application_id": application.pk})

    page = client.get(url).content.decode()
    assert "is assigned to Bob Reviewer: only they or an owner may decide it" in page
    assert 'value="reject"' not in page

    with nothing_changes():
        response = client.post(url, {"decision": "reject", "reason": "No."})
    assert response.status_code == 400
    assert status_of(application) == Application.Status.PENDING


def status_of(application) -> str:
    application.refresh_from_db()
    return application.status


# --- Bulk decisions from the queue ----------------------------------------------------------


def test_bulk_rejection_with_a_preset_reason_and_free_text(client, organization, reviewer, application_tier):
    applications = bulk_pending(application_tier, 3)
    preset = RejectionReason.objects.create(
        organization=organization, text="Affiliation could not be verified."
    )
    client.force_login(reviewer)

    response = client.post(
        decide_url(organization, "status=pending"),
        {
            "application": [a.pk for a in applications[:2]],
            "decision": "reject",
            "preset_reason": preset.pk,
            "reason": "Write from your institutional address.",
        },
    )

    assert response.status_code == 302
    assert response.url == queue_url(organization, "status=pending")
    assert statuses(applications) == ["rejected", "rejected", "pending"]
    applications[0].refresh_from_db()
    assert applications[0].decision_reason == (
        "Affiliation could not be verified.\n\nWrite from your institutional address."
    )
    assert "Rejected 2 applications." in client.get(response.url).content.decode()


def test_a_preset_reason_of_another_organization_or_retired_is_refused(
    client, organization, reviewer, application_tier, outsider
):
    applications = bulk_pending(application_tier, 2)
    retired = RejectionReason.objects.create(organization=organization, text="Old.", active=False)
    foreign = RejectionReason.objects.create(
        organization=Membership.objects.get(user=outsider).organization, text="Theirs."
    )
    client.force_login(reviewer)

    for preset in (retired, foreign):
        with nothing_changes():
            response = client.post(
                decide_url(organization),
                {
                    "application": [a.pk for a in applications],
                    "decision": "reject",
                    "preset_reason": preset.pk,
                },
            )
        assert response.status_code == 400
        assert "Select a valid choice." in response.content.decode()
    assert statuses(applications) == ["pending", "pending"]


def test_a_bulk_action_with_a_foreign_id_answers_400_and_changes_nothing(
    client, organization, reviewer, application_tier
):
    ours = bulk_pending(application_tier, 2)
    foreign = bulk_pending(TierFactory(gate=Tier.Gate.APPLICATION), 1)[0]
    client.force_login(reviewer)

    with nothing_changes():
        response = client.post(
            decide_url(organization),
            {"application": [ours[0].pk, foreign.pk, ours[1].pk], "decision": "approve"},
        )

    assert response.status_code == 400
    assert (
        f"Not in this organization&#x27;s queue: #{foreign.pk}; nothing was changed."
        in response.content.decode()
    )
    assert statuses(ours) == ["pending", "pending"]
    assert statuses([foreign]) == ["pending"]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"decision": "approve"}, "Select at least one application."),
        ({"decision": "approve", "application": ["12", "x1"]}, "“x1” is not an application number."),
        ({"decision": "maybe", "application": ["1"]}, "Select a valid choice."),
        (
            {"decision": "approve", "application": [str(n) for n in range(1, 1002)]},
            "Decide at most 1000 applications at once; 1001 were selected.",
        ),
        (
            {"decision": "reject", "application": ["1"], "reason": "x" * 2001},
            "Ensure this value has at most 2000",
        ),
    ],
)
def test_a_bad_bulk_request_answers_400_and_changes_nothing(
    client, organization, reviewer, application_tier, data, error
):
    bulk_pending(application_tier, 1)
    client.force_login(reviewer)

    with nothing_changes():
        response = client.post(decide_url(organization), data)

    assert response.status_code == 400
    assert error in response.content.decode()


def test_bulk_approval_reports_what_it_left_unchanged(client, organization, reviewer, erin, application_tier):
    fine, erins = bulk_pending(application_tier, 2)
    assign(erins, erin)
    client.force_login(reviewer)

    response = client.post(
        decide_url(organization), {"application": [fine.pk, erins.pk], "decision": "approve"}, follow=True
    )

    content = response.content.decode()
    assert "Approved 1 application." in content
    assert (
        f"Left unchanged: 1 application. #{erins.pk}: Application #{erins.pk} is assigned to Erin Reviewer"
        in content
    )
    assert statuses([fine, erins]) == ["approved", "pending"]


def test_a_bulk_approval_of_1000_applications_finishes_in_one_request_in_constant_queries(
    client, organization, reviewer, application_tier
):
    client.force_login(reviewer)
    counts = {}
    for size in (10, 1000):
        applications = bulk_pending(application_tier, size)
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                decide_url(organization, "per_page=1000"),
                {"application": [a.pk for a in applications], "decision": "approve", "reason": "Batch."},
            )
        assert response.status_code == 302
        counts[size] = len(queries)
        assert set(statuses(applications)) == {"approved"}

    assert counts[10] == counts[1000]
    assert Grant.objects.filter(status=Grant.Status.ACTIVE).count() == 1010
    assert Review.objects.filter(reviewer=reviewer, reason="Batch.").count() == 1010
    # One audit event per change: each grant and each approval.
    assert AuditEvent.objects.filter(action="grant.created").count() == 1010
    assert AuditEvent.objects.filter(action="application.approved").count() == 1010
    assert "Approved 1000 applications." in client.get(queue_url(organization)).content.decode()


# --- Scale ----------------------------------------------------------------------------------


def test_the_queue_page_costs_the_same_queries_at_10_and_10000_applications(
    client, organization, reviewer, application_tier, django_assert_max_num_queries
):
    client.force_login(reviewer)
    assign(bulk_pending(application_tier, 10)[0], reviewer)
    with CaptureQueriesContext(connection) as small:
        response = client.get(queue_url(organization))
    assert len(queue_ids(response)) == 10

    # The page of the 1,000 oldest has an assigned row too, as the small page had.
    assign(bulk_pending(application_tier, 9990, age_days=30)[0], reviewer)
    with django_assert_max_num_queries(len(small)) as large:
        response = client.get(queue_url(organization, "per_page=1000"))

    assert "10000 awaiting a decision, oldest first." in response.content.decode()
    assert len(queue_ids(response)) == 1000
    assert len(large) == len(small)


def test_the_report_of_a_bulk_action_names_ten_skipped_applications_and_counts_the_rest(
    client, organization, reviewer, application_tier
):
    applications = bulk_pending(application_tier, 12)
    Application.objects.filter(pk__in=[a.pk for a in applications]).update(
        status=Application.Status.WITHDRAWN
    )
    client.force_login(reviewer)

    response = client.post(
        decide_url(organization),
        {"application": [a.pk for a in applications], "decision": "approve"},
        follow=True,
    )

    content = response.content.decode()
    assert "Left unchanged: 12 applications." in content
    assert content.count("This application is already withdrawn.") == 10
    assert "… and 2 more." in content
