"""The approval policy (N approvals, the assignment rule) and bulk decisions, at the service level."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from access import policy
from access.audit import audit_verify
from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.models import Application, AuditEvent, Grant, Review
from access.services.applications import application_approve, application_reject
from access.services.decisions import BULK_DECISION_MAX, applications_decide
from access.services.outcomes import application_return
from releases.models import Membership, Tier
from tests.access.queue_scenes import REVIEWER, assign, bulk_pending, member
from tests.factories import ApplicationFactory, GrantFactory, TierFactory, UserFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes

APPROVED_SUBJECT = "Your application for Llama Lite (High risk) was approved"


@pytest.fixture
def erin(organization, reviewer):
    """A second reviewer, created after Bob: round-robin gives Bob the first application."""
    return member(organization, REVIEWER, "erin@acme.example", "Erin Reviewer")


@pytest.fixture
def two_approval_tier(release):
    return TierFactory(release=release, name="High risk", gate=Tier.Gate.APPLICATION, approvals_required=2)


def approve(application, who, reason=""):
    return application_approve(application_id=application.pk, reviewer=who, reason=reason)


def status_of(application) -> str:
    application.refresh_from_db()
    return application.status


# --- N approvals ----------------------------------------------------------------------------


def test_a_two_approval_tier_waits_for_a_second_reviewer_then_grants(
    researcher, reviewer, erin, two_approval_tier, submit, emails
):
    application = submit(researcher, two_approval_tier)
    assert application.assigned_to == reviewer
    since = last_audit_id()

    with emails.on_commit():
        approve(application, reviewer, "Known lab.")

    assert status_of(application) == Application.Status.PENDING
    assert not Grant.objects.exists()
    assert audit_actions(since) == ["application.approval_recorded"]
    assert AuditEvent.objects.get(action="application.approval_recorded").payload["approvals"] == 1
    assert emails.outbox == []

    with emails.on_commit():
        approve(application, erin)

    assert status_of(application) == Application.Status.APPROVED
    grant = Grant.objects.get(application=application)
    assert (grant.user, grant.status) == (researcher, Grant.Status.ACTIVE)
    assert audit_actions(since)[1:] == ["grant.created", "application.approved"]
    assert sorted(Review.objects.values_list("reviewer__email", flat=True)) == [
        "bob@acme.example",
        "erin@acme.example",
    ]
    assert emails.subjects == [APPROVED_SUBJECT]


def test_the_same_reviewer_cannot_give_two_approvals(researcher, reviewer, two_approval_tier, submit):
    application = submit(researcher, two_approval_tier)
    approve(application, reviewer)

    with nothing_changes(), pytest.raises(InvalidTransition) as error:
        approve(application, reviewer)

    assert error.value.code == "already_approved"
    assert status_of(application) == Application.Status.PENDING


def test_one_rejection_rejects_whatever_the_approvals(researcher, reviewer, erin, two_approval_tier, submit):
    application = submit(researcher, two_approval_tier)
    approve(application, reviewer)

    application_reject(application_id=application.pk, reviewer=erin, reason="Export-controlled country.")

    assert status_of(application) == Application.Status.REJECTED
    assert application.decision_reason == "Export-controlled country."
    assert not Grant.objects.exists()


def test_approvals_of_an_earlier_revision_do_not_count(researcher, reviewer, erin, two_approval_tier):
    application = ApplicationFactory(user=researcher, tier=two_approval_tier, revision=2)
    Review.objects.create(application=application, reviewer=reviewer, decision="approve", revision=1)

    approve(application, reviewer)
    assert status_of(application) == Application.Status.PENDING

    approve(application, erin)
    assert status_of(application) == Application.Status.APPROVED
    assert list(
        Review.objects.filter(application=application).order_by("pk").values_list("revision", flat=True)
    ) == [1, 2, 2]


def test_an_appeal_needs_fresh_approvals_and_not_from_who_rejected(
    researcher, owner, reviewer, erin, two_approval_tier
):
    application = ApplicationFactory(
        user=researcher,
        tier=two_approval_tier,
        status=Application.Status.APPEALED,
        appealed_at=timezone.now(),
    )
    Review.objects.create(application=application, reviewer=owner, decision="approve")
    Review.objects.create(application=application, reviewer=reviewer, decision="reject", reason="No.")

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        approve(application, reviewer)
    assert error.value.code == "appeal_conflict"

    approve(application, erin)
    assert status_of(application) == Application.Status.APPEALED
    approve(application, owner)
    assert status_of(application) == Application.Status.APPROVED


def test_nobody_approves_their_own_application_on_a_two_approval_tier(
    reviewer, erin, owner, two_approval_tier, submit
):
    application = submit(erin, two_approval_tier)
    approve(application, reviewer)

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        approve(application, erin)

    assert error.value.code == "own_application"
    approve(application, owner)
    assert status_of(application) == Application.Status.APPROVED


@pytest.mark.parametrize(
    ("reviewer_email", "applicant_email", "conflict"),
    [
        ("bob@acme.example", "dana@ACME.example", True),
        ("bob@acme.example", "dana@university.example", False),
        ("bob@acme.example", "dana@lab.acme.example", False),
    ],
)
def test_conflict_of_interest_is_the_same_email_domain(reviewer_email, applicant_email, conflict):
    reviewer, applicant = UserFactory.build(email=reviewer_email), UserFactory.build(email=applicant_email)

    assert policy.conflict_of_interest(reviewer, applicant) is conflict


# --- The assignment rule --------------------------------------------------------------------


def test_only_the_assignee_or_an_owner_decides_an_assigned_application(
    researcher, owner, reviewer, erin, application_tier, submit
):
    application = submit(researcher, application_tier)
    assert application.assigned_to == reviewer

    for attempt in (
        lambda: approve(application, erin),
        lambda: application_reject(application_id=application.pk, reviewer=erin, reason="No."),
        lambda: application_return(application_id=application.pk, reviewer=erin, message="More detail."),
    ):
        with nothing_changes(), pytest.raises(NotAllowed) as error:
            attempt()
        assert error.value.code == "assigned_to_other"
        assert "assigned to Bob Reviewer" in error.value.message
    assert status_of(application) == Application.Status.PENDING

    approve(application, owner)
    assert status_of(application) == Application.Status.APPROVED


def test_another_reviewer_adds_the_second_approval_only_after_the_assignee(
    researcher, reviewer, erin, two_approval_tier, submit
):
    application = submit(researcher, two_approval_tier)

    with nothing_changes(), pytest.raises(NotAllowed):
        approve(application, erin)
    approve(application, reviewer)
    approve(application, erin)

    assert status_of(application) == Application.Status.APPROVED


def test_an_assignee_who_no_longer_reviews_holds_nothing(
    researcher, reviewer, erin, application_tier, submit
):
    application = submit(researcher, application_tier)
    Membership.objects.filter(user=reviewer).update(role=Membership.Role.AUDITOR)

    approve(application, erin)

    assert status_of(application) == Application.Status.APPROVED


# --- Bulk decisions -------------------------------------------------------------------------


def decide(organization, applications, who, decision="approve", reason="Known lab."):
    return applications_decide(
        organization=organization,
        application_ids=[application.pk for application in applications],
        reviewer=who,
        decision=decision,
        reason=reason,
    )


def test_bulk_approval_decides_each_application_and_skips_what_it_may_not(
    organization, reviewer, erin, application_tier, emails
):
    fine, also_fine, decided, erins = bulk_pending(application_tier, 4)
    Application.objects.filter(pk=decided.pk).update(status=Application.Status.WITHDRAWN)
    assign(erins, erin)
    since = last_audit_id()

    with emails.on_commit():
        outcome = decide(organization, [fine, also_fine, decided, erins], reviewer)

    assert [application.pk for application in outcome.decided] == [fine.pk, also_fine.pk]
    assert {pk: error.code for pk, error in outcome.skipped.items()} == {
        decided.pk: "invalid_transition",
        erins.pk: "assigned_to_other",
    }
    assert [status_of(a) for a in (fine, also_fine, decided, erins)] == [
        "approved",
        "approved",
        "withdrawn",
        "pending",
    ]
    assert set(Grant.objects.values_list("application_id", flat=True)) == {fine.pk, also_fine.pk}
    assert Review.objects.filter(reviewer=reviewer, reason="Known lab.").count() == 2
    assert audit_actions(since) == ["grant.created", "application.approved"] * 2
    assert sorted(message.to[0] for message in emails.outbox) == sorted(
        [fine.user.email, also_fine.user.email]
    )
    assert audit_verify() is None


def test_bulk_approval_grants_as_a_single_approval_does(
    organization, reviewer, erin, application_tier, submit, researcher
):
    one = submit(researcher, application_tier)
    approve(one, reviewer)
    (other,) = bulk_pending(application_tier, 1)

    decide(organization, [other], reviewer, reason="")

    single = Grant.objects.get(application=one)
    bulk = Grant.objects.get(application=other)
    assert (bulk.status, bulk.license_acceptance) == (Grant.Status.ACTIVE, other.license_acceptance)
    assert abs((bulk.expires_at - bulk.granted_at) - (single.expires_at - single.granted_at)) < timedelta(
        seconds=1
    )
    created = AuditEvent.objects.filter(action="grant.created").order_by("pk")
    assert [sorted(event.payload) for event in created] == [
        ["expires_at", "license_version_id", "tier_id", "user_id"]
    ] * 2


def test_bulk_rejection_needs_a_reason_and_rejects_each(organization, reviewer, application_tier):
    applications = bulk_pending(application_tier, 3)

    with nothing_changes(), pytest.raises(InvalidInput) as error:
        decide(organization, applications, reviewer, decision="reject", reason="  ")
    assert error.value.code == "reason_missing"

    since = last_audit_id()
    outcome = decide(organization, applications, reviewer, decision="reject", reason="Not a research use.")

    assert len(outcome.decided) == 3
    for application in applications:
        application.refresh_from_db()
        assert (application.status, application.decision_reason) == ("rejected", "Not a research use.")
    assert audit_actions(since) == ["application.rejected"] * 3
    assert not Grant.objects.exists()


@pytest.mark.parametrize("bad_id", ["foreign", "unknown"])
def test_a_bulk_action_including_a_foreign_id_changes_nothing(
    organization, reviewer, application_tier, bad_id
):
    ours = bulk_pending(application_tier, 2)
    foreign_id = (
        bulk_pending(TierFactory(gate=Tier.Gate.APPLICATION), 1)[0].pk if bad_id == "foreign" else 10**9
    )

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        applications_decide(
            organization=organization,
            application_ids=[ours[0].pk, foreign_id, ours[1].pk],
            reviewer=reviewer,
            decision="approve",
            reason="",
        )

    assert error.value.code == "foreign_applications"
    assert f"#{foreign_id}" in error.value.message
    assert "nothing was changed" in error.value.message
    assert [status_of(application) for application in ours] == ["pending", "pending"]


@pytest.mark.parametrize(
    ("ids", "code"), [([], "nothing_selected"), (list(range(1, BULK_DECISION_MAX + 2)), "too_many")]
)
def test_a_bulk_action_takes_one_to_1000_applications(organization, reviewer, application_tier, ids, code):
    assert BULK_DECISION_MAX == 1000

    with nothing_changes(), pytest.raises(InvalidInput) as error:
        applications_decide(
            organization=organization, application_ids=ids, reviewer=reviewer, decision="approve", reason=""
        )

    assert error.value.code == code


def test_an_outsider_cannot_bulk_decide(organization, outsider, application_tier):
    applications = bulk_pending(application_tier, 2)

    outcome = decide(organization, applications, outsider)

    assert outcome.decided == []
    assert {error.code for error in outcome.skipped.values()} == {"not_allowed"}
    assert not Review.objects.exists()


def test_bulk_approval_on_a_two_approval_tier_records_then_completes(
    organization, reviewer, erin, two_approval_tier
):
    applications = bulk_pending(two_approval_tier, 3)

    first = decide(organization, applications, reviewer)
    assert (len(first.decided), len(first.approval_recorded)) == (0, 3)
    assert {status_of(application) for application in applications} == {"pending"}

    second = decide(organization, applications, erin)
    assert len(second.decided) == 3
    assert {status_of(application) for application in applications} == {"approved"}
    assert Grant.objects.count() == 3


def test_a_renewal_in_a_bulk_approval_extends_its_grant(organization, reviewer, application_tier, researcher):
    grant = GrantFactory(
        user=researcher, tier=application_tier, expires_at=timezone.now() + timedelta(days=10)
    )
    renewal = ApplicationFactory(
        user=researcher,
        tier=application_tier,
        kind=Application.Kind.RENEWAL,
        renews=grant,
        license_acceptance=grant.license_acceptance,
    )
    (new,) = bulk_pending(application_tier, 1)

    outcome = decide(organization, [renewal, new], reviewer)

    assert len(outcome.decided) == 2
    assert Grant.objects.count() == 2
    grant.refresh_from_db()
    assert grant.expires_at > timezone.now() + timedelta(days=300)
    assert Review.objects.filter(application=renewal, reviewer=reviewer).count() == 1
    assert AuditEvent.objects.filter(action="grant.renewed", target_id=grant.pk).exists()


def test_bulk_queries_do_not_grow_with_the_number_of_applications(organization, reviewer, application_tier):
    counts = {}
    for size in (5, 300):
        applications = bulk_pending(application_tier, size)
        with CaptureQueriesContext(connection) as queries:
            outcome = decide(organization, applications, reviewer)
        assert len(outcome.decided) == size
        counts[size] = len(queries)

    assert counts[5] == counts[300]
    assert Grant.objects.count() == 305
    assert AuditEvent.objects.filter(action="application.approved").count() == 305
    assert audit_verify() is None
