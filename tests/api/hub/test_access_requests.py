"""huggingface_hub's access-request calls, run by the real client (huggingface_hub pinned in the
test dependencies) against the live portal: each must leave the rows and audit events that the
review pages leave, and every refusal must reach the client with Gatehouse's explanation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from access.models import Application, AuditEvent, Grant, Invitation
from api.hub import access_requests
from releases.models import Tier
from tests.factories import ReleaseFactory, TierFactory, UserFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes
from tests.scenes import approved_grant, new_token, reject, submit

REPO = "acme/llama-lite"


@pytest.fixture(autouse=True)
def fresh_rate_limit_counters():
    cache.clear()


@pytest.fixture
def hub_client(tmp_path, monkeypatch, live_server, celery_eager):
    """``hub_client(user)``: the real HfApi pointed at the live portal with a manage token of ``user``."""
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    from huggingface_hub import HfApi
    from huggingface_hub.utils import close_session

    def client_for(user, scopes=("manage",)):
        return HfApi(endpoint=live_server.url, token=new_token(user, name="hub", scopes=scopes)[1])

    yield client_for
    # The client keeps its connections alive, and with them the live server's threads and their
    # database connections, which would keep the test database from being dropped at the end.
    close_session()


@pytest.fixture
def dana(researcher, application_tier):
    """The researcher, with a pending application to the model's application tier."""
    return submit(researcher, application_tier, answers={})


# --- Lists -----------------------------------------------------------------------------------


def test_pending_requests_list_each_application_awaiting_a_decision(hub_client, dana, reviewer, researcher):
    [request] = list(hub_client(reviewer).list_pending_access_requests(REPO))

    assert request.username == researcher.email
    assert (request.fullname, request.email) == ("Dana Researcher", researcher.email)
    assert request.request_id == f"application-{dana.pk}"
    assert request.status == "pending"
    assert abs(request.timestamp - dana.submitted_at) < timedelta(seconds=1)
    assert request.fields["affiliation"] == "University of Examples"


def test_the_client_follows_the_pages_of_a_long_list(hub_client, monkeypatch, application_tier, reviewer):
    monkeypatch.setattr(access_requests, "PAGE_SIZE", 2)
    applicants = [UserFactory(email=f"r{n}@university.example") for n in range(5)]
    for applicant in applicants:
        submit(applicant, application_tier)

    requests = list(hub_client(reviewer).list_pending_access_requests(REPO))

    assert [request.username for request in requests] == [applicant.email for applicant in applicants]


def test_accepted_and_rejected_lists_are_grants_and_rejections(
    hub_client, release, application_tier, reviewer, researcher
):
    grant = approved_grant(researcher, application_tier, reviewer)
    turned_down = UserFactory(email="erin@lab.example")
    rejected = reject(submit(turned_down, application_tier), reviewer, "Out of scope.")
    api = hub_client(reviewer)

    [accepted] = list(api.list_accepted_access_requests(REPO))
    [refused] = list(api.list_rejected_access_requests(REPO))

    assert (accepted.username, accepted.request_id, accepted.status) == (
        researcher.email,
        f"grant-{grant.pk}",
        "accepted",
    )
    assert (refused.username, refused.request_id, refused.status) == (
        "erin@lab.example",
        f"application-{rejected.pk}",
        "rejected",
    )


def test_list_query_count_is_the_same_for_one_request_and_many(client, application_tier, reviewer):
    raw = new_token(reviewer, scopes=("manage",))[1]
    url = f"/api/models/{REPO}/user-access-request/pending"

    def page_queries() -> int:
        client.get(url, HTTP_AUTHORIZATION=f"Bearer {raw}")  # the token's first use is recorded once
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert response.status_code == 200
        return len(captured)

    submit(UserFactory(), application_tier)
    one = page_queries()
    for _ in range(6):
        submit(UserFactory(), application_tier)
    many = page_queries()

    assert many == one


# --- Accepting, rejecting, cancelling --------------------------------------------------------


def test_accepting_a_request_approves_the_application_and_grants(hub_client, dana, reviewer, researcher):
    api = hub_client(reviewer)
    since = last_audit_id()

    api.accept_access_request(REPO, researcher.email)

    dana.refresh_from_db()
    grant = Grant.objects.get(user=researcher)
    assert dana.status == Application.Status.APPROVED
    assert (grant.application, grant.status) == (dana, Grant.Status.ACTIVE)
    assert audit_actions(since) == ["grant.created", "application.approved"]
    assert AuditEvent.objects.get(action="application.approved").actor == reviewer
    assert [request.username for request in api.list_accepted_access_requests(REPO)] == [researcher.email]
    assert list(api.list_pending_access_requests(REPO)) == []


def test_accepting_by_request_id_approves_that_application(hub_client, dana, reviewer):
    hub_client(reviewer).accept_access_request(REPO, request_id=f"application-{dana.pk}")

    dana.refresh_from_db()
    assert dana.status == Application.Status.APPROVED


def test_rejecting_a_request_rejects_with_the_reason(hub_client, dana, reviewer, researcher):
    api = hub_client(reviewer)
    since = last_audit_id()

    api.reject_access_request(REPO, researcher.email, rejection_reason="Out of scope.")

    dana.refresh_from_db()
    assert (dana.status, dana.decision_reason) == (Application.Status.REJECTED, "Out of scope.")
    assert audit_actions(since) == ["application.rejected"]
    assert [request.request_id for request in api.list_rejected_access_requests(REPO)] == [
        f"application-{dana.pk}"
    ]


def test_rejecting_without_a_reason_is_refused_with_nothing_changed(hub_client, dana, reviewer, researcher):
    from huggingface_hub.errors import HfHubHTTPError

    api = hub_client(reviewer)

    with nothing_changes(), pytest.raises(HfHubHTTPError) as raised:
        api.reject_access_request(REPO, researcher.email, rejection_reason=None)

    assert raised.value.response.status_code == 400
    assert "Give the applicant a reason for the rejection." in str(raised.value)
    assert raised.value.response.json()["code"] == "reason_missing"


def test_cancelling_accepted_access_revokes_the_grant(hub_client, application_tier, reviewer, researcher):
    grant = approved_grant(researcher, application_tier, reviewer)
    api = hub_client(reviewer)
    since = last_audit_id()

    api.cancel_access_request(REPO, researcher.email)

    grant.refresh_from_db()
    assert (grant.status, grant.revoked_by, grant.revoke_reason) == (
        Grant.Status.REVOKED,
        reviewer,
        access_requests.CANCEL_REASON,
    )
    assert audit_actions(since) == ["grant.revoked"]
    assert list(api.list_accepted_access_requests(REPO)) == []


def test_rejecting_accepted_access_revokes_it_with_the_reason(
    hub_client, application_tier, reviewer, researcher
):
    grant = approved_grant(researcher, application_tier, reviewer)

    hub_client(reviewer).reject_access_request(REPO, researcher.email, rejection_reason="Shared the weights.")

    grant.refresh_from_db()
    assert (grant.status, grant.revoke_reason) == (Grant.Status.REVOKED, "Shared the weights.")


def test_a_rejection_is_not_reopened_by_accept(hub_client, dana, reviewer, researcher):
    from huggingface_hub.errors import HfHubHTTPError

    reject(dana, reviewer, "Out of scope.")
    api = hub_client(reviewer)

    with nothing_changes(), pytest.raises(HfHubHTTPError) as raised:
        api.accept_access_request(REPO, researcher.email)

    assert raised.value.response.status_code == 404
    assert raised.value.response.json()["code"] == "no_pending_request"
    assert "use grant_access to give access directly" in str(raised.value)


def test_accepting_for_an_unknown_user_is_a_404(hub_client, dana, reviewer):
    from huggingface_hub.errors import HfHubHTTPError

    api = hub_client(reviewer)

    with nothing_changes(), pytest.raises(HfHubHTTPError) as raised:
        api.accept_access_request(REPO, "nobody@nowhere.example")

    assert raised.value.response.status_code == 404
    assert "No account has the e-mail address nobody@nowhere.example" in str(raised.value)


# --- Granting --------------------------------------------------------------------------------


def test_grant_access_invites_a_person_who_never_applied(hub_client, application_tier, reviewer):
    answer = hub_client(reviewer).grant_access(REPO, "newcomer@lab.example")

    invitation = Invitation.objects.get()
    assert answer["outcome"] == "invited"
    assert (invitation.tier, invitation.email, invitation.invited_by) == (
        application_tier,
        "newcomer@lab.example",
        reviewer,
    )
    assert AuditEvent.objects.filter(action="invitation.created", target_id=invitation.pk).exists()


def test_grant_access_grants_at_once_on_an_acceptance_already_given(
    hub_client, dana, application_tier, reviewer, researcher
):
    reject(dana, reviewer, "Out of scope.")
    api = hub_client(reviewer)
    since = last_audit_id()

    answer = api.grant_access(REPO, researcher.email)

    grant = Grant.objects.get(user=researcher, tier=application_tier)
    assert (answer["outcome"], answer["grant_id"]) == ("granted", grant.pk)
    assert audit_actions(since) == ["grant.created", "grant.granted_directly"]
    assert [request.username for request in api.list_accepted_access_requests(REPO)] == [researcher.email]


def test_grant_access_targets_the_newest_release(hub_client, model, application_tier, reviewer, researcher):
    newer = ReleaseFactory(model=model, version="v2.0", published_at=timezone.now() + timedelta(minutes=1))
    newest_tier = TierFactory(release=newer, name="Researchers", gate=Tier.Gate.APPLICATION)

    answer = hub_client(reviewer).grant_access(REPO, "newcomer@lab.example")

    assert answer["tier"] == {"id": newest_tier.pk, "name": "Researchers", "release": "v2.0"}
    assert Invitation.objects.get().tier == newest_tier


def test_grant_access_with_two_application_tiers_asks_for_one(
    hub_client, release, application_tier, reviewer
):
    from huggingface_hub.errors import HfHubHTTPError

    TierFactory(release=release, name="Students", gate=Tier.Gate.APPLICATION)
    api = hub_client(reviewer)

    with nothing_changes(), pytest.raises(HfHubHTTPError) as raised:
        api.grant_access(REPO, "newcomer@lab.example")

    assert raised.value.response.status_code == 409
    assert raised.value.response.json()["code"] == "ambiguous_tier"


# --- Who may -------------------------------------------------------------------------------


def test_a_researchers_token_is_refused_with_the_reason(hub_client, dana, researcher):
    from huggingface_hub.errors import HfHubHTTPError

    api = hub_client(researcher)

    with nothing_changes(), pytest.raises(HfHubHTTPError) as raised:
        api.accept_access_request(REPO, researcher.email)

    assert raised.value.response.status_code == 403
    assert "Only owners and reviewers of Acme AI may manage access requests" in str(raised.value)
    dana.refresh_from_db()
    assert dana.status == Application.Status.PENDING


def test_a_token_without_the_manage_scope_is_refused(hub_client, dana, reviewer):
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as raised:
        list(hub_client(reviewer, scopes=("read", "download")).list_pending_access_requests(REPO))

    assert raised.value.response.status_code == 403
    assert raised.value.response.json()["code"] == "token_scope_missing"


def test_an_unknown_model_raises_repository_not_found(hub_client, dana, reviewer):
    from huggingface_hub.errors import RepositoryNotFoundError

    with pytest.raises(RepositoryNotFoundError):
        list(hub_client(reviewer).list_pending_access_requests("acme/no-such-model"))


def test_a_model_without_gated_tiers_is_not_gated(hub_client, release, reviewer):
    from huggingface_hub.errors import HfHubHTTPError

    TierFactory(release=release, gate=Tier.Gate.OPEN, license=None)

    with pytest.raises(HfHubHTTPError) as raised:
        list(hub_client(reviewer).list_pending_access_requests(REPO))

    assert raised.value.response.status_code == 400
    assert raised.value.response.json()["code"] == "not_gated"


def test_a_handle_body_that_is_not_an_object_is_a_json_error(client, dana, reviewer):
    raw = new_token(reviewer, scopes=("manage",))[1]

    with nothing_changes():
        response = client.post(
            f"/api/models/{REPO}/user-access-request/handle",
            "[1]",
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {raw}",
        )

    assert response.status_code == 400
    assert response.json() == {"error": "The body must be a JSON object.", "code": "invalid_input"}
    assert response["X-Error-Message"] == "The body must be a JSON object."
