"""The reviewers' endpoints of /api/v1/: the queue by status, one application, approve, reject,
grant directly, revoke, and a tier's grants as JSON and CSV. The rows and audit events they
leave are those of the review pages; refusals are JSON errors with nothing changed."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from access import policy
from access.models import Application, AuditEvent, Grant, Invitation, Notification
from access.services.grants import tier_license_accept
from access.services.licenses import license_version_publish
from releases.models import Membership, Tier
from tests.factories import MembershipFactory, TierFactory, UserFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes
from tests.scenes import approved_grant, new_token, reject, submit

API = "/api/v1"


@pytest.fixture(autouse=True)
def fresh_rate_limit_counters():
    cache.clear()


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def manage_token(user) -> str:
    return new_token(user, name="review script", scopes=("manage",))[1]


def post(client, path: str, raw: str, body: dict | None = None):
    return client.post(API + path, body or {}, content_type="application/json", **bearer(raw))


def get(client, path: str, raw: str, **params):
    return client.get(API + path, params, **bearer(raw))


def researchers(count: int, *, first: int = 0) -> list:
    return [
        UserFactory(email=f"r{n}@university.example", full_name=f"Researcher {n}")
        for n in range(first, first + count)
    ]


def submitted(users, tier: Tier, *, start=None) -> list[Application]:
    """One application per user, each a day younger than the previous, oldest first."""
    start = start or timezone.now() - timedelta(days=30)
    applications = []
    for offset, user in enumerate(users):
        application = submit(user, tier)
        Application.objects.filter(pk=application.pk).update(submitted_at=start + timedelta(days=offset))
        applications.append(application)
    return applications


def queries_for(callable_) -> int:
    callable_()  # The first use of a token records when it was used; measure the steady state.
    with CaptureQueriesContext(connection) as captured:
        response = callable_()
    assert response.status_code == 200, response.content
    return len(captured)


# --- Who may call ----------------------------------------------------------------------------


REVIEWER_CALLS = [
    ("get", "/orgs/acme/applications"),
    ("get", "/applications/{application}/review"),
    ("post", "/applications/{application}/approve"),
    ("post", "/applications/{application}/reject"),
    ("post", "/tiers/{tier}/grants"),
    ("get", "/tiers/{tier}/grants"),
    ("get", "/tiers/{tier}/grants.csv"),
    ("post", "/grants/{grant}/revoke"),
]


@pytest.fixture
def world(application_tier, reviewer, researcher):
    """A pending application and a grant on the organization's application tier."""
    application = submit(researcher, application_tier)
    grant = approved_grant(UserFactory(full_name="Grace Holder"), application_tier, reviewer)
    return {"application": application.pk, "tier": application_tier.pk, "grant": grant.pk}


BODIES = {"reject": {"reason": "No."}, "revoke": {"reason": "No."}, "grants": {"email": "x@example.org"}}


def call(client, method: str, path: str, raw: str, world: dict):
    path = path.format(**world)
    if method == "get":
        return get(client, path, raw)
    return post(client, path, raw, BODIES.get(path.rsplit("/", 1)[-1]))


@pytest.mark.parametrize(("method", "path"), REVIEWER_CALLS)
def test_researchers_token_gets_403_not_reviewer_and_changes_nothing(client, world, researcher, method, path):
    raw = manage_token(researcher)

    with nothing_changes():
        response = call(client, method, path, raw, world)

    assert response.status_code == 403
    assert response.json()["error"] == "not_reviewer"


@pytest.mark.parametrize(("method", "path"), REVIEWER_CALLS)
def test_reviewer_of_another_organization_gets_404(client, world, outsider, method, path):
    raw = manage_token(outsider)

    with nothing_changes():
        response = call(client, method, path, raw, world)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_token_without_the_manage_scope_is_refused(client, world, reviewer):
    raw = new_token(reviewer, scopes=("read", "download"))[1]

    with nothing_changes():
        response = post(client, f"/applications/{world['application']}/approve", raw)

    assert response.status_code == 403
    assert response.json()["error"] == "token_scope_missing"


# --- The queue -------------------------------------------------------------------------------


def test_queue_lists_applications_awaiting_a_decision_oldest_first(client, application_tier, reviewer):
    applications = submitted(researchers(3), application_tier)
    reject(applications[1], reviewer, "Out of scope.")

    response = get(client, "/orgs/acme/applications", manage_token(reviewer))

    body = response.json()
    assert response.status_code == 200
    assert [item["id"] for item in body["items"]] == [applications[0].pk, applications[2].pk]
    assert body["count"] == 2
    first = body["items"][0]
    assert first["applicant"]["email"] == "r0@university.example"
    assert first["tier"] == {
        "id": application_tier.pk,
        "name": "Researchers",
        "gate": "application",
        "model": "acme/llama-lite",
        "release": "v1.0",
    }
    assert first["assigned_to"]["email"] == reviewer.email


def test_queue_filters_by_status_and_tier(client, release, application_tier, reviewer):
    other_tier = TierFactory(release=release, name="Students", gate=Tier.Gate.APPLICATION)
    users = researchers(3)
    mine = submitted(users[:2], application_tier)
    submitted(users[2:], other_tier)
    reject(mine[0], reviewer, "Out of scope.")
    raw = manage_token(reviewer)

    rejected = get(client, "/orgs/acme/applications", raw, status="rejected").json()
    in_tier = get(client, "/orgs/acme/applications", raw, tier=application_tier.pk).json()

    assert [(item["id"], item["decision_reason"]) for item in rejected["items"]] == [
        (mine[0].pk, "Out of scope.")
    ]
    assert [item["id"] for item in in_tier["items"]] == [mine[1].pk]


def test_queue_query_count_is_the_same_for_one_application_and_many(client, application_tier, reviewer):
    raw = manage_token(reviewer)
    submitted(researchers(1), application_tier)
    one = queries_for(lambda: get(client, "/orgs/acme/applications", raw))
    submitted(researchers(7, first=1), application_tier)
    many = queries_for(lambda: get(client, "/orgs/acme/applications", raw))

    assert get(client, "/orgs/acme/applications", raw).json()["count"] == 8
    assert many == one


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"status": "sleeping"}, 422, "invalid_input"),
        ({"limit": 0}, 400, "pagination_out_of_range"),
        ({"offset": -1}, 400, "pagination_out_of_range"),
        ({"tier": 999999}, 404, "not_found"),
    ],
    ids=["unknown-status", "limit-zero", "negative-offset", "foreign-tier"],
)
def test_bad_queue_parameters_are_json_errors(client, application_tier, reviewer, params, status, code):
    response = get(client, "/orgs/acme/applications", manage_token(reviewer), **params)

    assert response.status_code == status
    assert response.json()["error"] == code


# --- One application -------------------------------------------------------------------------


def test_review_shows_what_the_review_page_shows(client, release, reviewer, researcher):
    questions = [{"name": "dataset", "label": "Evaluation dataset", "type": "text", "required": True}]
    tier = TierFactory(release=release, name="Researchers", questions=questions, approvals_required=2)
    application = submit(researcher, tier, answers={"dataset": "HarmBench"})

    response = get(client, f"/applications/{application.pk}/review", manage_token(reviewer))

    body = response.json()
    assert response.status_code == 200
    assert body["application"]["status"] == "pending"
    assert body["application"]["applicant"] == {
        "id": researcher.pk,
        "email": researcher.email,
        "full_name": "Dana Researcher",
    }
    assert body["answers"] == [{"name": "dataset", "label": "Evaluation dataset", "value": "HarmBench"}]
    assert body["license_acceptance"]["typed_name"] == "Dana Researcher"
    assert body["license_acceptance"]["text_sha256"] == tier.license.current_version.text_sha256
    assert [event["action"] for event in body["history"]][:1] == ["application.submitted"]
    assert body["review"]["approvals"] == 0
    assert body["review"]["approvals_required"] == 2
    assert body["review"]["approve_refusal"] is None
    assert body["review"]["own_application"] is False


def test_review_says_why_the_caller_may_not_decide(client, application_tier, reviewer, researcher):
    """An application assigned to another reviewer: the page's refusal, as data."""
    application = submit(researcher, application_tier)
    colleague = UserFactory(full_name="Erin Colleague")
    MembershipFactory(organization=application_tier.release.model.organization, user=colleague)
    assert application.assigned_to == reviewer

    review = get(client, f"/applications/{application.pk}/review", manage_token(colleague)).json()["review"]

    assert review["approve_refusal"]["code"] == "assigned_to_other"
    assert review["claim_refusal"]["code"] == "assigned_to_other"


# --- Decisions -------------------------------------------------------------------------------


def test_approve_approves_and_grants_like_the_review_page(client, application_tier, reviewer, researcher):
    application = submit(researcher, application_tier)
    raw = manage_token(reviewer)
    since = last_audit_id()

    response = post(client, f"/applications/{application.pk}/approve", raw, {"reason": "Fine."})

    body = response.json()
    grant = Grant.objects.get(application=application)
    assert response.status_code == 200
    assert (body["outcome"], body["grant_id"], body["application"]["status"]) == (
        "approved",
        grant.pk,
        "approved",
    )
    assert (grant.user, grant.status) == (researcher, Grant.Status.ACTIVE)
    assert audit_actions(since) == ["grant.created", "application.approved"]
    assert AuditEvent.objects.get(action="application.approved").actor == reviewer


def test_approve_without_a_body_works(client, application_tier, reviewer, researcher):
    application = submit(researcher, application_tier)

    # What curl -X POST sends: no body at all, Content-Length 0.
    response = client.generic(
        "POST", f"{API}/applications/{application.pk}/approve", **bearer(manage_token(reviewer))
    )

    assert response.status_code == 200
    assert response.json()["outcome"] == "approved"


def test_approval_on_a_two_approval_tier_is_recorded_without_a_grant(client, release, reviewer, researcher):
    tier = TierFactory(release=release, name="Researchers", approvals_required=2)
    application = submit(researcher, tier)

    response = post(client, f"/applications/{application.pk}/approve", manage_token(reviewer))

    assert response.status_code == 200
    assert response.json()["outcome"] == "approval_recorded"
    assert response.json()["grant_id"] is None
    assert not Grant.objects.filter(user=researcher).exists()


def test_approving_a_decided_application_is_a_409_with_nothing_changed(
    client, application_tier, reviewer, researcher
):
    application = submit(researcher, application_tier)
    raw = manage_token(reviewer)
    post(client, f"/applications/{application.pk}/approve", raw)

    with nothing_changes():
        response = post(client, f"/applications/{application.pk}/approve", raw)

    assert response.status_code == 409
    assert response.json()["error"] == "invalid_transition"


def test_reject_needs_a_reason(client, application_tier, reviewer, researcher):
    application = submit(researcher, application_tier)
    raw = manage_token(reviewer)

    with nothing_changes():
        response = post(client, f"/applications/{application.pk}/reject", raw, {"reason": " "})

    assert response.status_code == 400
    assert response.json()["error"] == "reason_missing"


def test_reject_rejects_with_the_reason_shown_to_the_applicant(
    client, application_tier, reviewer, researcher
):
    application = submit(researcher, application_tier)
    raw = manage_token(reviewer)
    since = last_audit_id()

    response = post(client, f"/applications/{application.pk}/reject", raw, {"reason": "Out of scope."})

    application.refresh_from_db()
    assert response.status_code == 200
    assert response.json()["outcome"] == "rejected"
    assert (application.status, application.decision_reason) == ("rejected", "Out of scope.")
    assert audit_actions(since) == ["application.rejected"]
    assert policy.tier_standing(researcher, application_tier).code == "rejected"


def test_a_body_that_is_not_json_is_refused(client, application_tier, reviewer, researcher):
    application = submit(researcher, application_tier)
    raw = manage_token(reviewer)

    with nothing_changes():
        response = client.post(
            f"{API}/applications/{application.pk}/reject",
            "reason=no",
            content_type="application/x-www-form-urlencoded",
            **bearer(raw),
        )

    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


# --- Granting directly -----------------------------------------------------------------------


def grant_to(client, tier, raw, email):
    return post(client, f"/tiers/{tier.pk}/grants", raw, {"email": email})


def test_direct_grant_approves_a_pending_application(client, application_tier, reviewer, researcher):
    application = submit(researcher, application_tier)

    response = grant_to(client, application_tier, manage_token(reviewer), "DANA@university.example")

    body = response.json()
    assert response.status_code == 200
    assert (body["outcome"], body["application_id"]) == ("approved", application.pk)
    assert Grant.objects.get(pk=body["grant_id"]).application == application


def test_direct_grant_rests_on_a_license_acceptance_already_given(
    client, application_tier, reviewer, researcher
):
    """Rejected once (having accepted the license to apply): the reviewer changes their mind."""
    application = submit(researcher, application_tier)
    reject(application, reviewer, "Out of scope.")
    raw = manage_token(reviewer)
    since = last_audit_id()

    response = grant_to(client, application_tier, raw, researcher.email)

    body = response.json()
    grant = Grant.objects.get(user=researcher, tier=application_tier)
    assert response.status_code == 200
    assert (body["outcome"], body["grant_id"]) == ("granted", grant.pk)
    assert grant.license_acceptance == application.license_acceptance
    assert audit_actions(since) == ["grant.created", "grant.granted_directly"]
    assert AuditEvent.objects.get(action="grant.granted_directly").actor == reviewer
    assert Notification.objects.filter(user=researcher, kind="grant_created").exists()
    assert policy.tier_standing(researcher, application_tier).code == "approved"


def test_direct_grant_invites_someone_without_an_account(client, application_tier, reviewer):
    response = grant_to(client, application_tier, manage_token(reviewer), "newcomer@lab.example")

    body = response.json()
    invitation = Invitation.objects.get(tier=application_tier)
    assert response.status_code == 200
    assert (body["outcome"], body["invitation_id"], body["grant_id"]) == ("invited", invitation.pk, None)
    assert (invitation.email, invitation.invited_by, invitation.accepted_at) == (
        "newcomer@lab.example",
        reviewer,
        None,
    )
    assert not Grant.objects.exists()


def test_an_invited_person_accepts_the_license_on_the_tier_page_and_gets_the_grant(
    client, application_tier, reviewer
):
    grant_to(client, application_tier, manage_token(reviewer), "newcomer@lab.example")
    newcomer = UserFactory(email="newcomer@lab.example", full_name="Nina Newcomer")
    client.force_login(newcomer)

    page = client.get(f"/tiers/{application_tier.pk}/")
    accepted = client.post(
        f"/tiers/{application_tier.pk}/accept/",
        {"typed_name": "Nina Newcomer", "text_sha256": application_tier.license.current_version.text_sha256},
    )

    assert page.context["standing"].code == "invited"
    assert f'action="/tiers/{application_tier.pk}/accept/"' in page.content.decode()
    assert accepted.status_code == 302
    grant = Grant.objects.get(user=newcomer, tier=application_tier)
    assert grant.license_acceptance.typed_name == "Nina Newcomer"
    assert Invitation.objects.get(tier=application_tier).accepted_at is not None
    assert policy.tier_standing(newcomer, application_tier).code == "approved"


def test_an_invitation_after_a_license_change_wins_over_a_rejection(
    client, application_tier, reviewer, researcher
):
    reject(submit(researcher, application_tier), reviewer, "Out of scope.")
    license_version_publish(
        license=application_tier.license, text="New terms.", requires_reacceptance=True, actor=reviewer
    )

    response = grant_to(client, application_tier, manage_token(reviewer), researcher.email)

    assert response.json()["outcome"] == "invited"
    assert policy.tier_standing(researcher, application_tier).code == "invited"
    grant = tier_license_accept(
        user=researcher,
        tier=application_tier,
        typed_name=researcher.full_name,
        seen_text_sha256=application_tier.license.current_version.text_sha256,
    )
    assert grant.license_acceptance.license_version.number == 2


def test_an_invitation_to_an_application_tier_is_needed_to_accept_its_license(application_tier, researcher):
    refusal = policy.license_acceptance_refusal(researcher, application_tier)

    assert refusal.code == "no_click_through"


@pytest.mark.parametrize(
    ("email", "status", "code"),
    [
        ("not-an-address", 400, "invalid_email"),
        ("bob@acme.example", 403, "own_grant"),
        ("grace@holder.example", 409, "already_granted"),
    ],
    ids=["invalid-email", "own-address", "already-granted"],
)
def test_direct_grant_refusals_change_nothing(client, application_tier, reviewer, email, status, code):
    approved_grant(UserFactory(email="grace@holder.example"), application_tier, reviewer)
    raw = manage_token(reviewer)

    with nothing_changes():
        response = grant_to(client, application_tier, raw, email)

    assert response.status_code == status
    assert response.json()["error"] == code


def test_direct_grant_on_an_open_tier_is_refused(client, release, reviewer):
    tier = TierFactory(release=release, gate=Tier.Gate.OPEN, license=None)
    raw = manage_token(reviewer)

    with nothing_changes():
        response = grant_to(client, tier, raw, "someone@lab.example")

    assert response.status_code == 400
    assert response.json()["error"] == "open_tier"


def test_inviting_twice_is_a_409(client, application_tier, reviewer):
    raw = manage_token(reviewer)
    grant_to(client, application_tier, raw, "newcomer@lab.example")

    with nothing_changes():
        response = grant_to(client, application_tier, raw, "Newcomer@lab.example")

    assert response.status_code == 409
    assert response.json()["error"] == "already_invited"


def test_direct_grant_missing_email_is_422(client, application_tier, reviewer):
    raw = manage_token(reviewer)

    with nothing_changes():
        response = post(client, f"/tiers/{application_tier.pk}/grants", raw, {})

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_input"


# --- Revoking and exporting ------------------------------------------------------------------


def test_revoke_revokes_at_once_with_the_reason(client, application_tier, reviewer, researcher):
    grant = approved_grant(researcher, application_tier, reviewer)
    raw = manage_token(reviewer)
    since = last_audit_id()

    response = post(client, f"/grants/{grant.pk}/revoke", raw, {"reason": "Shared the weights."})

    body = response.json()
    grant.refresh_from_db()
    assert response.status_code == 200
    assert (body["status"], body["revoked_by"], body["revoke_reason"]) == (
        "revoked",
        reviewer.email,
        "Shared the weights.",
    )
    assert (grant.status, grant.revoked_by) == (Grant.Status.REVOKED, reviewer)
    assert audit_actions(since) == ["grant.revoked"]
    assert policy.tier_standing(researcher, application_tier).code == "revoked"


@pytest.mark.parametrize(
    ("reason", "revoked_first", "status", "code"),
    [("", False, 400, "invalid_input"), ("Again.", True, 409, "invalid_transition")],
    ids=["no-reason", "already-revoked"],
)
def test_revoke_refusals_change_nothing(
    client, application_tier, reviewer, researcher, reason, revoked_first, status, code
):
    grant = approved_grant(researcher, application_tier, reviewer)
    raw = manage_token(reviewer)
    if revoked_first:
        post(client, f"/grants/{grant.pk}/revoke", raw, {"reason": "First."})

    with nothing_changes():
        response = post(client, f"/grants/{grant.pk}/revoke", raw, {"reason": reason})

    assert response.status_code == status
    assert response.json()["error"] == code


def test_tier_grants_are_listed_newest_first_and_filtered(client, application_tier, reviewer):
    holders = researchers(3)
    grants = [approved_grant(user, application_tier, reviewer) for user in holders]
    raw = manage_token(reviewer)
    post(client, f"/grants/{grants[0].pk}/revoke", raw, {"reason": "Left the lab."})

    every = get(client, f"/tiers/{application_tier.pk}/grants", raw).json()
    revoked = get(client, f"/tiers/{application_tier.pk}/grants", raw, status="revoked").json()

    assert [item["id"] for item in every["items"]] == [grant.pk for grant in reversed(grants)]
    assert every["items"][0]["user"]["email"] == "r2@university.example"
    assert every["items"][0]["license_version"] == 1
    assert [(item["id"], item["revoke_reason"]) for item in revoked["items"]] == [
        (grants[0].pk, "Left the lab.")
    ]


def test_tier_grants_query_count_is_the_same_for_one_grant_and_many(client, application_tier, reviewer):
    raw = manage_token(reviewer)
    path = f"/tiers/{application_tier.pk}/grants"
    holders = researchers(6)
    approved_grant(holders[0], application_tier, reviewer)
    one = queries_for(lambda: get(client, path, raw))
    for user in holders[1:]:
        approved_grant(user, application_tier, reviewer)
    many = queries_for(lambda: get(client, path, raw))

    assert many == one


def test_tier_grants_csv_is_the_pages_audited_export(client, application_tier, reviewer, researcher):
    grant = approved_grant(researcher, application_tier, reviewer)
    raw = manage_token(reviewer)
    since = last_audit_id()

    response = get(client, f"/tiers/{application_tier.pk}/grants.csv", raw)

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert [(row["grant_id"], row["email"], row["status"]) for row in rows] == [
        (str(grant.pk), researcher.email, "active")
    ]
    assert audit_actions(since) == ["tier.grants_exported"]
    assert AuditEvent.objects.get(action="tier.grants_exported").actor == reviewer


def test_session_callers_need_the_csrf_token_to_decide(application_tier, reviewer, researcher):
    from django.test import Client

    application = submit(researcher, application_tier)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(reviewer)

    with nothing_changes():
        response = browser.post(
            f"{API}/applications/{application.pk}/approve", content_type="application/json"
        )

    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"


def test_an_owner_reviews_too(client, application_tier, owner, researcher):
    application = submit(researcher, application_tier)

    response = post(client, f"/applications/{application.pk}/approve", manage_token(owner))

    assert Membership.objects.get(user=owner).role == Membership.Role.OWNER
    assert response.status_code == 200
    assert response.json()["outcome"] == "approved"
