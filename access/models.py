"""Who gets access: accounts, licenses, applications, reviews, grants, downloads, tokens, audit.

Rows change only through the service functions in access/services/; the
who-may-do-what rules are in access/policy.py.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models import Q
from django.utils import timezone

from releases.models import Organization, Tier


class GatehouseUserManager(UserManager):
    """Users are identified by e-mail; there is no username."""

    def _create_user(self, username, email, password, **extra_fields):
        email = self.normalize_email(email)
        user = self.model(email=email, **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email=None, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(None, email, password, **extra_fields)

    def create_superuser(self, email=None, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self._create_user(None, email, password, **extra_fields)


class User(AbstractUser):
    username = None
    first_name = None
    last_name = None

    class EmailMode(models.TextChoices):
        IMMEDIATE = "immediate", "An e-mail for each notification"
        DIGEST = "digest", "One daily digest e-mail"

    email = models.EmailField("e-mail address", unique=True)
    full_name = models.CharField(max_length=200)
    # How review-queue notifications reach this user by e-mail; they always appear in-app too.
    notification_email_mode = models.CharField(
        max_length=16, choices=EmailMode.choices, default=EmailMode.IMMEDIATE
    )

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    objects = GatehouseUserManager()

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name.split(" ", 1)[0] if self.full_name else self.email


class License(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="licenses")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name

    @property
    def current_version(self) -> LicenseVersion | None:
        return self.versions.order_by("-number").first()


class LicenseVersion(models.Model):
    """One exact text of a license, identified by the sha256 of its UTF-8 bytes."""

    license = models.ForeignKey(License, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64)
    # The publisher's choice: must holders of grants under an earlier version accept this one again?
    requires_reacceptance = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["license", "number"], name="license_version_number_unique")
        ]
        ordering = ["license", "-number"]

    def __str__(self) -> str:
        return f"{self.license} v{self.number}"

    @staticmethod
    def hash_text(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


class LicenseAcceptance(models.Model):
    """Proof that a user accepted one exact license text."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="license_acceptances"
    )
    license_version = models.ForeignKey(LicenseVersion, on_delete=models.PROTECT, related_name="acceptances")
    text_sha256 = models.CharField(max_length=64)
    typed_name = models.CharField(max_length=200)
    accepted_at = models.DateTimeField(default=timezone.now)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.typed_name} accepted {self.license_version}"


class ApplicationQuerySet(models.QuerySet):
    def awaiting_decision(self):
        """Applications a reviewer must act on: new ones and appeals."""
        return self.filter(status__in=Application.AWAITING_DECISION)


class Application(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending review"
        RETURNED = "returned", "Returned for revision"
        APPEALED = "appealed", "Appeal pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn"
        EXPIRED = "expired", "Expired without a decision"

    class Kind(models.TextChoices):
        NEW = "new", "New access"
        RENEWAL = "renewal", "Renewal"

    # A user has at most one application in these states per tier.
    OPEN_STATUSES = ("pending", "returned", "appealed")
    AWAITING_DECISION = ("pending", "appealed")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="applications")
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="applications")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.NEW)
    # For a renewal: the grant it would extend.
    renews = models.ForeignKey(
        "Grant", on_delete=models.PROTECT, null=True, blank=True, related_name="renewals"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    affiliation = models.CharField(max_length=200)
    intended_use = models.TextField(max_length=5000)
    answers = models.JSONField(default=dict, blank=True)
    # The tier's questions as they were when the applicant answered them.
    questions = models.JSONField(default=list, blank=True)
    # How many times the applicant has submitted it (1, then +1 per resubmission after a return).
    revision = models.PositiveSmallIntegerField(default=1)
    license_acceptance = models.ForeignKey(LicenseAcceptance, on_delete=models.PROTECT)
    submitted_at = models.DateTimeField(default=timezone.now)
    decision_due_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    # Automatic screening (access.screening), run by a task after submission.
    screened_at = models.DateTimeField(null=True, blank=True)
    screening_report = models.JSONField(default=dict, blank=True)
    # The reviewer in charge; round-robin on submission or claimed from the queue.
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assigned_applications",
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    # The one appeal an applicant may make after a rejection.
    appealed_at = models.DateTimeField(null=True, blank=True)
    appeal_statement = models.TextField(blank=True)
    # Service-level reminders, each sent once (set by a conditional update before sending).
    due_reminder_sent_at = models.DateTimeField(null=True, blank=True)
    breach_notice_sent_at = models.DateTimeField(null=True, blank=True)

    objects = ApplicationQuerySet.as_manager()

    class Meta:
        ordering = ["-submitted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "tier"],
                condition=Q(status__in=("pending", "returned", "appealed")),
                name="one_open_application_per_tier",
            ),
        ]
        indexes = [
            models.Index(fields=["tier", "status", "submitted_at"]),
            models.Index(fields=["status", "submitted_at"]),
            models.Index(fields=["assigned_to", "status"]),
            # The review queue's order (oldest first): with it a page is an index scan that stops
            # after its rows, instead of a sort of every open application (bench/review_queue.py).
            models.Index(fields=["submitted_at", "id"], name="application_queue_order_idx"),
        ]

    def __str__(self) -> str:
        return f"Application #{self.pk} by {self.user} for {self.tier}"


class ApplicationRevision(models.Model):
    """What an application said before it was returned and resubmitted: the history keeps every version."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveSmallIntegerField()
    affiliation = models.CharField(max_length=200)
    intended_use = models.TextField()
    answers = models.JSONField(default=dict)
    questions = models.JSONField(default=list)
    submitted_at = models.DateTimeField()
    returned_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["application", "number"]
        constraints = [
            models.UniqueConstraint(fields=["application", "number"], name="one_revision_per_number"),
        ]

    def __str__(self) -> str:
        return f"Application #{self.application_id} revision {self.number}"


class Review(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        RETURN = "return", "Return for revision"

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason = models.TextField(blank=True)
    # The application's revision this review was about; a resubmission needs fresh approvals.
    revision = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.reviewer} {self.decision}d #{self.application_id}"


class RejectionReason(models.Model):
    """A preset reason an organization's reviewers pick from (they may add free text)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="rejection_reasons")
    text = models.CharField(max_length=500)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["organization", "text"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "text"], name="rejection_reason_unique")
        ]

    def __str__(self) -> str:
        return self.text


class Notification(models.Model):
    """An in-app notification; e-mailed at once or in the daily digest (User.notification_email_mode)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=48)
    message = models.CharField(max_length=500)
    url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "read_at"]),
            models.Index(fields=["emailed_at", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user}"


class GrantQuerySet(models.QuerySet):
    def active(self, now=None):
        """Grants that allow downloading at this moment."""
        now = now or timezone.now()
        return self.filter(status=Grant.Status.ACTIVE).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def past_expiry(self, now=None):
        return self.filter(status=Grant.Status.ACTIVE, expires_at__lte=now or timezone.now())

    def with_license_state(self):
        """Annotate ``license_outdated``: a version of the tier's license newer than the one the
        grant's acceptance is of was published with re-acceptance required. Joins, no extra query."""
        newer_binding_version = LicenseVersion.objects.filter(
            license_id=models.OuterRef("tier__license_id"),
            requires_reacceptance=True,
            number__gt=models.OuterRef("license_acceptance__license_version__number"),
        )
        return self.annotate(license_outdated=models.Exists(newer_binding_version))


class Grant(models.Model):
    """The right of one user to download one tier's artifacts until it expires or is revoked."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="grants")
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="grants")
    application = models.OneToOneField(Application, on_delete=models.PROTECT, null=True, blank=True)
    license_acceptance = models.ForeignKey(LicenseAcceptance, on_delete=models.PROTECT)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    granted_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    revoke_reason = models.TextField(blank=True)

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["-granted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "tier"], condition=Q(status="active"), name="one_active_grant"
            ),
            models.CheckConstraint(
                condition=~Q(status="revoked") | Q(revoked_at__isnull=False), name="revoked_grant_has_time"
            ),
        ]

    def __str__(self) -> str:
        return f"Grant #{self.pk}: {self.user} on {self.tier}"


class Invitation(models.Model):
    """A place in an invitation-only tier, reserved for an e-mail address."""

    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="invitations")
    email = models.EmailField()
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tier", "email"], name="one_invitation_per_email")]

    def __str__(self) -> str:
        return f"{self.email} invited to {self.tier}"


class AccessToken(models.Model):
    """A personal access token for scripts and the API. Only its sha256 is stored.

    Scopes bound what a token may do: ``read`` (catalogue, gate status, files, own
    applications), ``download`` (issue download URLs) and ``manage`` (publish, upload and
    review as the user's organization roles allow). A token past ``expires_at`` is refused.
    """

    PREFIX = "gh_"

    class Scope(models.TextChoices):
        READ = "read", "Read: catalogue, gate status, files, your applications"
        DOWNLOAD = "download", "Download: issue download URLs for files you may have"
        MANAGE = "manage", "Manage: upload, publish and review, as your roles allow"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    # The first characters of the token, shown so that its owner can tell tokens apart.
    hint = models.CharField(max_length=12)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # A list of Scope values. Tokens made before scopes existed were migrated to all three.
    scopes = models.JSONField(default=list)
    # Null only for tokens made before expiry existed; new tokens always expire.
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @staticmethod
    def hash_token(raw: str) -> str:
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class DownloadEvent(models.Model):
    """One issued download URL."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="download_events"
    )
    artifact = models.ForeignKey(
        "releases.Artifact", on_delete=models.PROTECT, related_name="download_events"
    )
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="download_events")
    grant = models.ForeignKey(
        Grant, on_delete=models.PROTECT, null=True, blank=True, related_name="download_events"
    )
    license_version = models.ForeignKey(LicenseVersion, on_delete=models.PROTECT, null=True, blank=True)
    access_token = models.ForeignKey(AccessToken, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    url_expires_at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.user} downloaded {self.artifact_id} at {self.created_at:%Y-%m-%d %H:%M}"


class AuditEvent(models.Model):
    """An append-only, hash-chained record of a state change or a download.

    ``row_hash`` covers this row's content and ``previous_hash``, so changing,
    inserting or deleting a row breaks the chain from that row on; see
    access/audit.py for how rows are written and verified.
    """

    created_at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=32)
    target_id = models.BigIntegerField()
    payload = models.JSONField(default=dict)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    previous_hash = models.CharField(max_length=64)
    row_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.target_type}:{self.target_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise RuntimeError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("Audit events are append-only.")


class AuditChainHead(models.Model):
    """The hash of the newest audit event: one row, locked by every writer of the chain.

    Writers take ``SELECT … FOR UPDATE`` on this row, chain their events onto its hash and
    move it forward in the same transaction (access/audit.py). Locking a row rather than
    taking an advisory lock lets the download path read the head in the same statement
    that locks it. ``audit_verify`` also checks that the head matches the newest event.
    """

    SINGLETON_ID = 1

    row_hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return self.row_hash


class SentEmail(models.Model):
    """One e-mail a task has sent, keyed so that a redelivered task does not send it twice."""

    key = models.CharField(max_length=200, unique=True)
    to = models.EmailField()
    subject = models.CharField(max_length=300)
    sent_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.key
