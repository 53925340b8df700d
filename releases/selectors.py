"""Reads of releases used by several views."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from releases.models import Membership, Model, Organization, Release, Tier


def catalogue_models() -> QuerySet[Model]:
    """Models with at least one published release, for the catalogue."""
    return (
        Model.objects.select_related("organization")
        .annotate(published_releases=Count("releases", filter=Q(releases__status=Release.Status.PUBLISHED)))
        .filter(published_releases__gt=0)
        .order_by("organization__slug", "slug")
    )


def published_releases_with_tiers(model: Model) -> list[Release]:
    tiers = (
        Tier.objects.select_related("license").prefetch_related("artifacts").order_by("position", "opens_at")
    )
    return list(
        model.releases.filter(status=Release.Status.PUBLISHED)
        .order_by("-published_at")
        .prefetch_related(Prefetch("tiers", queryset=tiers))
    )


def organizations_with_roles(user) -> list[tuple[Organization, set[str]]]:
    """Each organization ``user`` belongs to, with their roles in it, in one query."""
    roles: dict[int, set[str]] = {}
    organizations: dict[int, Organization] = {}
    for membership in Membership.objects.filter(user=user).select_related("organization"):
        organizations[membership.organization_id] = membership.organization
        roles.setdefault(membership.organization_id, set()).add(membership.role)
    return [
        (organizations[pk], roles[pk]) for pk in sorted(organizations, key=lambda pk: organizations[pk].slug)
    ]
