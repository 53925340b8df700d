"""The rollout plan of a release: its ordered tiers, their dates and files, hold and resume.

Rules every service here enforces, in one transaction with the release row locked (so two
changes to one plan cannot both pass the checks):

- a tier opens on an absolute date, or ``opens_after`` the release's day zero (``day_zero``, else
  the publish time; a draft without a day zero counts from now until it is published);
- in the order of ``position``, no tier opens before the tier before it;
- a tier covers at least one file: an explicit list, or path patterns (fnmatch, case-sensitive)
  resolved against the release's files; a later, wider tier may carry an earlier tier's files;
- an optional ``closes_at`` comes after the opening date;
- nothing about an opened tier changes any more.

Opening itself is ``releases.services.tier_open``; ``rollout_tick`` is what beat runs.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from access.audit import audit_record
from access.errors import InvalidInput
from access.questions import validate_question_schema
from releases.announcements import watch_start, watch_stop, watchers_notify_pending
from releases.models import Artifact, Release, Tier
from releases.services import MAX_APPROVALS_REQUIRED, ReleaseError, tier_open, tiers_open_due

# The services other modules call (the publisher workspace's forms among them); the watch services
# live with the announcements they lead to, and are offered here too.
__all__ = [
    "TimelineRow",
    "TickReport",
    "match_patterns",
    "offset_label",
    "plan_hold",
    "plan_resume",
    "release_day_zero",
    "release_day_zero_set",
    "release_timeline",
    "rollout_settle_at_publish",
    "rollout_tick",
    "tier_create",
    "tier_open_now",
    "tier_update",
    "watch_start",
    "watch_stop",
]

logger = logging.getLogger(__name__)

MAX_ARTIFACT_PATTERNS = 50
MAX_ARTIFACT_PATTERN_LENGTH = 512
MAX_TIER_NAME_LENGTH = Tier._meta.get_field("name").max_length
MAX_POSITION = 32767
# What tier_update may change: the schedule and the selection of a tier that has not opened.
UPDATABLE_FIELDS = frozenset(
    {"position", "opens_at", "opens_after", "closes_at", "artifacts", "artifact_patterns"}
)


# --- Rules ----------------------------------------------------------------------------------


def release_day_zero(release: Release, now: datetime | None = None) -> datetime:
    """What relative dates count from: the day zero set, else the publish time, else (a draft) now."""
    return release.day_zero or release.published_at or now or timezone.now()


def _plan_date(tier: Tier) -> datetime:
    # A tier opened early by "open now" sits in the plan at the moment it opened.
    if tier.opened_at is not None:
        return min(tier.opened_at, tier.opens_at)
    return tier.opens_at


def _check_order(tiers: Iterable[Tier]) -> None:
    """Refuse a plan in which a tier that has not opened would open before a tier before it (by
    position). An opened tier is history: opening one early by hand does not freeze the others."""
    latest: Tier | None = None
    for tier in sorted(tiers, key=lambda tier: (tier.position, tier.pk is None, tier.pk or 0)):
        if latest is not None and tier.opened_at is None and tier.opens_at < _plan_date(latest):
            raise ReleaseError(
                f"Tier {tier.name!r} would open on {tier.opens_at:%Y-%m-%d %H:%M} UTC, before "
                f"{latest.name!r} ({_plan_date(latest):%Y-%m-%d %H:%M} UTC), "
                "which comes before it in the plan."
            )
        if latest is None or _plan_date(tier) >= _plan_date(latest):
            latest = tier


def _check_closing(tier: Tier) -> None:
    if tier.closes_at is not None and tier.closes_at <= tier.opens_at:
        raise ReleaseError(f"Tier {tier.name!r} must close after it opens.")


def _check_date(value: Any, name: str) -> None:
    if value is not None and (not isinstance(value, datetime) or timezone.is_naive(value)):
        raise ReleaseError(f"{name} must be a date and time with a time zone.")


def _schedule(opens_at: datetime | None, opens_after: timedelta | None) -> None:
    if (opens_at is None) == (opens_after is None):
        raise ReleaseError(
            "Give a tier either an opening date or a delay after day zero, not both or neither."
        )
    _check_date(opens_at, "The opening date")
    if opens_after is not None and (not isinstance(opens_after, timedelta) or opens_after < timedelta(0)):
        raise ReleaseError("The delay after day zero must be zero or more.")


def match_patterns(patterns: list[str], artifacts: Iterable[Artifact]) -> list[Artifact]:
    """The artifacts whose path matches any of ``patterns`` (fnmatch, case-sensitive)."""
    return [
        artifact
        for artifact in artifacts
        if any(fnmatch.fnmatchcase(artifact.path, pattern) for pattern in patterns)
    ]


def _resolve_selection(
    release: Release, artifacts: Iterable[Artifact] | None, patterns: list[str] | None
) -> tuple[list[Artifact], list[str]]:
    """The files a tier covers, and the patterns to keep on it ([] for an explicit list)."""
    if isinstance(patterns, str):
        raise ReleaseError("Give the patterns as a list, e.g. ['*.safetensors'].")
    artifacts = list(artifacts or [])
    patterns = list(patterns or [])
    if artifacts and patterns:
        raise ReleaseError("Choose a tier's files by list or by patterns, not both.")
    if not artifacts and not patterns:
        raise ReleaseError("A tier must include at least one file.")
    if artifacts:
        wanted = {artifact.pk for artifact in artifacts}
        found = list(Artifact.objects.filter(release=release, pk__in=wanted))
        if len(found) != len(wanted):
            raise ReleaseError("A tier can only include files of its own release.")
        return found, []
    if len(patterns) > MAX_ARTIFACT_PATTERNS:
        raise ReleaseError(f"A tier takes at most {MAX_ARTIFACT_PATTERNS} patterns.")
    release_files = list(release.artifacts.all())
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip() or len(pattern) > MAX_ARTIFACT_PATTERN_LENGTH:
            raise ReleaseError(f"A pattern is 1 to {MAX_ARTIFACT_PATTERN_LENGTH} characters of text.")
        # A pattern that matches nothing is almost always a typo; refusing it beats a tier with fewer files.
        if not match_patterns([pattern], release_files):
            raise ReleaseError(f"The pattern {pattern!r} matches no file of this release.")
    return match_patterns(patterns, release_files), patterns


def _reschedule_relative(release: Release) -> dict[str, str]:
    """Recompute the dates of the release's unopened relative tiers; check the plan; return the changes."""
    anchor = release_day_zero(release)
    tiers = list(release.tiers.select_for_update(of=("self",)).order_by("pk"))
    changed = {}
    for tier in tiers:
        if tier.opens_after is None or tier.opened_at is not None:
            continue
        opens_at = anchor + tier.opens_after
        if opens_at != tier.opens_at:
            tier.opens_at = opens_at
            tier.save(update_fields=["opens_at"])
            changed[str(tier.pk)] = opens_at.isoformat()
        _check_closing(tier)
    _check_order(tiers)
    return changed


# --- Tiers ----------------------------------------------------------------------------------


def tier_create(
    *,
    release: Release,
    name: str,
    gate: str,
    license=None,
    approval: str = Tier.Approval.MANUAL,
    position: int = 0,
    opens_at: datetime | None = None,
    opens_after: timedelta | None = None,
    closes_at: datetime | None = None,
    artifacts: Iterable[Artifact] | None = None,
    artifact_patterns: list[str] | None = None,
    grant_duration_days: int | None = None,
    review_days: int = 14,
    approvals_required: int = 1,
    questions: list | None = None,
    description: str = "",
    actor=None,
) -> Tier:
    """Add a tier to a release's plan: exactly one of ``opens_at``/``opens_after`` and exactly one
    non-empty selection of ``artifacts`` or ``artifact_patterns``. Raises ReleaseError otherwise."""
    if gate not in Tier.Gate.values:
        raise ReleaseError(f"Unknown gate {gate!r}.")
    if approval not in Tier.Approval.values:
        raise ReleaseError(f"Unknown approval {approval!r}.")
    if gate != Tier.Gate.OPEN and license is None:
        raise ReleaseError("A gated tier needs a license.")
    if license is not None and license.organization_id != release.model.organization_id:
        raise ReleaseError("A tier's license must belong to the release's organization.")
    if not name or not name.strip() or len(name) > MAX_TIER_NAME_LENGTH:
        raise ReleaseError(f"A tier's name has 1 to {MAX_TIER_NAME_LENGTH} characters.")
    if not 0 <= position <= MAX_POSITION:
        raise ReleaseError(f"A tier's position is between 0 and {MAX_POSITION}.")
    if not 1 <= approvals_required <= MAX_APPROVALS_REQUIRED:
        raise ReleaseError(f"An application needs 1 to {MAX_APPROVALS_REQUIRED} approvals.")
    _schedule(opens_at, opens_after)
    _check_date(closes_at, "The closing date")
    try:
        validate_question_schema(questions or [])
    except InvalidInput as error:
        raise ReleaseError(error.message) from None
    with transaction.atomic():
        release = Release.objects.select_for_update().get(pk=release.pk)
        selected, patterns = _resolve_selection(release, artifacts, artifact_patterns)
        tier = Tier(
            release=release,
            name=name,
            gate=gate,
            approval=approval,
            license=license,
            opens_at=opens_at if opens_after is None else release_day_zero(release) + opens_after,
            opens_after=opens_after,
            closes_at=closes_at,
            artifact_patterns=patterns,
            position=position,
            grant_duration_days=grant_duration_days,
            review_days=review_days,
            approvals_required=approvals_required,
            questions=questions or [],
            description=description,
        )
        _check_closing(tier)
        _check_order([*release.tiers.all(), tier])
        tier.save()
        tier.artifacts.set(selected)
        audit_record(
            action="tier.created",
            target=tier,
            actor=actor,
            payload={
                "gate": gate,
                "opens_at": tier.opens_at.isoformat(),
                "opens_after_seconds": opens_after.total_seconds() if opens_after is not None else None,
                "closes_at": closes_at.isoformat() if closes_at else None,
                "artifact_patterns": patterns,
                "artifacts": sorted(artifact.pk for artifact in selected),
            },
        )
    return tier


def tier_update(*, tier: Tier, actor, **changes) -> Tier:
    """Change the schedule (``position``, ``opens_at``/``opens_after``, ``closes_at``) or the selection
    (``artifacts``/``artifact_patterns``) of a tier that has not opened. All or nothing."""
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise ReleaseError(f"These cannot be changed here: {', '.join(sorted(unknown))}.")
    if not changes:
        return tier
    with transaction.atomic():
        release = Release.objects.select_for_update().get(pk=tier.release_id)
        tier = Tier.objects.select_for_update(of=("self",)).get(pk=tier.pk)
        if tier.opened_at is not None:
            raise ReleaseError(f"Tier {tier.name!r} has opened; its plan can no longer change.")
        recorded: dict[str, Any] = {}
        if "opens_at" in changes or "opens_after" in changes:
            opens_at, opens_after = changes.get("opens_at"), changes.get("opens_after")
            _schedule(opens_at, opens_after)
            tier.opens_after = opens_after
            tier.opens_at = opens_at if opens_after is None else release_day_zero(release) + opens_after
            recorded["opens_at"] = tier.opens_at.isoformat()
            recorded["opens_after_seconds"] = opens_after.total_seconds() if opens_after is not None else None
        if "closes_at" in changes:
            _check_date(changes["closes_at"], "The closing date")
            tier.closes_at = changes["closes_at"]
            recorded["closes_at"] = tier.closes_at.isoformat() if tier.closes_at else None
        if "position" in changes:
            position = changes["position"]
            if not isinstance(position, int) or not 0 <= position <= MAX_POSITION:
                raise ReleaseError(f"A tier's position is between 0 and {MAX_POSITION}.")
            tier.position = recorded["position"] = position
        selected = None
        if "artifacts" in changes or "artifact_patterns" in changes:
            selected, tier.artifact_patterns = _resolve_selection(
                release, changes.get("artifacts"), changes.get("artifact_patterns")
            )
            recorded["artifact_patterns"] = tier.artifact_patterns
            recorded["artifacts"] = sorted(artifact.pk for artifact in selected)
        _check_closing(tier)
        _check_order([tier, *release.tiers.exclude(pk=tier.pk)])
        tier.save()
        if selected is not None:
            tier.artifacts.set(selected)
        audit_record(action="tier.updated", target=tier, actor=actor, payload=recorded)
    return tier


# --- Day zero, publishing, hold -------------------------------------------------------------


def release_day_zero_set(*, release: Release, day_zero: datetime | None, actor) -> Release:
    """Set (or with None, clear back to the publish time) the day zero that relative tiers count from,
    and move their dates with it; refused if the plan would fall out of order."""
    _check_date(day_zero, "Day zero")
    with transaction.atomic():
        release = Release.objects.select_for_update().get(pk=release.pk)
        release.day_zero = day_zero
        release.save(update_fields=["day_zero"])
        rescheduled = _reschedule_relative(release)
        audit_record(
            action="release.day_zero_set",
            target=release,
            actor=actor,
            payload={"day_zero": day_zero.isoformat() if day_zero else None, "rescheduled": rescheduled},
        )
    return release


def rollout_settle_at_publish(*, release: Release, actor=None) -> None:
    """Called by release_publish inside its transaction, with the release locked and its publish time
    set: relative tiers now count from the real day zero, and path patterns take the final file list.
    A plan that no longer holds together refuses the publication (ReleaseError)."""
    rescheduled = _reschedule_relative(release)
    release_files = list(release.artifacts.all())
    for tier in release.tiers.exclude(artifact_patterns=[]):
        selected = match_patterns(tier.artifact_patterns, release_files)
        if not selected:
            raise ReleaseError(f"The patterns of tier {tier.name!r} match no file of this release.")
        tier.artifacts.set(selected)
    if rescheduled:
        audit_record(
            action="release.plan_scheduled",
            target=release,
            actor=actor,
            payload={"day_zero": release_day_zero(release).isoformat(), "rescheduled": rescheduled},
        )


def plan_hold(*, release: Release, actor) -> Release:
    """Hold the plan: from the commit on, no tier of the release opens by itself."""
    with transaction.atomic():
        release = Release.objects.select_for_update().get(pk=release.pk)
        if release.plan_held_at is not None:
            raise ReleaseError("The rollout plan is already on hold.")
        # An opening in progress finishes first; any opener after this commit re-reads the hold
        # under its tier lock (releases.services.tier_open), so nothing opens once we return.
        waiting = list(
            release.tiers.select_for_update(of=("self",))
            .filter(opened_at__isnull=True)
            .values_list("pk", flat=True)
        )
        release.plan_held_at = timezone.now()
        release.save(update_fields=["plan_held_at"])
        audit_record(action="release.plan_held", target=release, actor=actor, payload={"unopened": waiting})
    return release


def plan_resume(*, release: Release, actor) -> Release:
    """Resume a held plan; tiers whose date passed meanwhile open at the next scan."""
    with transaction.atomic():
        release = Release.objects.select_for_update().get(pk=release.pk)
        if release.plan_held_at is None:
            raise ReleaseError("The rollout plan is not on hold.")
        held_since, release.plan_held_at = release.plan_held_at, None
        release.save(update_fields=["plan_held_at"])
        overdue = list(Tier.objects.due().filter(release=release).values_list("pk", flat=True))
        audit_record(
            action="release.plan_resumed",
            target=release,
            actor=actor,
            payload={"held_since": held_since.isoformat(), "due_now": overdue},
        )
    return release


def tier_open_now(*, tier: Tier, actor) -> Tier:
    """Open a tier of a published release at once, before its date and even while the plan is held.
    Its watchers are told by the next rollout tick."""
    tier = Tier.objects.select_related("release").get(pk=tier.pk)
    if tier.release.status != Release.Status.PUBLISHED:
        raise ReleaseError("Publish the release before opening its tiers.")
    if tier.opened_at is not None:
        raise ReleaseError(f"Tier {tier.name!r} is already open.")
    if not tier_open(tier_id=tier.pk, actor=actor):
        tier.refresh_from_db(fields=["opened_at"])
        if tier.opened_at is not None:
            raise ReleaseError(f"Tier {tier.name!r} has just opened.")
        raise ReleaseError(f"Tier {tier.name!r} is being changed right now; try again.")
    tier.refresh_from_db()
    return tier


# --- The timeline (a read) ------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineRow:
    tier: Tier
    opens_at: datetime
    relative_label: str
    who: str
    files: list[str]
    state: str
    state_label: str
    watchers: int


def offset_label(offset: timedelta) -> str:
    """``T+30 days``, ``T+1 day 6 h``, ``T+45 min``, ``T+0``."""
    days, seconds = offset.days, offset.seconds
    hours, minutes = seconds // 3600, seconds % 3600 // 60
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{minutes} min"] if minutes else []
    return "T+" + (" ".join(parts) if parts else "0")


def _state(tier: Tier, release: Release, now: datetime) -> tuple[str, str]:
    if tier.opened_at is not None:
        if tier.closes_at is not None and tier.closes_at <= now:
            return "closed", f"Closed on {tier.closes_at:%Y-%m-%d %H:%M} UTC"
        telling = "" if tier.watchers_notified_at or not tier.watchers_waiting else "; telling watchers"
        return "open", f"Open since {tier.opened_at:%Y-%m-%d %H:%M} UTC{telling}"
    if release.status != Release.Status.PUBLISHED:
        return "draft", "Waits for the release to be published"
    if release.plan_held_at is not None:
        return "held", "On hold"
    if tier.opens_at <= now:
        return "due", "Due: opens at the next scan"
    return "scheduled", "Scheduled"


def release_timeline(release: Release, *, now: datetime | None = None) -> list[TimelineRow]:
    """The plan as the publisher sees it: each tier in order with its date, who it admits, its files
    and where it stands. Three queries whatever the number of tiers and files."""
    now = now or timezone.now()
    tiers = list(
        release.tiers.annotate(
            watcher_count=Count("watches"),
            watchers_waiting=Count("watches", filter=Q(watches__notified_at__isnull=True)),
        )
        .select_related("license")
        .prefetch_related("artifacts")
        .order_by("position", "pk")
    )
    release_files = None
    rows = []
    for tier in tiers:
        if tier.artifact_patterns and release.status == Release.Status.DRAFT:
            # A draft's pattern tiers take whatever files the release has when it is published.
            if release_files is None:
                release_files = list(release.artifacts.all())
            files = [artifact.path for artifact in match_patterns(tier.artifact_patterns, release_files)]
        else:
            files = sorted(artifact.path for artifact in tier.artifacts.all())
        who = tier.get_gate_display()
        if tier.gate == Tier.Gate.APPLICATION:
            who += f" ({tier.get_approval_display().lower()})"
        state, state_label = _state(tier, release, now)
        rows.append(
            TimelineRow(
                tier=tier,
                opens_at=tier.opens_at,
                relative_label=offset_label(tier.opens_after) if tier.opens_after is not None else "",
                who=who,
                files=files,
                state=state,
                state_label=state_label,
                watchers=tier.watcher_count,
            )
        )
    return rows


# --- What beat runs -------------------------------------------------------------------------


@dataclass(frozen=True)
class TickReport:
    opened: list[int]
    emails_sent: int
    batches: int


def rollout_tick(*, now: datetime | None = None, budget_seconds: float | None = None) -> TickReport:
    """Open every tier that is due (each exactly once), then carry on telling the watchers of opened
    tiers. Safe to run any number of times at once: openings are claimed with row locks that skip
    locked rows, watchers in leased batches (releases.announcements)."""
    opened = tiers_open_due(now=now)
    if opened:
        logger.info("Opened tiers %s", opened)
    sent, batches = watchers_notify_pending(budget_seconds=budget_seconds)
    return TickReport(opened=opened, emails_sent=sent, batches=batches)
