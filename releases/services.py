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
from access.errors import InvalidInput
from access.questions import validate_question_schema
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


def membership_set(*, organization: Organization, user, role: str, actor=None) -> Membership:
    if role not in Membership.Role.values:
        raise ReleaseError(f"Unknown role {role!r}.")
    with transaction.atomic():
        membership, _ = Membership.objects.update_or_create(
            organization=organization, user=user, defaults={"role": role}
        )
        audit_record(
            action="membership.set",
            target=membership,
            actor=actor,
            payload={"user_id": user.pk, "role": role},
        )
    return membership


def model_create(
    *, organization: Organization, slug: str, name: str, card: str = "", summary: str = "", actor=None
) -> Model:
    with transaction.atomic():
        model = Model.objects.create(
            organization=organization, slug=slug, name=name, card=card, summary=summary
        )
        audit_record(action="model.created", target=model, actor=actor, payload={"slug": model.full_slug})
    return model


def release_create(*, model: Model, version: str, notes: str = "", actor=None) -> Release:
    with transaction.atomic():
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
        release.status = Release.Status.PUBLISHED
        release.revision = release_revision(artifacts)
        release.published_at = timezone.now()
        release.save(update_fields=["status", "revision", "published_at"])
        audit_record(
            action="release.published", target=release, actor=actor, payload={"revision": release.revision}
        )
    return release


def tier_create(
    *,
    release: Release,
    name: str,
    gate: str,
    opens_at: datetime,
    artifacts: list[Artifact],
    license=None,
    approval: str = Tier.Approval.MANUAL,
    position: int = 0,
    grant_duration_days: int | None = None,
    review_days: int = 14,
    questions: list | None = None,
    description: str = "",
    actor=None,
) -> Tier:
    if gate not in Tier.Gate.values:
        raise ReleaseError(f"Unknown gate {gate!r}.")
    if gate != Tier.Gate.OPEN and license is None:
        raise ReleaseError("A gated tier needs a license.")
    if not artifacts:
        raise ReleaseError("A tier must include at least one file.")
    if any(artifact.release_id != release.pk for artifact in artifacts):
        raise ReleaseError("A tier can only include files of its own release.")
    try:
        validate_question_schema(questions or [])
    except InvalidInput as error:
        raise ReleaseError(error.message) from None
    with transaction.atomic():
        tier = Tier.objects.create(
            release=release,
            name=name,
            gate=gate,
            approval=approval,
            license=license,
            opens_at=opens_at,
            position=position,
            grant_duration_days=grant_duration_days,
            review_days=review_days,
            questions=questions or [],
            description=description,
        )
        tier.artifacts.set(artifacts)
        audit_record(
            action="tier.created",
            target=tier,
            actor=actor,
            payload={"gate": gate, "opens_at": opens_at.isoformat(), "artifacts": [a.pk for a in artifacts]},
        )
    return tier


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
        tier.opened_at = now
        tier.save(update_fields=["opened_at"])
        audit_record(
            action="tier.opened",
            target=tier,
            actor=actor,
            payload={"opens_at": tier.opens_at.isoformat(), "scheduled": actor is None},
        )
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
