"""In-app notifications, and their e-mails: at once, or in a daily digest.

``notify`` is what every workflow calls to tell someone something: it writes a
Notification row in the caller's transaction and, for a user who wants e-mails at
once, enqueues the e-mail after commit. Each notification is e-mailed at most once:
the sender claims it with a conditional update of ``emailed_at`` before handing it
to the mail server (and releases the claim if the hand-over fails).
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from access.models import Notification, User

MAX_MESSAGE_LENGTH = 500


def notify(*, user, kind: str, message: str, url: str = "") -> Notification:
    """Tell ``user`` something, in-app and by e-mail according to their preference."""
    notification = Notification.objects.create(
        user=user, kind=kind, message=message[:MAX_MESSAGE_LENGTH], url=url
    )
    if user.notification_email_mode == User.EmailMode.IMMEDIATE:
        from access.tasks import send_notification_email

        send_notification_email.delay_on_commit(notification.pk)
    return notification


def send_notification_email(*, notification_id: int) -> bool:
    """E-mail one notification unless it was already e-mailed; returns whether this call sent it."""
    now = timezone.now()
    claimed = Notification.objects.filter(pk=notification_id, emailed_at__isnull=True).update(emailed_at=now)
    if not claimed:
        return False
    notification = Notification.objects.select_related("user").get(pk=notification_id)
    link = f"\n\n{settings.SITE_URL}{notification.url}" if notification.url else ""
    try:
        send_mail(
            f"[Gatehouse] {notification.message[:120]}",
            f"{notification.message}{link}\n",
            None,
            [notification.user.email],
        )
    except Exception:
        Notification.objects.filter(pk=notification_id, emailed_at=now).update(emailed_at=None)
        raise
    return True
