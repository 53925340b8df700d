"""A researcher's side of a tier: read the license, apply or accept, follow applications."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from access import policy
from access.errors import AccessError
from access.forms import ApplicationForm, LicenseAcceptanceFields
from access.models import Application
from access.questions import display_answer
from access.selectors import application_histories
from access.services.applications import application_submit
from access.services.applications import application_withdraw as withdraw
from access.services.grants import tier_license_accept
from access.views.common import client_ip
from releases.models import Release, Tier


def _visible_tier(tier_id: int) -> Tier:
    """Tiers of published releases; anything else is not there for researchers."""
    return get_object_or_404(
        Tier.objects.select_related("release__model__organization", "license"),
        pk=tier_id,
        release__status=Release.Status.PUBLISHED,
    )


def tier_detail(request, tier_id: int):
    """The tier's license, readable before applying, the user's standing and what to do next."""
    tier = _visible_tier(tier_id)
    license_version = tier.license.current_version if tier.license else None
    standing = policy.tier_standing(request.user, tier)
    accept_form = None
    if (
        license_version
        and standing.code in ("not_requested", "invited", "expired")
        and (tier.gate != Tier.Gate.APPLICATION or standing.code == "invited")
    ):
        accept_form = LicenseAcceptanceFields(initial={"text_sha256": license_version.text_sha256})
    return render(
        request,
        "access/tier_detail.html",
        {
            "tier": tier,
            "model": tier.release.model,
            "license_version": license_version,
            "standing": standing,
            "accept_form": accept_form,
            "artifacts": tier.artifacts.all(),
        },
    )


@login_required
def tier_apply(request, tier_id: int):
    tier = _visible_tier(tier_id)
    refusal = policy.application_refusal(request.user, tier)
    if refusal is not None:
        messages.error(request, refusal.message)
        return redirect("tier-detail", tier_id=tier.pk)
    license_version = tier.license.current_version
    form = ApplicationForm(
        request.POST or None, questions=tier.questions, initial={"text_sha256": license_version.text_sha256}
    )
    if request.method == "POST" and form.is_valid():
        try:
            application = application_submit(
                user=request.user,
                tier=tier,
                affiliation=form.cleaned_data["affiliation"],
                intended_use=form.cleaned_data["intended_use"],
                answers=form.answers(),
                typed_name=form.cleaned_data["typed_name"],
                seen_text_sha256=form.cleaned_data["text_sha256"],
                ip_address=client_ip(request),
            )
        except AccessError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "Your application was submitted.")
            return redirect("application-detail", application_id=application.pk)
    return render(
        request,
        "access/tier_apply.html",
        {"tier": tier, "model": tier.release.model, "license_version": license_version, "form": form},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def tier_accept(request, tier_id: int):
    """Click-through and invitation tiers: accepting the license grants access."""
    tier = _visible_tier(tier_id)
    form = LicenseAcceptanceFields(request.POST)
    if not form.is_valid():
        messages.error(request, "Type your full name to accept the license.")
        return redirect("tier-detail", tier_id=tier.pk)
    try:
        tier_license_accept(
            user=request.user,
            tier=tier,
            typed_name=form.cleaned_data["typed_name"],
            seen_text_sha256=form.cleaned_data["text_sha256"],
            ip_address=client_ip(request),
        )
    except AccessError as error:
        messages.error(request, error.message)
        return redirect("tier-detail", tier_id=tier.pk)
    messages.success(request, "You accepted the license; the files are yours to download.")
    return redirect("tier-files", tier_id=tier.pk)


@login_required
def my_applications(request):
    applications = list(
        Application.objects.filter(user=request.user)
        .select_related("tier__release__model__organization")
        .order_by("-submitted_at")[:200]
    )
    histories = application_histories(applications)
    rows = [(application, histories[application.pk]) for application in applications]
    return render(request, "access/my_applications.html", {"rows": rows})


@login_required
def application_detail(request, application_id: int):
    application = get_object_or_404(
        Application.objects.select_related(
            "tier__release__model__organization", "license_acceptance__license_version"
        ),
        pk=application_id,
        user=request.user,
    )
    history = application_histories([application])[application.pk]
    return render(
        request,
        "access/application_detail.html",
        {"application": application, "history": history, "answers": _answer_rows(application)},
    )


def _answer_rows(application: Application) -> list[tuple[str, object]]:
    """Answers labelled with the questions as the applicant saw them."""
    questions = {question["name"]: question for question in application.questions}
    return [
        (questions[name]["label"] if name in questions else name, display_answer(questions.get(name), value))
        for name, value in application.answers.items()
    ]


@login_required
@require_POST
def application_withdraw(request, application_id: int):
    application = get_object_or_404(Application, pk=application_id, user=request.user)
    try:
        withdraw(application_id=application.pk, user=request.user)
    except AccessError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Your application was withdrawn.")
    return redirect("application-detail", application_id=application.pk)
