"""Workspace pages for models (with their Markdown card) and releases (draft, then published)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from releases.markdown import render_markdown
from releases.models import Artifact, Model, Release, Tier
from releases.publish.forms import ModelCardForm, ReleaseForm
from releases.publish.views_workspace import workspace_context, workspace_organization
from releases.rollout import offset_label
from releases.services import ReleaseError, model_create, model_update, release_create, release_publish


def _workspace_model(request, org_slug: str, model_id: int):
    organization = workspace_organization(request, org_slug)
    model = get_object_or_404(
        Model.objects.select_related("organization"), pk=model_id, organization=organization
    )
    return organization, model


def workspace_release(request, org_slug: str, release_id: int):
    """The organization and one of its releases; 404 for non-members and foreign ids."""
    organization = workspace_organization(request, org_slug)
    release = get_object_or_404(
        Release.objects.select_related("model__organization"),
        pk=release_id,
        model__organization=organization,
    )
    return organization, release


def upload_url(organization, release: Release) -> str:
    """The uploads page (releases/publish/urls_uploads.py)."""
    return reverse("publish-upload", kwargs={"org_slug": organization.slug, "release_id": release.pk})


def timeline_url(organization, release: Release) -> str:
    """The rollout timeline (releases/publish/urls_rollout.py)."""
    return reverse("publish-timeline", kwargs={"org_slug": organization.slug, "release_id": release.pk})


# --- Models ---------------------------------------------------------------------------------


@login_required
def model_list(request, org_slug: str):
    organization = workspace_organization(request, org_slug)
    models = (
        Model.objects.filter(organization=organization)
        .annotate(
            draft_count=Count("releases", filter=Q(releases__status=Release.Status.DRAFT)),
            published_count=Count("releases", filter=Q(releases__status=Release.Status.PUBLISHED)),
        )
        .order_by("slug")
    )
    return render(
        request, "releases/publish/model_list.html", workspace_context(request, organization, models=models)
    )


@login_required
def model_new(request, org_slug: str):
    organization = workspace_organization(request, org_slug)
    form = ModelCardForm(request.POST or None)
    preview = None
    if request.method == "POST" and form.is_valid():
        if "preview" in request.POST:
            preview = render_markdown(form.cleaned_data["card"])
        else:
            try:
                model = model_create(organization=organization, actor=request.user, **form.cleaned_data)
            except ReleaseError as error:
                form.add_error(None, str(error))
            else:
                messages.success(request, f"Model {model.full_slug} created.")
                return redirect("publish-model", org_slug=organization.slug, model_id=model.pk)
    return render(
        request,
        "releases/publish/model_form.html",
        workspace_context(request, organization, form=form, preview=preview, model=None),
        status=400 if form.errors else 200,
    )


@login_required
def model_detail(request, org_slug: str, model_id: int):
    """Edit the model's name, summary and card (with a sanitised preview); its releases."""
    organization, model = _workspace_model(request, org_slug, model_id)
    initial = {"name": model.name, "summary": model.summary, "card": model.card}
    form = ModelCardForm(request.POST or None, initial=initial, editing=True)
    preview = render_markdown(model.card)
    if request.method == "POST" and form.is_valid():
        if "preview" in request.POST:
            preview = render_markdown(form.cleaned_data["card"])
        else:
            try:
                model_update(model=model, actor=request.user, **form.cleaned_data)
            except ReleaseError as error:
                form.add_error(None, str(error))
            else:
                messages.success(request, "Model saved.")
                return redirect("publish-model", org_slug=organization.slug, model_id=model.pk)
    releases = model.releases.annotate(
        artifact_count=Count("artifacts", distinct=True), tier_count=Count("tiers", distinct=True)
    )
    return render(
        request,
        "releases/publish/model_form.html",
        workspace_context(
            request,
            organization,
            form=form,
            preview=preview,
            model=model,
            releases=releases.order_by("-created_at"),
        ),
        status=400 if form.errors else 200,
    )


# --- Releases -------------------------------------------------------------------------------


@login_required
def release_new(request, org_slug: str, model_id: int):
    organization, model = _workspace_model(request, org_slug, model_id)
    form = ReleaseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            release = release_create(model=model, actor=request.user, **form.cleaned_data)
        except ReleaseError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Draft release {release.version} created. Upload its files next.")
            return redirect("publish-release", org_slug=organization.slug, release_id=release.pk)
    return render(
        request,
        "releases/publish/release_form.html",
        workspace_context(request, organization, form=form, model=model),
        status=400 if form.errors else 200,
    )


@login_required
def release_detail(request, org_slug: str, release_id: int):
    """A release: its files with their status, its tiers, and (for a draft) what to do next."""
    organization, release = workspace_release(request, org_slug, release_id)
    artifacts = list(release.artifacts.order_by("path"))
    tiers = list(
        release.tiers.select_related("license")
        .annotate(file_count=Count("artifacts"))
        .order_by("position", "opens_at")
    )
    for tier in tiers:
        tier.relative_label = offset_label(tier.opens_after) if tier.opens_after is not None else ""
    unverified = [artifact for artifact in artifacts if artifact.status != Artifact.Status.VERIFIED]
    return render(
        request,
        "releases/publish/release_detail.html",
        workspace_context(
            request,
            organization,
            release=release,
            model=release.model,
            artifacts=artifacts,
            tiers=tiers,
            unverified=unverified,
            is_draft=release.status == Release.Status.DRAFT,
            upload_url=upload_url(organization, release),
            timeline_url=timeline_url(organization, release),
            gates=dict(Tier.Gate.choices),
        ),
    )


@login_required
@require_POST
def release_publish_view(request, org_slug: str, release_id: int):
    organization, release = workspace_release(request, org_slug, release_id)
    try:
        release = release_publish(release=release, actor=request.user)
    except ReleaseError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request, f"{release} is published, revision {release.revision}. Its files cannot change now."
        )
    return redirect("publish-release", org_slug=organization.slug, release_id=release.pk)
