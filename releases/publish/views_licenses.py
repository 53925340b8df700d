"""Workspace pages for licenses: create one with its first text, read its versions, publish a new one."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max
from django.shortcuts import get_object_or_404, redirect, render

from access.errors import AccessError
from access.models import License
from access.services.licenses import license_create, license_version_publish
from releases.models import Tier
from releases.publish.forms import LicenseCreateForm, LicenseVersionForm
from releases.publish.views_workspace import workspace_context, workspace_organization


@login_required
def license_list(request, org_slug: str):
    organization = workspace_organization(request, org_slug)
    form = LicenseCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            license = license_create(organization=organization, actor=request.user, **form.cleaned_data)
        except AccessError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"License “{license.name}” created, version 1.")
            return redirect("publish-license", org_slug=organization.slug, license_id=license.pk)
    licenses = (
        License.objects.filter(organization=organization)
        .annotate(latest_number=Max("versions__number"), tier_count=Count("tier", distinct=True))
        .order_by("name")
    )
    return render(
        request,
        "releases/publish/license_list.html",
        workspace_context(request, organization, licenses=licenses, form=form),
        status=400 if form.errors else 200,
    )


@login_required
def license_detail(request, org_slug: str, license_id: int):
    """Every version with its sha256, and a form for the next one."""
    organization = workspace_organization(request, org_slug)
    license = get_object_or_404(License, pk=license_id, organization=organization)
    versions = list(license.versions.annotate(acceptance_count=Count("acceptances")).order_by("-number"))
    current = versions[0] if versions else None
    form = LicenseVersionForm(request.POST or None, initial={"text": current.text if current else ""})
    if request.method == "POST" and form.is_valid():
        try:
            version = license_version_publish(
                license=license,
                text=form.cleaned_data["text"],
                requires_reacceptance=form.cleaned_data["requires_reacceptance"],
                actor=request.user,
            )
        except AccessError as error:
            form.add_error(None, error.message)
        else:
            if version.requires_reacceptance:
                messages.success(
                    request,
                    f"Version {version.number} published. Everyone with access must accept it before "
                    "downloading again.",
                )
            else:
                messages.success(request, f"Version {version.number} published.")
            return redirect("publish-license", org_slug=organization.slug, license_id=license.pk)
    tiers = list(
        Tier.objects.filter(license=license)
        .select_related("release__model")
        .order_by("release__model__slug", "pk")
    )
    return render(
        request,
        "releases/publish/license_detail.html",
        workspace_context(request, organization, license=license, versions=versions, form=form, tiers=tiers),
        status=400 if form.errors else 200,
    )
