"""The reviewers' queue and review page: filters, assignment, single and bulk decisions.

Every page looks the organization or application up among the requester's reviewable
organizations (404 otherwise); who may decide what is access.policy.decision_refusal, which the
services apply and the pages use to show only the actions that would be accepted.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from access import policy
from access.errors import AccessError
from access.forms_review import BulkDecisionForm, DecisionForm, QueueFilterForm
from access.models import Application, User
from access.selectors import application_histories, review_states
from access.services.assignment import application_claim
from access.services.decisions import (
    DecisionOutcome,
    application_approve,
    application_reject,
    applications_decide,
)
from access.views.apply import _answer_rows
from releases.models import Organization, Tier

# Skipped applications listed by name in the message after a bulk decision; the rest are counted.
SKIPPED_SHOWN = 10


@login_required
def review_home(request):
    organizations = list(policy.reviewable_organizations(request.user))
    if len(organizations) == 1:
        return redirect("review-queue", org_slug=organizations[0].slug)
    return render(request, "access/review_home.html", {"organizations": organizations})


def _reviewed_organization(request, org_slug: str) -> Organization:
    return get_object_or_404(policy.reviewable_organizations(request.user), slug=org_slug)


@login_required
def review_queue(request, org_slug: str):
    organization = _reviewed_organization(request, org_slug)
    return _render_queue(request, organization, BulkDecisionForm(organization=organization))


@login_required
@require_POST
def review_queue_decide(request, org_slug: str):
    """Approve or reject the ticked applications with one reason; the queue's filters (in the
    query string) are kept for the page shown after."""
    organization = _reviewed_organization(request, org_slug)
    form = BulkDecisionForm(request.POST, organization=organization)
    if form.is_valid():
        try:
            outcome = applications_decide(
                organization=organization,
                application_ids=form.cleaned_data["application"],
                reviewer=request.user,
                decision=form.cleaned_data["decision"],
                reason=form.cleaned_data["full_reason"],
            )
        except AccessError as error:
            form.add_error(None, error.message)
        else:
            _report(request, outcome)
            return _back_to_queue(request, org_slug)
    return _render_queue(request, organization, form, status=400)


def _report(request, outcome: DecisionOutcome) -> None:
    verb = "Approved" if outcome.decision == "approve" else "Rejected"
    if outcome.decided:
        messages.success(request, f"{verb} {_count(len(outcome.decided))}.")
    if outcome.approval_recorded:
        messages.success(
            request,
            f"Your approval is recorded on {_count(len(outcome.approval_recorded))} that "
            "need another reviewer's approval too.",
        )
    if outcome.skipped:
        reasons = [f"#{pk}: {error.message}" for pk, error in list(outcome.skipped.items())[:SKIPPED_SHOWN]]
        more = len(outcome.skipped) - SKIPPED_SHOWN
        tail = f" … and {more} more." if more > 0 else ""
        messages.warning(
            request, f"Left unchanged: {_count(len(outcome.skipped))}. " + " ".join(reasons) + tail
        )


def _count(number: int) -> str:
    return f"{number} application{'s' if number != 1 else ''}"


def _render_queue(request, organization: Organization, bulk_form: BulkDecisionForm, *, status: int = 200):
    tiers = list(
        Tier.objects.filter(release__model__organization=organization)
        .select_related("release__model")
        .order_by("release__model__slug", "release__version", "position")
    )
    selected_tier = None
    tier_param = request.GET.get("tier")
    if tier_param:
        selected_tier = next((tier for tier in tiers if str(tier.pk) == tier_param), None)
        if selected_tier is None:
            raise Http404("No such tier in this organization.")
    filters = QueueFilterForm(request.GET)
    if not filters.is_valid():
        # Bad filter values answer 400 with the form's errors and an empty list.
        status = 400
        applications = Application.objects.none()
    else:
        applications = _queue(request.user, filters, [selected_tier] if selected_tier else tiers)
    page = Paginator(applications, filters.cleaned_data.get("per_page") or 50).get_page(
        request.GET.get("page")
    )
    rows = list(page.object_list)
    states = review_states(rows)
    now = timezone.now()
    for application in rows:
        state = states[application.pk]
        application.approvals = len(state.approver_ids)
        application.approved_by_me = request.user.pk in state.approver_ids
        application.conflict_of_interest = policy.conflict_of_interest(request.user, application.user)
        application.overdue = application.decision_due_at <= now
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "access/review_queue.html",
        {
            "organization": organization,
            "tiers": [tier for tier in tiers if tier.gate == Tier.Gate.APPLICATION or tier == selected_tier],
            "selected_tier": selected_tier,
            "filters": filters,
            "status_label": filters.status_label() if filters.is_valid() else "",
            "page": page,
            "rows": rows,
            "bulk_form": bulk_form,
            "query": query.urlencode(),
        },
        status=status,
    )


def _queue(user, filters: QueueFilterForm, tiers: list[Tier]):
    """The filtered queue, oldest first: one count and one page query whatever its length."""
    data = filters.cleaned_data
    applications = Application.objects.filter(tier__in=tiers, status__in=filters.statuses())
    if data.get("older_than_days"):
        applications = applications.filter(
            submitted_at__lt=timezone.now() - timedelta(days=data["older_than_days"])
        )
    if data.get("assigned") == "me":
        applications = applications.filter(assigned_to=user)
    elif data.get("assigned") == "unassigned":
        applications = applications.filter(assigned_to__isnull=True)
    return applications.select_related("user", "tier__release__model", "assigned_to").order_by(
        "submitted_at", "pk"
    )


@login_required
@require_POST
def review_application_claim(request, application_id: int):
    """Make the requester the assignee (an owner may take an application over)."""
    application = _reviewed_application(request, application_id)
    try:
        application_claim(application_id=application.pk, reviewer=request.user)
    except AccessError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Application #{application.pk} is assigned to you.")
    if request.POST.get("return_to") == "queue":
        return _back_to_queue(request, application.tier.release.model.organization.slug)
    return redirect("review-application", application_id=application.pk)


def _back_to_queue(request, org_slug: str):
    """The queue with the filters it was shown with (the query string of the POST)."""
    query = request.GET.urlencode()
    return redirect(reverse("review-queue", kwargs={"org_slug": org_slug}) + (f"?{query}" if query else ""))


def _reviewed_application(request, application_id: int) -> Application:
    return get_object_or_404(
        Application.objects.select_related(
            "user",
            "assigned_to",
            "tier__release__model__organization",
            "license_acceptance__license_version",
        ),
        pk=application_id,
        tier__release__model__organization__in=policy.reviewable_organizations(request.user),
    )


@login_required
def review_application(request, application_id: int):
    application = _reviewed_application(request, application_id)
    organization = application.tier.release.model.organization
    form = DecisionForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        try:
            if form.cleaned_data["decision"] == "approve":
                decided = application_approve(
                    application_id=application.pk,
                    reviewer=request.user,
                    reason=form.cleaned_data["full_reason"],
                )
                if decided.status == Application.Status.APPROVED:
                    messages.success(request, f"Application #{application.pk} approved.")
                else:
                    messages.success(
                        request,
                        f"Your approval of application #{application.pk} is recorded; "
                        f"it needs {application.tier.approvals_required} approvals.",
                    )
            else:
                application_reject(
                    application_id=application.pk,
                    reviewer=request.user,
                    reason=form.cleaned_data["full_reason"],
                )
                messages.success(request, f"Application #{application.pk} rejected.")
        except AccessError as error:
            form.add_error(None, error.message)
        else:
            return redirect("review-queue", org_slug=organization.slug)
        application = _reviewed_application(request, application_id)
    roles = policy.roles_in(request.user, organization)
    state = review_states([application])[application.pk]
    return render(
        request,
        "access/review_application.html",
        {
            "application": application,
            "form": form,
            "answers": _answer_rows(application),
            "history": application_histories([application])[application.pk],
            "own_application": application.user_id == request.user.pk,
            "approvals": len(state.approver_ids),
            "approver_names": list(
                User.objects.filter(pk__in=state.approver_ids)
                .order_by("full_name")
                .values_list("full_name", flat=True)
            ),
            "conflict_of_interest": policy.conflict_of_interest(request.user, application.user),
            "reject_refusal": policy.decision_refusal(
                request.user, application, "reject", roles=roles, state=state
            ),
            "approve_refusal": policy.decision_refusal(
                request.user, application, "approve", roles=roles, state=state
            ),
            "claim_refusal": policy.claim_refusal(request.user, application, roles=roles, state=state),
        },
        status=400 if form.errors else 200,
    )
