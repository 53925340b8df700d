"""Watches, the "coming soon" page, and telling watchers once each that a tier opened.

The e-mail tests talk SMTP to a local sink (tests/smtp_sink.py) through Django's SMTP backend, so
that batches and connections are counted where the mail server sees them.
"""

from __future__ import annotations

import smtplib
import time
from datetime import timedelta

import pytest
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.urls import reverse
from django.utils import timezone

from access.models import AuditEvent
from releases.announcements import watchers_notify_pending
from releases.models import Release, Tier, Watch
from releases.rollout import rollout_tick, tier_open_now, watch_start, watch_stop
from releases.services import ReleaseError
from tests.factories import ReleaseFactory, TierFactory, UserFactory
from tests.helpers import nothing_changes
from tests.smtp_sink import SMTPSink

DAY = timedelta(days=1)


@pytest.fixture
def smtp(settings):
    """Django's SMTP backend pointed at a sink that records what it is sent."""
    with SMTPSink() as sink:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", sink.port, False
        yield sink


@pytest.fixture
def scheduled_tier(release):
    return TierFactory(
        release=release, name="Public", gate=Tier.Gate.CLICK_THROUGH, opens_at=timezone.now() + DAY
    )


def watchers(tier, count: int) -> list:
    users = [UserFactory(email=f"watcher{index:03d}@example.org") for index in range(count)]
    for user in users:
        watch_start(user=user, tier=tier)
    return users


def make_due(tier) -> None:
    Tier.objects.filter(pk=tier.pk).update(opens_at=timezone.now() - timedelta(seconds=1))


# --- Watching -------------------------------------------------------------------------------


def test_a_signed_in_user_watches_a_scheduled_tier_once_and_can_stop(researcher, scheduled_tier):
    first = watch_start(user=researcher, tier=scheduled_tier)
    again = watch_start(user=researcher, tier=scheduled_tier)

    assert first == again
    assert Watch.objects.filter(user=researcher, tier=scheduled_tier).count() == 1
    assert watch_stop(user=researcher, tier=scheduled_tier) is True
    assert watch_stop(user=researcher, tier=scheduled_tier) is False
    assert not Watch.objects.exists()


def test_starting_and_stopping_a_watch_is_audited_once_each(researcher, scheduled_tier):
    watch = watch_start(user=researcher, tier=scheduled_tier)
    watch_start(user=researcher, tier=scheduled_tier)
    watch_stop(user=researcher, tier=scheduled_tier)
    watch_stop(user=researcher, tier=scheduled_tier)

    events = AuditEvent.objects.filter(target_type="watch", target_id=watch.pk).order_by("id")
    assert [(event.action, event.actor_id) for event in events] == [
        ("watch.started", researcher.pk),
        ("watch.stopped", researcher.pk),
    ]


def test_watching_an_open_tier_or_a_tier_of_a_draft_is_refused(researcher, release, model):
    opened = TierFactory(release=release)
    draft = ReleaseFactory(model=model, status=Release.Status.DRAFT, published_at=None, revision="")
    unpublished = TierFactory(release=draft, opens_at=timezone.now() + DAY)

    with nothing_changes(), pytest.raises(ReleaseError, match="already open"):
        watch_start(user=researcher, tier=opened)
    with nothing_changes(), pytest.raises(ReleaseError, match="not published"):
        watch_start(user=researcher, tier=unpublished)
    assert not Watch.objects.exists()


def test_an_unverified_account_cannot_watch(scheduled_tier):
    unverified = UserFactory(verified=False)

    with pytest.raises(ReleaseError, match="Verify your e-mail address"):
        watch_start(user=unverified, tier=scheduled_tier)
    assert not Watch.objects.exists()


def test_watch_and_unwatch_from_the_tier_page(client, researcher, scheduled_tier):
    client.force_login(researcher)
    page = reverse("tier-detail", kwargs={"tier_id": scheduled_tier.pk})
    assert 'id="watch-button"' in client.get(page).content.decode()

    response = client.post(reverse("tier-watch", kwargs={"tier_id": scheduled_tier.pk}), {"next": page})
    assert response.status_code == 302
    assert response["Location"] == page
    assert Watch.objects.filter(user=researcher, tier=scheduled_tier).exists()
    assert 'id="unwatch-button"' in client.get(page).content.decode()

    client.post(reverse("tier-unwatch", kwargs={"tier_id": scheduled_tier.pk}), {"next": page})
    assert not Watch.objects.exists()


def test_watching_refuses_foreign_redirects(client, researcher, scheduled_tier):
    client.force_login(researcher)

    response = client.post(
        reverse("tier-watch", kwargs={"tier_id": scheduled_tier.pk}), {"next": "https://evil.example/"}
    )

    assert response["Location"] == reverse("tier-detail", kwargs={"tier_id": scheduled_tier.pk})


def test_watching_by_the_page_needs_a_session_a_published_tier_and_post(client, researcher, release, model):
    draft = ReleaseFactory(model=model, status=Release.Status.DRAFT, published_at=None, revision="")
    hidden = TierFactory(release=draft, opens_at=timezone.now() + DAY)
    opened = TierFactory(release=release)
    visible = TierFactory(release=release, opens_at=timezone.now() + DAY)

    signed_out = client.post(reverse("tier-watch", kwargs={"tier_id": visible.pk}))
    client.force_login(researcher)
    draft_tier = client.post(reverse("tier-watch", kwargs={"tier_id": hidden.pk}))
    open_tier = client.post(reverse("tier-watch", kwargs={"tier_id": opened.pk}), follow=True)
    get = client.get(reverse("tier-watch", kwargs={"tier_id": visible.pk}))

    assert signed_out.status_code == 302
    assert signed_out["Location"].startswith(reverse("account_login"))
    assert draft_tier.status_code == 404
    assert "This tier is already open." in open_tier.content.decode()
    assert get.status_code == 405
    assert not Watch.objects.exists()


# --- The "coming soon" page -----------------------------------------------------------------


def coming_soon_url(tier) -> str:
    model = tier.release.model
    return reverse(
        "tier-coming-soon",
        kwargs={"org_slug": model.organization.slug, "model_slug": model.slug, "tier_id": tier.pk},
    )


@pytest.mark.parametrize("gate", [Tier.Gate.OPEN, Tier.Gate.CLICK_THROUGH])
def test_anyone_sees_when_a_scheduled_public_tier_opens(client, release, gate):
    opens_at = timezone.now().replace(microsecond=0) + 10 * DAY
    tier = TierFactory(release=release, gate=gate, opens_at=opens_at)

    response = client.get(coming_soon_url(tier))

    assert response.status_code == 200
    content = response.content.decode()
    assert f'datetime="{opens_at.isoformat()}"' in content
    assert f"{opens_at:%H:%M} UTC" in content
    assert "Sign in</a> to be told by e-mail" in content


def test_the_coming_soon_page_offers_a_signed_in_user_to_watch(client, researcher, scheduled_tier):
    client.force_login(researcher)

    response = client.get(coming_soon_url(scheduled_tier))

    assert 'id="watch-button"' in response.content.decode()


def test_the_coming_soon_page_says_when_the_plan_is_held(client, release, owner, scheduled_tier):
    Release.objects.filter(pk=release.pk).update(plan_held_at=timezone.now())

    response = client.get(coming_soon_url(scheduled_tier))

    assert "the date may move" in response.content.decode()


def test_no_coming_soon_page_for_gated_or_unpublished_tiers_or_the_wrong_model(client, release, model):
    draft = ReleaseFactory(model=model, status=Release.Status.DRAFT, published_at=None, revision="")
    gated = TierFactory(release=release, gate=Tier.Gate.APPLICATION, opens_at=timezone.now() + DAY)
    invitation = TierFactory(release=release, gate=Tier.Gate.INVITATION, opens_at=timezone.now() + DAY)
    unpublished = TierFactory(release=draft, gate=Tier.Gate.OPEN, license=None, opens_at=timezone.now() + DAY)
    elsewhere = TierFactory(gate=Tier.Gate.OPEN, license=None, opens_at=timezone.now() + DAY)
    wrong_model = coming_soon_url(elsewhere).replace(elsewhere.release.model.slug, model.slug)

    for url in (
        coming_soon_url(gated),
        coming_soon_url(invitation),
        coming_soon_url(unpublished),
        wrong_model,
    ):
        assert client.get(url).status_code == 404, url


def test_the_coming_soon_page_of_an_opened_tier_leads_to_the_tier(client, release):
    tier = TierFactory(release=release, gate=Tier.Gate.CLICK_THROUGH)

    response = client.get(coming_soon_url(tier))

    assert response.status_code == 302
    assert response["Location"] == reverse("tier-detail", kwargs={"tier_id": tier.pk})


def test_the_model_page_links_a_scheduled_public_tier_to_its_coming_soon_page(
    client, release, scheduled_tier
):
    response = client.get(release.model.get_absolute_url())

    assert coming_soon_url(scheduled_tier) in response.content.decode()


# --- Telling watchers -----------------------------------------------------------------------


def test_an_opening_tells_each_watcher_once_in_batches_of_one_connection_each(smtp, settings, scheduled_tier):
    settings.WATCH_NOTIFY_BATCH_SIZE = 10
    people = watchers(scheduled_tier, 25)
    make_due(scheduled_tier)

    report = rollout_tick()
    again = rollout_tick()

    assert report.opened == [scheduled_tier.pk]
    assert (report.emails_sent, report.batches) == (25, 3)
    assert (again.opened, again.emails_sent, again.batches) == ([], 0, 0)
    assert smtp.count_by_recipient() == {user.email: 1 for user in people}
    assert smtp.sessions == 3
    per_session = [sum(1 for message in smtp.messages if message.session == session) for session in (1, 2, 3)]
    assert per_session == [10, 10, 5]
    scheduled_tier.refresh_from_db()
    assert scheduled_tier.watchers_notified_at is not None
    assert not Watch.objects.filter(notified_at__isnull=True).exists()
    assert not Watch.objects.filter(claimed_until__isnull=False).exists()


def test_the_announcement_says_which_tier_opened_and_where_to_go(smtp, scheduled_tier, researcher):
    watch = watch_start(user=researcher, tier=scheduled_tier)
    make_due(scheduled_tier)

    rollout_tick()

    [message] = smtp.messages
    headers = message.headers
    assert message.recipients == (researcher.email,)
    assert headers["Subject"] == "Public of Llama Lite v1.0 is open"
    assert headers["Message-ID"] == f"<watch-{watch.pk}.tier-{scheduled_tier.pk}@127.0.0.1>"
    body = message.data.decode()
    assert "http://127.0.0.1:8000" + reverse("tier-detail", kwargs={"tier_id": scheduled_tier.pk}) in body
    assert "Read and accept its license" in body


def test_a_tier_opened_by_hand_tells_its_watchers_at_the_next_tick(smtp, owner, scheduled_tier, researcher):
    watch_start(user=researcher, tier=scheduled_tier)

    tier_open_now(tier=scheduled_tier, actor=owner)
    assert smtp.messages == []
    report = rollout_tick()

    assert (report.opened, report.emails_sent) == ([], 1)
    assert smtp.count_by_recipient() == {researcher.email: 1}


def test_someone_who_stopped_watching_is_not_told(smtp, scheduled_tier):
    staying, leaving = watchers(scheduled_tier, 2)
    watch_stop(user=leaving, tier=scheduled_tier)
    make_due(scheduled_tier)

    rollout_tick()

    assert smtp.count_by_recipient() == {staying.email: 1}


def test_watches_claimed_by_another_worker_wait_until_its_claim_lapses(smtp, scheduled_tier):
    people = watchers(scheduled_tier, 4)
    make_due(scheduled_tier)
    # Another worker claimed two of them and is (as far as anyone knows) still sending.
    taken = Watch.objects.filter(user__in=people[:2])
    taken.update(claimed_until=timezone.now() + timedelta(minutes=1))

    rollout_tick()
    assert sorted(smtp.count_by_recipient()) == sorted(user.email for user in people[2:])
    scheduled_tier.refresh_from_db()
    assert scheduled_tier.watchers_notified_at is None

    # That worker died: its claim lapses and the next tick takes over.
    taken.update(claimed_until=timezone.now() - timedelta(seconds=1))
    rollout_tick()

    assert smtp.count_by_recipient() == {user.email: 1 for user in people}
    scheduled_tier.refresh_from_db()
    assert scheduled_tier.watchers_notified_at is not None


class FailingAfterTwo(LocmemBackend):
    """The mail server goes away after two messages."""

    def send_messages(self, messages):
        from django.core import mail

        if len(mail.outbox) >= 2:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


def test_a_mail_server_failure_frees_the_unsent_for_the_next_tick(scheduled_tier, settings, mailoutbox):
    people = watchers(scheduled_tier, 5)
    make_due(scheduled_tier)
    settings.EMAIL_BACKEND = f"{__name__}.FailingAfterTwo"

    with pytest.raises(smtplib.SMTPServerDisconnected):
        rollout_tick()

    assert Watch.objects.filter(notified_at__isnull=False).count() == 2
    assert not Watch.objects.filter(claimed_until__isnull=False).exists()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    rollout_tick()
    assert sorted(message.to[0] for message in mailoutbox) == sorted(user.email for user in people)


class RefusingOneAddress(LocmemBackend):
    def send_messages(self, messages):
        if messages[0].to == ["watcher001@example.org"]:
            raise smtplib.SMTPRecipientsRefused({"watcher001@example.org": (550, b"No such user")})
        return super().send_messages(messages)


def test_an_address_the_server_refuses_does_not_hold_up_the_others(scheduled_tier, settings, mailoutbox):
    watchers(scheduled_tier, 3)
    make_due(scheduled_tier)
    settings.EMAIL_BACKEND = f"{__name__}.RefusingOneAddress"

    report = rollout_tick()

    assert report.emails_sent == 2
    assert sorted(message.to[0] for message in mailoutbox) == [
        "watcher000@example.org",
        "watcher002@example.org",
    ]
    scheduled_tier.refresh_from_db()
    assert scheduled_tier.watchers_notified_at is not None


class SlowBackend(LocmemBackend):
    def send_messages(self, messages):
        time.sleep(0.15)
        return super().send_messages(messages)


def test_a_worker_stops_before_its_claim_lapses_and_sends_nothing_twice(scheduled_tier, settings, mailoutbox):
    people = watchers(scheduled_tier, 8)
    make_due(scheduled_tier)
    settings.EMAIL_BACKEND = f"{__name__}.SlowBackend"
    # A one-second lease with 0.15 s per message: each claim covers about five messages, not eight.
    settings.WATCH_CLAIM_LEASE_SECONDS = 1

    report = rollout_tick()

    assert report.emails_sent == 8
    assert report.batches >= 2
    assert sorted(message.to[0] for message in mailoutbox) == sorted(user.email for user in people)


def test_the_time_budget_stops_claiming_and_the_next_tick_carries_on(scheduled_tier, mailoutbox):
    watchers(scheduled_tier, 3)
    make_due(scheduled_tier)

    assert watchers_notify_pending(budget_seconds=0) == (0, 0)
    assert rollout_tick().emails_sent == 3
    assert len(mailoutbox) == 3


def test_a_tier_nobody_watches_is_finished_at_once(release):
    tier = TierFactory(release=release, watchers_notified_at=None)

    rollout_tick()

    tier.refresh_from_db()
    assert tier.watchers_notified_at is not None
