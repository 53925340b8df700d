"""A tier's grants for its organization's reviewers: the list, revocation with a reason, and
the CSV export that streams."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from access import download_policy
from access.models import AuditEvent, Grant, Notification
from tests.factories import ArtifactFactory, GrantFactory, UserFactory
from tests.helpers import nothing_changes

LIST_MAX_QUERIES = 12
CSV_MAX_QUERIES = 9


@pytest.fixture
def tier(application_tier):
    return application_tier


def grants_for(tier, count: int) -> list[Grant]:
    return [GrantFactory(tier=tier, user=UserFactory()) for _ in range(count)]


def list_url(tier) -> str:
    return reverse("tier-grants", kwargs={"tier_id": tier.pk})


def csv_url(tier) -> str:
    return reverse("tier-grants-csv", kwargs={"tier_id": tier.pk})


def revoke_url(grant) -> str:
    return reverse("tier-grant-revoke", kwargs={"grant_id": grant.pk})


def csv_rows(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(body)))


# --- The list -------------------------------------------------------------------------------


def test_a_reviewer_sees_the_tiers_grants_with_their_state(client, reviewer, tier, researcher):
    active = GrantFactory(tier=tier, user=researcher)
    lapsed = GrantFactory(tier=tier, expires_at=timezone.now() - timedelta(days=1))
    client.force_login(reviewer)

    page = client.get(list_url(tier)).content.decode()

    assert "dana@university.example" in page
    assert f'data-grant="{active.pk}"' in page and f'data-grant="{lapsed.pk}"' in page
    assert f'action="{revoke_url(active)}"' in page
    assert "status-expired" in page  # past its date before the periodic task marked it


def test_the_list_filters_by_status_and_refuses_an_unknown_one(client, owner, tier, reviewer):
    active, revoked = grants_for(tier, 2)
    Grant.objects.filter(pk=revoked.pk).update(status="revoked", revoked_at=timezone.now())
    client.force_login(owner)

    page = client.get(list_url(tier), {"status": "revoked"}).content.decode()

    assert f'data-grant="{revoked.pk}"' in page and f'data-grant="{active.pk}"' not in page
    assert client.get(list_url(tier), {"status": "gone"}).status_code == 400


@pytest.mark.parametrize("who", ["outsider", "researcher"])
def test_people_who_do_not_review_for_the_organization_get_404(client, tier, who, request):
    grants_for(tier, 1)
    client.force_login(request.getfixturevalue(who))

    assert client.get(list_url(tier)).status_code == 404
    assert client.get(csv_url(tier)).status_code == 404


def test_an_unknown_tier_is_404(client, reviewer):
    client.force_login(reviewer)

    assert client.get(reverse("tier-grants", kwargs={"tier_id": 999999})).status_code == 404


def test_the_lists_query_count_stays_flat_as_grants_grow(
    client, reviewer, tier, django_assert_max_num_queries
):
    client.force_login(reviewer)
    grants_for(tier, 3)
    with django_assert_max_num_queries(LIST_MAX_QUERIES):
        assert client.get(list_url(tier)).status_code == 200

    grants_for(tier, 40)
    with django_assert_max_num_queries(LIST_MAX_QUERIES):
        assert client.get(list_url(tier)).status_code == 200


# --- Revoking -------------------------------------------------------------------------------


def test_a_reviewer_revokes_with_a_reason_and_the_holder_is_emailed(
    client, reviewer, tier, researcher, emails
):
    grant = GrantFactory(tier=tier, user=researcher)
    artifact = ArtifactFactory(release=tier.release)
    tier.artifacts.add(artifact)
    client.force_login(reviewer)

    with emails.on_commit():
        response = client.post(revoke_url(grant), {"reason": "Shared the weights publicly."})

    assert response.status_code == 302
    grant.refresh_from_db()
    assert (grant.status, grant.revoked_by, grant.revoke_reason) == (
        Grant.Status.REVOKED,
        reviewer,
        "Shared the weights publicly.",
    )
    event = AuditEvent.objects.get(action="grant.revoked", target_id=grant.pk)
    assert (event.actor, event.payload) == (reviewer, {"reason": "Shared the weights publicly."})
    assert Notification.objects.get(user=researcher, kind="grant_revoked")
    assert [message.to for message in emails.outbox] == [["dana@university.example"]]
    assert "Shared the weights publicly." in emails.outbox[0].body
    assert download_policy.download_decision(researcher, artifact).code == "revoked"


def test_revoking_without_a_reason_changes_nothing(client, reviewer, tier):
    (grant,) = grants_for(tier, 1)
    client.force_login(reviewer)

    with nothing_changes():
        response = client.post(revoke_url(grant), {"reason": ""}, follow=True)

    assert "Give a reason for revoking" in response.content.decode()
    grant.refresh_from_db()
    assert grant.status == Grant.Status.ACTIVE


def test_revoking_twice_says_so_and_changes_nothing(client, reviewer, tier):
    (grant,) = grants_for(tier, 1)
    client.force_login(reviewer)
    client.post(revoke_url(grant), {"reason": "Misuse."})

    with nothing_changes():
        response = client.post(revoke_url(grant), {"reason": "Misuse again."}, follow=True)

    assert "already revoked" in response.content.decode()


def test_an_outsider_cannot_revoke_and_gets_404(client, outsider, tier):
    (grant,) = grants_for(tier, 1)
    client.force_login(outsider)

    with nothing_changes():
        response = client.post(revoke_url(grant), {"reason": "Because."})

    assert response.status_code == 404
    grant.refresh_from_db()
    assert grant.status == Grant.Status.ACTIVE


# --- The CSV export -------------------------------------------------------------------------


def test_the_export_streams_every_grant_as_csv(client, reviewer, tier, researcher):
    grant = GrantFactory(tier=tier, user=researcher)
    other = GrantFactory(tier=tier)
    GrantFactory()  # another tier's grant stays out
    client.force_login(reviewer)

    response = client.get(csv_url(tier))

    assert isinstance(response, StreamingHttpResponse)
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        response["Content-Disposition"] == 'attachment; filename="acme-llama-lite-v10-researchers-grants.csv"'
    )
    rows = csv_rows(response)
    assert [row["grant_id"] for row in rows] == [str(grant.pk), str(other.pk)]
    first = rows[0]
    assert first["email"] == "dana@university.example"
    assert first["full_name"] == "Dana Researcher"
    assert first["status"] == "active"
    assert first["expires_at"] == grant.expires_at.isoformat()
    assert first["license_version"] == "1"
    assert first["license_text_sha256"] == tier.license.current_version.text_sha256
    assert first["revoked_at"] == ""


def test_the_export_reads_in_chunks_with_a_flat_query_count(
    client, reviewer, tier, django_assert_max_num_queries
):
    client.force_login(reviewer)
    grants_for(tier, 2)
    with django_assert_max_num_queries(CSV_MAX_QUERIES):
        assert len(csv_rows(client.get(csv_url(tier)))) == 2

    grants_for(tier, 60)
    with django_assert_max_num_queries(CSV_MAX_QUERIES):
        assert len(csv_rows(client.get(csv_url(tier)))) == 62


def test_the_export_yields_row_by_row(client, reviewer, tier):
    grants_for(tier, 3)
    client.force_login(reviewer)

    chunks = list(client.get(csv_url(tier)).streaming_content)

    # The header and each grant are separate pieces of the stream, never one buffered body.
    assert len(chunks) == 4
    assert chunks[0].startswith(b"grant_id,email,full_name,status")


def test_the_export_defuses_cells_a_spreadsheet_would_run(client, reviewer, tier):
    GrantFactory(tier=tier, user=UserFactory(full_name='=HYPERLINK("http://evil.example")'))
    client.force_login(reviewer)

    (row,) = csv_rows(client.get(csv_url(tier)))

    assert row["full_name"] == '\'=HYPERLINK("http://evil.example")'


def test_the_export_is_audited(client, reviewer, tier):
    client.force_login(reviewer)

    csv_rows(client.get(csv_url(tier), REMOTE_ADDR="198.51.100.7"))

    event = AuditEvent.objects.get(action="tier.grants_exported")
    assert (event.actor, event.target_id, event.ip_address) == (reviewer, tier.pk, "198.51.100.7")


def test_the_tier_page_links_its_reviewers_to_the_grants(client, reviewer, researcher, tier):
    page_url = reverse("tier-detail", kwargs={"tier_id": tier.pk})

    client.force_login(reviewer)
    assert b'id="tier-grants-link"' in client.get(page_url).content
    client.force_login(researcher)
    assert b'id="tier-grants-link"' not in client.get(page_url).content
