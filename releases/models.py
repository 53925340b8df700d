"""Publishers and what they publish: organizations, models, releases, artifacts, tiers.

Rows here change only through releases/services.py; who may change them is decided
in access/policy.py.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9._-]{0,62}$", "Use lower-case letters, digits, '.', '_' or '-'."
)
sha256_validator = RegexValidator(r"^[0-9a-f]{64}$", "A sha256 is 64 lower-case hexadecimal characters.")


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=63, unique=True, validators=[slug_validator])
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        PUBLISHER = "publisher", "Publisher"
        REVIEWER = "reviewer", "Reviewer"
        AUDITOR = "auditor", "Auditor"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.organization}"


class Model(models.Model):
    """A model family page, addressed as ``org-slug/model-slug``."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="models")
    slug = models.CharField(max_length=63, validators=[slug_validator])
    name = models.CharField(max_length=200)
    summary = models.CharField(max_length=300, blank=True)
    card = models.TextField(blank=True, help_text="Model card, in Markdown.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="model_slug_unique_in_org")
        ]
        ordering = ["organization__slug", "slug"]

    def __str__(self) -> str:
        return self.full_slug

    def get_absolute_url(self) -> str:
        return reverse("model-detail", kwargs={"org_slug": self.organization.slug, "model_slug": self.slug})

    @property
    def full_slug(self) -> str:
        return f"{self.organization.slug}/{self.slug}"


class Release(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="releases")
    version = models.CharField(max_length=63, validators=[slug_validator])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    # A content hash of the published artifact list, in the 40-hex form git and the HF hub use.
    revision = models.CharField(max_length=40, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    # Tiers with a relative opening date open this long after day zero (the publish time if unset).
    day_zero = models.DateTimeField(null=True, blank=True)
    # While set, the rollout plan is held: no tier of this release opens by itself.
    plan_held_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="release_version_unique_in_model"),
            models.CheckConstraint(
                condition=Q(status="draft") | (Q(published_at__isnull=False) & ~Q(revision="")),
                name="published_release_has_revision",
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.model} {self.version}"


class Artifact(models.Model):
    """One file of a release, stored as one version of one object in the bucket.

    An uploaded file is ``uploading`` until the publisher completes its multipart
    upload, ``verifying`` while a task streams it to compute its sha256 and size, then
    ``verified`` (or ``failed``, with the reason). Only verified files can be published.
    """

    class Status(models.TextChoices):
        UPLOADING = "uploading", "Uploading"
        VERIFYING = "verifying", "Verifying"
        VERIFIED = "verified", "Verified"
        FAILED = "failed", "Failed"

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="artifacts")
    path = models.CharField(max_length=512)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.VERIFIED)
    # Known once verified.
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, validators=[sha256_validator])
    # What the publisher says the sha256 is; a mismatch fails the artifact.
    expected_sha256 = models.CharField(max_length=64, blank=True, validators=[sha256_validator])
    # The size the publisher announced when starting the upload: it fixes the part count, and a
    # stored object of another size fails verification.
    expected_size = models.BigIntegerField(null=True, blank=True)
    storage_key = models.CharField(max_length=1024)
    object_version = models.CharField(max_length=1024, blank=True)
    # The S3 multipart upload in progress, and the part size it was started with.
    upload_id = models.CharField(max_length=1024, blank=True)
    part_size = models.BigIntegerField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["release", "path"], name="artifact_path_unique_in_release"),
            models.CheckConstraint(
                condition=~Q(status="verified") | (Q(size__isnull=False) & ~Q(sha256="")),
                name="verified_artifact_has_size_and_sha256",
            ),
        ]
        ordering = ["path"]

    def __str__(self) -> str:
        return self.path

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class TierQuerySet(models.QuerySet):
    def due(self, now=None):
        """Unopened tiers of published, unheld releases whose opening date has passed."""
        return self.filter(
            opened_at__isnull=True,
            opens_at__lte=now or timezone.now(),
            release__status=Release.Status.PUBLISHED,
            release__plan_held_at__isnull=True,
        )

    def opened(self):
        return self.filter(opened_at__isnull=False)


class Tier(models.Model):
    """Who may get which artifacts of a release, when and how."""

    class Gate(models.TextChoices):
        OPEN = "open", "Open"
        CLICK_THROUGH = "click_through", "Accept the license"
        APPLICATION = "application", "Application"
        INVITATION = "invitation", "Invitation only"

    class Approval(models.TextChoices):
        MANUAL = "manual", "Reviewed by people"
        AUTO = "auto", "Approved automatically"

    class Renewal(models.TextChoices):
        NONE = "none", "No renewal"
        REQUEST = "request", "On request, reviewed"
        AUTO = "auto", "On request, automatic"

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="tiers")
    name = models.CharField(max_length=120)
    position = models.PositiveSmallIntegerField(default=0)
    description = models.TextField(blank=True)
    gate = models.CharField(max_length=16, choices=Gate.choices)
    approval = models.CharField(max_length=8, choices=Approval.choices, default=Approval.MANUAL)
    license = models.ForeignKey("access.License", on_delete=models.PROTECT, null=True, blank=True)
    artifacts = models.ManyToManyField(Artifact, related_name="tiers")
    # Path patterns (fnmatch-style, e.g. "*.safetensors"); when set, they decide the artifacts above.
    artifact_patterns = models.JSONField(default=list, blank=True)
    # The effective opening date. For a tier relative to day zero it is derived from opens_after.
    opens_at = models.DateTimeField()
    opens_after = models.DurationField(null=True, blank=True, help_text="Relative to the release's day zero.")
    # After this date the tier takes no new applications or acceptances; grants run their course.
    closes_at = models.DateTimeField(null=True, blank=True)
    # Set once, by releases.services.tier_open; a tier is open from then on.
    opened_at = models.DateTimeField(null=True, blank=True)
    # Set when every watcher has been told that the tier opened.
    watchers_notified_at = models.DateTimeField(null=True, blank=True)
    grant_duration_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: grants never expire."
    )
    review_days = models.PositiveSmallIntegerField(
        default=14, help_text="Decision expected within this many days."
    )
    # Extra application questions, as data; validated by access.questions.
    questions = models.JSONField(default=list, blank=True)
    # Review workflow (issue 4): approvals needed, re-apply cool-down, expiry of stale applications.
    approvals_required = models.PositiveSmallIntegerField(default=1)
    reapply_cooldown_days = models.PositiveSmallIntegerField(default=0)
    stale_after_days = models.PositiveSmallIntegerField(null=True, blank=True)
    # Automatic screening rules (access.screening): e-mail domain allow/deny lists, denied countries,
    # ORCID required; and what screening may decide alone.
    screening_rules = models.JSONField(default=dict, blank=True)
    auto_approve_on_screening = models.BooleanField(default=False)
    auto_reject_on_hard_rule = models.BooleanField(default=False)
    renewal = models.CharField(max_length=8, choices=Renewal.choices, default=Renewal.REQUEST)

    objects = TierQuerySet.as_manager()

    class Meta:
        ordering = ["release", "position", "opens_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(gate="open") | Q(license__isnull=False), name="gated_tier_has_license"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.release} / {self.name}"

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None


class Watch(models.Model):
    """A user's request to be told when a tier opens; each watcher is told once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watches")
    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="watches")
    created_at = models.DateTimeField(default=timezone.now)
    # A worker sending this watcher's e-mail holds it until then; a crashed worker's claim lapses.
    claimed_until = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tier"], name="one_watch_per_tier")]
        indexes = [models.Index(fields=["tier", "notified_at"])]

    def __str__(self) -> str:
        return f"{self.user} watches {self.tier}"


class OrganizationInvitation(models.Model):
    """A place in an organization offered to an e-mail address; taken when that address is verified."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Membership.Role.choices)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "email"],
                condition=Q(accepted_at__isnull=True),
                name="one_open_organization_invitation_per_email",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} invited to {self.organization} as {self.role}"
