"""Accepting a new version of a tier's license, when its publisher required it of current grantees."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render

from access import policy
from access.errors import AccessError
from access.forms import LicenseAcceptanceFields
from access.services.grants import grant_reaccept
from access.views.common import client_ip
from releases.models import Release, Tier


@login_required
def tier_reaccept(request, tier_id: int):
    """Show the tier's current license text and take the typed name; then the files again."""
    tier = get_object_or_404(
        Tier.objects.select_related("release__model__organization", "license"),
        pk=tier_id,
        release__status=Release.Status.PUBLISHED,
        license__isnull=False,
    )
    standing = policy.tier_standing(request.user, tier)
    if standing.code != "license_changed":
        # Nothing to accept again: the tier's page says where the user stands.
        return redirect("tier-detail", tier_id=tier.pk)
    license_version = tier.license.current_version
    accepted_version = standing.grant.license_acceptance.license_version
    form = LicenseAcceptanceFields(request.POST or None, initial={"text_sha256": license_version.text_sha256})
    if request.method == "POST" and form.is_valid():
        try:
            grant_reaccept(
                user=request.user,
                tier=tier,
                typed_name=form.cleaned_data["typed_name"],
                seen_text_sha256=form.cleaned_data["text_sha256"],
                ip_address=client_ip(request),
            )
        except AccessError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"You accepted version {license_version.number} of the license.")
            return redirect("tier-files", tier_id=tier.pk)
    response = render(
        request,
        "access/tier_reaccept.html",
        {
            "tier": tier,
            "model": tier.release.model,
            "license_version": license_version,
            "accepted_version": accepted_version,
            "form": form,
        },
        status=400 if form.errors else 200,
    )
    response["Cache-Control"] = "no-store"
    return response
