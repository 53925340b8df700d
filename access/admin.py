"""Django admin for site staff over the access app.

State changes that carry an audit event (deciding, granting, revoking, accepting a
license) go through access/services/; here their fields are read-only, and the
records that are evidence (audit events, downloads, license acceptances, sent
e-mails) cannot be added, changed or deleted at all.
"""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from access.models import (
    AccessToken,
    Application,
    ApplicationRevision,
    AuditChainHead,
    AuditEvent,
    DownloadEvent,
    Grant,
    Invitation,
    License,
    LicenseAcceptance,
    LicenseVersion,
    Notification,
    RejectionReason,
    Review,
    SentEmail,
    User,
)
from access.services.licenses import MAX_LICENSE_TEXT_LENGTH, license_version_publish


class ReadOnlyAdmin(admin.ModelAdmin):
    """Evidence: staff may look, nobody may add, change or delete through the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Users ----------------------------------------------------------------------------------


class GatehouseUserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name")


class GatehouseUserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class EmailAddressInline(admin.TabularInline):
    model = EmailAddress
    extra = 0
    fields = ("email", "verified", "primary")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """django.contrib.auth's UserAdmin for a user identified by e-mail, with one full name."""

    form = GatehouseUserChangeForm
    add_form = GatehouseUserCreationForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("full_name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "full_name", "usable_password", "password1", "password2"),
            },
        ),
    )
    list_display = ("email", "full_name", "is_staff", "is_active", "date_joined", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    search_fields = ("email", "full_name")
    ordering = ("email",)
    readonly_fields = ("last_login", "date_joined")
    inlines = [EmailAddressInline]


# --- Licenses -------------------------------------------------------------------------------


class LicenseVersionInline(admin.TabularInline):
    """Versions never change once published; a new one is added on its own admin page."""

    model = LicenseVersion
    extra = 0
    fields = ("number", "text_sha256", "created_at")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "created_at")
    list_filter = ("organization",)
    search_fields = ("name", "organization__name", "organization__slug")
    raw_id_fields = ("organization",)
    inlines = [LicenseVersionInline]


class LicenseVersionAddForm(forms.ModelForm):
    text = forms.CharField(widget=forms.Textarea, max_length=MAX_LICENSE_TEXT_LENGTH, strip=False)

    class Meta:
        model = LicenseVersion
        fields = ("license", "text")


@admin.register(LicenseVersion)
class LicenseVersionAdmin(admin.ModelAdmin):
    """Adding publishes the next version through the service (numbered, hashed, audited);
    an existing version is read-only because acceptances point at its exact text."""

    list_display = ("license", "number", "text_sha256", "created_at")
    list_filter = ("license__organization",)
    search_fields = ("license__name", "text_sha256")
    raw_id_fields = ("license",)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = LicenseVersionAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("license", "text")
        return ("license", "number", "text_sha256", "created_at", "text")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("license", "number", "text_sha256", "created_at", "text")

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return
        version = license_version_publish(license=obj.license, text=obj.text, actor=request.user)
        obj.pk, obj.number, obj.text_sha256, obj.created_at = (
            version.pk,
            version.number,
            version.text_sha256,
            version.created_at,
        )


@admin.register(LicenseAcceptance)
class LicenseAcceptanceAdmin(ReadOnlyAdmin):
    list_display = ("typed_name", "user", "license_version", "accepted_at", "ip_address")
    list_filter = ("license_version__license",)
    search_fields = ("user__email", "typed_name", "text_sha256")
    date_hierarchy = "accepted_at"
    list_select_related = ("user", "license_version__license")
    raw_id_fields = ("user", "license_version")


# --- Applications, reviews, grants, invitations ---------------------------------------------


class ReviewInline(admin.TabularInline):
    model = Review
    extra = 0
    fields = ("reviewer", "decision", "reason", "created_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):
    """Applications are submitted and decided through the services (with their license
    acceptance, grant and audit events); staff read them here."""

    list_display = ("id", "user", "tier", "status", "submitted_at", "decision_due_at", "decided_at")
    list_filter = ("status", "tier__release__model__organization")
    search_fields = ("user__email", "user__full_name", "affiliation")
    date_hierarchy = "submitted_at"
    list_select_related = ("user", "tier__release__model__organization")
    raw_id_fields = ("user", "tier", "license_acceptance")
    readonly_fields = (
        "user",
        "tier",
        "status",
        "affiliation",
        "intended_use",
        "answers",
        "questions",
        "license_acceptance",
        "submitted_at",
        "decision_due_at",
        "decided_at",
        "decision_reason",
    )
    inlines = [ReviewInline]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ("application", "reviewer", "decision", "created_at")
    list_filter = ("decision",)
    search_fields = ("reviewer__email", "application__user__email", "reason")
    list_select_related = ("reviewer", "application__user", "application__tier__release__model__organization")
    raw_id_fields = ("application", "reviewer")


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    """Grants are created and revoked through the services; their state is read-only here."""

    list_display = ("id", "user", "tier", "status", "granted_at", "expires_at", "revoked_at")
    list_filter = ("status", "tier__release__model__organization")
    search_fields = ("user__email", "user__full_name", "revoke_reason")
    date_hierarchy = "granted_at"
    list_select_related = ("user", "tier__release__model__organization")
    raw_id_fields = ("user", "tier", "application", "license_acceptance", "revoked_by")
    readonly_fields = (
        "user",
        "tier",
        "application",
        "license_acceptance",
        "status",
        "granted_at",
        "expires_at",
        "revoked_at",
        "revoked_by",
        "revoke_reason",
    )

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("email", "tier", "invited_by", "created_at", "accepted_at")
    list_filter = ("tier__release__model__organization",)
    search_fields = ("email", "invited_by__email")
    list_select_related = ("tier__release__model__organization", "invited_by")
    raw_id_fields = ("tier", "invited_by")
    readonly_fields = ("accepted_at",)


# --- Tokens, downloads, audit, e-mail -------------------------------------------------------


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    """Tokens are created by their owner (the raw token is shown once); staff can see them."""

    list_display = ("name", "hint", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("user__email", "name", "hint")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    readonly_fields = ("user", "token_hash", "hint", "created_at", "last_used_at", "revoked_at")

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DownloadEvent)
class DownloadEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "artifact", "tier", "grant", "ip_address")
    list_filter = ("tier__release__model__organization",)
    search_fields = ("user__email", "artifact__path", "ip_address")
    date_hierarchy = "created_at"
    list_select_related = ("user", "artifact", "tier__release__model__organization", "grant")
    raw_id_fields = ("user", "artifact", "tier", "grant", "license_version", "access_token")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "action", "target_type", "target_id", "actor", "ip_address")
    list_filter = ("action", "target_type")
    search_fields = ("action", "actor__email", "=target_id", "row_hash")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)
    raw_id_fields = ("actor",)


@admin.register(AuditChainHead)
class AuditChainHeadAdmin(ReadOnlyAdmin):
    list_display = ("id", "row_hash")
    search_fields = ("row_hash",)


@admin.register(SentEmail)
class SentEmailAdmin(ReadOnlyAdmin):
    list_display = ("key", "to", "subject", "sent_at")
    search_fields = ("key", "to", "subject")
    date_hierarchy = "sent_at"


@admin.register(ApplicationRevision)
class ApplicationRevisionAdmin(admin.ModelAdmin):
    """Earlier versions of returned applications: evidence, read-only."""

    list_display = ("application", "number", "submitted_at", "created_at")
    raw_id_fields = ("application",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RejectionReason)
class RejectionReasonAdmin(admin.ModelAdmin):
    list_display = ("text", "organization", "active")
    list_filter = ("active",)
    search_fields = ("text", "organization__slug")
    raw_id_fields = ("organization",)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("user", "kind", "created_at", "read_at", "emailed_at")
    list_filter = ("kind",)
    search_fields = ("user__email", "message")
    raw_id_fields = ("user",)
    readonly_fields = ("emailed_at",)
