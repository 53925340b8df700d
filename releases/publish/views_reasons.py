"""Workspace page for preset rejection reasons: the sentences reviewers pick when they reject.

Owners and publishers add, retire and restore them (anyone else gets 404, like every workspace
page); the rules are in access/services/reasons.py.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from access.errors import AccessError
from access.models import RejectionReason
from access.services.reasons import (
    MAX_ACTIVE_REJECTION_REASONS,
    MAX_REJECTION_REASON_LENGTH,
    rejection_reason_create,
    rejection_reason_set_active,
)
from releases.publish.views_workspace import workspace_context, workspace_organization


class RejectionReasonForm(forms.Form):
    text = forms.CharField(
        max_length=MAX_REJECTION_REASON_LENGTH,
        label="New preset reason",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Shown to the applicant as written, followed by what the reviewer adds.",
    )


@login_required
def rejection_reasons(request, org_slug: str):
    """The organization's preset reasons, in use then retired; a form to add one (POST)."""
    organization = workspace_organization(request, org_slug)
    form = RejectionReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            reason = rejection_reason_create(
                organization=organization, text=form.cleaned_data["text"], actor=request.user
            )
        except AccessError as error:
            form.add_error("text", error.message)
        else:
            messages.success(request, f"Preset reason added: “{reason.text}”.")
            return redirect("publish-rejection-reasons", org_slug=organization.slug)
    reasons = list(RejectionReason.objects.filter(organization=organization).order_by("-active", "text"))
    return render(
        request,
        "releases/publish/rejection_reasons.html",
        workspace_context(
            request,
            organization,
            reasons=reasons,
            form=form,
            max_active=MAX_ACTIVE_REJECTION_REASONS,
        ),
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def rejection_reason_active(request, org_slug: str, reason_id: int):
    """Retire (``active=0``) or restore (``active=1``) a preset reason."""
    organization = workspace_organization(request, org_slug)
    active = request.POST.get("active")
    if active not in ("0", "1"):
        messages.error(request, "Say whether to retire or restore the reason.")
        return redirect("publish-rejection-reasons", org_slug=organization.slug)
    try:
        reason = rejection_reason_set_active(
            organization=organization, reason_id=reason_id, active=active == "1", actor=request.user
        )
    except RejectionReason.DoesNotExist:
        raise Http404("No such reason in this organization.") from None
    except AccessError as error:
        messages.error(request, error.message)
    else:
        verb = "restored" if reason.active else "retired"
        messages.success(request, f"Preset reason {verb}: “{reason.text}”.")
    return redirect("publish-rejection-reasons", org_slug=organization.slug)
