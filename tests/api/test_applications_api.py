"""POST /api/v1/tiers/{id}/applications and the caller's own applications: the service the apply
page calls, with the license acceptance checked against the text read; every bad input is a
JSON error with a stable code, and nothing is written."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from access.models import AccessToken, Application, Grant, LicenseAcceptance
from access.services.licenses import license_version_publish
from access.services.tokens import token_create, token_revoke
from releases.models import Tier
from tests.factories import TierFactory, UserFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes
from tests.scenes import approve, reject, submit

QUESTIONS = [
    {"name": "orcid", "label": "ORCID iD", "type": "orcid", "required": True},
    {"name": "ethics", "label": "I will not misuse it", "type": "attestation", "required": True},
    {"name": "topics", "label": "Topics", "type": "multiple_choice", "choices": ["safety", "bias"]},
]
ANSWERS = {"orcid": "https://orcid.org/0000-0002-1825-0097", "ethics": True, "topics": ["bias", "safety"]}


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def token(user, scopes=("read", "download")) -> str:
    return token_create(user=user, name="script", scopes=list(scopes))[1]


@pytest.fixture(autouse=True)
def fresh_rate_limit_counters():
    cache.clear()


@pytest.fixture
def tier(release):
    return TierFactory(release=release, name="Researchers", gate=Tier.Gate.APPLICATION, questions=QUESTIONS)


def body_for(tier: Tier, **overrides) -> dict:
    body = {
        "affiliation": "University of Examples",
        "intended_use": "Measure refusals on a red-teaming benchmark.",
        "answers": dict(ANSWERS),
        "license": {"typed_name": "Dana Researcher", "text_sha256": tier.license.current_version.text_sha256},
    }
    body.update(overrides)
    return body


def apply(client, tier: Tier, raw: str, body: dict | None = None):
    return client.post(
        f"/api/v1/tiers/{tier.pk}/applications",
        body if body is not None else body_for(tier),
        content_type="application/json",
        **bearer(raw),
    )


# --- Submitting -----------------------------------------------------------------------------------


def test_application_is_submitted_with_answers_and_license_acceptance(client, tier, researcher):
    raw = token(researcher)
    since = last_audit_id()

    response = apply(client, tier, raw)

    body = response.json()
    assert response.status_code == 201
    application = Application.objects.get(user=researcher, tier=tier)
    assert (body["id"], body["status"], body["tier_id"], body["model"]) == (
        application.pk,
        "pending",
        tier.pk,
        "acme/llama-lite",
    )
    assert body["decision_expected_at"].startswith(application.decision_due_at.strftime("%Y-%m-%dT%H:%M"))
    assert body["submitted_at"].startswith(application.submitted_at.strftime("%Y-%m-%dT%H:%M"))
    # Stored as the service cleans them: the bare ORCID iD, choices in the listed order.
    assert application.answers == {
        "orcid": "0000-0002-1825-0097",
        "ethics": True,
        "topics": ["safety", "bias"],
    }
    acceptance = application.license_acceptance
    assert (acceptance.typed_name, acceptance.text_sha256, acceptance.ip_address) == (
        "Dana Researcher",
        tier.license.current_version.text_sha256,
        "127.0.0.1",
    )
    assert audit_actions(since) == ["license.accepted", "application.submitted"]


def test_automatic_tier_approves_at_once(client, release, researcher):
    tier = TierFactory(release=release, gate=Tier.Gate.APPLICATION, approval=Tier.Approval.AUTO)
    raw = token(researcher)

    response = apply(client, tier, raw, body_for(tier, answers={}))

    assert response.status_code == 201
    assert (response.json()["status"], response.json()["decision_expected_at"]) == ("approved", None)
    assert Grant.objects.active().filter(user=researcher, tier=tier).exists()


def test_session_caller_applies_with_its_csrf_token(tier, researcher):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(researcher)
    browser.get(f"/tiers/{tier.pk}/apply/")  # The form page sets the CSRF cookie.
    csrf = browser.cookies["csrftoken"].value

    response = browser.post(
        f"/api/v1/tiers/{tier.pk}/applications",
        json.dumps(body_for(tier)),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf,
    )

    assert response.status_code == 201
    assert Application.objects.filter(user=researcher, tier=tier).count() == 1


# --- Bad input and refusals: a code, and nothing written --------------------------------------------


@pytest.mark.parametrize(
    ("answers", "status", "code"),
    [
        ({**ANSWERS, "nickname": "dana"}, 400, "unknown_question"),
        ({**ANSWERS, "ethics": "maybe"}, 400, "answer_invalid"),
        ({**ANSWERS, "orcid": 1234}, 400, "answer_invalid"),
        ({**ANSWERS, "topics": "safety"}, 400, "answer_invalid"),
        ({**ANSWERS, "topics": ["weather"]}, 400, "answer_invalid"),
        ({**ANSWERS, "orcid": "0000-0002-1825-0098"}, 400, "answer_invalid"),
        ({"ethics": True}, 400, "answer_missing"),
        (["not", "an", "object"], 422, "invalid_input"),
    ],
    ids=[
        "unknown-id",
        "attestation-text",
        "number",
        "choices-not-list",
        "unknown-choice",
        "bad-orcid",
        "missing",
        "list",
    ],
)
def test_bad_answers_are_refused(client, tier, researcher, answers, status, code):
    raw = token(researcher)

    with nothing_changes():
        response = apply(client, tier, raw, body_for(tier, answers=answers))

    assert response.status_code == status
    assert response.json()["error"] == code


@pytest.mark.parametrize(
    ("license", "status", "code"),
    [
        ({"typed_name": "Dana Researcher"}, 422, "invalid_input"),
        ({"typed_name": "Dana Researcher", "text_sha256": "not-a-hash"}, 422, "invalid_input"),
        ({"typed_name": "Someone Else", "text_sha256": None}, 400, "typed_name_mismatch"),
        ({"typed_name": "   ", "text_sha256": None}, 400, "typed_name_missing"),
    ],
    ids=["hash-missing", "hash-malformed", "wrong-name", "blank-name"],
)
def test_bad_license_acceptance_is_refused(client, tier, researcher, license, status, code):
    raw = token(researcher)
    if license.get("text_sha256", "") is None:
        license["text_sha256"] = tier.license.current_version.text_sha256

    with nothing_changes():
        response = apply(client, tier, raw, body_for(tier, license=license))

    assert response.status_code == status
    assert response.json()["error"] == code


def test_license_changed_since_it_was_read_is_refused(client, tier, researcher):
    raw = token(researcher)
    read = client.get(f"/api/v1/tiers/{tier.pk}/license").json()
    license_version_publish(license=tier.license, text="A stricter text, published meanwhile.")

    with nothing_changes():
        response = apply(
            client,
            tier,
            raw,
            body_for(tier, license={"typed_name": "Dana Researcher", "text_sha256": read["text_sha256"]}),
        )

    body = response.json()
    assert response.status_code == 409
    assert body["error"] == "license_changed"
    assert body["action_url"] == f"http://testserver/tiers/{tier.pk}/apply/"
    assert not LicenseAcceptance.objects.filter(user=researcher).exists()


@pytest.mark.parametrize(
    ("field", "value", "status", "code"),
    [
        ("affiliation", "   ", 400, "affiliation"),
        ("intended_use", "", 400, "intended_use"),
        ("affiliation", "x" * 201, 422, "invalid_input"),
    ],
)
def test_bad_statement_is_refused(client, tier, researcher, field, value, status, code):
    raw = token(researcher)

    with nothing_changes():
        response = apply(client, tier, raw, body_for(tier, **{field: value}))

    assert response.status_code == status
    assert response.json()["error"] == code


def test_second_application_while_one_is_pending_is_refused(client, tier, researcher):
    raw = token(researcher)
    assert apply(client, tier, raw).status_code == 201

    with nothing_changes():
        response = apply(client, tier, raw)

    assert response.status_code == 403
    assert response.json()["error"] == "already_pending"


def test_unverified_account_is_sent_to_verify_its_address(client, tier):
    user = UserFactory(full_name="Dana Researcher", verified=False)
    # An unverified account cannot create a token; its browser session calls the API.
    client.force_login(user)

    with nothing_changes():
        response = client.post(
            f"/api/v1/tiers/{tier.pk}/applications", body_for(tier), content_type="application/json"
        )

    assert response.status_code == 403
    assert response.json()["error"] == "email_unverified"
    assert response.json()["action_url"] == "http://testserver/accounts/email/"


def test_unknown_tier_answers_404(client, tier, researcher):
    raw = token(researcher)

    with nothing_changes():
        response = client.post(
            f"/api/v1/tiers/{tier.pk + 1000}/applications",
            body_for(tier),
            content_type="application/json",
            **bearer(raw),
        )

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_wrong_content_type_is_refused(client, tier, researcher):
    raw = token(researcher)

    with nothing_changes():
        response = client.post(
            f"/api/v1/tiers/{tier.pk}/applications",
            data="affiliation=Uni&intended_use=Research",
            content_type="application/x-www-form-urlencoded",
            **bearer(raw),
        )

    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_body_that_is_not_json_is_refused(client, tier, researcher):
    raw = token(researcher)

    with nothing_changes():
        response = client.post(
            f"/api/v1/tiers/{tier.pk}/applications",
            data='{"affiliation": "Uni", ',
            content_type="application/json",
            **bearer(raw),
        )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


def test_body_over_the_size_limit_is_refused(client, tier, researcher, settings):
    raw = token(researcher)
    body = body_for(tier, intended_use="x" * (settings.API_MAX_BODY_BYTES + 1))

    with nothing_changes():
        response = apply(client, tier, raw, body)

    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


@pytest.mark.parametrize("scopes", [("read",), ("manage",)])
def test_applying_needs_the_download_scope(client, tier, researcher, scopes):
    raw = token(researcher, scopes)

    with nothing_changes():
        response = apply(client, tier, raw)

    assert response.status_code == 403
    assert response.json()["error"] == "token_scope_missing"


def test_expired_and_revoked_tokens_are_refused(client, tier, researcher):
    expired, expired_raw = token_create(user=researcher, name="old", scopes=["download"], lifetime_days=1)
    AccessToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked, revoked_raw = token_create(user=researcher, name="leaked", scopes=["download"])
    token_revoke(token_id=revoked.pk, user=researcher)

    with nothing_changes():
        responses = [apply(client, tier, raw) for raw in (expired_raw, revoked_raw)]

    assert [(r.status_code, r.json()["error"]) for r in responses] == [
        (401, "token_expired"),
        (401, "token_revoked"),
    ]


# --- One's own applications ------------------------------------------------------------------------


def test_my_applications_lists_only_mine_newest_first(client, release, researcher, reviewer, outsider):
    first, second = (TierFactory(release=release, name=name) for name in ("First", "Second"))
    older = reject(submit(researcher, first), reviewer, "Not now.")
    newer = submit(researcher, second)
    submit(outsider, first)

    response = client.get("/api/v1/me/applications", **bearer(token(researcher, ("read",))))

    body = response.json()
    assert response.status_code == 200
    assert body["count"] == 2
    assert [(a["id"], a["status"], a["tier_name"]) for a in body["items"]] == [
        (newer.pk, "pending", "Second"),
        (older.pk, "rejected", "First"),
    ]
    assert body["items"][1]["decision_reason"] == "Not now."
    assert body["items"][1]["decision_expected_at"] is None
    assert body["items"][0]["web_url"] == f"http://testserver/me/applications/{newer.pk}/"


def test_my_applications_filter_by_status(client, release, researcher, reviewer):
    approve(submit(researcher, TierFactory(release=release)), reviewer)
    pending = submit(researcher, TierFactory(release=release))

    body = client.get("/api/v1/me/applications", {"status": "pending"}, **bearer(token(researcher))).json()

    assert [item["id"] for item in body["items"]] == [pending.pk]


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 1000}, {"offset": -5}])
def test_my_applications_out_of_range_page_answers_400(client, researcher, query):
    response = client.get("/api/v1/me/applications", query, **bearer(token(researcher)))

    assert response.status_code == 400
    assert response.json()["error"] == "pagination_out_of_range"


def test_my_applications_query_count_is_flat(client, release, researcher, django_assert_max_num_queries):
    raw = token(researcher)
    submit(researcher, TierFactory(release=release))
    client.get("/api/v1/me/applications", **bearer(raw))
    with CaptureQueriesContext(connection) as one:
        client.get("/api/v1/me/applications", **bearer(raw))
    for _ in range(8):
        submit(researcher, TierFactory(release=release))

    with django_assert_max_num_queries(len(one)):
        response = client.get("/api/v1/me/applications", **bearer(raw))

    assert response.json()["count"] == 9


def test_application_detail_shows_what_i_sent(client, tier, researcher):
    raw = token(researcher)
    created = apply(client, tier, raw).json()

    response = client.get(f"/api/v1/applications/{created['id']}", **bearer(raw))

    body = response.json()
    assert response.status_code == 200
    assert (body["affiliation"], body["answers"]["orcid"]) == (
        "University of Examples",
        "0000-0002-1825-0097",
    )
    assert body["license_acceptance"]["text_sha256"] == tier.license.current_version.text_sha256
    assert body["license_acceptance"]["version"] == 1


def test_someone_elses_application_answers_404(client, tier, researcher, outsider):
    theirs = submit(outsider, tier, answers=ANSWERS)

    response = client.get(f"/api/v1/applications/{theirs.pk}", **bearer(token(researcher)))

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
