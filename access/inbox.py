"""In-app notifications, and their e-mails: at once, or in a daily digest.

``notify`` is what every workflow calls to tell someone something: it writes a
Notification row in the caller's transaction and enqueues its e-mail after commit.

Each notification is e-mailed at most once, by whichever sender claims it first with a
conditional update of ``emailed_at`` (a failed hand-over to the mail server releases the
claim for a retry):

- the immediate sender (``send_notification_email``) claims one notification, and only
  while its user wants e-mails at once, as the database says at that moment, not as the
  caller's copy of the user said: switching to the digest stops the e-mails of
  notifications still queued;
- the daily digest (``notification_digests_send``) claims, per digest-mode user, every
  notification created before today's digest time, and sends them in one e-mail;
- switching back to immediate e-mails (``notification_email_mode_set``) sends what was
  waiting for the digest at once, in one e-mail; what a digest already carried is never
  sent again.

The one gap: a worker killed between claiming and handing the message over loses that
e-mail (the notification stays in the in-app list). Claiming first is the choice: a
duplicate would be sent on every redelivery, a loss only on a crash at that instant.
"""

from __future__ import annotations

import logging
import smtplib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from access.audit import audit_record
from access.errors import InvalidInput
from access.models import Notification, User

logger = logging.getLogger(__name__)

MAX_MESSAGE_LENGTH = 500
MAX_URL_LENGTH = 500
SUBJECT_MESSAGE_LENGTH = 120
# Digest-mode users e-mailed per SMTP connection.
DIGEST_BATCH_SIZE = 200
# A digest lists at most this many notifications (the newest) and links to the rest.
DIGEST_MAX_LISTED = 50
# A digest run stops starting new batches after this long, well inside the task's time limit, and
# hands the rest to a fresh task.
DIGEST_BUDGET_SECONDS = 180.0


# --- Writing ---------------------------------------------------------------------------------


def notify(*, user, kind: str, message: str, url: str = "") -> Notification:
    """Tell ``user`` something: a Notification row in the caller's transaction, and its e-mail
    after commit (sent at once, or left for the daily digest, by the user's preference when the
    e-mail task runs). ``url`` is a path on this site (a ``SITE_URL`` prefix is dropped)."""
    if url.startswith(settings.SITE_URL + "/"):
        url = url[len(settings.SITE_URL) :]
    if url and (not url.startswith("/") or url.startswith("//") or len(url) > MAX_URL_LENGTH):
        raise ValueError(f"A notification's url must be a path on this site, not {url!r}")
    notification = Notification.objects.create(
        user=user, kind=kind[:48], message=message[:MAX_MESSAGE_LENGTH], url=url
    )
    from access.tasks import send_notification_email

    # Enqueued whatever the caller's copy of the user says: the task reads the preference itself,
    # so a user who switches modes while this transaction runs still gets the e-mail exactly once.
    send_notification_email.delay_on_commit(notification.pk)
    return notification


def notification_mark_read(*, user, notification_id: int) -> Notification:
    """Mark one of ``user``'s notifications read (once: the first reading time stays).
    Raises Notification.DoesNotExist for another user's notification."""
    notification = Notification.objects.get(pk=notification_id, user=user)
    if notification.read_at is None:
        now = timezone.now()
        if Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=now):
            notification.read_at = now
    return notification


def notifications_mark_all_read(*, user) -> int:
    """Mark every unread notification of ``user`` read; returns how many were unread.

    Reading is not audited: it changes what the user's own list shows, not anyone's access."""
    return Notification.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())


def notification_email_mode_set(*, user, mode: str) -> bool:
    """Choose how ``user``'s notifications are e-mailed; returns whether the choice changed.

    Audited. Switching to immediate e-mails sends what was waiting for the digest, once, in one
    e-mail after commit; switching to the digest leaves every unsent notification to it."""
    if mode not in User.EmailMode.values:
        raise InvalidInput("Choose immediate e-mails or a daily digest.", code="email_mode")
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        previous = locked.notification_email_mode
        if previous == mode:
            return False
        User.objects.filter(pk=locked.pk).update(notification_email_mode=mode)
        audit_record(
            action="notifications.email_mode_changed",
            target=locked,
            actor=user,
            payload={"from": previous, "to": mode},
        )
        if mode == User.EmailMode.IMMEDIATE:
            from access.tasks import send_notification_backlog

            send_notification_backlog.delay_on_commit(locked.pk)
    user.notification_email_mode = mode
    return True


# --- Reading ---------------------------------------------------------------------------------


def unread_count_of_user_row() -> Coalesce:
    """An expression for a User queryset: the number of unread notifications of each user row,
    so that the header can ask it in the same query as its other questions."""
    unread = (
        Notification.objects.filter(user=OuterRef("pk"), read_at__isnull=True)
        .order_by()
        .values("user")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return Coalesce(Subquery(unread), 0)


def open_url(notification: Notification) -> str:
    """Where the e-mails link: the redirect that marks the notification read on the way."""
    return settings.SITE_URL + reverse("notification-open", kwargs={"notification_id": notification.pk})


# --- E-mail at once --------------------------------------------------------------------------


def send_notification_email(*, notification_id: int) -> bool:
    """E-mail one notification unless it was already e-mailed or its user now wants the digest;
    returns whether this call sent it."""
    now = timezone.now()
    # The preference is a subquery of the UPDATE, not a join: PostgreSQL then re-checks
    # ``emailed_at IS NULL`` on the row itself when two claimers race.
    wants_it_now = User.objects.filter(notification_email_mode=User.EmailMode.IMMEDIATE).values("pk")
    claimed = Notification.objects.filter(
        pk=notification_id, emailed_at__isnull=True, user_id__in=wants_it_now
    ).update(emailed_at=now)
    if not claimed:
        return False
    notification = Notification.objects.select_related("user").get(pk=notification_id)
    context = {"notification": notification, "open_url": open_url(notification), **_links()}
    subject = " ".join(notification.message.split())[:SUBJECT_MESSAGE_LENGTH]
    message = EmailMessage(
        f"[Gatehouse] {subject}",
        render_to_string("access/emails/notification.txt", context),
        None,
        [notification.user.email],
    )
    try:
        message.send()
    except Exception:
        Notification.objects.filter(pk=notification_id, emailed_at=now).update(emailed_at=None)
        raise
    return True


# --- The daily digest ------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestRun:
    users_emailed: int
    notifications_emailed: int
    # The time budget ran out with users left; the caller should run again.
    unfinished: bool


def digest_cutoff(now: datetime) -> datetime:
    """The latest digest time (``NOTIFICATION_DIGEST_HOUR_UTC`` o'clock UTC) at or before ``now``.

    A digest carries what was created before it, so any number of runs on one day send one
    digest: what arrives later waits for tomorrow's."""
    now = now.astimezone(UTC)
    cutoff = now.replace(hour=settings.NOTIFICATION_DIGEST_HOUR_UTC, minute=0, second=0, microsecond=0)
    return cutoff if cutoff <= now else cutoff - timedelta(days=1)


def notification_digests_send(
    *, now: datetime | None = None, budget_seconds: float | None = None
) -> DigestRun:
    """E-mail each digest-mode user with un-e-mailed notifications from before the cutoff one
    digest listing them, batch by batch over one SMTP connection per batch.

    Safe to run twice: each user's notifications are claimed before their e-mail goes out, so
    another run finds nothing to send. A refused recipient is skipped (their claim released, for
    the next run); any other failure releases the claim of the message that failed and raises,
    for the task to retry."""
    cutoff = digest_cutoff(now or timezone.now())
    deadline = time.monotonic() + (DIGEST_BUDGET_SECONDS if budget_seconds is None else budget_seconds)
    users_emailed = notifications_emailed = 0
    last_user_id = 0
    while True:
        users = _digest_users(cutoff=cutoff, after_user_id=last_user_id)
        if not users:
            return DigestRun(users_emailed, notifications_emailed, unfinished=False)
        if time.monotonic() >= deadline:
            return DigestRun(users_emailed, notifications_emailed, unfinished=True)
        connection = get_connection()
        try:
            connection.open()
            for user in users:
                count = _send_digest(connection, user, created_before=cutoff)
                if count:
                    users_emailed += 1
                    notifications_emailed += count
        finally:
            connection.close()
        last_user_id = users[-1].pk
        logger.info("Notification digests: %s users e-mailed so far", users_emailed)


def notification_backlog_send(*, user_id: int) -> int:
    """E-mail a user who switched to immediate e-mails what was waiting for their digest, in one
    e-mail; returns how many notifications it carried (0 if none was waiting)."""
    user = User.objects.filter(pk=user_id).only("pk", "email", "full_name").first()
    if user is None:
        return 0
    connection = get_connection()
    try:
        return _send_digest(connection, user, created_before=None, backlog=True)
    finally:
        connection.close()


def _digest_users(*, cutoff: datetime, after_user_id: int) -> list[User]:
    waiting = Notification.objects.filter(user=OuterRef("pk"), emailed_at__isnull=True, created_at__lt=cutoff)
    return list(
        User.objects.filter(
            notification_email_mode=User.EmailMode.DIGEST, is_active=True, pk__gt=after_user_id
        )
        .filter(Exists(waiting))
        .order_by("pk")
        .only("pk", "email", "full_name")[:DIGEST_BATCH_SIZE]
    )


def _send_digest(connection, user: User, *, created_before: datetime | None, backlog: bool = False) -> int:
    """Claim the user's un-e-mailed notifications (created before ``created_before``), e-mail
    them in one message over ``connection``; returns how many it carried."""
    claimed_at = timezone.now()
    claimable = Notification.objects.filter(user_id=user.pk, emailed_at__isnull=True)
    if created_before is not None:
        claimable = claimable.filter(created_at__lt=created_before)
    count = claimable.update(emailed_at=claimed_at)
    if not count:
        return 0
    claimed = Notification.objects.filter(user_id=user.pk, emailed_at=claimed_at)
    listed = list(claimed.order_by("-created_at", "-pk")[:DIGEST_MAX_LISTED])
    context = {
        "user": user,
        "entries": [(notification, open_url(notification)) for notification in listed],
        "count": count,
        "more": count - len(listed),
        "backlog": backlog,
        **_links(),
    }
    message = EmailMessage(
        render_to_string("access/emails/notification_digest_subject.txt", context).strip(),
        render_to_string("access/emails/notification_digest.txt", context),
        None,
        [user.email],
        connection=connection,
    )
    try:
        connection.send_messages([message])
    except smtplib.SMTPRecipientsRefused:
        claimed.update(emailed_at=None)
        # Raising would stall every user after this one, run after run.
        logger.warning("Mail server refused %s; their digest waits for the next run", user.email)
        return 0
    except Exception:
        claimed.update(emailed_at=None)
        raise
    return count


def _links() -> dict[str, str]:
    return {"notifications_url": settings.SITE_URL + reverse("notification-list")}
