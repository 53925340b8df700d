"""The reviewers' queue: an organization's pending applications, oldest first."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render

from access import policy
from access.errors import AccessError
from access.forms import DecisionForm
from access.models import Application
from access.selectors import application_histories
from access.services.applications import application_approve, application_reject
from access.views.apply import _answer_rows
from releases.models import Tier

QUEUE_PAGE_SIZE = 50


@login_required
def review_home(request):
    organizations = list(policy.reviewable_organizations(request.user))
    if len(organizations) == 1:
        return redirect("review-queue", org_slug=organizations[0].slug)
    return render(request, "access/review_home.html", {"organizations": organizations})


@login_required
def review_queue(request, org_slug: str):
    organization = get_object_or_404(policy.reviewable_organizations(request.user), slug=org_slug)
    tiers = list(
        Tier.objects.filter(release__model__organization=organization, gate=Tier.Gate.APPLICATION)
        .select_related("release__model")
        .order_by("release__model__slug", "release__version", "position")
    )
    pending = (
        Application.objects.filter(
            tier__release__model__organization=organization, status=Application.Status.PENDING
        )
        .select_related("user", "tier__release__model")
        .order_by("submitted_at", "pk")
    )
    selected_tier = None
    tier_param = request.GET.get("tier")
    if tier_param:
        selected_tier = next((tier for tier in tiers if str(tier.pk) == tier_param), None)
        if selected_tier is None:
            raise Http404("No such tier in this organization.")
        pending = pending.filter(tier=selected_tier)
    page = Paginator(pending, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "access/review_queue.html",
        {"organization": organization, "tiers": tiers, "selected_tier": selected_tier, "page": page},
    )


@login_required
def review_application(request, application_id: int):
    application = get_object_or_404(
        Application.objects.select_related(
            "user", "tier__release__model__organization", "license_acceptance__license_version"
        ),
        pk=application_id,
        tier__release__model__organization__in=policy.reviewable_organizations(request.user),
    )
    form = DecisionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            if form.cleaned_data["decision"] == "approve":
                application_approve(
                    application_id=application.pk, reviewer=request.user, reason=form.cleaned_data["reason"]
                )
                messages.success(request, f"Application #{application.pk} approved.")
            else:
                application_reject(
                    application_id=application.pk, reviewer=request.user, reason=form.cleaned_data["reason"]
                )
                messages.success(request, f"Application #{application.pk} rejected.")
        except AccessError as error:
            form.add_error(None, error.message)
        else:
            return redirect("review-queue", org_slug=application.tier.release.model.organization.slug)
    return render(
        request,
        "access/review_application.html",
        {
            "application": application,
            "form": form,
            "answers": _answer_rows(application),
            "history": application_histories([application])[application.pk],
            "own_application": application.user_id == request.user.pk,
        },
        status=400 if form.errors else 200,
    )
