"""The rollout timeline of a release, for its publishers: what opens when, for whom, with which files;
hold, resume, open a tier now.

Every lookup goes through access.policy.publishable_organizations: anyone who is not an owner or
publisher of the organization (reviewers and auditors included) gets 404, as for a release that
does not exist.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from access import policy
from releases.models import Release, Tier
from releases.rollout import plan_hold, plan_resume, release_day_zero, release_timeline, tier_open_now
from releases.services import ReleaseError


def _publishable_release(request, org_slug: str, release_id: int) -> Release:
    organization = get_object_or_404(policy.publishable_organizations(request.user), slug=org_slug)
    return get_object_or_404(
        Release.objects.select_related("model__organization"), pk=release_id, model__organization=organization
    )


@login_required
def timeline(request, org_slug: str, release_id: int):
    release = _publishable_release(request, org_slug, release_id)
    return render(
        request,
        "releases/rollout/timeline.html",
        {
            "organization": release.model.organization,
            "release": release,
            "rows": release_timeline(release),
            "day_zero": release_day_zero(release),
            "day_zero_is_provisional": release.day_zero is None and release.published_at is None,
        },
    )


def _act(request, release: Release, action, success: str):
    try:
        action()
    except ReleaseError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, success)
    return redirect("publish-timeline", org_slug=release.model.organization.slug, release_id=release.pk)


@login_required
@require_POST
def hold(request, org_slug: str, release_id: int):
    release = _publishable_release(request, org_slug, release_id)
    return _act(
        request,
        release,
        lambda: plan_hold(release=release, actor=request.user),
        "The plan is on hold: no tier opens by itself until you resume it.",
    )


@login_required
@require_POST
def resume(request, org_slug: str, release_id: int):
    release = _publishable_release(request, org_slug, release_id)
    return _act(
        request,
        release,
        lambda: plan_resume(release=release, actor=request.user),
        "The plan runs again; tiers whose date has passed open at the next scan.",
    )


@login_required
@require_POST
def open_now(request, org_slug: str, release_id: int, tier_id: int):
    release = _publishable_release(request, org_slug, release_id)
    tier = get_object_or_404(Tier, pk=tier_id, release=release)
    return _act(
        request,
        release,
        lambda: tier_open_now(tier=tier, actor=request.user),
        f"{tier.name} is open; its watchers are being told.",
    )
