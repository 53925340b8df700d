"""The review desk in headless Chromium (issue 4, point 9).

Two reviewers approve an application of a tier that needs two approvals: its assignee first, then
the other. An application returned for revision is edited and resubmitted by its applicant, who
sees both versions, and is then approved. Tasks run eagerly: the e-mails are not what this proves.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from access.models import Application, Grant
from access.services.applications import application_submit
from releases.models import Membership, Tier
from tests.factories import MembershipFactory, TierFactory, UserFactory

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"  # tests/factories.py UserFactory
QUESTIONS = [{"name": "dataset", "label": "Evaluation dataset", "type": "text", "required": True}]


@pytest.fixture
def second_reviewer(organization):
    user = UserFactory(email="erin@acme.example", full_name="Erin Reviewer")
    MembershipFactory(organization=organization, user=user, role=Membership.Role.REVIEWER)
    return user


def submitted_application(tier: Tier, researcher) -> Application:
    return application_submit(
        user=researcher,
        tier=tier,
        affiliation="University of Examples",
        intended_use="Measure refusal rates on a public red-teaming benchmark.",
        answers={"dataset": "HarmBench"},
        typed_name=researcher.full_name,
        seen_text_sha256=tier.license.current_version.text_sha256,
    )


def signed_in(new_page, site: str, user) -> Page:
    page = new_page()
    page.goto(f"{site}/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    return page


def open_from_queue(page: Page, site: str, application: Application) -> None:
    page.goto(f"{site}/review/")
    expect(page.locator("#queue")).to_contain_text(application.user.email)
    page.get_by_role("link", name=f"#{application.pk}").click()
    expect(page.get_by_role("heading", name=f"Application #{application.pk}")).to_be_visible()


def test_two_reviewers_approve_an_application_of_a_two_approval_tier(
    live_server, celery_eager, new_page, release, owner, reviewer, second_reviewer, researcher
):
    site = live_server.url
    tier = TierFactory(release=release, name="Researchers", approvals_required=2, questions=QUESTIONS)
    application = submitted_application(tier, researcher)
    application.refresh_from_db()
    assert application.status == Application.Status.PENDING
    assignee = application.assigned_to
    assert assignee in (reviewer, second_reviewer)
    other = second_reviewer if assignee == reviewer else reviewer

    first = signed_in(new_page, site, assignee)
    open_from_queue(first, site, application)
    expect(first.locator("#assignee")).to_contain_text(assignee.full_name)
    expect(first.locator("main")).to_contain_text("HarmBench")
    expect(first.locator("#approvals")).to_have_text("0 of 2")
    first.get_by_role("button", name="Approve").click()
    expect(first.locator(".messages")).to_contain_text(
        f"Your approval of application #{application.pk} is recorded; it needs 2 approvals."
    )
    expect(first.locator("#queue")).to_contain_text("1 of 2 approvals, yours included")
    first.get_by_role("link", name=f"#{application.pk}").click()
    expect(first.locator("h1 .status")).to_have_text("Pending review")
    expect(first.locator("#approvals")).to_have_text(f"1 of 2 ({assignee.full_name})")
    application.refresh_from_db()
    assert application.status == Application.Status.PENDING
    assert not Grant.objects.filter(user=researcher, tier=tier).exists()

    second = signed_in(new_page, site, other)
    open_from_queue(second, site, application)
    expect(second.locator("#approvals")).to_have_text(f"1 of 2 ({assignee.full_name})")
    second.get_by_role("button", name="Approve").click()
    expect(second.locator(".messages")).to_contain_text(f"Application #{application.pk} approved.")

    applicant = signed_in(new_page, site, researcher)
    applicant.goto(f"{site}/me/applications/{application.pk}/")
    expect(applicant.locator("#application-status")).to_have_text("Approved")
    application.refresh_from_db()
    assert application.status == Application.Status.APPROVED
    assert Grant.objects.filter(user=researcher, tier=tier).count() == 1


def test_a_returned_application_is_revised_resubmitted_and_approved(
    live_server, celery_eager, new_page, release, owner, reviewer, researcher
):
    site = live_server.url
    tier = TierFactory(release=release, name="Researchers", approvals_required=1, questions=QUESTIONS)
    application = submitted_application(tier, researcher)
    application.refresh_from_db()
    assert application.assigned_to == reviewer
    message = "Name the exact benchmark version you will use."

    desk = signed_in(new_page, site, reviewer)
    open_from_queue(desk, site, application)
    desk.fill("#id_return_message", message)
    desk.get_by_role("button", name="Return for revision").click()
    expect(desk.locator(".messages")).to_contain_text(
        f"Application #{application.pk} was returned to the applicant for revision."
    )

    applicant = signed_in(new_page, site, researcher)
    applicant.goto(f"{site}/me/applications/{application.pk}/")
    expect(applicant.locator("#application-status")).to_have_text("Returned for revision")
    expect(applicant.locator("main")).to_contain_text(message)
    applicant.locator("#edit-link").click()
    expect(applicant.locator("#reviewer-message")).to_contain_text(message)
    expect(applicant.locator("[name=q_dataset]")).to_have_value("HarmBench")
    applicant.fill("[name=q_dataset]", "HarmBench v1.1")
    applicant.get_by_role("button", name="Resubmit").click()
    expect(applicant.locator(".messages")).to_contain_text("Your application was resubmitted.")
    expect(applicant.locator("#application-status")).to_have_text("Pending review")
    # Both versions: the first as it was returned, the current one as resubmitted.
    earlier = applicant.locator("#version-1")
    expect(earlier).to_contain_text("HarmBench")
    expect(earlier).not_to_contain_text("HarmBench v1.1")
    expect(earlier).to_contain_text(f"Returned for revision: {message}")
    expect(applicant.locator("dl").first).to_contain_text("HarmBench v1.1")
    expect(applicant.locator(".history")).to_contain_text("Revised and resubmitted")

    open_from_queue(desk, site, application)
    expect(desk.locator("#version-1")).to_contain_text("HarmBench")
    expect(desk.locator("dl").first).to_contain_text("HarmBench v1.1")
    desk.get_by_role("button", name="Approve").click()
    expect(desk.locator(".messages")).to_contain_text(f"Application #{application.pk} approved.")

    applicant.reload()
    expect(applicant.locator("#application-status")).to_have_text("Approved")
    application.refresh_from_db()
    assert (application.status, application.revision) == (Application.Status.APPROVED, 2)
    assert Grant.objects.filter(user=researcher, tier=tier).count() == 1
