"""Submitting, approving, rejecting and withdrawing applications."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection

from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.models import Application, AuditEvent, Grant, LicenseAcceptance, Review, SentEmail
from access.services.applications import (
    application_approve,
    application_reject,
    application_withdraw,
)
from access.services.licenses import license_version_publish
from releases.models import Membership, Release, Tier
from tests.factories import GrantFactory, MembershipFactory, ReleaseFactory, TierFactory, UserFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes

QUESTIONS = [
    {"name": "orcid", "label": "ORCID iD", "type": "text", "required": True},
    {"name": "field", "label": "Field", "type": "choice", "choices": ["nlp", "vision"]},
    {"name": "ethics", "label": "Ethics approval", "type": "checkbox", "required": True},
]


# --- Submitting -----------------------------------------------------------------------------


def test_it_submits_a_pending_application_with_its_license_acceptance(researcher, application_tier, submit):
    since = last_audit_id()

    application = submit(researcher, application_tier)

    application.refresh_from_db()
    assert application.status == Application.Status.PENDING
    assert application.decision_due_at == application.submitted_at + timedelta(days=14)
    acceptance = application.license_acceptance
    assert acceptance.user == researcher
    assert acceptance.license_version == application_tier.license.current_version
    assert acceptance.text_sha256 == application_tier.license.current_version.text_sha256
    assert acceptance.typed_name == "Dana Researcher"
    assert acceptance.ip_address == "192.0.2.10"
    assert not Grant.objects.filter(user=researcher).exists()
    assert audit_actions(since) == ["license.accepted", "application.submitted"]


def test_it_keeps_the_questions_and_cleaned_answers(researcher, release, submit):
    tier = TierFactory(release=release, questions=QUESTIONS)

    application = submit(
        researcher,
        tier,
        answers={"orcid": " 0000-0002-1825-0097 ", "field": "nlp", "ethics": "on", "unknown": "dropped"},
    )

    application.refresh_from_db()
    assert application.answers == {"orcid": "0000-0002-1825-0097", "field": "nlp", "ethics": True}
    assert application.questions == QUESTIONS


def test_it_emails_the_applicant_once_the_submission_commits(researcher, application_tier, submit, emails):
    with emails.on_commit() as callbacks:
        application = submit(researcher, application_tier)
        assert emails.outbox == []

    assert len(callbacks) == 2  # the e-mail, and screening (access.screening)
    assert emails.subjects == ["Your application for Llama Lite (Researchers) was received"]
    assert emails.outbox[0].to == ["dana@university.example"]
    assert SentEmail.objects.filter(key=f"application:{application.pk}:submitted").exists()


def test_an_auto_approval_tier_approves_and_creates_the_grant_at_once(researcher, auto_tier, submit, emails):
    since = last_audit_id()

    with emails.on_commit():
        application = submit(researcher, auto_tier)

    application.refresh_from_db()
    assert application.status == Application.Status.APPROVED
    assert application.decided_at is not None
    assert not application.reviews.exists()
    grant = Grant.objects.get(user=researcher, tier=auto_tier)
    assert grant.status == Grant.Status.ACTIVE
    assert grant.application == application
    assert grant.license_acceptance == application.license_acceptance
    assert grant.expires_at == grant.granted_at + timedelta(days=365)
    assert audit_actions(since) == [
        "license.accepted",
        "application.submitted",
        "grant.created",
        "application.approved",
    ]
    assert emails.subjects == ["Your application for Llama Lite (Students) was approved"]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("affiliation", "x" * 201, "affiliation"),
        ("affiliation", "   ", "affiliation"),
        ("intended_use", "x" * 5001, "intended_use"),
        ("intended_use", "", "intended_use"),
    ],
)
def test_it_refuses_a_missing_or_over_long_text(researcher, application_tier, submit, field, value, code):
    with nothing_changes(), pytest.raises(InvalidInput) as error:
        submit(researcher, application_tier, **{field: value})

    assert error.value.code == code


def test_it_accepts_texts_at_their_length_limit(researcher, application_tier, submit):
    application = submit(researcher, application_tier, affiliation="a" * 200, intended_use="u" * 5000)

    assert application.status == Application.Status.PENDING


@pytest.mark.parametrize(
    ("answers", "code"),
    [
        ({"field": "nlp", "ethics": True}, "answer_missing"),
        ({"orcid": "0000", "ethics": False}, "answer_missing"),
        ({"orcid": 42, "ethics": True}, "answer_invalid"),
        ({"orcid": "0000", "field": "audio", "ethics": True}, "answer_invalid"),
        ({"orcid": "0000", "ethics": "maybe"}, "answer_invalid"),
        ({"orcid": "0" * 301, "ethics": True}, "answer_too_long"),
    ],
)
def test_it_refuses_missing_or_unusable_answers(researcher, release, submit, answers, code):
    tier = TierFactory(release=release, questions=QUESTIONS)

    with nothing_changes(), pytest.raises(InvalidInput) as error:
        submit(researcher, tier, answers=answers)

    assert error.value.code == code


def test_it_refuses_a_second_pending_application(researcher, application_tier, submit, pending_application):
    with nothing_changes(), pytest.raises(NotAllowed) as error:
        submit(researcher, application_tier)

    assert error.value.code == "already_pending"


def test_it_refuses_an_applicant_who_already_has_access(researcher, application_tier, submit):
    GrantFactory(user=researcher, tier=application_tier)

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        submit(researcher, application_tier)

    assert error.value.code == "already_granted"


def test_it_refuses_an_application_to_a_tier_not_open_yet(researcher, release, submit):
    tier = TierFactory(release=release, opens_at=release.published_at + timedelta(days=30))
    assert tier.opened_at is None

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        submit(researcher, tier)

    assert error.value.code == "not_open"


def test_it_refuses_an_application_to_a_tier_without_applications(researcher, click_through_tier, submit):
    with nothing_changes(), pytest.raises(NotAllowed) as error:
        submit(researcher, click_through_tier)

    assert error.value.code == "no_application"


def test_it_refuses_an_application_to_a_draft_release(researcher, model, submit):
    draft = ReleaseFactory(model=model, status=Release.Status.DRAFT, revision="", published_at=None)
    tier = TierFactory(release=draft)

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        submit(researcher, tier)

    assert error.value.code == "not_published"


def test_it_refuses_a_user_whose_email_is_not_verified(application_tier, submit):
    unverified = UserFactory(full_name="Una Verified", verified=False)

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        submit(unverified, application_tier)

    assert error.value.code == "email_unverified"


@pytest.mark.parametrize(
    ("typed_name", "code"),
    [
        ("Someone Else", "typed_name_mismatch"),
        ("  ", "typed_name_missing"),
        ("D" * 201, "typed_name_too_long"),
    ],
)
def test_it_refuses_a_typed_name_that_is_not_the_account_name(
    researcher, application_tier, submit, typed_name, code
):
    with nothing_changes(), pytest.raises(InvalidInput) as error:
        submit(researcher, application_tier, typed_name=typed_name)

    assert error.value.code == code


def test_it_accepts_the_name_typed_in_another_case_and_spacing(researcher, application_tier, submit):
    application = submit(researcher, application_tier, typed_name="  dana   RESEARCHER ")

    assert application.license_acceptance.typed_name == "dana   RESEARCHER"


def test_it_refuses_a_license_that_changed_between_reading_and_accepting(
    researcher, application_tier, submit
):
    text_read = application_tier.license.current_version.text_sha256
    license_version_publish(
        license=application_tier.license, text="Version 2: research only, no redistribution."
    )

    with nothing_changes(), pytest.raises(InvalidInput) as error:
        submit(researcher, application_tier, seen_text_sha256=text_read)

    assert error.value.code == "license_changed"


def test_it_accepts_the_new_license_version_once_read(researcher, application_tier, submit):
    new_version = license_version_publish(license=application_tier.license, text="Version 2.")

    application = submit(researcher, application_tier, seen_text_sha256=new_version.text_sha256)

    assert application.license_acceptance.license_version == new_version


def test_a_rejected_applicant_may_apply_again(
    researcher, application_tier, reviewer, submit, pending_application
):
    application_reject(
        application_id=pending_application.pk, reviewer=reviewer, reason="Affiliation unclear."
    )

    second = submit(researcher, application_tier)

    assert second.pk != pending_application.pk
    assert second.status == Application.Status.PENDING


# --- Approving ------------------------------------------------------------------------------


def test_approving_creates_the_grant_and_review_and_emails_the_applicant(
    researcher, reviewer, pending_application, emails
):
    since = last_audit_id()

    with emails.on_commit():
        application = application_approve(
            application_id=pending_application.pk, reviewer=reviewer, reason=" ok "
        )

    application.refresh_from_db()
    assert application.status == Application.Status.APPROVED
    assert application.decision_reason == "ok"
    review = Review.objects.get(application=application)
    assert (review.reviewer, review.decision, review.reason) == (reviewer, Review.Decision.APPROVE, "ok")
    grant = Grant.objects.get(application=application)
    assert grant.user == researcher
    assert grant.status == Grant.Status.ACTIVE
    assert grant.license_acceptance == application.license_acceptance
    assert audit_actions(since) == ["grant.created", "application.approved"]
    assert emails.subjects == ["Your application for Llama Lite (Researchers) was approved"]
    assert emails.outbox[0].to == ["dana@university.example"]
    assert f"/tiers/{application.tier_id}/files/" in emails.outbox[0].body


def test_an_owner_may_approve(owner, pending_application):
    application = application_approve(application_id=pending_application.pk, reviewer=owner)

    assert application.status == Application.Status.APPROVED


def test_approval_and_grant_commit_or_fail_together(
    researcher, reviewer, application_tier, pending_application
):
    # An active grant obtained meanwhile makes the grant creation fail: the approval must not stay behind.
    GrantFactory(user=researcher, tier=application_tier)

    with nothing_changes(), pytest.raises(InvalidTransition) as error:
        application_approve(application_id=pending_application.pk, reviewer=reviewer)

    assert error.value.code == "already_granted"
    pending_application.refresh_from_db()
    assert pending_application.status == Application.Status.PENDING
    assert pending_application.decided_at is None


def test_a_reviewer_cannot_decide_their_own_application(reviewer, owner, application_tier, submit):
    application = submit(reviewer, application_tier)

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        application_approve(application_id=application.pk, reviewer=reviewer)
    assert error.value.code == "own_application"
    with nothing_changes(), pytest.raises(NotAllowed) as error:
        application_reject(application_id=application.pk, reviewer=reviewer, reason="Conflict of interest.")
    assert error.value.code == "own_application"

    assert (
        application_approve(application_id=application.pk, reviewer=owner).status
        == Application.Status.APPROVED
    )


@pytest.mark.parametrize("first", ["approve", "reject"])
@pytest.mark.parametrize("second", ["approve", "reject"])
def test_deciding_an_already_decided_application_is_refused(
    reviewer, owner, pending_application, first, second
):
    decide = {
        "approve": lambda who: application_approve(application_id=pending_application.pk, reviewer=who),
        "reject": lambda who: application_reject(
            application_id=pending_application.pk, reviewer=who, reason="No."
        ),
    }
    decide[first](reviewer)
    pending_application.refresh_from_db()
    status = pending_application.status

    with nothing_changes(), pytest.raises(InvalidTransition) as error:
        decide[second](owner)

    assert error.value.code == "invalid_transition"
    pending_application.refresh_from_db()
    assert pending_application.status == status


def test_a_withdrawn_application_cannot_be_decided(researcher, reviewer, pending_application):
    application_withdraw(application_id=pending_application.pk, user=researcher)

    with nothing_changes(), pytest.raises(InvalidTransition):
        application_approve(application_id=pending_application.pk, reviewer=reviewer)


@pytest.mark.parametrize("role", [None, Membership.Role.PUBLISHER, Membership.Role.AUDITOR])
def test_only_owners_and_reviewers_of_the_organization_may_decide(
    outsider, organization, pending_application, role
):
    if role is not None:
        MembershipFactory(organization=organization, user=outsider, role=role)

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        application_approve(application_id=pending_application.pk, reviewer=outsider)
    assert error.value.code == "not_allowed"
    with nothing_changes(), pytest.raises(NotAllowed):
        application_reject(application_id=pending_application.pk, reviewer=outsider, reason="No.")

    pending_application.refresh_from_db()
    assert pending_application.status == Application.Status.PENDING


def test_an_over_long_approval_note_is_refused(reviewer, pending_application):
    with nothing_changes(), pytest.raises(InvalidInput):
        application_approve(application_id=pending_application.pk, reviewer=reviewer, reason="x" * 2001)


# --- Rejecting ------------------------------------------------------------------------------


def test_rejecting_records_the_reason_and_emails_the_applicant(reviewer, pending_application, emails):
    since = last_audit_id()

    with emails.on_commit():
        application_reject(
            application_id=pending_application.pk, reviewer=reviewer, reason=" Not a researcher. "
        )

    pending_application.refresh_from_db()
    assert pending_application.status == Application.Status.REJECTED
    assert pending_application.decision_reason == "Not a researcher."
    assert pending_application.decided_at is not None
    assert Review.objects.get(application=pending_application).decision == Review.Decision.REJECT
    assert not Grant.objects.exists()
    assert audit_actions(since) == ["application.rejected"]
    assert emails.subjects == ["Your application for Llama Lite (Researchers) was not approved"]
    assert "Not a researcher." in emails.outbox[0].body


@pytest.mark.parametrize(
    ("reason", "code"), [("", "reason_missing"), ("  \n", "reason_missing"), ("x" * 2001, "reason_too_long")]
)
def test_a_rejection_needs_a_reason(reviewer, pending_application, reason, code, emails):
    with emails.on_commit() as callbacks, nothing_changes(), pytest.raises(InvalidInput) as error:
        application_reject(application_id=pending_application.pk, reviewer=reviewer, reason=reason)

    assert error.value.code == code
    assert callbacks == []
    assert emails.outbox == []


def test_a_refused_decision_sends_no_email(outsider, pending_application, emails):
    with emails.on_commit() as callbacks, pytest.raises(NotAllowed):
        application_approve(application_id=pending_application.pk, reviewer=outsider)

    assert callbacks == []
    assert emails.outbox == []


# --- Withdrawing ----------------------------------------------------------------------------


def test_an_applicant_may_withdraw_a_pending_application(
    researcher, application_tier, pending_application, submit
):
    since = last_audit_id()

    application_withdraw(application_id=pending_application.pk, user=researcher)

    pending_application.refresh_from_db()
    assert pending_application.status == Application.Status.WITHDRAWN
    assert pending_application.decided_at is not None
    assert audit_actions(since) == ["application.withdrawn"]
    # The pending slot is free again.
    assert submit(researcher, application_tier).status == Application.Status.PENDING


def test_withdrawing_twice_is_refused(researcher, pending_application):
    application_withdraw(application_id=pending_application.pk, user=researcher)

    with nothing_changes(), pytest.raises(InvalidTransition):
        application_withdraw(application_id=pending_application.pk, user=researcher)


def test_an_approved_application_cannot_be_withdrawn(researcher, reviewer, pending_application):
    application_approve(application_id=pending_application.pk, reviewer=reviewer)

    with nothing_changes(), pytest.raises(InvalidTransition):
        application_withdraw(application_id=pending_application.pk, user=researcher)

    assert Grant.objects.get(application=pending_application).status == Grant.Status.ACTIVE


def test_nobody_else_can_withdraw_an_application(reviewer, pending_application):
    with nothing_changes(), pytest.raises(Application.DoesNotExist):
        application_withdraw(application_id=pending_application.pk, user=reviewer)


def test_an_application_tier_with_a_short_review_promise_sets_an_earlier_due_date(
    researcher, release, submit
):
    tier = TierFactory(release=release, gate=Tier.Gate.APPLICATION, review_days=3)

    application = submit(researcher, tier)

    assert application.decision_due_at - application.submitted_at == timedelta(days=3)


@pytest.mark.django_db(transaction=True)
def test_two_racing_submissions_leave_one_pending_application(submit):
    tier = TierFactory(gate=Tier.Gate.APPLICATION)
    user = UserFactory(full_name="Racing Researcher")
    barrier = threading.Barrier(2)
    outcomes: list = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(submit(user, tier).status)
        except NotAllowed as error:
            outcomes.append(error.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["already_pending", Application.Status.PENDING]
    assert Application.objects.filter(user=user).count() == 1
    assert LicenseAcceptance.objects.filter(user=user).count() == 1
    assert AuditEvent.objects.filter(action="application.submitted").count() == 1
