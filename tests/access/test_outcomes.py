"""Outcomes besides approve and reject: return for revision and resubmission, the one appeal,
withdrawal of open applications, the re-apply cool-down and the expiry of stale applications."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from access import policy
from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.models import Application, ApplicationRevision, AuditEvent, Grant, Notification, Review
from access.services.applications import application_approve, application_reject, application_withdraw
from access.services.outcomes import (
    MAX_APPEAL_STATEMENT_LENGTH,
    application_appeal,
    application_resubmit,
    application_return,
    applications_expire_stale,
)
from access.tasks import expire_stale_applications
from releases.models import Membership
from tests.factories import MembershipFactory, TierFactory, UserFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes

QUESTIONS = [{"name": "lab", "label": "Lab", "type": "text", "required": True}]


@pytest.fixture
def tier(release):
    return TierFactory(
        release=release, name="Researchers", questions=QUESTIONS, review_days=10, reapply_cooldown_days=30
    )


@pytest.fixture
def application(researcher, tier, submit, owner, reviewer):
    """Submitted with Alice (owner) and Bob (reviewer) in the organization: assigned to Bob."""
    return submit(researcher, tier, answers={"lab": "Vision lab"})


@pytest.fixture
def second_reviewer(organization):
    user = UserFactory(email="erin@acme.example", full_name="Erin Reviewer")
    MembershipFactory(organization=organization, user=user, role=Membership.Role.REVIEWER)
    return user


def returned(application, reviewer, message="Say which benchmarks you will run.") -> Application:
    return application_return(application_id=application.pk, reviewer=reviewer, message=message)


def resubmit(application, user, **fields) -> Application:
    arguments = {
        "affiliation": "University of Example, Vision lab",
        "intended_use": "Run the HarmBench and XSTest suites.",
        "answers": {"lab": "Vision and safety lab"},
    }
    arguments.update(fields)
    return application_resubmit(application_id=application.pk, user=user, **arguments)


def rejected(application, reviewer, reason="Not enough detail.") -> Application:
    return application_reject(application_id=application.pk, reviewer=reviewer, reason=reason)


def appeal(application, user, statement="I added the details the reviewer missed.") -> Application:
    return application_appeal(application_id=application.pk, user=user, statement=statement)


# --- Return for revision --------------------------------------------------------------------


def test_a_reviewer_returns_a_pending_application_with_a_message(application, reviewer, emails):
    since = last_audit_id()

    with emails.on_commit():
        returned(application, reviewer)

    application.refresh_from_db()
    assert application.status == Application.Status.RETURNED
    assert application.decision_reason == "Say which benchmarks you will run."
    review = Review.objects.get(application=application)
    assert (review.reviewer, review.decision, review.revision) == (reviewer, "return", 1)
    assert audit_actions(since) == ["application.returned"]
    notification = Notification.objects.get(user=application.user, kind="application_returned")
    assert notification.url == reverse("application-edit", kwargs={"application_id": application.pk})
    assert "Say which benchmarks you will run." in notification.message
    assert [message.to for message in emails.outbox] == [["dana@university.example"]]
    assert "Say which benchmarks you will run." in emails.outbox[0].body


@pytest.mark.parametrize("message", ["", "   ", "x" * 2001])
def test_returning_without_a_usable_message_changes_nothing(application, reviewer, message):
    with nothing_changes(), pytest.raises(InvalidInput):
        returned(application, reviewer, message=message)

    application.refresh_from_db()
    assert application.status == Application.Status.PENDING


def test_only_the_organizations_reviewers_may_return_and_not_their_own(application, outsider, researcher):
    for actor in (outsider, researcher):
        with nothing_changes(), pytest.raises(NotAllowed):
            returned(application, actor)

    application.refresh_from_db()
    assert application.status == Application.Status.PENDING


def test_only_a_pending_application_can_be_returned(application, reviewer, owner):
    rejected(application, owner)

    with nothing_changes(), pytest.raises(InvalidTransition):
        returned(application, reviewer)


def test_an_appeal_cannot_be_returned(application, reviewer, owner, second_reviewer):
    rejected(application, owner)
    appeal(application, application.user)

    with nothing_changes(), pytest.raises(InvalidTransition, match="Only a pending application"):
        returned(application, reviewer)


# --- Resubmission ---------------------------------------------------------------------------


def test_the_applicant_resubmits_and_the_history_keeps_both_versions(application, reviewer, emails):
    returned(application, reviewer)
    first_submitted_at = application.submitted_at
    since = last_audit_id()

    with emails.on_commit():
        resubmit(application, application.user)

    application.refresh_from_db()
    assert application.status == Application.Status.PENDING
    assert application.revision == 2
    assert application.affiliation == "University of Example, Vision lab"
    assert application.answers == {"lab": "Vision and safety lab"}
    assert application.decision_reason == ""
    assert application.submitted_at > first_submitted_at
    assert application.decision_due_at == application.submitted_at + timedelta(days=10)
    earlier = ApplicationRevision.objects.get(application=application)
    assert earlier.number == 1
    assert earlier.affiliation == "University of Example"
    assert earlier.answers == {"lab": "Vision lab"}
    assert earlier.submitted_at == first_submitted_at
    assert earlier.returned_reason == "Say which benchmarks you will run."
    assert "application.resubmitted" in audit_actions(since)
    resubmitted = Notification.objects.get(kind="application_resubmitted")
    assert resubmitted.user == reviewer
    assert resubmitted.url == reverse("review-application", kwargs={"application_id": application.pk})


def test_a_resubmitted_application_is_decided_as_usual(application, reviewer):
    returned(application, reviewer)
    resubmit(application, application.user)

    application_approve(application_id=application.pk, reviewer=reviewer)

    application.refresh_from_db()
    assert application.status == Application.Status.APPROVED
    assert Grant.objects.get(application=application).status == Grant.Status.ACTIVE


def test_a_resubmission_answers_the_questions_the_application_was_made_with(application, reviewer, tier):
    returned(application, reviewer)
    tier.questions = [{"name": "country", "label": "Country", "type": "text", "required": True}]
    tier.save()

    resubmit(application, application.user, answers={"lab": "Robotics lab"})

    application.refresh_from_db()
    assert application.answers == {"lab": "Robotics lab"}
    assert application.questions == QUESTIONS


def test_a_resubmission_with_a_missing_answer_changes_nothing(application, reviewer):
    returned(application, reviewer)

    with nothing_changes(), pytest.raises(InvalidInput):
        resubmit(application, application.user, answers={"lab": ""})

    application.refresh_from_db()
    assert (application.status, application.revision) == (Application.Status.RETURNED, 1)
    assert not ApplicationRevision.objects.exists()


def test_only_the_applicant_resubmits_and_only_a_returned_application(application, reviewer):
    with nothing_changes(), pytest.raises(InvalidTransition):
        resubmit(application, application.user)
    returned(application, reviewer)

    with nothing_changes(), pytest.raises(NotAllowed):
        resubmit(application, reviewer)

    assert not ApplicationRevision.objects.exists()


# --- The one appeal -------------------------------------------------------------------------


def test_an_appeal_goes_to_a_reviewer_other_than_the_one_who_rejected(
    application, reviewer, owner, second_reviewer, emails
):
    rejected(application, reviewer)
    since = last_audit_id()

    with emails.on_commit():
        appeal(application, application.user)

    application.refresh_from_db()
    assert application.status == Application.Status.APPEALED
    assert application.appeal_statement == "I added the details the reviewer missed."
    assert application.appealed_at is not None
    assert application.decision_due_at == application.appealed_at + timedelta(days=10)
    # Reviewers come before owners, and Bob rejected it: Erin decides the appeal.
    assert application.assigned_to == second_reviewer
    assert audit_actions(since) == ["application.appealed"]
    assert Notification.objects.get(kind="application_appealed").user == second_reviewer
    assert "erin@acme.example" in [message.to[0] for message in emails.outbox]


def test_the_appeal_goes_to_the_reviewer_with_the_fewest_open_applications(
    application, reviewer, organization, second_reviewer, release, submit
):
    third_reviewer = UserFactory(email="finn@acme.example")
    MembershipFactory(organization=organization, user=third_reviewer, role=Membership.Role.REVIEWER)
    busy = submit(UserFactory(), TierFactory(release=release))
    Application.objects.filter(pk=busy.pk).update(assigned_to=second_reviewer)
    rejected(application, reviewer)

    appeal(application, application.user)

    application.refresh_from_db()
    assert application.assigned_to == third_reviewer


def test_with_nobody_else_to_decide_the_appeal_it_waits_unassigned_and_owners_are_told(
    researcher, organization, release, submit
):
    lone_owner = UserFactory(email="olga@acme.example")
    MembershipFactory(organization=organization, user=lone_owner, role=Membership.Role.OWNER)
    application = submit(researcher, TierFactory(release=release))
    rejected(application, lone_owner)

    appeal(application, researcher)

    application.refresh_from_db()
    assert application.status == Application.Status.APPEALED
    assert application.assigned_to is None
    notification = Notification.objects.get(kind="application_appealed")
    assert notification.user == lone_owner
    assert "No reviewer other than the one who rejected it" in notification.message


def test_the_reviewer_who_rejected_may_not_decide_the_appeal(application, reviewer, owner):
    rejected(application, reviewer)
    appeal(application, application.user)

    with nothing_changes(), pytest.raises(NotAllowed) as refused:
        application_approve(application_id=application.pk, reviewer=reviewer)

    assert refused.value.code == "appeal_conflict"
    application.refresh_from_db()
    assert not policy.can_decide(reviewer, application)
    assert policy.can_decide(owner, application)
    application_approve(application_id=application.pk, reviewer=owner)
    application.refresh_from_db()
    assert application.status == Application.Status.APPROVED
    assert Grant.objects.filter(application=application, status=Grant.Status.ACTIVE).exists()


def test_a_second_appeal_is_refused_and_changes_nothing(application, reviewer, owner):
    rejected(application, reviewer)
    appeal(application, application.user)
    rejected(application, owner, reason="Still not enough.")

    with nothing_changes(), pytest.raises(NotAllowed) as refused:
        appeal(application, application.user, statement="Please look again.")

    assert refused.value.code == "appeal_used"
    application.refresh_from_db()
    assert application.status == Application.Status.REJECTED
    assert application.appeal_statement == "I added the details the reviewer missed."


def test_an_appeal_still_pending_cannot_be_made_again(application, reviewer, owner):
    rejected(application, reviewer)
    appeal(application, application.user)

    with nothing_changes(), pytest.raises(NotAllowed) as refused:
        appeal(application, application.user)

    assert refused.value.code == "appeal_used"


@pytest.mark.parametrize("statement", ["", "  ", "x" * (MAX_APPEAL_STATEMENT_LENGTH + 1)])
def test_an_appeal_needs_a_statement_of_bounded_length(application, reviewer, statement):
    rejected(application, reviewer)

    with nothing_changes(), pytest.raises(InvalidInput):
        appeal(application, application.user, statement=statement)


def test_only_the_applicant_appeals_and_only_a_rejection(application, reviewer, outsider):
    with nothing_changes(), pytest.raises(InvalidTransition):
        appeal(application, application.user)
    rejected(application, reviewer)

    with nothing_changes(), pytest.raises(NotAllowed) as refused:
        appeal(application, outsider)

    assert refused.value.code == "not_found"


def test_no_appeal_while_another_application_for_the_tier_is_open(application, reviewer, tier, submit):
    tier.reapply_cooldown_days = 0
    tier.save()
    rejected(application, reviewer)
    submit(application.user, tier, answers={"lab": "Vision lab"})

    with nothing_changes(), pytest.raises(NotAllowed) as refused:
        appeal(application, application.user)

    assert refused.value.code == "already_pending"


# --- Withdrawal of every open state ---------------------------------------------------------


def test_a_returned_or_appealed_application_can_be_withdrawn(
    application, reviewer, owner, researcher, submit
):
    returned(application, reviewer)

    application_withdraw(application_id=application.pk, user=researcher)

    application.refresh_from_db()
    assert application.status == Application.Status.WITHDRAWN
    other = submit(researcher, TierFactory(release=application.tier.release))
    rejected(other, reviewer)
    appeal(other, researcher)

    application_withdraw(application_id=other.pk, user=researcher)

    other.refresh_from_db()
    assert other.status == Application.Status.WITHDRAWN


# --- Re-applying after the cool-down --------------------------------------------------------


def test_re_applying_waits_for_the_tiers_cool_down_and_says_until_when(application, reviewer, tier, submit):
    rejected(application, reviewer)
    application.refresh_from_db()
    reapply_at = application.decided_at + timedelta(days=30)

    with nothing_changes(), pytest.raises(NotAllowed) as refused:
        submit(application.user, tier, answers={"lab": "Vision lab"})

    assert refused.value.code == "cooldown"
    assert f"{reapply_at:%Y-%m-%d %H:%M} UTC" in refused.value.message
    Application.objects.filter(pk=application.pk).update(
        decided_at=timezone.now() - timedelta(days=30, seconds=1)
    )
    assert submit(application.user, tier, answers={"lab": "Vision lab"}).status == Application.Status.PENDING


def test_a_tier_without_a_cool_down_takes_a_new_application_at_once(application, reviewer, tier, submit):
    tier.reapply_cooldown_days = 0
    tier.save()
    rejected(application, reviewer)

    assert submit(application.user, tier, answers={"lab": "Vision lab"}).status == Application.Status.PENDING


# --- Stale applications ---------------------------------------------------------------------


def age(application, days: int) -> None:
    """Move the application's submission and reviews ``days`` into the past."""
    then = timezone.now() - timedelta(days=days)
    Application.objects.filter(pk=application.pk).update(submitted_at=then)
    Review.objects.filter(application=application).update(created_at=then)


def test_a_stale_pending_application_expires_and_its_applicant_is_told(application, tier, emails):
    tier.stale_after_days = 20
    tier.save()
    age(application, 21)
    since = last_audit_id()

    with emails.on_commit():
        assert applications_expire_stale() == 1

    application.refresh_from_db()
    assert application.status == Application.Status.EXPIRED
    assert application.decision_reason == "No activity for 20 days."
    assert audit_actions(since) == ["application.expired"]
    assert AuditEvent.objects.get(pk__gt=since).payload["previous_status"] == "pending"
    notification = Notification.objects.get(kind="application_expired")
    assert notification.user == application.user
    assert [message.to for message in emails.outbox] == [["dana@university.example"]]
    assert "expired after 20 days without activity" in emails.outbox[0].body


def test_a_returned_application_expires_when_the_applicant_does_not_revise_it(application, reviewer, tier):
    tier.stale_after_days = 20
    tier.save()
    returned(application, reviewer)
    age(application, 21)

    applications_expire_stale()

    application.refresh_from_db()
    assert application.status == Application.Status.EXPIRED


def test_recent_activity_keeps_an_application_alive(application, reviewer, tier):
    tier.stale_after_days = 20
    tier.save()
    Application.objects.filter(pk=application.pk).update(submitted_at=timezone.now() - timedelta(days=40))
    returned(application, reviewer)  # the return is the latest activity, today

    assert applications_expire_stale() == 0

    application.refresh_from_db()
    assert application.status == Application.Status.RETURNED


def test_a_tier_without_a_limit_never_expires_applications(application, tier):
    assert tier.stale_after_days is None
    age(application, 400)

    with nothing_changes():
        assert applications_expire_stale() == 0


def test_appealed_applications_do_not_expire_as_stale(application, reviewer, owner, tier):
    tier.stale_after_days = 20
    tier.save()
    rejected(application, reviewer)
    appeal(application, application.user)
    age(application, 21)

    assert applications_expire_stale() == 0


def test_the_stale_scan_is_safe_to_run_twice(application, tier, celery_eager):
    tier.stale_after_days = 20
    tier.save()
    age(application, 21)

    assert expire_stale_applications.delay().get() == 1
    with nothing_changes():
        assert expire_stale_applications.delay().get() == 0

    assert Notification.objects.filter(kind="application_expired").count() == 1


def test_beat_runs_the_stale_scan_periodically():
    entry = next(
        e
        for e in settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == "access.tasks.expire_stale_applications"
    )
    assert entry["schedule"] == 3600.0


# --- What the applicant sees ----------------------------------------------------------------


def test_the_standing_of_a_returned_application_carries_the_message(application, reviewer, tier):
    returned(application, reviewer)

    standing = policy.tier_standing(application.user, tier)

    assert (standing.code, standing.label) == ("returned", "Returned for revision")
    assert standing.detail == "The reviewer asks: Say which benchmarks you will run."


def test_the_standing_during_the_cool_down_gives_the_date_to_re_apply(application, reviewer, tier):
    rejected(application, reviewer)
    application.refresh_from_db()

    standing = policy.tier_standing(application.user, tier)

    assert standing.code == "cooldown"
    assert standing.date == application.decided_at + timedelta(days=30)
    assert f"You may apply again on {standing.date:%Y-%m-%d}." in standing.detail


def test_the_standing_of_an_appeal_and_of_an_expired_application(application, reviewer, owner, tier):
    rejected(application, reviewer)
    appeal(application, application.user)
    assert policy.tier_standing(application.user, tier).code == "appealed"

    Application.objects.filter(pk=application.pk).update(status="expired", decided_at=timezone.now())

    standing = policy.tier_standing(application.user, tier)
    assert (standing.code, standing.label) == ("application_expired", "Expired without a decision")


# --- Pages ----------------------------------------------------------------------------------


def test_the_reviewer_returns_from_the_review_page(client, application, reviewer):
    client.force_login(reviewer)
    page = client.get(reverse("review-application", kwargs={"application_id": application.pk}))
    assert b'id="return-form"' in page.content

    response = client.post(
        reverse("review-application-return", kwargs={"application_id": application.pk}),
        {"message": "Name your lab's ethics board."},
    )

    assert response.status_code == 302
    application.refresh_from_db()
    assert application.status == Application.Status.RETURNED
    assert application.decision_reason == "Name your lab's ethics board."


def test_returning_from_the_page_without_a_message_changes_nothing(client, application, reviewer):
    client.force_login(reviewer)
    with nothing_changes():
        response = client.post(
            reverse("review-application-return", kwargs={"application_id": application.pk}),
            {"message": ""},
            follow=True,
        )

    assert "Tell the applicant what to change" in response.content.decode()
    application.refresh_from_db()
    assert application.status == Application.Status.PENDING


def test_an_outsider_gets_404_when_returning(client, application, outsider):
    client.force_login(outsider)
    with nothing_changes():
        response = client.post(
            reverse("review-application-return", kwargs={"application_id": application.pk}),
            {"message": "No."},
        )

    assert response.status_code == 404


def test_the_applicant_edits_and_resubmits_from_the_page(client, application, reviewer):
    returned(application, reviewer)
    client.force_login(application.user)
    detail = client.get(reverse("application-detail", kwargs={"application_id": application.pk}))
    assert b'id="edit-link"' in detail.content
    assert b"Say which benchmarks you will run." in detail.content
    edit_url = reverse("application-edit", kwargs={"application_id": application.pk})
    form = client.get(edit_url)
    assert b"Vision lab" in form.content  # the earlier answer, ready to edit

    response = client.post(
        edit_url,
        {"affiliation": "University of Example", "intended_use": "Run HarmBench.", "q_lab": "Safety lab"},
    )

    assert response.status_code == 302
    application.refresh_from_db()
    assert (application.status, application.revision) == (Application.Status.PENDING, 2)
    detail = client.get(
        reverse("application-detail", kwargs={"application_id": application.pk})
    ).content.decode()
    assert 'id="version-1"' in detail
    assert "Vision lab" in detail and "Safety lab" in detail
    client.force_login(reviewer)
    review = client.get(
        reverse("review-application", kwargs={"application_id": application.pk})
    ).content.decode()
    assert 'id="version-1"' in review and "Revised and resubmitted" in review


def test_a_resubmission_with_a_missing_answer_shows_the_error_and_changes_nothing(
    client, application, reviewer
):
    returned(application, reviewer)
    client.force_login(application.user)

    with nothing_changes():
        response = client.post(
            reverse("application-edit", kwargs={"application_id": application.pk}),
            {"affiliation": "University of Example", "intended_use": "Run HarmBench.", "q_lab": ""},
        )

    assert response.status_code == 400
    application.refresh_from_db()
    assert application.revision == 1


def test_someone_elses_application_is_404_on_the_edit_and_appeal_pages(client, application, outsider):
    client.force_login(outsider)
    for name in ("application-edit", "application-appeal"):
        with nothing_changes():
            response = client.post(
                reverse(name, kwargs={"application_id": application.pk}), {"statement": "x"}
            )
        assert response.status_code == 404


def test_the_applicant_appeals_from_the_page_once(client, application, reviewer, owner):
    rejected(application, reviewer)
    client.force_login(application.user)
    tier_page = client.get(reverse("tier-detail", kwargs={"tier_id": application.tier_id}))
    assert b'id="appeal-link"' in tier_page.content
    appeal_url = reverse("application-appeal", kwargs={"application_id": application.pk})

    response = client.post(appeal_url, {"statement": "My lab has an ethics board."})

    assert response.status_code == 302
    application.refresh_from_db()
    assert application.status == Application.Status.APPEALED
    rejected(application, owner)
    with nothing_changes():
        second = client.post(appeal_url, {"statement": "Once more."})
    assert second.status_code == 400
    assert "You have already appealed this decision" in second.content.decode()
    assert (
        b'id="appeal-link"'
        not in client.get(reverse("tier-detail", kwargs={"tier_id": application.tier_id})).content
    )


def test_the_tier_page_tells_a_rejected_applicant_when_they_may_apply_again(client, application, reviewer):
    rejected(application, reviewer)
    application.refresh_from_db()
    client.force_login(application.user)

    page = client.get(reverse("tier-detail", kwargs={"tier_id": application.tier_id})).content.decode()

    assert 'data-code="cooldown"' in page
    assert f"{application.decided_at + timedelta(days=30):%Y-%m-%d}" in page
    assert 'id="apply-link"' not in page


def test_the_model_page_shows_the_returned_status_with_the_message(client, application, reviewer):
    returned(application, reviewer)
    client.force_login(application.user)

    page = client.get(reverse("model-detail", kwargs={"org_slug": "acme", "model_slug": "llama-lite"}))

    content = page.content.decode()
    assert "status-returned" in content
    assert "The reviewer asks: Say which benchmarks you will run." in content
