"""State changes of organizations, models, releases, artifacts and tiers.

Each top-level service runs in one transaction, checks the current state itself,
raises ReleaseError on an illegal change, and writes its audit event in the same
transaction.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from access.audit import audit_record
from releases.models import Artifact, Membership, Model, Organization, Release, Tier

logger = logging.getLogger(__name__)

MAX_ARTIFACT_PATH_LENGTH = 512
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


class ReleaseError(Exception):
    """An illegal change to a release or its parts; the message is meant for people."""


def organization_create(*, name: str, slug: str, owner) -> Organization:
    with transaction.atomic():
        organization = Organization.objects.create(name=name, slug=slug)
        Membership.objects.create(organization=organization, user=owner, role=Membership.Role.OWNER)
        audit_record(action="organization.created", target=organization, actor=owner, payload={"slug": slug})
    return organization


MAX_MODEL_NAME_LENGTH = Model._meta.get_field("name").max_length
MAX_MODEL_SUMMARY_LENGTH = Model._meta.get_field("summary").max_length
MAX_MODEL_CARD_LENGTH = 100_000
MAX_RELEASE_NOTES_LENGTH = 20_000
SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
SLUG_RULE = "1 to 63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"


def _check_slug(value: str, what: str) -> None:
    if not isinstance(value, str) or not SLUG_PATTERN.fullmatch(value):
        raise ReleaseError(f"{what} {value!r} is not valid: use {SLUG_RULE}.")


def _check_model_text(*, name: str, summary: str, card: str) -> None:
    if not name.strip() or len(name) > MAX_MODEL_NAME_LENGTH:
        raise ReleaseError(f"A model's name has 1 to {MAX_MODEL_NAME_LENGTH} characters.")
    if len(summary) > MAX_MODEL_SUMMARY_LENGTH:
        raise ReleaseError(f"A model's summary has at most {MAX_MODEL_SUMMARY_LENGTH} characters.")
    if len(card) > MAX_MODEL_CARD_LENGTH:
        raise ReleaseError(f"A model card has at most {MAX_MODEL_CARD_LENGTH:,} characters.")


def model_create(
    *, organization: Organization, slug: str, name: str, card: str = "", summary: str = "", actor=None
) -> Model:
    _check_slug(slug, "The model slug")
    _check_model_text(name=name, summary=summary, card=card)
    with transaction.atomic():
        Organization.objects.select_for_update().get(pk=organization.pk)
        if Model.objects.filter(organization=organization, slug=slug).exists():
            raise ReleaseError(f"{organization.slug}/{slug} already exists; choose another slug.")
        model = Model.objects.create(
            organization=organization, slug=slug, name=name.strip(), card=card, summary=summary.strip()
        )
        audit_record(action="model.created", target=model, actor=actor, payload={"slug": model.full_slug})
    return model


def release_create(*, model: Model, version: str, notes: str = "", actor=None) -> Release:
    _check_slug(version, "The version")
    if len(notes) > MAX_RELEASE_NOTES_LENGTH:
        raise ReleaseError(f"Release notes have at most {MAX_RELEASE_NOTES_LENGTH:,} characters.")
    with transaction.atomic():
        Model.objects.select_for_update().get(pk=model.pk)
        if Release.objects.filter(model=model, version=version).exists():
            raise ReleaseError(f"{model.full_slug} already has a release {version}.")
        release = Release.objects.create(model=model, version=version, notes=notes)
        audit_record(action="release.created", target=release, actor=actor, payload={"version": version})
    return release


def validate_artifact_path(path: str) -> str:
    """A relative POSIX path inside the release: no '..', no leading '/', no empty parts."""
    if not path or len(path) > MAX_ARTIFACT_PATH_LENGTH:
        raise ReleaseError(f"An artifact path must have 1 to {MAX_ARTIFACT_PATH_LENGTH} characters.")
    if path.startswith("/") or "\\" in path:
        raise ReleaseError(f"Artifact path {path!r} must be relative and use '/' separators.")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ReleaseError(f"Artifact path {path!r} may not contain empty, '.' or '..' parts.")
    if any(ord(char) < 32 for char in path):
        raise ReleaseError("Artifact paths may not contain control characters.")
    return path


def artifact_add(
    *,
    release: Release,
    path: str,
    size: int,
    sha256: str,
    storage_key: str,
    object_version: str = "",
    actor=None,
) -> Artifact:
    """Record a file already stored in the bucket as an artifact of a draft release."""
    validate_artifact_path(path)
    # The manifest researchers check with `sha256sum -c` is built from these values.
    if not isinstance(sha256, str) or not SHA256_PATTERN.fullmatch(sha256):
        raise ReleaseError("An artifact's sha256 must be 64 lower-case hexadecimal characters.")
    if size < 0:
        raise ReleaseError("An artifact's size cannot be negative.")
    with transaction.atomic():
        release = Release.objects.select_for_update().get(pk=release.pk)
        if release.status != Release.Status.DRAFT:
            raise ReleaseError("A published release cannot change.")
        if release.artifacts.filter(path=path).exists():
            raise ReleaseError(f"The release already has a file at {path!r}.")
        artifact = Artifact.objects.create(
            release=release,
            path=path,
            size=size,
            sha256=sha256,
            storage_key=storage_key,
            object_version=object_version,
        )
        audit_record(
            action="artifact.added",
            target=artifact,
            actor=actor,
            payload={"path": path, "sha256": sha256, "size": size},
        )
    return artifact


def release_revision(artifacts) -> str:
    """A 40-hex content id of a release: the same files and sums give the same revision."""
    manifest = "".join(
        f"{artifact.sha256}  {artifact.path}\n" for artifact in sorted(artifacts, key=lambda a: a.path)
    )
    return hashlib.sha1(manifest.encode("utf-8"), usedforsecurity=False).hexdigest()


def release_publish(*, release: Release, actor=None) -> Release:
    """Freeze a draft release: from now on its artifacts and revision never change."""
    with transaction.atomic():
        release = Release.objects.select_for_update().get(pk=release.pk)
        if release.status != Release.Status.DRAFT:
            raise ReleaseError("This release is already published.")
        artifacts = list(release.artifacts.all())
        if not artifacts:
            raise ReleaseError("A release needs at least one file before it can be published.")
        # The manifest and revision are built from verified sums only (releases/uploads/verify.py verifies).
        unverified = [artifact for artifact in artifacts if artifact.status != Artifact.Status.VERIFIED]
        if unverified:
            listed = ", ".join(
                f"{artifact.path} ({artifact.get_status_display().lower()})" for artifact in unverified[:10]
            )
            more = f" and {len(unverified) - 10} more" if len(unverified) > 10 else ""
            raise ReleaseError(f"Every file must be verified before publishing; not yet: {listed}{more}.")
        release.status = Release.Status.PUBLISHED
        release.revision = release_revision(artifacts)
        release.published_at = timezone.now()
        release.save(update_fields=["status", "revision", "published_at"])
        audit_record(
            action="release.published", target=release, actor=actor, payload={"revision": release.revision}
        )
        from releases.rollout import rollout_settle_at_publish  # rollout imports this module

        rollout_settle_at_publish(release=release, actor=actor)
    return release


def tier_open(*, tier_id: int, actor=None, now: datetime | None = None) -> bool:
    """Open one tier, exactly once. Returns whether this call opened it.

    The row is claimed with SELECT ... FOR UPDATE SKIP LOCKED: a concurrent opener
    either skips it (locked) or sees ``opened_at`` already set, so overlapping runs
    write one opening and one audit event.
    """
    now = now or timezone.now()
    with transaction.atomic():
        tier = (
            # of=self: a lock on the release row (a revocation, a concurrent opening of a sibling
            # tier) must not make this tier look taken.
            Tier.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=tier_id, opened_at__isnull=True, release__status=Release.Status.PUBLISHED)
            .first()
        )
        if tier is None:
            return False
        # Re-read under the tier's lock: a hold (releases.rollout.plan_hold locks the tiers it holds)
        # or a new date committed since the scan wins over the schedule. Opening by hand ignores both.
        held = Release.objects.filter(pk=tier.release_id, plan_held_at__isnull=False).exists()
        if actor is None and (held or tier.opens_at > now):
            return False
        tier.opened_at = now
        tier.save(update_fields=["opened_at"])
        payload = {"opens_at": tier.opens_at.isoformat(), "scheduled": actor is None}
        if actor is not None:
            payload.update(early=now < tier.opens_at, while_held=held)
        audit_record(action="tier.opened", target=tier, actor=actor, payload=payload)
    logger.info("Opened tier %s (%s)", tier.pk, tier)
    return True


def tiers_open_due(*, now: datetime | None = None) -> list[int]:
    """Open every tier of a published release whose opening date has passed."""
    now = now or timezone.now()
    due_ids = list(
        Tier.objects.due(now)
        .filter(release__status=Release.Status.PUBLISHED)
        .order_by("opens_at")
        .values_list("pk", flat=True)
    )
    return [tier_id for tier_id in due_ids if tier_open(tier_id=tier_id, now=now)]


# --- Publisher workspace: editing a model, and the terms of a draft release's tiers -------------

MAX_TIER_DESCRIPTION_LENGTH = 5000
MAX_GRANT_DURATION_DAYS = 36_500
MAX_REVIEW_DAYS = 365
MAX_APPROVALS_REQUIRED = 5
TIER_TERMS = frozenset(
    {
        "name",
        "description",
        "gate",
        "approval",
        "license",
        "grant_duration_days",
        "review_days",
        "approvals_required",
    }
)


def model_update(*, model: Model, name: str, summary: str, card: str, actor) -> Model:
    """Change a model's name, summary and card (Markdown); its slug, part of its address, stays."""
    _check_model_text(name=name, summary=summary, card=card)
    with transaction.atomic():
        model = Model.objects.select_for_update().get(pk=model.pk)
        changed = [
            field
            for field, value in (("name", name.strip()), ("summary", summary.strip()), ("card", card))
            if getattr(model, field) != value
        ]
        if not changed:
            return model
        model.name, model.summary, model.card = name.strip(), summary.strip(), card
        model.save(update_fields=changed)
        audit_record(action="model.updated", target=model, actor=actor, payload={"changed": changed})
    return model


def _check_tier_terms(tier: Tier, organization_id: int) -> None:
    if not tier.name.strip() or len(tier.name) > Tier._meta.get_field("name").max_length:
        raise ReleaseError(f"A tier's name has 1 to {Tier._meta.get_field('name').max_length} characters.")
    if len(tier.description) > MAX_TIER_DESCRIPTION_LENGTH:
        raise ReleaseError(f"A tier's description has at most {MAX_TIER_DESCRIPTION_LENGTH} characters.")
    if tier.gate not in Tier.Gate.values:
        raise ReleaseError(f"Unknown gate {tier.gate!r}.")
    if tier.approval not in Tier.Approval.values:
        raise ReleaseError(f"Unknown approval {tier.approval!r}.")
    if tier.gate != Tier.Gate.OPEN and tier.license is None:
        raise ReleaseError("A gated tier needs a license.")
    if tier.license is not None and tier.license.organization_id != organization_id:
        raise ReleaseError("A tier's license must belong to the release's organization.")
    if tier.grant_duration_days is not None and not 1 <= tier.grant_duration_days <= MAX_GRANT_DURATION_DAYS:
        raise ReleaseError(f"A grant lasts 1 to {MAX_GRANT_DURATION_DAYS} days, or leave it empty for ever.")
    if not 1 <= tier.review_days <= MAX_REVIEW_DAYS:
        raise ReleaseError(f"The review time is 1 to {MAX_REVIEW_DAYS} days.")
    if not 1 <= tier.approvals_required <= MAX_APPROVALS_REQUIRED:
        raise ReleaseError(f"An application needs 1 to {MAX_APPROVALS_REQUIRED} approvals.")


def tier_edit(*, tier: Tier, actor, terms: dict, plan: dict) -> Tier:
    """Change a tier of a draft release, all or nothing: its ``terms`` (name, description, gate,
    approval, license, grant duration, review days, approvals required) here, its ``plan``
    (position, dates, files) through releases.rollout.tier_update, which checks the plan's rules.
    A published release's tiers keep their terms; only the rollout plan of their release may still
    move."""
    from releases.rollout import tier_update  # rollout imports this module

    unknown = set(terms) - TIER_TERMS
    if unknown:
        raise ReleaseError(f"These cannot be changed here: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        release = Release.objects.select_for_update().select_related("model").get(pk=tier.release_id)
        if release.status != Release.Status.DRAFT:
            raise ReleaseError("A published release cannot change.")
        tier = Tier.objects.select_for_update(of=("self",)).select_related("license").get(pk=tier.pk)
        changed = sorted(field for field, value in terms.items() if getattr(tier, field) != value)
        for field in changed:
            setattr(tier, field, terms[field])
        if changed:
            _check_tier_terms(tier, release.model.organization_id)
            tier.save(update_fields=changed)
            recorded = {
                field: (terms[field].pk if field == "license" and terms[field] else terms[field])
                for field in changed
            }
            audit_record(action="tier.terms_changed", target=tier, actor=actor, payload=recorded)
        if plan:
            tier = tier_update(tier=tier, actor=actor, **plan)
    return tier
