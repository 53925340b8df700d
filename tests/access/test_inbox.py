"""Notifications: the in-app list, the unread count, e-mails at once or in a daily digest."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta

import pytest
from django.core.mail.backends import locmem
from django.test import Client
from django.urls import reverse

from access import inbox
from access.inbox import (
    digest_cutoff,
    notification_digests_send,
    notification_email_mode_set,
    notify,
    send_notification_email,
)
from access.models import AuditEvent, Notification, User
from access.tasks import send_notification_digests
from portal.celery import app as celery_app
from tests.factories import UserFactory
from tests.portal.test_settings import start_django

# Digest day in these tests: the digest hour is 07:00 UTC (the default).
DIGEST_TIME = datetime(2025, 3, 10, 7, 0, tzinfo=UTC)
# Session, user, the header's one query (publishes anywhere + unread count), the count and the page.
LIST_PAGE_QUERIES = 5


def make_notification(user, message: str, *, created_at: datetime, url: str = "") -> Notification:
    """A notification as notify writes it, dated, without enqueuing its e-mail."""
    return Notification.objects.create(
        user=user, kind="test", message=message, url=url, created_at=created_at
    )


def use_digest(user) -> None:
    User.objects.filter(pk=user.pk).update(notification_email_mode=User.EmailMode.DIGEST)
    user.notification_email_mode = User.EmailMode.DIGEST


@pytest.fixture
def failing_smtp(monkeypatch):
    """Make the mail server fail: ``failing_smtp(error)`` for everyone, or only for ``recipient``."""

    def fail(error: Exception, recipient: str | None = None) -> None:
        original = locmem.EmailBackend.send_messages

        def send_messages(self, messages):
            if recipient is None or any(recipient in message.to for message in messages):
                raise error
            return original(self, messages)

        monkeypatch.setattr(locmem.EmailBackend, "send_messages", send_messages)

    return fail


# --- notify and the immediate e-mail ----------------------------------------------------------


def test_notify_writes_a_row(reviewer, emails):
    with emails.on_commit():
        notification = notify(
            user=reviewer, kind="application.assigned", message="Application #7 is yours.", url="/review/"
        )

    row = Notification.objects.get(pk=notification.pk)
    assert (row.user, row.kind, row.message, row.url) == (
        reviewer,
        "application.assigned",
        "Application #7 is yours.",
        "/review/",
    )
    assert row.read_at is None


def test_notify_keeps_a_site_url_as_a_path_and_refuses_another_site(reviewer, settings, emails):
    with emails.on_commit():
        notification = notify(user=reviewer, kind="k", message="m", url=settings.SITE_URL + "/review/")

    assert notification.url == "/review/"
    with pytest.raises(ValueError, match="path on this site"):
        notify(user=reviewer, kind="k", message="m", url="https://evil.example/")
    with pytest.raises(ValueError, match="path on this site"):
        notify(user=reviewer, kind="k", message="m", url="//evil.example/")


def test_immediate_mode_emails_once_even_if_the_task_runs_twice(reviewer, emails):
    with emails.on_commit():
        notification = notify(user=reviewer, kind="k", message="Application #7 is yours.", url="/review/")

    assert send_notification_email(notification_id=notification.pk) is False
    assert len(emails.outbox) == 1
    message = emails.outbox[0]
    assert message.to == ["bob@acme.example"]
    assert message.subject == "[Gatehouse] Application #7 is yours."
    assert f"/me/notifications/{notification.pk}/open/" in message.body
    notification.refresh_from_db()
    assert notification.emailed_at is not None


def test_a_failed_immediate_email_releases_its_claim_for_the_retry(reviewer, failing_smtp, mailoutbox):
    notification = make_notification(reviewer, "Retry me", created_at=DIGEST_TIME)
    failing_smtp(smtplib.SMTPServerDisconnected("gone"))

    with pytest.raises(smtplib.SMTPServerDisconnected):
        send_notification_email(notification_id=notification.pk)

    notification.refresh_from_db()
    assert notification.emailed_at is None
    assert mailoutbox == []


def test_digest_mode_sends_no_immediate_email(reviewer, emails):
    use_digest(reviewer)

    with emails.on_commit():
        notification = notify(user=reviewer, kind="k", message="For the digest")

    assert emails.outbox == []
    notification.refresh_from_db()
    assert notification.emailed_at is None


# --- The daily digest -------------------------------------------------------------------------


def test_the_digest_groups_each_users_unemailed_notifications_in_one_email(
    reviewer, researcher, owner, mailoutbox
):
    use_digest(reviewer)
    use_digest(researcher)
    for hours in (1, 5, 30):
        make_notification(
            reviewer, f"Bob's news from {hours} h ago", created_at=DIGEST_TIME - timedelta(hours=hours)
        )
    make_notification(researcher, "Dana's news", created_at=DIGEST_TIME - timedelta(minutes=1))
    already_sent = make_notification(reviewer, "Sent yesterday", created_at=DIGEST_TIME - timedelta(days=2))
    Notification.objects.filter(pk=already_sent.pk).update(emailed_at=DIGEST_TIME - timedelta(days=1))
    # An immediate-mode user's notifications are never in a digest.
    make_notification(owner, "Alice's news", created_at=DIGEST_TIME - timedelta(hours=1))

    run = notification_digests_send(now=DIGEST_TIME + timedelta(seconds=5))

    assert (run.users_emailed, run.notifications_emailed, run.unfinished) == (2, 4, False)
    by_recipient = {message.to[0]: message for message in mailoutbox}
    assert sorted(by_recipient) == ["bob@acme.example", "dana@university.example"]
    bob_digest = by_recipient["bob@acme.example"]
    assert bob_digest.subject == "[Gatehouse] Your daily digest: 3 notifications"
    for hours in (1, 5, 30):
        assert f"Bob's news from {hours} h ago" in bob_digest.body
    assert "Sent yesterday" not in bob_digest.body
    assert "Dana's news" in by_recipient["dana@university.example"].body
    assert not Notification.objects.filter(user__in=[reviewer, researcher], emailed_at__isnull=True).exists()
    assert Notification.objects.get(user=owner).emailed_at is None


def test_a_second_digest_run_the_same_day_sends_nothing(reviewer, mailoutbox):
    use_digest(reviewer)
    make_notification(reviewer, "Before the digest", created_at=DIGEST_TIME - timedelta(hours=2))
    # Arrives after the digest hour, before the run: it waits for tomorrow's digest.
    make_notification(reviewer, "After the digest", created_at=DIGEST_TIME + timedelta(minutes=1))
    first = notification_digests_send(now=DIGEST_TIME + timedelta(minutes=2))
    assert first.notifications_emailed == 1
    assert "After the digest" not in mailoutbox[0].body

    again = notification_digests_send(now=DIGEST_TIME + timedelta(hours=5))

    assert again.users_emailed == 0
    assert len(mailoutbox) == 1

    tomorrow = notification_digests_send(now=DIGEST_TIME + timedelta(days=1, seconds=10))

    assert tomorrow.users_emailed == 1
    assert len(mailoutbox) == 2
    assert "After the digest" in mailoutbox[1].body
    assert "Before the digest" not in mailoutbox[1].body


def test_a_failed_digest_releases_the_claim_for_a_retry(reviewer, mailoutbox, monkeypatch):
    use_digest(reviewer)
    make_notification(reviewer, "Try again", created_at=DIGEST_TIME - timedelta(hours=1))
    with monkeypatch.context() as patch:
        patch.setattr(locmem.EmailBackend, "send_messages", _raise_disconnected)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            notification_digests_send(now=DIGEST_TIME)

    assert Notification.objects.get(user=reviewer).emailed_at is None
    assert mailoutbox == []

    retry = notification_digests_send(now=DIGEST_TIME + timedelta(minutes=5))

    assert retry.users_emailed == 1
    assert [message.to for message in mailoutbox] == [["bob@acme.example"]]


def _raise_disconnected(self, messages):
    raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def test_a_refused_recipient_does_not_stop_the_others(reviewer, researcher, failing_smtp, mailoutbox):
    use_digest(reviewer)
    use_digest(researcher)
    make_notification(reviewer, "For Bob", created_at=DIGEST_TIME - timedelta(hours=1))
    make_notification(researcher, "For Dana", created_at=DIGEST_TIME - timedelta(hours=1))
    failing_smtp(smtplib.SMTPRecipientsRefused({"bob@acme.example": (550, b"no")}), "bob@acme.example")

    run = notification_digests_send(now=DIGEST_TIME)

    assert run.users_emailed == 1
    assert [message.to for message in mailoutbox] == [["dana@university.example"]]
    assert Notification.objects.get(user=reviewer).emailed_at is None


def test_the_digest_goes_out_in_batches_over_one_connection_each(db, mailoutbox, monkeypatch):
    users = UserFactory.create_batch(5, notification_email_mode=User.EmailMode.DIGEST)
    for user in users:
        make_notification(user, "News", created_at=DIGEST_TIME - timedelta(hours=1))
    connections = []
    real_get_connection = inbox.get_connection

    def counting_get_connection(*args, **kwargs):
        connections.append(real_get_connection(*args, **kwargs))
        return connections[-1]

    monkeypatch.setattr(inbox, "DIGEST_BATCH_SIZE", 2)
    monkeypatch.setattr(inbox, "get_connection", counting_get_connection)

    run = notification_digests_send(now=DIGEST_TIME)

    assert run.users_emailed == 5
    assert len(connections) == 3
    assert sorted(message.to[0] for message in mailoutbox) == sorted(user.email for user in users)


def test_a_long_digest_lists_the_newest_and_links_to_the_rest(reviewer, mailoutbox, monkeypatch):
    use_digest(reviewer)
    monkeypatch.setattr(inbox, "DIGEST_MAX_LISTED", 3)
    for minutes in range(1, 6):
        make_notification(reviewer, f"Item {minutes}", created_at=DIGEST_TIME - timedelta(minutes=minutes))

    notification_digests_send(now=DIGEST_TIME)

    body = mailoutbox[0].body
    assert [f"Item {minutes}" in body for minutes in range(1, 6)] == [True, True, True, False, False]
    assert "And 2 more: http://" in body
    assert not Notification.objects.filter(user=reviewer, emailed_at__isnull=True).exists()


def test_the_beat_task_sends_the_digest(reviewer, mailoutbox):
    use_digest(reviewer)
    make_notification(reviewer, "Old news", created_at=datetime.now(UTC) - timedelta(days=2))

    assert send_notification_digests() == 1
    assert send_notification_digests() == 0
    assert len(mailoutbox) == 1


@pytest.mark.parametrize(
    ("now", "cutoff"),
    [
        (datetime(2025, 3, 10, 7, 0, tzinfo=UTC), datetime(2025, 3, 10, 7, 0, tzinfo=UTC)),
        (datetime(2025, 3, 10, 23, 59, tzinfo=UTC), datetime(2025, 3, 10, 7, 0, tzinfo=UTC)),
        (datetime(2025, 3, 10, 6, 59, tzinfo=UTC), datetime(2025, 3, 9, 7, 0, tzinfo=UTC)),
    ],
)
def test_the_digest_carries_what_arrived_before_the_latest_digest_hour(now, cutoff):
    assert digest_cutoff(now) == cutoff


def test_beat_sends_the_digest_daily_at_the_configured_hour(settings):
    schedule = celery_app.conf.beat_schedule["send-notification-digests"]

    assert schedule["task"] == "access.tasks.send_notification_digests"
    assert schedule["schedule"].hour == {settings.NOTIFICATION_DIGEST_HOUR_UTC} == {7}
    assert schedule["schedule"].minute == {0}


@pytest.mark.parametrize("value", ["24", "-1", "seven"])
def test_a_bad_digest_hour_stops_the_process_and_names_the_variable(value):
    result = start_django(NOTIFICATION_DIGEST_HOUR_UTC=value)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "NOTIFICATION_DIGEST_HOUR_UTC" in result.stderr


# --- Switching between immediate e-mails and the digest ---------------------------------------


def test_switching_to_immediate_sends_the_waiting_ones_once_and_never_resends_digested_ones(reviewer, emails):
    use_digest(reviewer)
    make_notification(reviewer, "Was in a digest", created_at=DIGEST_TIME - timedelta(hours=3))
    notification_digests_send(now=DIGEST_TIME)
    make_notification(reviewer, "Waiting one", created_at=DIGEST_TIME + timedelta(hours=1))
    make_notification(reviewer, "Waiting two", created_at=DIGEST_TIME + timedelta(hours=2))

    with emails.on_commit():
        notification_email_mode_set(user=reviewer, mode=User.EmailMode.IMMEDIATE)

    assert len(emails.outbox) == 2
    backlog = emails.outbox[1]
    assert backlog.subject == "[Gatehouse] Your waiting notifications: 2 notifications"
    assert "Waiting one" in backlog.body and "Waiting two" in backlog.body
    assert "Was in a digest" not in backlog.body

    with emails.on_commit():
        notify(user=reviewer, kind="k", message="New one")

    assert [message.subject for message in emails.outbox[2:]] == ["[Gatehouse] New one"]
    assert notification_digests_send(now=DIGEST_TIME + timedelta(days=1)).users_emailed == 0


def test_switching_to_digest_stops_immediate_emails_already_queued(
    reviewer, celery_eager, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        notify(user=reviewer, kind="k", message="Queued before the switch")
    notification_email_mode_set(user=reviewer, mode=User.EmailMode.DIGEST)

    for callback in queued:
        callback()

    assert mailoutbox == []
    notification_digests_send(now=datetime.now(UTC) + timedelta(days=1))
    assert len(mailoutbox) == 1
    assert "Queued before the switch" in mailoutbox[0].body


def test_notify_follows_the_stored_preference_not_a_stale_copy_of_the_user(reviewer, emails):
    stale_copy = User.objects.get(pk=reviewer.pk)
    use_digest(reviewer)

    with emails.on_commit():
        notify(user=stale_copy, kind="k", message="Digest, whatever the copy says")

    assert emails.outbox == []


# --- Pages ------------------------------------------------------------------------------------


def test_the_list_shows_only_the_owners_notifications_newest_first(client, reviewer, researcher):
    make_notification(reviewer, "Older for Bob", created_at=DIGEST_TIME - timedelta(hours=2))
    make_notification(reviewer, "Newer for Bob", created_at=DIGEST_TIME - timedelta(hours=1))
    make_notification(researcher, "Dana's private news", created_at=DIGEST_TIME)
    client.force_login(reviewer)

    response = client.get(reverse("notification-list"))

    page = response.content.decode()
    assert response.status_code == 200
    assert page.index("Newer for Bob") < page.index("Older for Bob")
    assert "Dana's private news" not in page


def test_the_list_is_paginated(client, reviewer):
    Notification.objects.bulk_create(
        Notification(
            user=reviewer,
            kind="k",
            message=f"Item {number:03d}",
            created_at=DIGEST_TIME + timedelta(minutes=number),
        )
        for number in range(60)
    )
    client.force_login(reviewer)

    first = client.get(reverse("notification-list")).content.decode()
    second = client.get(reverse("notification-list"), {"page": 2}).content.decode()

    assert "Item 059" in first and "Item 010" in first and "Item 009" not in first
    assert "Item 009" in second and "Item 000" in second and "Item 059" not in second
    assert "Page 2 of 2" in second


def test_the_list_asks_the_same_number_of_queries_at_5_and_200_notifications(
    client, reviewer, django_assert_max_num_queries
):
    def add(count: int) -> None:
        Notification.objects.bulk_create(
            Notification(user=reviewer, kind="k", message=f"News {number}", created_at=DIGEST_TIME)
            for number in range(count)
        )

    client.force_login(reviewer)
    add(5)
    with django_assert_max_num_queries(LIST_PAGE_QUERIES) as with_five:
        assert client.get(reverse("notification-list")).status_code == 200
    add(195)
    with django_assert_max_num_queries(LIST_PAGE_QUERIES) as with_two_hundred:
        assert client.get(reverse("notification-list")).status_code == 200

    assert len(with_five.captured_queries) == len(with_two_hundred.captured_queries) == LIST_PAGE_QUERIES


def test_opening_a_notification_marks_it_read_and_follows_its_link(client, reviewer):
    notification = make_notification(reviewer, "Look", created_at=DIGEST_TIME, url="/review/")
    client.force_login(reviewer)

    response = client.get(reverse("notification-open", args=[notification.pk]))

    assert response.status_code == 302
    assert response["Location"] == "/review/"
    notification.refresh_from_db()
    first_read = notification.read_at
    assert first_read is not None
    client.get(reverse("notification-open", args=[notification.pk]))
    notification.refresh_from_db()
    assert notification.read_at == first_read


def test_a_notification_without_a_link_opens_the_list(client, reviewer):
    notification = make_notification(reviewer, "Nowhere to go", created_at=DIGEST_TIME)
    client.force_login(reviewer)

    response = client.get(reverse("notification-open", args=[notification.pk]))

    assert response["Location"] == reverse("notification-list")


def test_another_users_notification_answers_404_and_stays_unread(client, reviewer, researcher):
    notification = make_notification(researcher, "Dana's", created_at=DIGEST_TIME, url="/review/")
    client.force_login(reviewer)

    response = client.get(reverse("notification-open", args=[notification.pk]))

    assert response.status_code == 404
    notification.refresh_from_db()
    assert notification.read_at is None
    assert client.get(reverse("notification-open", args=[987654])).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, reviewer):
    notification = make_notification(reviewer, "Bob's", created_at=DIGEST_TIME)

    for url in (reverse("notification-list"), reverse("notification-open", args=[notification.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))
    notification.refresh_from_db()
    assert notification.read_at is None


def test_mark_all_read_marks_only_the_owners_and_only_by_post(client, reviewer, researcher):
    mine = [make_notification(reviewer, f"Mine {n}", created_at=DIGEST_TIME) for n in range(3)]
    theirs = make_notification(researcher, "Theirs", created_at=DIGEST_TIME)
    client.force_login(reviewer)

    assert client.get(reverse("notification-read-all")).status_code == 405
    response = client.post(reverse("notification-read-all"))

    assert response.status_code == 302
    assert Notification.objects.filter(pk__in=[n.pk for n in mine], read_at__isnull=True).count() == 0
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_the_header_shows_the_unread_count(client, reviewer, release):
    first = make_notification(reviewer, "One", created_at=DIGEST_TIME)
    make_notification(reviewer, "Two", created_at=DIGEST_TIME)
    client.force_login(reviewer)

    assert 'id="unread-count">2<' in client.get(reverse("catalogue")).content.decode()
    client.get(reverse("notification-open", args=[first.pk]))
    assert 'id="unread-count">1<' in client.get(reverse("catalogue")).content.decode()
    client.post(reverse("notification-read-all"))
    page = client.get(reverse("catalogue")).content.decode()
    assert 'id="notifications-link"' in page
    assert 'id="unread-count"' not in page


def test_anonymous_header_has_no_notifications_link(client, release):
    assert 'id="notifications-link"' not in client.get(reverse("catalogue")).content.decode()


# --- The e-mail preference --------------------------------------------------------------------


def test_changing_the_email_preference_is_audited(client, reviewer):
    client.force_login(reviewer)

    response = client.post(reverse("notification-email-mode"), {"mode": "digest"})

    assert response.status_code == 302
    reviewer.refresh_from_db()
    assert reviewer.notification_email_mode == User.EmailMode.DIGEST
    event = AuditEvent.objects.get(action="notifications.email_mode_changed")
    assert (event.actor, event.target_type, event.target_id) == (reviewer, "user", reviewer.pk)
    assert event.payload == {"from": "immediate", "to": "digest"}
    assert 'value="digest"' in client.get(reverse("notification-list")).content.decode()


def test_choosing_the_same_preference_again_changes_and_audits_nothing(reviewer):
    assert notification_email_mode_set(user=reviewer, mode=User.EmailMode.IMMEDIATE) is False
    assert not AuditEvent.objects.filter(action="notifications.email_mode_changed").exists()


def test_a_bad_preference_is_refused_and_changes_nothing(client, reviewer):
    client.force_login(reviewer)

    response = client.post(reverse("notification-email-mode"), {"mode": "hourly"})

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    reviewer.refresh_from_db()
    assert reviewer.notification_email_mode == User.EmailMode.IMMEDIATE
    assert not AuditEvent.objects.filter(action="notifications.email_mode_changed").exists()


def test_the_preference_form_needs_the_csrf_token(reviewer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(reviewer)

    response = client.post(reverse("notification-email-mode"), {"mode": "digest"})

    assert response.status_code == 403
    reviewer.refresh_from_db()
    assert reviewer.notification_email_mode == User.EmailMode.IMMEDIATE


def test_a_digest_run_out_of_time_says_so_and_the_next_run_carries_on(reviewer, mailoutbox):
    use_digest(reviewer)
    make_notification(reviewer, "Later", created_at=DIGEST_TIME - timedelta(hours=1))

    out_of_time = notification_digests_send(now=DIGEST_TIME, budget_seconds=0)
    carried_on = notification_digests_send(now=DIGEST_TIME + timedelta(minutes=1))

    assert (out_of_time.unfinished, out_of_time.users_emailed) == (True, 0)
    assert (carried_on.unfinished, carried_on.users_emailed) == (False, 1)
    assert len(mailoutbox) == 1
