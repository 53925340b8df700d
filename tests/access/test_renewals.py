"""Grants over time: renewal requests (reviewed or automatic), revocation closing them, and the
expiry reminders with their setting."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils import timezone

from access import policy
from access.errors import InvalidInput, NotAllowed
from access.models import Application, AuditEvent, Grant, Notification, SentEmail
from access.services.applications import application_approve
from access.services.grant_reminders import grant_expiry_reminders_send
from access.services.grants import grant_revoke
from access.services.renewals import MAX_RENEWAL_STATEMENT_LENGTH, grant_renewal_request
from access.tasks import send_grant_expiry_reminders
from portal.env import env_int_set
from releases.models import Tier
from tests.factories import GrantFactory, TierFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes
from tests.portal.test_settings import start_django

STATEMENT = "Our evaluation runs until the end of the year."


@pytest.fixture
def tier(release):
    return TierFactory(
        release=release, name="Researchers", grant_duration_days=90, renewal=Tier.Renewal.REQUEST
    )


def grant_expiring_in(user, tier, days: float, **fields) -> Grant:
    now = timezone.now()
    return GrantFactory(
        user=user,
        tier=tier,
        granted_at=now - timedelta(days=90),
        expires_at=now + timedelta(days=days),
        **fields,
    )


def renew(grant, user=None, statement=STATEMENT) -> Application:
    return grant_renewal_request(grant_id=grant.pk, user=user or grant.user, statement=statement)


# --- Reviewed renewals ----------------------------------------------------------------------


def test_a_renewal_request_waits_in_the_queue_as_an_application_of_kind_renewal(
    researcher, tier, owner, reviewer
):
    grant = grant_expiring_in(researcher, tier, 20)
    since = last_audit_id()

    application = renew(grant)

    application.refresh_from_db()
    assert (application.kind, application.status) == ("renewal", "pending")
    assert application.renews == grant
    assert application.intended_use == STATEMENT
    assert application.license_acceptance == grant.license_acceptance
    assert application.assigned_to == reviewer
    assert application.decision_due_at == application.submitted_at + timedelta(days=tier.review_days)
    assert application in Application.objects.awaiting_decision()
    assert audit_actions(since)[0] == "application.submitted"
    assert Notification.objects.get(user=researcher, kind="renewal_requested")
    grant.refresh_from_db()
    assert grant.expires_at < timezone.now() + timedelta(days=21)  # unchanged until approved


def test_approving_a_renewal_extends_the_same_grant_from_its_old_expiry(researcher, tier, reviewer):
    grant = grant_expiring_in(researcher, tier, 20)
    old_expiry = grant.expires_at
    application = renew(grant)
    since = last_audit_id()

    application_approve(application_id=application.pk, reviewer=reviewer)

    grant.refresh_from_db()
    assert grant.expires_at == old_expiry + timedelta(days=90)
    assert grant.status == Grant.Status.ACTIVE
    assert Grant.objects.filter(user=researcher, tier=tier).count() == 1
    application.refresh_from_db()
    assert application.status == Application.Status.APPROVED
    assert "grant.renewed" in audit_actions(since)
    renewed = AuditEvent.objects.get(pk__gt=since, action="grant.renewed")
    assert renewed.payload["previous_expires_at"] == old_expiry.isoformat()
    assert renewed.payload["application_id"] == application.pk


# --- Automatic renewals ---------------------------------------------------------------------


def test_an_auto_renewal_tier_extends_the_grant_at_once(researcher, tier, emails):
    tier.renewal = Tier.Renewal.AUTO
    tier.save()
    grant = grant_expiring_in(researcher, tier, 5)
    old_expiry = grant.expires_at

    with emails.on_commit():
        application = renew(grant)

    application.refresh_from_db()
    assert application.status == Application.Status.APPROVED
    assert application.decision_reason == "Renewed automatically."
    grant.refresh_from_db()
    assert grant.expires_at == old_expiry + timedelta(days=90)
    assert [message.to for message in emails.outbox] == [["dana@university.example"]]
    assert f"renewed until {grant.expires_at:%Y-%m-%d}" in emails.outbox[0].body


def test_renewing_an_expired_grant_counts_the_duration_from_now_and_reactivates_it(researcher, tier):
    tier.renewal = Tier.Renewal.AUTO
    tier.save()
    grant = grant_expiring_in(researcher, tier, -10, status=Grant.Status.EXPIRED)
    before = timezone.now()

    renew(grant)

    grant.refresh_from_db()
    assert grant.status == Grant.Status.ACTIVE
    assert before + timedelta(days=90) <= grant.expires_at <= timezone.now() + timedelta(days=90)
    assert policy.tier_standing(researcher, tier).code == "approved"


# --- Refusals -------------------------------------------------------------------------------


def test_a_tier_without_renewal_refuses_and_changes_nothing(researcher, tier):
    tier.renewal = Tier.Renewal.NONE
    tier.save()
    grant = grant_expiring_in(researcher, tier, 5)

    with nothing_changes(), pytest.raises(NotAllowed) as refused:
        renew(grant)

    assert refused.value.code == "renewal_unavailable"


def test_renewal_opens_thirty_days_before_expiry(researcher, tier):
    grant = grant_expiring_in(researcher, tier, 45)

    with nothing_changes(), pytest.raises(NotAllowed) as refused:
        renew(grant)

    assert refused.value.code == "too_early"
    assert f"{grant.expires_at - timedelta(days=30):%Y-%m-%d}" in refused.value.message
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() + timedelta(days=29))
    assert renew(grant).status == Application.Status.PENDING


def test_a_second_request_while_one_is_open_is_refused(researcher, tier):
    grant = grant_expiring_in(researcher, tier, 10)
    renew(grant)

    with nothing_changes(), pytest.raises(NotAllowed) as refused:
        renew(grant)

    assert refused.value.code == "already_pending"


def test_a_revoked_grant_cannot_be_renewed(researcher, tier, reviewer):
    grant = grant_expiring_in(researcher, tier, 10)
    grant_revoke(grant_id=grant.pk, actor=reviewer, reason="Misuse.")

    with nothing_changes(), pytest.raises(NotAllowed) as refused:
        renew(grant)

    assert refused.value.code == "revoked"


def test_someone_elses_grant_cannot_be_renewed(researcher, tier, outsider):
    grant = grant_expiring_in(researcher, tier, 10)

    with nothing_changes(), pytest.raises(NotAllowed) as refused:
        renew(grant, user=outsider)

    assert refused.value.code == "not_found"


@pytest.mark.parametrize("statement", ["", "   ", "x" * (MAX_RENEWAL_STATEMENT_LENGTH + 1)])
def test_a_renewal_needs_a_statement_of_bounded_length(researcher, tier, statement):
    grant = grant_expiring_in(researcher, tier, 10)

    with nothing_changes(), pytest.raises(InvalidInput):
        renew(grant, statement=statement)


def test_revoking_a_grant_rejects_its_open_renewal_and_tells_the_holder(researcher, tier, reviewer, emails):
    grant = grant_expiring_in(researcher, tier, 10)
    application = renew(grant)

    with emails.on_commit():
        grant_revoke(grant_id=grant.pk, actor=reviewer, reason="Shared the weights.")

    application.refresh_from_db()
    assert application.status == Application.Status.REJECTED
    assert application.decision_reason == "The access it would renew was revoked."
    assert policy.tier_standing(researcher, tier).code == "revoked"
    revoked = Notification.objects.get(user=researcher, kind="grant_revoked")
    assert revoked.message == f"Your access to {tier} was revoked: Shared the weights."
    assert [message.to for message in emails.outbox] == [["dana@university.example"]]
    assert "Shared the weights." in emails.outbox[0].body


# --- Pages ----------------------------------------------------------------------------------


def test_the_holder_renews_from_the_tier_page(client, researcher, tier):
    grant = grant_expiring_in(researcher, tier, 10)
    client.force_login(researcher)
    page = client.get(reverse("tier-detail", kwargs={"tier_id": tier.pk}))
    assert b'id="renew-link"' in page.content

    response = client.post(reverse("grant-renew", kwargs={"grant_id": grant.pk}), {"statement": STATEMENT})

    application = Application.objects.get(kind="renewal")
    assert response.status_code == 302
    assert response["Location"] == reverse("application-detail", kwargs={"application_id": application.pk})


def test_the_renewal_page_says_why_it_cannot_renew_yet(client, researcher, tier):
    grant = grant_expiring_in(researcher, tier, 60)
    client.force_login(researcher)

    page = client.get(reverse("grant-renew", kwargs={"grant_id": grant.pk})).content.decode()

    assert 'data-code="too_early"' in page
    assert "<textarea" not in page


def test_a_renewal_without_a_statement_shows_the_error_and_changes_nothing(client, researcher, tier):
    grant = grant_expiring_in(researcher, tier, 10)
    client.force_login(researcher)

    with nothing_changes():
        response = client.post(reverse("grant-renew", kwargs={"grant_id": grant.pk}), {"statement": ""})

    assert response.status_code == 400


def test_someone_elses_grant_is_404_on_the_renewal_page(client, researcher, tier, outsider):
    grant = grant_expiring_in(researcher, tier, 10)
    client.force_login(outsider)

    with nothing_changes():
        response = client.post(
            reverse("grant-renew", kwargs={"grant_id": grant.pk}), {"statement": STATEMENT}
        )

    assert response.status_code == 404


# --- Expiry reminders -----------------------------------------------------------------------


def test_a_grant_is_reminded_thirty_days_ahead_once(researcher, tier, emails):
    grant = grant_expiring_in(researcher, tier, 20)

    with emails.on_commit():
        assert grant_expiry_reminders_send() == 1
        assert grant_expiry_reminders_send() == 0

    reminder = Notification.objects.get(user=researcher, kind="grant_expiring")
    assert f"expires on {grant.expires_at:%Y-%m-%d} (in 20 days)" in reminder.message
    assert reminder.url == reverse("grant-renew", kwargs={"grant_id": grant.pk})
    assert [message.to for message in emails.outbox] == [["dana@university.example"]]
    assert SentEmail.objects.filter(key__startswith=f"grant:{grant.pk}:expiry-reminder:30:").exists()


def test_a_grant_gets_the_seven_day_reminder_after_the_thirty_day_one(researcher, tier):
    grant = grant_expiring_in(researcher, tier, 20)
    grant_expiry_reminders_send()
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() + timedelta(days=6))

    assert grant_expiry_reminders_send() == 1
    assert grant_expiry_reminders_send() == 0

    assert Notification.objects.filter(user=researcher, kind="grant_expiring").count() == 2


def test_a_grant_first_seen_within_seven_days_gets_only_the_seven_day_reminder(researcher, tier):
    grant_expiring_in(researcher, tier, 3)

    assert grant_expiry_reminders_send() == 1
    assert grant_expiry_reminders_send() == 0

    assert SentEmail.objects.get().key.split(":")[3] == "7"


def test_no_reminder_far_from_expiry_nor_for_revoked_expired_or_open_ended_grants(researcher, tier, reviewer):
    grant_expiring_in(researcher, tier, 45)
    revoked = grant_expiring_in(reviewer, tier, 5)
    grant_revoke(grant_id=revoked.pk, actor=reviewer, reason="Left the lab.")
    grant_expiring_in(researcher, TierFactory(release=tier.release), -1)
    GrantFactory(user=researcher, tier=TierFactory(release=tier.release), expires_at=None)

    assert grant_expiry_reminders_send() == 0


def test_a_renewed_grant_is_reminded_again_before_its_new_date(researcher, tier):
    tier.renewal = Tier.Renewal.AUTO
    tier.save()
    grant = grant_expiring_in(researcher, tier, 5)
    grant_expiry_reminders_send()
    renew(grant)
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() + timedelta(days=4))

    assert grant_expiry_reminders_send() == 1


def test_the_reminder_of_a_tier_without_renewal_points_to_the_tier(researcher, tier, settings):
    tier.renewal = Tier.Renewal.NONE
    tier.save()
    grant_expiring_in(researcher, tier, 6)

    grant_expiry_reminders_send()

    reminder = Notification.objects.get(kind="grant_expiring")
    assert reminder.url == reverse("tier-detail", kwargs={"tier_id": tier.pk})
    assert "Apply again once it has expired." in reminder.message


def test_the_reminder_days_follow_the_setting(researcher, tier, settings):
    settings.GRANT_EXPIRY_REMINDER_DAYS = (14,)
    grant_expiring_in(researcher, tier, 20)
    assert grant_expiry_reminders_send() == 0

    settings.GRANT_EXPIRY_REMINDER_DAYS = ()
    grant_expiring_in(researcher, TierFactory(release=tier.release), 3)
    assert grant_expiry_reminders_send() == 0


def test_the_reminder_task_runs_from_beat(researcher, tier, celery_eager):
    grant_expiring_in(researcher, tier, 20)

    assert send_grant_expiry_reminders.delay().get() == 1
    entry = next(
        e
        for e in settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == "access.tasks.send_grant_expiry_reminders"
    )
    assert entry["schedule"] == 3600.0


def test_the_reminder_days_setting_defaults_to_thirty_and_seven():
    assert settings.GRANT_EXPIRY_REMINDER_DAYS == (30, 7)


@pytest.mark.parametrize(
    ("raw", "expected"), [("30,7", (30, 7)), (" 7 , 30 ,1", (30, 7, 1)), ("", ()), ("365", (365,))]
)
def test_the_reminder_days_parser_reads_a_list(monkeypatch, raw, expected):
    monkeypatch.setenv("GRANT_EXPIRY_REMINDER_DAYS", raw)

    assert env_int_set("GRANT_EXPIRY_REMINDER_DAYS", "30,7", minimum=1, maximum=365) == expected


@pytest.mark.parametrize("raw", ["30,,7", "thirty", "0", "366", "7,7", "30;7", "-7"])
def test_the_reminder_days_parser_refuses_bad_lists(monkeypatch, raw):
    monkeypatch.setenv("GRANT_EXPIRY_REMINDER_DAYS", raw)

    with pytest.raises(ImproperlyConfigured, match="GRANT_EXPIRY_REMINDER_DAYS"):
        env_int_set("GRANT_EXPIRY_REMINDER_DAYS", "30,7", minimum=1, maximum=365)


def test_the_portal_refuses_to_start_with_bad_reminder_days():
    result = start_django(GRANT_EXPIRY_REMINDER_DAYS="30,x")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "GRANT_EXPIRY_REMINDER_DAYS" in result.stderr
