"""GET /api/v1/tiers/{id} (the machine-readable gate status), its form, license and files, and
POST …/accept and …/reaccept: the same policy and services as the tier's pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from access.models import AccessToken, AuditEvent, Grant, Invitation, LicenseAcceptance
from access.services.licenses import license_version_publish
from access.services.outcomes import application_return
from access.services.tokens import token_create, token_revoke
from releases.models import Release, Tier
from tests.factories import ArtifactFactory, ReleaseFactory, TierFactory, UserFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes, sha256
from tests.scenes import approved_grant, make_expired, reject, revoke, submit

QUESTIONS = [
    {"name": "orcid", "label": "ORCID iD", "type": "orcid", "required": True},
    {"name": "field", "label": "Field", "type": "single_choice", "choices": ["NLP", "Vision"]},
    {"name": "topics", "label": "Topics", "type": "multiple_choice", "choices": ["a", "b"]},
    {"name": "ethics", "label": "I will not misuse it", "type": "attestation", "required": True},
    {"name": "bio", "label": "About you", "type": "long_text", "max_length": 800, "help_text": "Briefly."},
    {"name": "start", "label": "Start", "type": "date", "min_date": "2024-01-01"},
]


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def token(user, scopes=("read", "download")) -> str:
    return token_create(user=user, name="script", scopes=list(scopes))[1]


def tier_url(tier: Tier, suffix: str = "") -> str:
    return f"/api/v1/tiers/{tier.pk}{suffix}"


def gate_status(client, tier: Tier, user) -> dict:
    response = client.get(tier_url(tier), **bearer(token(user)))
    assert response.status_code == 200
    return response.json()["gate_status"]


@pytest.fixture(autouse=True)
def fresh_rate_limit_counters():
    cache.clear()


# --- The tier and its gate status --------------------------------------------------------------


def test_tier_shows_its_release_license_and_links(client, application_tier):
    version = application_tier.license.current_version

    response = client.get(tier_url(application_tier))

    body = response.json()
    assert response.status_code == 200
    assert (body["model"], body["release"], body["gate"]) == ("acme/llama-lite", "v1.0", "application")
    assert body["license"] == {"name": "Research license", "version": 1, "text_sha256": version.text_sha256}
    assert body["form_url"] == f"http://testserver{tier_url(application_tier, '/form')}"
    assert body["license_url"] == f"http://testserver{tier_url(application_tier, '/license')}"
    assert body["files_url"] == f"http://testserver{tier_url(application_tier, '/files')}"


def test_tier_of_an_unpublished_release_answers_404(client, model):
    draft = ReleaseFactory(model=model, status=Release.Status.DRAFT, published_at=None, revision="")
    tier = TierFactory(release=draft)

    for suffix in ("", "/form", "/license"):
        response = client.get(tier_url(tier, suffix))
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_not_open_tier_says_when_it_opens(client, release, researcher):
    tier = TierFactory(release=release, opens_at=timezone.now() + timedelta(days=5))

    status = gate_status(client, tier, researcher)

    assert status["status"] == "not_open"
    assert status["opens_at"].startswith(tier.opens_at.strftime("%Y-%m-%dT%H:%M"))
    assert status["action_url"] is None


def test_not_requested_points_to_the_application_page(client, application_tier, researcher):
    status = gate_status(client, application_tier, researcher)

    assert status["status"] == "not_requested"
    assert status["can_download"] is False
    assert status["action_url"] == f"http://testserver/tiers/{application_tier.pk}/apply/"


def test_pending_says_when_a_decision_is_expected(client, application_tier, researcher):
    application = submit(researcher, application_tier)

    status = gate_status(client, application_tier, researcher)

    assert status["status"] == "pending"
    assert status["application_id"] == application.pk
    assert status["decision_expected_at"].startswith(application.decision_due_at.strftime("%Y-%m-%dT%H:%M"))
    assert status["action_url"] == f"http://testserver/me/applications/{application.pk}/"


def test_approved_says_when_access_ends(client, application_tier, researcher, reviewer):
    grant = approved_grant(researcher, application_tier, reviewer)

    status = gate_status(client, application_tier, researcher)

    assert status["status"] == "approved"
    assert status["can_download"] is True
    assert status["expires_at"].startswith(grant.expires_at.strftime("%Y-%m-%dT%H:%M"))
    assert status["action_url"] == f"http://testserver/tiers/{application_tier.pk}/files/"


def test_rejected_in_cooldown_gives_reason_and_reapply_date(client, release, researcher, reviewer):
    tier = TierFactory(release=release, reapply_cooldown_days=30)
    application = reject(submit(researcher, tier), reviewer, "Affiliation could not be verified.")

    status = gate_status(client, tier, researcher)

    assert status["status"] == "rejected"
    assert status["reason"] == "Affiliation could not be verified."
    reapply_at = application.decided_at + timedelta(days=30)
    assert status["reapply_at"].startswith(reapply_at.strftime("%Y-%m-%dT%H:%M"))


def test_rejected_without_cooldown_may_apply_again_now(client, application_tier, researcher, reviewer):
    reject(submit(researcher, application_tier), reviewer, "Not a research use.")

    status = gate_status(client, application_tier, researcher)

    assert (status["status"], status["reason"], status["reapply_at"]) == (
        "rejected",
        "Not a research use.",
        None,
    )
    assert status["action_url"] == f"http://testserver/tiers/{application_tier.pk}/apply/"


def test_returned_application_asks_for_a_revision(client, application_tier, researcher, reviewer):
    application = submit(researcher, application_tier)
    application_return(application_id=application.pk, reviewer=reviewer, message="Add your ORCID iD.")

    status = gate_status(client, application_tier, researcher)

    assert (status["status"], status["reason"]) == ("returned", "Add your ORCID iD.")
    assert status["action_url"] == f"http://testserver/me/applications/{application.pk}/edit/"


def test_expired_grant(client, application_tier, researcher, reviewer):
    grant = make_expired(approved_grant(researcher, application_tier, reviewer))

    status = gate_status(client, application_tier, researcher)

    assert status["status"] == "expired"
    assert status["expires_at"].startswith(grant.expires_at.strftime("%Y-%m-%dT%H:%M"))
    assert status["can_download"] is False


def test_revoked_grant_gives_the_reason(client, application_tier, researcher, reviewer):
    grant = revoke(approved_grant(researcher, application_tier, reviewer), reviewer, "Shared the weights.")

    status = gate_status(client, application_tier, researcher)

    assert (status["status"], status["reason"], status["action_url"]) == (
        "revoked",
        "Shared the weights.",
        None,
    )
    grant.refresh_from_db()
    assert status["revoked_at"].startswith(grant.revoked_at.strftime("%Y-%m-%dT%H:%M"))


def test_license_changed_points_to_re_acceptance(client, application_tier, researcher, reviewer):
    approved_grant(researcher, application_tier, reviewer)
    license_version_publish(license=application_tier.license, text="Version 2.", requires_reacceptance=True)

    status = gate_status(client, application_tier, researcher)

    assert status["status"] == "license_changed"
    assert status["action_url"] == f"http://testserver/tiers/{application_tier.pk}/reaccept/"


def test_invitation_tier_for_the_invited_and_for_others(client, release, researcher, reviewer):
    tier = TierFactory(release=release, gate=Tier.Gate.INVITATION)
    Invitation.objects.create(tier=tier, email=researcher.email, invited_by=reviewer)

    assert gate_status(client, tier, researcher)["status"] == "invited"
    assert gate_status(client, tier, UserFactory())["status"] == "invitation_only"


def test_tier_query_count_does_not_grow_with_history(
    client, application_tier, researcher, reviewer, django_assert_max_num_queries
):
    raw = token(researcher)
    submit(researcher, application_tier)
    client.get(tier_url(application_tier), **bearer(raw))
    with CaptureQueriesContext(connection) as one:
        assert (
            client.get(tier_url(application_tier), **bearer(raw)).json()["gate_status"]["status"] == "pending"
        )
    for application in application_tier.applications.all():
        reject(application, reviewer, "Try again.")
    for _ in range(3):
        reject(submit(researcher, application_tier), reviewer, "Try again.")
    submit(researcher, application_tier)

    with django_assert_max_num_queries(len(one)):
        assert (
            client.get(tier_url(application_tier), **bearer(raw)).json()["gate_status"]["status"] == "pending"
        )


# --- Form and license ----------------------------------------------------------------------------


def test_form_lists_questions_with_types_and_limits(client, release):
    tier = TierFactory(release=release, questions=QUESTIONS)

    response = client.get(tier_url(tier, "/form"))

    body = response.json()
    assert response.status_code == 200
    assert body["affiliation_max_length"] == 200
    questions = {question["id"]: question for question in body["questions"]}
    assert list(questions) == ["orcid", "field", "topics", "ethics", "bio", "start"]
    assert questions["orcid"] | {"limits": None} == {
        "id": "orcid",
        "label": "ORCID iD",
        "type": "orcid",
        "value_type": "string",
        "format": "0000-0000-0000-000X",
        "required": True,
        "help": "",
        "choices": None,
        "limits": None,
    }
    assert questions["field"]["choices"] == ["NLP", "Vision"]
    assert questions["topics"]["value_type"] == "array"
    assert questions["ethics"]["value_type"] == "boolean"
    assert questions["bio"]["limits"]["max_length"] == 800
    assert questions["bio"]["help"] == "Briefly."
    assert (questions["start"]["limits"]["min_date"], questions["start"]["limits"]["max_date"]) == (
        "2024-01-01",
        "2100-12-31",
    )


def test_license_gives_text_and_its_sha256(client, application_tier):
    license_version_publish(license=application_tier.license, text="Version two of the license.")

    body = client.get(tier_url(application_tier, "/license")).json()

    assert (body["version"], body["text"]) == (2, "Version two of the license.")
    assert body["text_sha256"] == sha256(b"Version two of the license.")


def test_open_tier_has_no_license(client, release):
    tier = TierFactory(release=release, gate=Tier.Gate.OPEN, license=None)

    response = client.get(tier_url(tier, "/license"))

    assert response.status_code == 404
    assert response.json()["error"] == "no_license"


# --- Files ---------------------------------------------------------------------------------------


def test_granted_researcher_sees_files_and_where_to_ask_for_urls(client, release, researcher, reviewer):
    artifacts = [
        ArtifactFactory(release=release, path=path, size=size) for path, size in (("b.bin", 7), ("a.bin", 5))
    ]
    tier = TierFactory(release=release, artifacts=artifacts)
    approved_grant(researcher, tier, reviewer)

    response = client.get(tier_url(tier, "/files"), **bearer(token(researcher, ("read",))))

    body = response.json()
    assert response.status_code == 200
    assert [(f["path"], f["size"], f["sha256"]) for f in body["files"]] == [
        ("a.bin", 5, artifacts[1].sha256),
        ("b.bin", 7, artifacts[0].sha256),
    ]
    assert body["files"][0]["download_url_endpoint"] == (
        f"http://testserver/api/v1/artifacts/{artifacts[1].pk}/download-url"
    )


def test_files_query_count_is_flat(client, release, researcher, reviewer, django_assert_max_num_queries):
    tier = TierFactory(release=release, artifacts=[ArtifactFactory(release=release)])
    approved_grant(researcher, tier, reviewer)
    raw = token(researcher)
    client.get(tier_url(tier, "/files"), **bearer(raw))
    with CaptureQueriesContext(connection) as one:
        client.get(tier_url(tier, "/files"), **bearer(raw))
    tier.artifacts.add(*[ArtifactFactory(release=release) for _ in range(20)])

    with django_assert_max_num_queries(len(one)):
        response = client.get(tier_url(tier, "/files"), **bearer(raw))

    assert len(response.json()["files"]) == 21


@pytest.mark.parametrize(
    ("scene", "code"),
    [("nothing", "no_grant"), ("pending", "pending"), ("revoked", "revoked"), ("expired", "expired")],
)
def test_files_are_refused_as_on_the_page(client, application_tier, researcher, reviewer, scene, code):
    if scene == "pending":
        submit(researcher, application_tier)
    elif scene == "revoked":
        revoke(approved_grant(researcher, application_tier, reviewer), reviewer)
    elif scene == "expired":
        make_expired(approved_grant(researcher, application_tier, reviewer))

    response = client.get(tier_url(application_tier, "/files"), **bearer(token(researcher)))

    assert response.status_code == 403
    assert response.json()["error"] == code
    assert response.json()["action_url"] == f"http://testserver/tiers/{application_tier.pk}/"


def test_files_need_credentials(client, application_tier):
    response = client.get(tier_url(application_tier, "/files"))

    assert response.status_code == 401
    assert response.json()["error"] == "auth_required"


# --- Accepting a click-through license -------------------------------------------------------------


def accept(client, tier, raw, **body):
    payload = {"typed_name": "Dana Researcher", "text_sha256": tier.license.current_version.text_sha256}
    payload.update(body)
    return client.post(tier_url(tier, "/accept"), payload, content_type="application/json", **bearer(raw))


def test_accepting_a_click_through_license_grants_access(client, click_through_tier, researcher):
    raw = token(researcher, ("download",))
    since = last_audit_id()

    response = accept(client, click_through_tier, raw)

    body = response.json()
    assert response.status_code == 201
    grant = Grant.objects.get(user=researcher, tier=click_through_tier)
    assert (body["grant_id"], body["license_version"]) == (grant.pk, 1)
    acceptance = grant.license_acceptance
    assert (acceptance.typed_name, acceptance.text_sha256) == (
        "Dana Researcher",
        click_through_tier.license.current_version.text_sha256,
    )
    assert audit_actions(since) == ["license.accepted", "grant.created"]
    assert gate_status(client, click_through_tier, researcher)["status"] == "approved"


def test_accept_with_a_stale_license_hash_changes_nothing(client, click_through_tier, researcher):
    raw = token(researcher)
    seen = click_through_tier.license.current_version.text_sha256
    license_version_publish(license=click_through_tier.license, text="A stricter text.")

    with nothing_changes():
        response = accept(client, click_through_tier, raw, text_sha256=seen)

    assert response.status_code == 409
    assert response.json()["error"] == "license_changed"
    assert response.json()["action_url"] == f"http://testserver/tiers/{click_through_tier.pk}/"


def test_accept_on_an_application_tier_is_refused(client, application_tier, researcher):
    raw = token(researcher)

    with nothing_changes():
        response = accept(client, application_tier, raw)

    assert response.status_code == 403
    assert response.json()["error"] == "no_click_through"


def test_accept_with_someone_elses_name_is_refused(client, click_through_tier, researcher):
    raw = token(researcher)

    with nothing_changes():
        response = accept(client, click_through_tier, raw, typed_name="Somebody Else")

    assert response.status_code == 400
    assert response.json()["error"] == "typed_name_mismatch"


def test_accept_without_the_license_hash_is_invalid(client, click_through_tier, researcher):
    raw = token(researcher)

    with nothing_changes():
        response = client.post(
            tier_url(click_through_tier, "/accept"),
            {"typed_name": "Dana Researcher"},
            content_type="application/json",
            **bearer(raw),
        )

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_input"


@pytest.mark.parametrize("scopes", [("read",), ("manage",)])
def test_accept_needs_the_download_scope(client, click_through_tier, researcher, scopes):
    raw = token(researcher, scopes)

    with nothing_changes():
        response = accept(client, click_through_tier, raw)

    assert response.status_code == 403
    assert response.json()["error"] == "token_scope_missing"


def test_accept_with_expired_or_revoked_token_is_refused(client, click_through_tier, researcher):
    expired, expired_raw = token_create(user=researcher, name="old", scopes=["download"], lifetime_days=1)
    AccessToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked, revoked_raw = token_create(user=researcher, name="leaked", scopes=["download"])
    token_revoke(token_id=revoked.pk, user=researcher)

    with nothing_changes():
        responses = [accept(client, click_through_tier, raw) for raw in (expired_raw, revoked_raw)]

    assert [(r.status_code, r.json()["error"]) for r in responses] == [
        (401, "token_expired"),
        (401, "token_revoked"),
    ]


# --- Accepting a changed license again ------------------------------------------------------------


def test_reaccepting_a_changed_license_restores_downloads(client, application_tier, researcher, reviewer):
    grant = approved_grant(researcher, application_tier, reviewer)
    version = license_version_publish(license=application_tier.license, text="V2", requires_reacceptance=True)
    raw = token(researcher)

    response = client.post(
        tier_url(application_tier, "/reaccept"),
        {"typed_name": "Dana Researcher", "text_sha256": version.text_sha256},
        content_type="application/json",
        **bearer(raw),
    )

    assert response.status_code == 200
    assert response.json()["license_version"] == 2
    grant.refresh_from_db()
    assert grant.license_acceptance.license_version == version
    assert AuditEvent.objects.filter(action="grant.license_reaccepted", target_id=grant.pk).exists()
    assert gate_status(client, application_tier, researcher)["status"] == "approved"


def test_reaccept_without_a_grant_changes_nothing(client, application_tier, researcher):
    raw = token(researcher)

    with nothing_changes():
        response = client.post(
            tier_url(application_tier, "/reaccept"),
            {
                "typed_name": "Dana Researcher",
                "text_sha256": application_tier.license.current_version.text_sha256,
            },
            content_type="application/json",
            **bearer(raw),
        )

    assert response.status_code == 403
    assert response.json()["error"] == "no_grant"
    assert not LicenseAcceptance.objects.filter(user=researcher).exists()
