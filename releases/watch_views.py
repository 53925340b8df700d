"""Watching a scheduled tier, and the public "coming soon" page of a scheduled public tier."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from releases.announcements import is_watching, watch_start, watch_stop
from releases.models import Release, Tier
from releases.services import ReleaseError

# Tiers anyone can get into once open; their date is public before they open.
PUBLIC_GATES = (Tier.Gate.OPEN, Tier.Gate.CLICK_THROUGH)


def coming_soon(request, org_slug: str, model_slug: str, tier_id: int):
    """The date a public tier opens, for anyone; 404 for any other tier, or an unpublished release."""
    tier = get_object_or_404(
        Tier.objects.select_related("release__model__organization", "license"),
        pk=tier_id,
        release__model__organization__slug=org_slug,
        release__model__slug=model_slug,
        release__status=Release.Status.PUBLISHED,
        gate__in=PUBLIC_GATES,
    )
    if tier.is_open:
        # Links to the page live on in announcements and posts: send them to the tier itself.
        return redirect("tier-detail", tier_id=tier.pk)
    return render(
        request,
        "releases/rollout/coming_soon.html",
        {
            "tier": tier,
            "release": tier.release,
            "model": tier.release.model,
            "artifacts": tier.artifacts.all(),
            "watching": is_watching(request.user, tier),
        },
    )


def _published_tier(tier_id: int) -> Tier:
    return get_object_or_404(
        Tier.objects.select_related("release__model__organization"),
        pk=tier_id,
        release__status=Release.Status.PUBLISHED,
    )


def _back(request, tier: Tier):
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(reverse("tier-detail", kwargs={"tier_id": tier.pk}))


@login_required
@require_POST
def watch(request, tier_id: int):
    tier = _published_tier(tier_id)
    try:
        watch_start(user=request.user, tier=tier)
    except ReleaseError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"We will e-mail {request.user.email} once, when {tier.name} opens.")
    return _back(request, tier)


@login_required
@require_POST
def unwatch(request, tier_id: int):
    tier = _published_tier(tier_id)
    if watch_stop(user=request.user, tier=tier):
        messages.success(request, f"You will not be told when {tier.name} opens.")
    return _back(request, tier)
