"""Django admin for site staff over organizations, models, releases, artifacts and tiers.

Publishing and opening are transitions with audit events (releases/services.py), so
the fields they set are read-only here, and a published release's files are frozen.
"""

from __future__ import annotations

from django.contrib import admin

from releases.models import (
    Artifact,
    Membership,
    Model,
    Organization,
    OrganizationInvitation,
    Release,
    Tier,
    Watch,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)
    raw_id_fields = ("user",)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "organization", "role", "created_at")
    list_filter = ("role", "organization")
    search_fields = ("user__email", "user__full_name", "organization__name", "organization__slug")
    list_select_related = ("user", "organization")
    raw_id_fields = ("user", "organization")


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = ("full_slug", "name", "organization", "created_at")
    list_filter = ("organization",)
    search_fields = ("slug", "name", "organization__slug")
    list_select_related = ("organization",)
    raw_id_fields = ("organization",)


class ArtifactInline(admin.TabularInline):
    model = Artifact
    extra = 0
    fields = ("path", "size", "sha256", "storage_key", "object_version", "created_at")
    readonly_fields = ("created_at",)

    def _is_frozen(self, obj) -> bool:
        return obj is not None and obj.status == Release.Status.PUBLISHED

    def get_readonly_fields(self, request, obj=None):
        return self.fields if self._is_frozen(obj) else self.readonly_fields

    def has_add_permission(self, request, obj=None):
        return not self._is_frozen(obj) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._is_frozen(obj) and super().has_delete_permission(request, obj)


class TierInline(admin.TabularInline):
    """The rollout plan at a glance; files and questions are edited on the tier's own page."""

    model = Tier
    extra = 0
    fields = (
        "position",
        "name",
        "gate",
        "approval",
        "license",
        "opens_at",
        "opened_at",
        "grant_duration_days",
    )
    readonly_fields = ("opened_at",)
    raw_id_fields = ("license",)
    show_change_link = True
    ordering = ("position", "opens_at")


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ("__str__", "status", "revision", "created_at", "published_at")
    list_filter = ("status", "model__organization")
    search_fields = ("version", "model__slug", "model__organization__slug", "revision")
    list_select_related = ("model__organization",)
    raw_id_fields = ("model",)
    readonly_fields = ("status", "revision", "published_at", "created_at")
    inlines = [ArtifactInline, TierInline]


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ("path", "release", "size", "sha256", "created_at")
    list_filter = ("release__status", "release__model__organization")
    search_fields = ("path", "sha256", "storage_key", "release__model__slug")
    list_select_related = ("release__model__organization",)
    raw_id_fields = ("release",)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.release.status == Release.Status.PUBLISHED:
            return ("release", "path", "size", "sha256", "storage_key", "object_version", "created_at")
        return ("created_at",)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.release.status == Release.Status.PUBLISHED:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ("name", "release", "gate", "approval", "opens_at", "opened_at", "position")
    list_filter = (
        "gate",
        "approval",
        ("opened_at", admin.EmptyFieldListFilter),
        "release__model__organization",
    )
    search_fields = ("name", "release__version", "release__model__slug", "release__model__organization__slug")
    date_hierarchy = "opens_at"
    list_select_related = ("release__model__organization",)
    raw_id_fields = ("release", "license", "artifacts")
    readonly_fields = ("opened_at",)


@admin.register(Watch)
class WatchAdmin(admin.ModelAdmin):
    list_display = ("user", "tier", "created_at", "notified_at")
    list_filter = ("notified_at",)
    search_fields = ("user__email", "tier__name")
    raw_id_fields = ("user", "tier")
    readonly_fields = ("claimed_until", "notified_at")


@admin.register(OrganizationInvitation)
class OrganizationInvitationAdmin(admin.ModelAdmin):
    list_display = ("email", "organization", "role", "created_at", "accepted_at")
    search_fields = ("email", "organization__slug")
    raw_id_fields = ("organization", "invited_by")
    readonly_fields = ("accepted_at",)
