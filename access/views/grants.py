"""Grants over time: a holder asks for a renewal; a tier's reviewers list its grants, revoke
one with a reason, and export them all as a streamed CSV file."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from access import policy
from access.audit import audit_record
from access.errors import AccessError
from access.forms import RenewalForm, RevokeForm
from access.models import Application, Grant
from access.services.grants import MAX_REASON_LENGTH, grant_revoke
from access.services.renewals import grant_renewal_request
from access.views.common import client_ip
from releases.models import Tier

GRANTS_PAGE_SIZE = 50
# Rows fetched from the database per round trip while the CSV streams.
CSV_CHUNK_SIZE = 2000
CSV_COLUMNS = (
    ("grant_id", "pk"),
    ("email", "user__email"),
    ("full_name", "user__full_name"),
    ("status", "status"),
    ("granted_at", "granted_at"),
    ("expires_at", "expires_at"),
    ("revoked_at", "revoked_at"),
    ("revoked_by", "revoked_by__email"),
    ("revoke_reason", "revoke_reason"),
    ("license_version", "license_acceptance__license_version__number"),
    ("license_text_sha256", "license_acceptance__text_sha256"),
    ("application_id", "application_id"),
)


# --- The holder: renewal --------------------------------------------------------------------


@login_required
def grant_renew(request, grant_id: int):
    """Ask to renew one's own grant; where the tier renews automatically it is extended at once."""
    grant = get_object_or_404(
        Grant.objects.with_license_state().select_related("tier__release__model"),
        pk=grant_id,
        user=request.user,
    )
    refusal = policy.renewal_refusal(request.user, grant)
    form = RenewalForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            application = grant_renewal_request(
                grant_id=grant.pk, user=request.user, statement=form.cleaned_data["statement"]
            )
        except AccessError as error:
            form.add_error(None, error.message)
        else:
            if application.status == Application.Status.APPROVED:
                grant.refresh_from_db()
                until = f"until {grant.expires_at:%Y-%m-%d}" if grant.expires_at else "with no end date"
                messages.success(request, f"Your access was renewed {until}.")
                return redirect("tier-detail", tier_id=grant.tier_id)
            messages.success(request, "Your renewal request was sent to the reviewers.")
            return redirect("application-detail", application_id=application.pk)
    return render(
        request,
        "access/grant_renew.html",
        {"grant": grant, "tier": grant.tier, "refusal": refusal, "form": form, "now": timezone.now()},
        status=400 if form.errors else 200,
    )


# --- A tier's reviewers: list, revoke, export -----------------------------------------------


def _reviewable_tier(request, tier_id: int) -> Tier:
    """A tier of an organization the requester reviews for; any other answers 404."""
    return get_object_or_404(
        Tier.objects.select_related("release__model__organization"),
        pk=tier_id,
        release__model__organization__in=policy.reviewable_organizations(request.user),
    )


@login_required
def tier_grants(request, tier_id: int):
    tier = _reviewable_tier(request, tier_id)
    status = request.GET.get("status", "")
    if status and status not in Grant.Status.values:
        return HttpResponseBadRequest(
            f"Unknown status {status!r}; use one of {', '.join(Grant.Status.values)}."
        )
    grants = (
        Grant.objects.filter(tier=tier)
        .select_related("user", "revoked_by", "license_acceptance__license_version")
        .order_by("-granted_at", "-pk")
    )
    if status:
        grants = grants.filter(status=status)
    page = Paginator(grants, GRANTS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "access/tier_grants.html",
        {
            "tier": tier,
            "organization": tier.release.model.organization,
            "page": page,
            "status": status,
            "statuses": Grant.Status.choices,
            "revoke_form": RevokeForm(),
            "now": timezone.now(),
        },
    )


@login_required
@require_POST
def tier_grant_revoke(request, grant_id: int):
    """Revoke a grant with a reason: downloads stop at once; the holder is told and it is audited."""
    grant = get_object_or_404(
        Grant.objects.select_related("tier"),
        pk=grant_id,
        tier__release__model__organization__in=policy.reviewable_organizations(request.user),
    )
    form = RevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Give a reason for revoking, in at most {MAX_REASON_LENGTH} characters.")
        return redirect("tier-grants", tier_id=grant.tier_id)
    try:
        grant_revoke(grant_id=grant.pk, actor=request.user, reason=form.cleaned_data["reason"])
    except AccessError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The access of {grant.user} was revoked.")
    return redirect("tier-grants", tier_id=grant.tier_id)


class _Echo:
    """A file-like object whose write returns what it was given, for csv.writer row by row."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    # A cell a spreadsheet would run as a formula (names and reasons are typed by people).
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


@login_required
def tier_grants_csv(request, tier_id: int):
    """Every grant of the tier as CSV, streamed: rows are read from a server-side cursor in
    chunks and written as they come, so memory stays flat however many grants there are.
    The export is audited (who took the list of grantees, when, from where)."""
    return tier_grants_csv_response(request, _reviewable_tier(request, tier_id))


def tier_grants_csv_response(request, tier: Tier) -> StreamingHttpResponse:
    """The streamed, audited CSV export of ``tier``'s grants for ``request.user``, who must be one
    of its reviewers (the caller checks); the page above and the REST API answer with it."""
    with transaction.atomic():
        audit_record(
            action="tier.grants_exported", target=tier, actor=request.user, ip_address=client_ip(request)
        )
    rows = (
        Grant.objects.filter(tier=tier)
        .order_by("pk")
        .values_list(*(field for _, field in CSV_COLUMNS))
        .iterator(chunk_size=CSV_CHUNK_SIZE)
    )
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow([name for name, _ in CSV_COLUMNS])
        for row in rows:
            yield writer.writerow([_csv_cell(value) for value in row])

    release = tier.release
    filename = slugify(
        f"{release.model.organization.slug}-{release.model.slug}-{release.version}-{tier.name}"
    )
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}-grants.csv"'
    response["Cache-Control"] = "no-store"
    return response
