"""Workspace pages for the tiers of a draft release: gate, approval, license, files, dates.

Creating goes through releases.rollout.tier_create and editing through releases.services.tier_edit
(terms here, the plan through releases.rollout.tier_update); both check the plan's rules. A
published release's tiers are shown on its page but not edited here: the rollout timeline holds,
resumes and opens them. The application form (questions and screening rules) has its own page,
releases.application_form.tier_application_form_update, for draft and published tiers alike.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render

from releases.application_form import tier_application_form_update
from releases.models import Release, Tier
from releases.publish.forms import TierForm
from releases.publish.forms_application import ScreeningRulesForm, question_formset
from releases.publish.views_models import workspace_release
from releases.publish.views_workspace import workspace_context, workspace_organization
from releases.rollout import tier_create
from releases.services import ReleaseError, tier_edit

PUBLISHED_REFUSAL = "This release is published: its tiers and files cannot change."


def _refuse_published(request, organization, release: Release):
    messages.error(request, PUBLISHED_REFUSAL)
    return redirect("publish-release", org_slug=organization.slug, release_id=release.pk)


@login_required
def tier_new(request, org_slug: str, release_id: int):
    organization, release = workspace_release(request, org_slug, release_id)
    if release.status != Release.Status.DRAFT:
        return _refuse_published(request, organization, release)
    form = TierForm(request.POST or None, release=release, initial={"position": release.tiers.count()})
    if request.method == "POST" and form.is_valid():
        try:
            tier = tier_create(
                release=release,
                position=form.cleaned_data["position"],
                closes_at=form.cleaned_data["closes_at"],
                questions=[],
                actor=request.user,
                **form.terms(),
                **form.schedule_arguments(),
                **form.selection_arguments(),
            )
        except ReleaseError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Tier {tier.name} added.")
            return redirect("publish-release", org_slug=organization.slug, release_id=release.pk)
    return render(
        request,
        "releases/publish/tier_form.html",
        workspace_context(request, organization, form=form, release=release, model=release.model, tier=None),
        status=400 if form.errors else 200,
    )


@login_required
def tier_edit_view(request, org_slug: str, tier_id: int):
    organization = workspace_organization(request, org_slug)
    tier = get_object_or_404(
        Tier.objects.select_related("release__model__organization", "license").prefetch_related("artifacts"),
        pk=tier_id,
        release__model__organization=organization,
    )
    release = tier.release
    if release.status != Release.Status.DRAFT:
        return _refuse_published(request, organization, release)
    form = TierForm(request.POST or None, release=release, initial=TierForm.initial_for(tier))
    if request.method == "POST" and form.is_valid():
        try:
            tier_edit(tier=tier, actor=request.user, terms=form.terms(), plan=_plan_changes(tier, form))
        except ReleaseError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Tier {form.cleaned_data['name']} saved.")
            return redirect("publish-release", org_slug=organization.slug, release_id=release.pk)
    return render(
        request,
        "releases/publish/tier_form.html",
        workspace_context(request, organization, form=form, release=release, model=release.model, tier=tier),
        status=400 if form.errors else 200,
    )


def _plan_changes(tier: Tier, form: TierForm) -> dict:
    """Only what differs from the tier, so that the audit event says what was changed."""
    changes: dict = {}
    if form.cleaned_data["position"] != tier.position:
        changes["position"] = form.cleaned_data["position"]
    schedule = form.schedule_arguments()
    if schedule["opens_after"] != tier.opens_after or (
        schedule["opens_after"] is None and not _same_second(schedule["opens_at"], tier.opens_at)
    ):
        changes.update(schedule)
    if not _same_second(form.cleaned_data["closes_at"], tier.closes_at):
        changes["closes_at"] = form.cleaned_data["closes_at"]
    selection = form.selection_arguments()
    if selection["artifact_patterns"] is not None:
        if selection["artifact_patterns"] != tier.artifact_patterns:
            changes.update(selection)
    elif tier.artifact_patterns or {a.pk for a in selection["artifacts"]} != {
        a.pk for a in tier.artifacts.all()
    }:
        changes.update(selection)
    return changes


def _same_second(submitted, stored) -> bool:
    """The form shows dates to the second: an untouched field must not count as a change."""
    if submitted is None or stored is None:
        return submitted is stored
    return submitted.replace(microsecond=0) == stored.replace(microsecond=0)


@login_required
def tier_application_form_view(request, org_slug: str, tier_id: int):
    """The form builder and screening rules of an application tier, draft or published: applications
    keep a copy of the questions they answered, so changing them never touches earlier ones."""
    organization = workspace_organization(request, org_slug)
    tier = get_object_or_404(
        Tier.objects.select_related("release__model__organization"),
        pk=tier_id,
        release__model__organization=organization,
        gate=Tier.Gate.APPLICATION,
    )
    data = request.POST if request.method == "POST" else None
    formset = question_formset(data, tier)
    rules_form = ScreeningRulesForm(data, initial=ScreeningRulesForm.initial_for(tier), prefix="screening")
    if data is not None and formset.is_valid() and rules_form.is_valid():
        questions = formset.questions()
        try:
            tier_application_form_update(
                tier=tier, actor=request.user, questions=questions, **rules_form.settings(questions)
            )
        except ReleaseError as error:
            rules_form.add_error(None, str(error))
        else:
            messages.success(request, f"The application form of {tier.name} was saved.")
            return redirect("publish-tier-form", org_slug=organization.slug, tier_id=tier.pk)
    invalid = data is not None and (formset.total_error_count() or rules_form.errors)
    return render(
        request,
        "releases/publish/tier_application_form.html",
        workspace_context(
            request,
            organization,
            formset=formset,
            rules_form=rules_form,
            tier=tier,
            release=tier.release,
            model=tier.release.model,
        ),
        status=400 if invalid else 200,
    )
