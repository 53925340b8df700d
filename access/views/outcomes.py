"""Outcomes besides approve and reject: a reviewer returns an application for revision; its
applicant edits and resubmits it, or appeals a rejection once."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from access import policy
from access.errors import AccessError
from access.forms import AppealForm, ApplicationRevisionForm, ReturnForm
from access.models import Application
from access.services.grants import MAX_REASON_LENGTH
from access.services.outcomes import application_appeal, application_resubmit, application_return


def _own_application(request, application_id: int) -> Application:
    return get_object_or_404(
        Application.objects.select_related("tier__release__model__organization"),
        pk=application_id,
        user=request.user,
    )


@login_required
def application_edit(request, application_id: int):
    """Edit a returned application and resubmit it; the earlier version stays in its history."""
    application = _own_application(request, application_id)
    if application.status != Application.Status.RETURNED:
        messages.error(request, "Only an application returned for revision can be edited.")
        return redirect("application-detail", application_id=application.pk)
    initial = {
        "affiliation": application.affiliation,
        "intended_use": application.intended_use,
        **{f"q_{name}": value for name, value in application.answers.items()},
    }
    form = ApplicationRevisionForm(request.POST or None, questions=application.questions, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            application_resubmit(
                application_id=application.pk,
                user=request.user,
                affiliation=form.cleaned_data["affiliation"],
                intended_use=form.cleaned_data["intended_use"],
                answers=form.answers(),
            )
        except AccessError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "Your application was resubmitted.")
            return redirect("application-detail", application_id=application.pk)
    return render(
        request,
        "access/application_edit.html",
        {"application": application, "tier": application.tier, "form": form},
        status=400 if form.errors else 200,
    )


@login_required
def application_appeal_view(request, application_id: int):
    """Appeal a rejection, once, with a statement."""
    application = _own_application(request, application_id)
    form = AppealForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            application_appeal(
                application_id=application.pk, user=request.user, statement=form.cleaned_data["statement"]
            )
        except AccessError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "Your appeal was submitted; another reviewer will decide it.")
            return redirect("application-detail", application_id=application.pk)
    elif request.method != "POST" and (
        application.status != Application.Status.REJECTED or application.appealed_at is not None
    ):
        messages.error(
            request,
            "You have already appealed this decision; an appeal is final."
            if application.appealed_at
            else "Only a rejected application can be appealed.",
        )
        return redirect("application-detail", application_id=application.pk)
    return render(
        request,
        "access/application_appeal.html",
        {"application": application, "tier": application.tier, "form": form},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def review_application_return(request, application_id: int):
    """A reviewer sends a pending application back to its applicant with a message."""
    application = get_object_or_404(
        Application.objects.select_related("tier__release__model__organization"),
        pk=application_id,
        tier__release__model__organization__in=policy.reviewable_organizations(request.user),
    )
    form = ReturnForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, f"Tell the applicant what to change, in at most {MAX_REASON_LENGTH} characters."
        )
        return redirect("review-application", application_id=application.pk)
    try:
        application_return(
            application_id=application.pk, reviewer=request.user, message=form.cleaned_data["message"]
        )
    except AccessError as error:
        messages.error(request, error.message)
        return redirect("review-application", application_id=application.pk)
    messages.success(request, f"Application #{application.pk} was returned to the applicant for revision.")
    return redirect("review-queue", org_slug=application.tier.release.model.organization.slug)
