"""Automatic screening on submit: the rules, the report reviewers see, and the decisions it may take."""

from __future__ import annotations

import pytest
from django.urls import reverse

from access.errors import InvalidInput
from access.models import Application, AuditEvent, Grant, Review
from access.screening import (
    COUNTRY_DENY_LIST,
    EMAIL_ALLOW_LIST,
    EMAIL_DENY_LIST,
    MAX_DOMAINS,
    ORCID_RULE,
    application_screen,
    validate_screening_rules,
)
from access.tasks import screen_application
from releases.models import Tier
from tests.factories import TierFactory, UserFactory
from tests.helpers import audit_actions, last_audit_id
from tests.scenes import submit as submit_as_the_page_does

COUNTRY = {"name": "country", "label": "Country of residence", "type": "country", "required": False}
ORCID = {"name": "orcid", "label": "ORCID iD", "type": "orcid", "required": False}
# The first forms asked for an ORCID iD as plain text: screening is what checks it there.
LEGACY_ORCID = {"name": "orcid_text", "label": "ORCID iD", "type": "text"}
QUESTIONS = [COUNTRY, ORCID, LEGACY_ORCID]
VALID_ORCID = "0000-0002-1825-0097"


def screening_tier(release, *, rules: dict, **flags) -> Tier:
    return TierFactory(
        release=release,
        name="Screened researchers",
        gate=Tier.Gate.APPLICATION,
        questions=QUESTIONS,
        screening_rules=validate_screening_rules(rules, QUESTIONS),
        **flags,
    )


def applicant(email: str):
    return UserFactory(email=email, full_name="Sam Applicant")


@pytest.fixture
def submitted(submit, celery_eager, django_capture_on_commit_callbacks):
    """Submit as the apply page does and run what the submission enqueued (screening, e-mails)."""

    def submit_and_screen(user, tier: Tier, answers: dict | None = None) -> Application:
        with django_capture_on_commit_callbacks(execute=True):
            application = submit(user, tier, answers=answers or {})
        application.refresh_from_db()
        return application

    return submit_and_screen


def results(application: Application) -> dict[str, tuple[bool, bool]]:
    """Each rule's (passed, hard) in the report."""
    return {
        result["rule"]: (result["passed"], result["hard"])
        for result in application.screening_report["results"]
    }


# --- The rules as publishers set them -------------------------------------------------------


def test_rules_are_normalised():
    rules = validate_screening_rules(
        {
            "allowed_email_domains": ["  Example.EDU ", "@ac.uk", "example.edu", "ox.ac.uk."],
            "denied_email_domains": [],
            "denied_countries": ["kp", " IR", "KP"],
            "country_question": "country",
            "require_orcid": False,
            "soft_rules": [ORCID_RULE, EMAIL_ALLOW_LIST],
        },
        QUESTIONS,
    )

    assert rules == {
        "allowed_email_domains": ["example.edu", "ac.uk", "ox.ac.uk"],
        "denied_countries": ["KP", "IR"],
        "country_question": "country",
        "soft_rules": [EMAIL_ALLOW_LIST, ORCID_RULE],
    }


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([], "must be an object"),
        ({"allowed_domains": ["a.edu"]}, "Unknown screening rules: allowed_domains"),
        ({"allowed_email_domains": "example.edu"}, "must be a list"),
        ({"allowed_email_domains": ["exa mple.edu"]}, "'exa mple.edu' is not a domain name"),
        ({"allowed_email_domains": ["-bad.edu"]}, "is not a domain name"),
        ({"denied_email_domains": ["x" * 64 + ".com"]}, "is not a domain name"),
        (
            {"allowed_email_domains": ["gmail.com"], "denied_email_domains": ["GMAIL.com"]},
            "gmail.com is both allowed and denied",
        ),
        (
            {"denied_countries": ["XX"], "country_question": "country"},
            "'XX' is not an ISO 3166-1 country code",
        ),
        ({"denied_countries": ["KP"]}, "needs the name of a country question"),
        ({"denied_countries": ["KP"], "country_question": "orcid"}, "needs the name of a country question"),
        ({"require_orcid": True, "orcid_question": "country"}, "needs the name of an ORCID iD question"),
        ({"require_orcid": "yes"}, "require_orcid must be true or false"),
        ({"soft_rules": ["everything"]}, "Soft rules are a list of"),
    ],
)
def test_malformed_rules_are_refused_with_a_message_naming_the_problem(rules, message):
    with pytest.raises(InvalidInput) as error:
        validate_screening_rules(rules, QUESTIONS)

    assert message in error.value.message


def test_a_list_holds_at_most_200_domains():
    domains = [f"uni{n}.example" for n in range(MAX_DOMAINS)]
    assert (
        len(validate_screening_rules({"allowed_email_domains": domains}, [])["allowed_email_domains"]) == 200
    )

    with pytest.raises(InvalidInput) as error:
        validate_screening_rules({"allowed_email_domains": [*domains, "one-more.example"]}, [])

    assert error.value.message == "At most 200 allowed e-mail domains."


# --- The report -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "passed"),
    [
        ("sam@university.example", True),
        ("sam@cs.university.example", True),
        ("sam@CS.University.Example", True),
        ("sam@notuniversity.example", False),
        ("sam@university.example.evil.com", False),
        ("sam@gmail.com", False),
    ],
)
def test_the_allow_list_takes_its_domains_and_their_subdomains_only(release, submitted, email, passed):
    tier = screening_tier(release, rules={"allowed_email_domains": ["university.example"]})

    application = submitted(applicant(email), tier)

    assert results(application) == {EMAIL_ALLOW_LIST: (passed, True)}
    assert application.screening_report["passed"] is passed
    assert application.screened_at is not None


@pytest.mark.parametrize(
    ("email", "passed"),
    [("sam@mailinator.com", False), ("sam@eu.mailinator.com", False), ("sam@university.example", True)],
)
def test_the_deny_list_refuses_its_domains_and_their_subdomains(release, submitted, email, passed):
    tier = screening_tier(release, rules={"denied_email_domains": ["mailinator.com"]})

    application = submitted(applicant(email), tier)

    assert results(application) == {EMAIL_DENY_LIST: (passed, True)}


@pytest.mark.parametrize(
    ("answers", "passed", "message"),
    [
        ({"country": "DE"}, True, "The declared country, Germany (DE), is not restricted."),
        (
            {"country": "KP"},
            False,
            "Export restrictions: this tier takes no applications declaring North Korea (KP).",
        ),
        ({}, False, "No country was declared; this tier needs one to check export restrictions."),
    ],
)
def test_the_declared_country_is_checked_against_the_deny_list(
    release, submitted, researcher, answers, passed, message
):
    tier = screening_tier(release, rules={"denied_countries": ["KP", "IR"], "country_question": "country"})

    application = submitted(researcher, tier, answers)

    [result] = application.screening_report["results"]
    assert (result["rule"], result["passed"], result["hard"], result["message"]) == (
        COUNTRY_DENY_LIST,
        passed,
        True,
        message,
    )


@pytest.mark.parametrize(
    ("answer", "passed", "message"),
    [
        (VALID_ORCID, True, f"The ORCID iD {VALID_ORCID} is well-formed and its check digit is right."),
        (
            "0000-0002-1825-0098",
            False,
            "The ORCID iD '0000-0002-1825-0098' is not of the form 0000-0000-0000-000X "
            "with a right check digit.",
        ),
        ("orcid please", False, "is not of the form 0000-0000-0000-000X"),
        ("", False, "No ORCID iD was given; this tier requires one."),
    ],
)
def test_a_required_orcid_id_is_checked_for_format_and_checksum(
    release, submitted, researcher, answer, passed, message
):
    tier = screening_tier(release, rules={"require_orcid": True, "orcid_question": "orcid_text"})

    application = submitted(researcher, tier, {"orcid_text": answer})

    [result] = application.screening_report["results"]
    assert (result["rule"], result["passed"]) == (ORCID_RULE, passed)
    assert message in result["message"]


def test_a_tier_without_rules_gets_an_empty_report_that_passes(researcher, application_tier, submitted):
    application = submitted(researcher, application_tier)

    assert application.screening_report == {
        "revision": 1,
        "results": [],
        "passed": True,
        "hard_failed": False,
    }
    assert application.status == Application.Status.PENDING


def test_an_auto_approval_tier_decides_on_submit_and_is_not_screened(researcher, auto_tier, submitted):
    application = submitted(researcher, auto_tier)

    assert application.status == Application.Status.APPROVED
    assert application.screened_at is None


# --- What screening may decide --------------------------------------------------------------


def test_a_failed_hard_rule_waits_for_people_unless_the_tier_rejects_automatically(release, submitted):
    tier = screening_tier(release, rules={"denied_email_domains": ["mailinator.com"]})

    application = submitted(applicant("sam@mailinator.com"), tier)

    assert application.status == Application.Status.PENDING
    assert application.screening_report["hard_failed"] is True


def test_a_failed_hard_rule_rejects_with_its_reason_without_a_reviewer(release, submitted, mailoutbox):
    tier = screening_tier(
        release,
        rules={"denied_email_domains": ["mailinator.com"], "allowed_email_domains": ["example.edu"]},
        auto_reject_on_hard_rule=True,
    )
    since = last_audit_id()

    application = submitted(applicant("sam@mailinator.com"), tier)

    reason = (
        "This tier takes applications from addresses at example.edu; the applicant's address is at "
        "mailinator.com. This tier takes no applications from addresses at mailinator.com."
    )
    assert application.status == Application.Status.REJECTED
    assert application.decision_reason == reason
    assert not Review.objects.exists()
    assert not Grant.objects.exists()
    assert audit_actions(since) == [
        "license.accepted",
        "application.submitted",
        "application.screened",
        "application.rejected",
    ]
    rejected = AuditEvent.objects.get(action="application.rejected")
    assert rejected.actor is None
    assert rejected.payload == {"reason": reason, "automatic": True}
    assert [message.to for message in mailoutbox] == [["sam@mailinator.com"], ["sam@mailinator.com"]]
    assert reason in mailoutbox[-1].body


def test_a_failed_soft_rule_never_rejects(release, submitted):
    tier = screening_tier(
        release,
        rules={"allowed_email_domains": ["example.edu"], "soft_rules": [EMAIL_ALLOW_LIST]},
        auto_reject_on_hard_rule=True,
        auto_approve_on_screening=True,
    )

    application = submitted(applicant("sam@gmail.com"), tier)

    assert results(application) == {EMAIL_ALLOW_LIST: (False, False)}
    assert application.status == Application.Status.PENDING


def test_passing_every_rule_approves_automatically_and_creates_the_grant(release, submitted):
    tier = screening_tier(
        release,
        rules={
            "allowed_email_domains": ["example.edu"],
            "denied_countries": ["KP"],
            "country_question": "country",
            "require_orcid": True,
            "orcid_question": "orcid",
        },
        auto_approve_on_screening=True,
        auto_reject_on_hard_rule=True,
    )
    since = last_audit_id()

    application = submitted(applicant("sam@cs.example.edu"), tier, {"country": "FR", "orcid": VALID_ORCID})

    assert application.status == Application.Status.APPROVED
    grant = Grant.objects.get(application=application)
    assert grant.status == Grant.Status.ACTIVE
    assert not Review.objects.exists()
    assert audit_actions(since)[-3:] == ["application.screened", "grant.created", "application.approved"]
    assert AuditEvent.objects.get(action="application.approved").actor is None


def test_without_automatic_approval_a_passing_application_waits_for_people(release, submitted):
    tier = screening_tier(
        release, rules={"allowed_email_domains": ["example.edu"]}, auto_reject_on_hard_rule=True
    )

    application = submitted(applicant("sam@example.edu"), tier)

    assert application.screening_report["passed"] is True
    assert application.status == Application.Status.PENDING
    assert not Grant.objects.exists()


# --- Once per revision ----------------------------------------------------------------------


def test_a_second_run_changes_nothing(release, submitted):
    tier = screening_tier(release, rules={"denied_email_domains": ["mailinator.com"]})
    application = submitted(applicant("sam@mailinator.com"), tier)
    events = AuditEvent.objects.count()

    assert application_screen(application_id=application.pk) is False
    assert screen_application.delay(application.pk).get() is False

    application_again = Application.objects.get(pk=application.pk)
    assert application_again.screened_at == application.screened_at
    assert application_again.screening_report == application.screening_report
    assert AuditEvent.objects.count() == events


def test_a_resubmitted_revision_is_screened_again(release, submitted):
    tier = screening_tier(release, rules={"denied_email_domains": ["mailinator.com"]})
    application = submitted(applicant("sam@mailinator.com"), tier)
    Application.objects.filter(pk=application.pk).update(revision=2)

    assert application_screen(application_id=application.pk) is True

    application.refresh_from_db()
    assert application.screening_report["revision"] == 2


def test_a_withdrawn_application_is_screened_but_not_decided(release, submit, researcher):
    tier = screening_tier(
        release, rules={"allowed_email_domains": ["example.edu"]}, auto_reject_on_hard_rule=True
    )
    application = submit(researcher, tier)
    Application.objects.filter(pk=application.pk).update(status=Application.Status.WITHDRAWN)

    assert application_screen(application_id=application.pk) is True

    application.refresh_from_db()
    assert application.status == Application.Status.WITHDRAWN
    assert application.screening_report["hard_failed"] is True


def test_an_unknown_application_is_left_alone(db):
    events = AuditEvent.objects.count()

    assert application_screen(application_id=987654) is False
    assert AuditEvent.objects.count() == events


def test_submitting_enqueues_screening_after_commit(
    researcher, application_tier, submit, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        application = submit(researcher, application_tier)

    screenings = [
        callback for callback in callbacks if callback.func.__self__.name == screen_application.name
    ]
    assert [callback.args for callback in screenings] == [(application.pk,)]
    application.refresh_from_db()
    assert application.screened_at is None


# --- What reviewers see ---------------------------------------------------------------------


def test_the_review_page_shows_the_report(client, reviewer, release, submitted):
    tier = screening_tier(
        release,
        rules={
            "allowed_email_domains": ["example.edu"],
            "soft_rules": [EMAIL_ALLOW_LIST],
            "denied_countries": ["KP"],
            "country_question": "country",
        },
    )
    application = submitted(applicant("sam@gmail.com"), tier, {"country": "NO"})
    client.force_login(reviewer)

    page = client.get(reverse("review-application", args=[application.pk])).content.decode()

    assert "a soft rule failed; decide with care" in page
    assert (
        '<tr data-rule="email_domain_allow_list" class="failed">\n'
        "        <td>E-mail domain on the allow list</td>\n"
        "        <td>soft</td>\n"
        "        <td>failed</td>"
    ) in page
    assert "The declared country, Norway (NO), is not restricted." in page
    assert "Screened automatically" in page


def test_the_review_page_says_when_screening_has_not_run_yet(client, reviewer, pending_application):
    client.force_login(reviewer)

    page = client.get(reverse("review-application", args=[pending_application.pk])).content.decode()

    assert "Not screened yet" in page


@pytest.mark.worker
def test_a_real_worker_screens_and_rejects_once_however_often_the_task_is_delivered(celery_worker, release):
    tier = screening_tier(
        release, rules={"denied_email_domains": ["mailinator.com"]}, auto_reject_on_hard_rule=True
    )
    application = submit_as_the_page_does(applicant("sam@mailinator.com"), tier)
    celery_worker.wait_until_idle()

    # What the broker does when a worker dies after screening but before acknowledging.
    screen_application.delay(application.pk)
    screen_application.delay(application.pk)
    celery_worker.wait_until_idle()

    application.refresh_from_db()
    assert application.status == Application.Status.REJECTED
    assert application.decision_reason == "This tier takes no applications from addresses at mailinator.com."
    assert AuditEvent.objects.filter(action="application.screened", target_id=application.pk).count() == 1
    assert AuditEvent.objects.filter(action="application.rejected", target_id=application.pk).count() == 1
