"""Watches, and telling watchers that a tier opened: once each, in batches, one SMTP connection per batch.

How "once each" holds with any number of workers, overlapping runs and crashed workers:

1. Claim: a short transaction locks up to ``WATCH_NOTIFY_BATCH_SIZE`` unnotified watches of the tier
   whose claim is free or lapsed (``FOR UPDATE SKIP LOCKED``: concurrent claimers take disjoint batches),
   sets their ``claimed_until`` to now + ``WATCH_CLAIM_LEASE_SECONDS`` and commits.
2. Send: outside any transaction, over one SMTP connection. Right after each message is handed over,
   the watch is marked ``notified_at`` by an UPDATE of its own that only succeeds while the claim is
   still ours. A worker stops before its lease runs out and frees what it did not send.
3. A worker that dies keeps nothing: its claims lapse and the next rollout tick takes them over.
4. ``Tier.watchers_notified_at`` is set once no unnotified watch is left.

The one window left is a worker killed between handing a message to the mail server and marking it:
that one watcher is told twice. SMTP has no idempotency key; the Message-ID is fixed per watch so that
a receiving system can fold the duplicate.
"""

from __future__ import annotations

import logging
import smtplib
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection as database
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from access.audit import audit_record
from access.policy import has_verified_email
from releases.models import Release, Tier, Watch
from releases.services import ReleaseError

logger = logging.getLogger(__name__)

# A tick stops claiming new batches after this long, well inside the task's time limit; the next
# tick carries on.
DEFAULT_BUDGET_SECONDS = 150.0


# --- Watches --------------------------------------------------------------------------------


def watch_start(*, user, tier: Tier) -> Watch:
    """Ask to be told, once, when ``tier`` opens. Only a scheduled tier of a published release can be
    watched; watching twice is the same watch."""
    if not user.is_authenticated:
        raise ReleaseError("Sign in to be told when a tier opens.")
    if not has_verified_email(user):
        raise ReleaseError("Verify your e-mail address first: that is where we will write.")
    with transaction.atomic():
        # Serialises with tier_open (which locks the same row): a watch either exists before the
        # opening commits, and is told, or sees the tier open and is refused.
        tier = Tier.objects.select_for_update(of=("self",)).select_related("release").get(pk=tier.pk)
        if tier.release.status != Release.Status.PUBLISHED:
            raise ReleaseError("This tier's release is not published.")
        if tier.opened_at is not None:
            raise ReleaseError("This tier is already open.")
        watch, created = Watch.objects.get_or_create(user=user, tier=tier)
        if created:
            audit_record(action="watch.started", target=watch, actor=user, payload={"tier_id": tier.pk})
    return watch


def watch_stop(*, user, tier: Tier) -> bool:
    """Stop watching ``tier``; returns whether there was a watch to stop."""
    with transaction.atomic():
        watch = Watch.objects.select_for_update().filter(user=user, tier=tier).first()
        if watch is None:
            return False
        audit_record(action="watch.stopped", target=watch, actor=user, payload={"tier_id": tier.pk})
        watch.delete()
    return True


def is_watching(user, tier: Tier) -> bool:
    return user.is_authenticated and Watch.objects.filter(user=user, tier=tier).exists()


# --- Telling watchers -----------------------------------------------------------------------


def watchers_notify_pending(*, budget_seconds: float | None = None) -> tuple[int, int]:
    """Tell the unnotified watchers of every opened tier, batch by batch, until none is left or the
    time budget is spent. Returns (e-mails handed to the mail server, batches)."""
    deadline = time.monotonic() + (DEFAULT_BUDGET_SECONDS if budget_seconds is None else budget_seconds)
    sent = batches = 0
    pending = Tier.objects.filter(opened_at__isnull=False, watchers_notified_at__isnull=True)
    for tier in pending.select_related("release__model__organization").order_by("opened_at", "pk"):
        messages = _TierMessages(tier)
        while time.monotonic() < deadline:
            claimed = watches_claim(tier_id=tier.pk)
            if claimed is None:
                _finish_if_done(tier)
                break
            sent += _send_batch(messages, *claimed)
            batches += 1
    return sent, batches


def watches_claim(*, tier_id: int) -> tuple[list[Watch], datetime] | None:
    """Claim a batch of the tier's unnotified, unclaimed (or lapsed) watches; None if there is none.
    Returns the watches, with their users, and the claim's expiry, which is also its token.

    Claims are dated by the database's clock, the one clock every worker shares."""
    lease = timedelta(seconds=settings.WATCH_CLAIM_LEASE_SECONDS)
    with transaction.atomic():
        ids = list(
            Watch.objects.select_for_update(skip_locked=True)
            .filter(tier_id=tier_id, notified_at__isnull=True)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=Now()))
            .order_by("pk")
            .values_list("pk", flat=True)[: settings.WATCH_NOTIFY_BATCH_SIZE]
        )
        if not ids:
            return None
        # Now() is the statement's time (STATEMENT_TIMESTAMP on PostgreSQL): one expiry for the batch.
        Watch.objects.filter(pk__in=ids).update(claimed_until=Now() + lease)
        watches = list(Watch.objects.filter(pk__in=ids).select_related("user").order_by("pk"))
    return watches, watches[0].claimed_until


def _send_batch(messages: _TierMessages, watches: list[Watch], lease_until: datetime) -> int:
    """Send one claimed batch over one SMTP connection, marking each watch as its message goes out."""
    lease = timedelta(seconds=settings.WATCH_CLAIM_LEASE_SECONDS)
    # Stop early enough that the last message and its mark land before anyone may take the claim over.
    stop_at = lease_until - min(lease / 4, timedelta(seconds=10))
    sent = 0
    connection = get_connection()
    try:
        _commit_without_waiting_for_disk(True)
        connection.open()
        for watch in watches:
            if timezone.now() >= stop_at:
                logger.warning("Watch claim of tier %s ran short; the next tick takes over", messages.tier.pk)
                break
            try:
                sent += connection.send_messages([messages.for_watch(watch)]) or 0
            except smtplib.SMTPRecipientsRefused:
                # Retrying a refused address would stall every watcher after it, tick after tick.
                logger.warning("Mail server refused %s for watch %s; not retried", watch.user.email, watch.pk)
            Watch.objects.filter(pk=watch.pk, claimed_until=lease_until).update(
                notified_at=timezone.now(), claimed_until=None
            )
    finally:
        connection.close()
        _commit_without_waiting_for_disk(False)
        # What we did not send is free at once rather than at the end of the lease.
        Watch.objects.filter(
            pk__in=[watch.pk for watch in watches], claimed_until=lease_until, notified_at__isnull=True
        ).update(claimed_until=None)
    logger.info("Told %s watchers of tier %s that it opened", sent, messages.tier.pk)
    return sent


def _commit_without_waiting_for_disk(enabled: bool) -> None:
    """Each mark is a commit of its own; on PostgreSQL, let it return before the WAL reaches the disk
    (a flush per e-mail halved the throughput). A worker that dies loses no mark: the server has them.
    Only a crash of the database server itself could lose the last fraction of a second of marks,
    and tell those watchers twice."""
    if database.vendor == "postgresql" and not database.in_atomic_block:
        with database.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off" if enabled else "RESET synchronous_commit")


def _finish_if_done(tier: Tier) -> bool:
    # No watch can appear on an opened tier (watch_start), so "none left" stays true.
    if Watch.objects.filter(tier=tier, notified_at__isnull=True).exists():
        return False
    return bool(
        Tier.objects.filter(pk=tier.pk, watchers_notified_at__isnull=True).update(
            watchers_notified_at=timezone.now()
        )
    )


class _TierMessages:
    """The announcement of one tier, rendered once and addressed to each watcher."""

    def __init__(self, tier: Tier):
        self.tier = tier
        context = {
            "tier": tier,
            "release": tier.release,
            "model": tier.release.model,
            "tier_url": settings.SITE_URL + reverse("tier-detail", kwargs={"tier_id": tier.pk}),
        }
        self.subject = render_to_string("releases/rollout/emails/tier_opened_subject.txt", context).strip()
        self.body = render_to_string("releases/rollout/emails/tier_opened.txt", context)
        self.domain = urlsplit(settings.SITE_URL).hostname or "localhost"

    def for_watch(self, watch: Watch) -> EmailMessage:
        return EmailMessage(
            self.subject,
            self.body,
            None,
            [watch.user.email],
            headers={"Message-ID": f"<watch-{watch.pk}.tier-{self.tier.pk}@{self.domain}>"},
        )
