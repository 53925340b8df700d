"""E-mails to researchers about their applications.

Each message is keyed (``application:<id>:<event>``) in SentEmail before it is
handed to the mail server, so a task that is redelivered or retried after a
success sends nothing twice; a failed hand-over releases the key for the retry.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse

from access.models import Application, SentEmail

APPLICATION_EVENTS = ("submitted", "approved", "rejected")


def send_application_email(*, application_id: int, event: str) -> bool:
    """Send the applicant the e-mail for ``event``; returns False when it was already sent."""
    if event not in APPLICATION_EVENTS:
        raise ValueError(f"Unknown application event {event!r}")
    application = (
        Application.objects.select_related("user", "tier__release__model__organization")
        .filter(pk=application_id)
        .first()
    )
    if application is None:
        return False
    context = {
        "application": application,
        "tier": application.tier,
        "model": application.tier.release.model,
        "application_url": settings.SITE_URL
        + reverse("application-detail", kwargs={"application_id": application.pk}),
        "files_url": settings.SITE_URL + reverse("tier-files", kwargs={"tier_id": application.tier_id}),
    }
    subject = render_to_string(f"access/emails/application_{event}_subject.txt", context).strip()
    body = render_to_string(f"access/emails/application_{event}.txt", context)
    key = f"application:{application.pk}:{event}"
    try:
        with transaction.atomic():
            receipt = SentEmail.objects.create(key=key, to=application.user.email, subject=subject[:300])
    except IntegrityError:
        return False
    try:
        send_mail(subject, body, None, [application.user.email])
    except Exception:
        SentEmail.objects.filter(pk=receipt.pk).delete()
        raise
    return True
