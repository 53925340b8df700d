"""New license versions: with re-acceptance required, current grantees must accept the new text
before downloading again; the downloads answer 403 (page or JSON) until they do."""

from __future__ import annotations

import os
import re

import pytest
from django.urls import reverse

from access import download_policy, policy
from access.errors import InvalidInput, InvalidTransition, NotAllowed
from access.models import AuditEvent, DownloadEvent, Grant, LicenseAcceptance, LicenseVersion
from access.services.grants import grant_reaccept
from access.services.licenses import license_version_publish
from releases.models import Tier
from tests.factories import TierFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes
from tests.scenes import approved_grant, fetch, new_token, revoke, sha256, submit, upload_artifact

BODY = os.urandom(50_000)
NEW_TEXT = "Version 2: research only, no redistribution, report misuse within 72 hours."


@pytest.fixture
def artifact(s3, release):
    return upload_artifact(s3, release, "weights/model-00001.safetensors", BODY)


@pytest.fixture
def tier(release, artifact):
    return TierFactory(release=release, name="Researchers", gate=Tier.Gate.APPLICATION, artifacts=[artifact])


@pytest.fixture
def grant(tier, researcher, reviewer):
    return approved_grant(researcher, tier, reviewer)


def publish(tier, text=NEW_TEXT, *, requires_reacceptance=True, actor=None) -> LicenseVersion:
    return license_version_publish(
        license=tier.license, text=text, requires_reacceptance=requires_reacceptance, actor=actor
    )


def reaccept(user, tier, **overrides) -> Grant:
    arguments = {
        "typed_name": user.full_name,
        "seen_text_sha256": tier.license.current_version.text_sha256,
        "ip_address": "192.0.2.10",
    }
    arguments.update(overrides)
    return grant_reaccept(user=user, tier=tier, **arguments)


def download_url(artifact) -> str:
    return reverse("artifact-download", kwargs={"artifact_id": artifact.pk})


def reaccept_url(tier) -> str:
    return reverse("tier-reaccept", kwargs={"tier_id": tier.pk})


def refusal_code(response) -> str:
    return re.search(r'class="refusal" data-code="([^"]+)"', response.content.decode()).group(1)


# --- Publishing a version -------------------------------------------------------------------


def test_a_version_records_whether_it_requires_reacceptance(tier, owner):
    since = last_audit_id()

    version = publish(tier, actor=owner)

    assert (version.number, version.requires_reacceptance) == (2, True)
    assert version.text_sha256 == sha256(NEW_TEXT.encode())
    assert audit_actions(since) == ["license.version_published"]
    assert AuditEvent.objects.get(pk__gt=since).payload["requires_reacceptance"] is True


def test_the_same_text_again_is_not_a_new_version(tier):
    with nothing_changes(), pytest.raises(InvalidInput) as error:
        publish(tier, text=tier.license.current_version.text)

    assert error.value.code == "license_unchanged"
    assert LicenseVersion.objects.filter(license=tier.license).count() == 1


# --- Policy ---------------------------------------------------------------------------------


def test_a_version_requiring_reacceptance_stops_current_grantees(grant, researcher, tier, artifact):
    publish(tier)

    decision = download_policy.download_decision(researcher, artifact)
    standing = policy.tier_standing(researcher, tier)
    refusal = download_policy.tier_download_refusal(researcher, tier)

    assert (decision.allowed, decision.code, decision.grant) == (False, "license_changed", grant)
    assert decision.message == "The license changed; accept the new version here"
    assert decision.action_url == f"/tiers/{tier.pk}/reaccept/"
    assert (standing.code, standing.can_download, standing.grant) == ("license_changed", False, grant)
    assert (refusal.code, refusal.message, refusal.action_url) == (
        "license_changed",
        "The license changed; accept the new version here",
        f"/tiers/{tier.pk}/reaccept/",
    )


def test_a_version_without_reacceptance_leaves_grants_alone(grant, researcher, tier, artifact):
    publish(tier, requires_reacceptance=False)

    assert download_policy.download_decision(researcher, artifact).code == "approved"
    assert policy.tier_standing(researcher, tier).code == "approved"


def test_a_later_wording_fix_does_not_lift_an_earlier_requirement(grant, researcher, tier, artifact):
    publish(tier)
    publish(tier, text=NEW_TEXT + " (typo fixed)", requires_reacceptance=False)

    assert download_policy.download_decision(researcher, artifact).code == "license_changed"

    reaccept(researcher, tier)

    assert download_policy.download_decision(researcher, artifact).code == "approved"


def test_someone_who_accepted_the_new_version_is_not_affected(tier, researcher, reviewer, artifact):
    publish(tier)

    approved_grant(researcher, tier, reviewer)

    assert download_policy.download_decision(researcher, artifact).code == "approved"


def test_another_live_grant_under_a_current_acceptance_still_covers_the_file(
    grant, researcher, reviewer, release, tier, artifact
):
    other = TierFactory(release=release, gate=Tier.Gate.APPLICATION, artifacts=[artifact])
    approved_grant(researcher, other, reviewer)

    publish(tier)

    decision = download_policy.download_decision(researcher, artifact)
    assert (decision.allowed, decision.tier) == (True, other)


def test_the_decision_still_takes_three_queries(grant, researcher, tier, artifact, django_assert_num_queries):
    publish(tier)
    artifact = type(artifact).objects.get(pk=artifact.pk)

    with django_assert_num_queries(3):
        decision = download_policy.download_decision(researcher, artifact)

    assert decision.code == "license_changed"


def test_a_revoked_grant_stays_revoked_whatever_the_license(grant, researcher, reviewer, tier, artifact):
    revoke(grant, reviewer)
    publish(tier)

    assert download_policy.download_decision(researcher, artifact).code == "revoked"


# --- The re-acceptance service --------------------------------------------------------------


def test_reaccepting_records_the_new_text_and_points_the_grant_at_it(grant, researcher, tier):
    old_acceptance = grant.license_acceptance
    version = publish(tier)
    since = last_audit_id()

    reaccepted = reaccept(researcher, tier)

    acceptance = reaccepted.license_acceptance
    assert acceptance != old_acceptance
    assert (acceptance.license_version, acceptance.text_sha256) == (version, sha256(NEW_TEXT.encode()))
    assert (acceptance.typed_name, acceptance.ip_address) == ("Dana Researcher", "192.0.2.10")
    assert Grant.objects.get(pk=grant.pk).license_acceptance == acceptance
    assert reaccepted.pk == grant.pk and reaccepted.status == Grant.Status.ACTIVE
    assert reaccepted.expires_at == grant.expires_at
    assert audit_actions(since) == ["license.accepted", "grant.license_reaccepted"]
    assert AuditEvent.objects.get(pk__gt=since, action="grant.license_reaccepted").payload == {
        "license_version_id": version.pk,
        "previous_license_version_id": old_acceptance.license_version_id,
        "text_sha256": version.text_sha256,
    }


def test_reaccepting_needs_the_typed_full_name(grant, researcher, tier):
    publish(tier)

    with nothing_changes(), pytest.raises(InvalidInput) as error:
        reaccept(researcher, tier, typed_name="Someone Else")

    assert error.value.code == "typed_name_mismatch"
    assert Grant.objects.get(pk=grant.pk).license_acceptance == grant.license_acceptance


def test_a_text_that_changed_again_while_reading_is_refused(grant, researcher, tier):
    read = publish(tier).text_sha256
    publish(tier, text="Version 3.")

    with nothing_changes(), pytest.raises(InvalidInput) as error:
        reaccept(researcher, tier, seen_text_sha256=read)

    assert error.value.code == "license_changed"


def test_there_is_nothing_to_reaccept_without_a_change(grant, researcher, tier):
    with nothing_changes(), pytest.raises(InvalidTransition) as error:
        reaccept(researcher, tier)

    assert error.value.code == "already_accepted"


@pytest.mark.parametrize("state", ["none", "revoked", "pending"])
def test_reaccepting_needs_an_active_grant(tier, researcher, reviewer, state):
    if state == "revoked":
        revoke(approved_grant(researcher, tier, reviewer), reviewer)
    elif state == "pending":
        submit(researcher, tier)
    publish(tier)

    with nothing_changes(), pytest.raises(NotAllowed) as error:
        reaccept(researcher, tier)

    assert error.value.code == "no_grant"


# --- Pages and JSON, against a real SeaweedFS -----------------------------------------------


def test_license_change_answers_403_then_reacceptance_brings_the_download_back(
    client, grant, researcher, tier, artifact
):
    client.force_login(researcher)
    assert client.get(download_url(artifact)).status_code == 302
    publish(tier)

    refused = client.get(download_url(artifact))

    assert refused.status_code == 403
    assert refused["Cache-Control"] == "no-store"
    assert refusal_code(refused) == "license_changed"
    assert "The license changed; accept the new version here" in refused.content.decode()
    assert f'href="{reaccept_url(tier)}"' in refused.content.decode()
    assert DownloadEvent.objects.count() == 1

    page = client.get(reaccept_url(tier))
    assert page.status_code == 200
    assert NEW_TEXT in page.content.decode()
    assert sha256(NEW_TEXT.encode()) in page.content.decode()
    accepted = client.post(
        reaccept_url(tier), {"typed_name": "dana researcher", "text_sha256": sha256(NEW_TEXT.encode())}
    )
    assert accepted.status_code == 302
    assert accepted["Location"] == reverse("tier-files", kwargs={"tier_id": tier.pk})

    again = client.get(download_url(artifact))

    assert again.status_code == 302
    status, _, body = fetch(again["Location"])
    assert (status, sha256(body)) == (200, artifact.sha256)
    event = DownloadEvent.objects.latest("created_at")
    assert event.license_version == tier.license.current_version


def test_a_token_client_gets_json_403_with_the_reaccept_url(client, grant, researcher, tier, artifact):
    _, raw = new_token(researcher)
    publish(tier)

    response = client.get(download_url(artifact), HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert response.status_code == 403
    assert response.json() == {
        "error": "license_changed",
        "message": "The license changed; accept the new version here",
        "action_url": f"http://testserver/tiers/{tier.pk}/reaccept/",
    }
    assert DownloadEvent.objects.count() == 0


@pytest.mark.parametrize("name", ["tier-files", "tier-manifest", "tier-download-script"])
def test_the_files_pages_refuse_until_reacceptance(client, grant, researcher, tier, name):
    publish(tier)
    client.force_login(researcher)

    response = client.get(reverse(name, kwargs={"tier_id": tier.pk}))

    assert response.status_code == 403
    assert refusal_code(response) == "license_changed"


def test_tier_page_and_model_page_show_where_to_accept_again(client, grant, researcher, tier, model):
    publish(tier)
    client.force_login(researcher)

    tier_page = client.get(reverse("tier-detail", kwargs={"tier_id": tier.pk})).content.decode()
    model_page = client.get(model.get_absolute_url()).content.decode()

    assert 'data-code="license_changed"' in tier_page
    assert f'href="{reaccept_url(tier)}"' in tier_page
    assert "License changed" in model_page


def test_a_wrong_name_on_the_reaccept_page_changes_nothing(client, grant, researcher, tier, artifact):
    publish(tier)
    client.force_login(researcher)

    with nothing_changes():
        response = client.post(
            reaccept_url(tier),
            {"typed_name": "Mallory", "text_sha256": tier.license.current_version.text_sha256},
        )

    assert response.status_code == 400
    assert "Type your full name exactly as on your account (Dana Researcher)." in response.content.decode()
    assert client.get(download_url(artifact)).status_code == 403


def test_the_reaccept_page_without_a_change_goes_to_the_tier(client, grant, researcher, tier):
    client.force_login(researcher)

    with nothing_changes():
        response = client.post(reaccept_url(tier), {"typed_name": researcher.full_name, "text_sha256": "x"})

    assert response.status_code == 302
    assert response["Location"] == reverse("tier-detail", kwargs={"tier_id": tier.pk})


def test_the_reaccept_page_of_an_unknown_tier_is_404(client, researcher):
    client.force_login(researcher)

    assert client.get(reverse("tier-reaccept", kwargs={"tier_id": 987654})).status_code == 404


def test_the_reaccept_page_needs_a_signed_in_user(client, tier):
    response = client.get(reaccept_url(tier))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_a_new_acceptance_is_one_row_per_reacceptance(client, grant, researcher, tier):
    publish(tier)
    client.force_login(researcher)
    data = {"typed_name": researcher.full_name, "text_sha256": tier.license.current_version.text_sha256}

    client.post(reaccept_url(tier), data)
    client.post(reaccept_url(tier), data)

    assert LicenseAcceptance.objects.filter(user=researcher, license_version__number=2).count() == 1
