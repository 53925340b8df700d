"""huggingface_hub's access-request calls, mapped onto Gatehouse's review services.

The client (``HfApi.list_pending_access_requests`` and friends, huggingface_hub/hf_api.py) calls

    GET  /api/models/<org>/<model>/user-access-request/{pending,accepted,rejected}
    POST /api/models/<org>/<model>/user-access-request/handle
         {"user" or "requestId", "status", "rejectionReason"?}
    POST /api/models/<org>/<model>/user-access-request/grant  {"user"}

with a token that must carry the ``manage`` scope, from an owner or reviewer of the model's
organization (403 ``not_reviewer`` otherwise; an unknown or unpublished model is 404 with
``X-Error-Code: RepoNotFound``, which the client raises as RepositoryNotFoundError).

The mapping, where the hub and Gatehouse differ:

- A repository is a model; its requests are those of every gated tier of its published releases
  (400 ``not_gated`` when there is none). The hub's ``user`` (a username) is the account's
  e-mail address: lists give it as ``user.user`` so that it can be passed straight back.
- pending: applications awaiting a decision (pending, appealed); ``requestId`` "application-<id>".
  accepted: live grants (what the hub means by accepted: the user can download); "grant-<id>".
  rejected: rejected applications; "application-<id>".
- accept: approve the user's applications awaiting a decision (the queue's bulk decision, so the
  tier's approvals and the assignment rules apply). A rejection is not reopened (the applicant
  may appeal): accept answers 404 ``no_pending_request``; ``grant_access`` gives access directly.
- reject: reject the applications awaiting a decision, with the reason (required in Gatehouse,
  shown to the applicant); with none, revoke the user's live grants with that reason.
- cancel (the hub's "back to pending"): revoke the user's live grants. Gatehouse has no way back
  to pending; a decided application stays as it is (409 ``cannot_cancel``).
- grant: access.services.direct_grants.grant_direct on the newest published release's application
  tier (its invitation tier if it has no application tier); 409 ``ambiguous_tier`` if it has
  several: POST /api/v1/tiers/{id}/grants names one.

Errors are ``{"error": message, "code": code}`` with the message in ``X-Error-Message`` too (the
client shows it), as the other hub routes answer (api/hub/protocol.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from urllib.parse import urlencode

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from access import policy
from access.errors import AccessError, InvalidInput, InvalidTransition
from access.models import AccessToken, Application, Grant, User
from access.services.decisions import (
    application_approve,
    application_reject,
    applications_decide,
)
from access.services.direct_grants import grant_direct
from access.services.grants import grant_revoke
from api.auth import authenticate_request
from api.errors import ApiError, access_error_status
from api.hub.protocol import header_text, hub_datetime
from releases.models import Model, Release, Tier

# Rows per page of a list; the client follows the ``Link: <…>; rel="next"`` header.
PAGE_SIZE = 100
CANCEL_REASON = "Access withdrawn by the organization's reviewers."
HUB_STATUSES = ("pending", "accepted", "rejected")


# --- Errors and the view wrapper -------------------------------------------------------------


def hub_error(
    status: int, code: str, message: str, *, repo_not_found: bool = False, headers: dict | None = None
) -> JsonResponse:
    """The hub's error shape, ``{"error": message}``, which the client shows with the
    ``X-Error-Message`` header; plus Gatehouse's stable ``code`` for scripts that branch on it."""
    response = JsonResponse({"error": message, "code": code}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    response["X-Error-Message"] = header_text(message)
    if repo_not_found:
        response["X-Error-Code"] = "RepoNotFound"
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="gatehouse"'
    response["Cache-Control"] = "no-store"
    return response


def hub_view(*methods: str) -> Callable:
    """A hub route answering ``methods``, whose refusals (ApiError, AccessError) become hub errors.

    CSRF-exempt because tokens carry no cookie; a session caller's unsafe request is checked for
    its CSRF token by ``authenticate_request``.
    """

    def decorate(view):
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if request.method not in methods:
                response = hub_error(405, "method_not_allowed", f"Use {' or '.join(methods)} here.")
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except ApiError as error:
                return hub_error(
                    error.status,
                    error.code,
                    error.message,
                    repo_not_found=error.code == "repo_not_found",
                    headers=error.headers,  # Retry-After of the rate limit, say
                )
            except AccessError as error:
                return hub_error(access_error_status(error), error.code, error.message)

        return wrapper

    return decorate


# --- The repository and the caller -----------------------------------------------------------


def _reviewed_model(request: HttpRequest, org_slug: str, model_slug: str) -> tuple[Model, list[Tier]]:
    """The published model the caller reviews for, and its gated tiers of published releases."""
    caller = authenticate_request(request, scope=AccessToken.Scope.MANAGE)
    model = (
        Model.objects.select_related("organization")
        .filter(organization__slug=org_slug, slug=model_slug, releases__status=Release.Status.PUBLISHED)
        .first()
    )
    if model is None:
        raise ApiError(404, "repo_not_found", f"Repository not found: {org_slug}/{model_slug}.")
    if not policy.can_review(caller.user, model.organization):
        raise ApiError(
            403,
            "not_reviewer",
            f"Only owners and reviewers of {model.organization.name} may manage access requests.",
        )
    tiers = list(
        Tier.objects.filter(release__model=model, release__status=Release.Status.PUBLISHED)
        .exclude(gate=Tier.Gate.OPEN)
        .select_related("release")
    )
    if not tiers:
        raise ApiError(400, "not_gated", f"{model.full_slug} has no gated tier: everyone may download it.")
    return model, tiers


# --- Lists -----------------------------------------------------------------------------------


def _fields(application: Application | None) -> dict | None:
    if application is None:
        return None
    return {
        **application.answers,
        "affiliation": application.affiliation,
        "intended_use": application.intended_use,
    }


def _request_json(*, user, request_id: str, status: str, moment: datetime, tier: Tier, application) -> dict:
    return {
        "user": {"user": user.email, "fullname": user.full_name, "email": user.email},
        "requestId": request_id,
        "status": status,
        "timestamp": hub_datetime(moment),
        "fields": _fields(application),
        "tier": {"id": tier.pk, "name": tier.name, "release": tier.release.version},
    }


def _listed(status: str, tiers: list[Tier]):
    """The rows behind one list, oldest first, and how each becomes an access request."""
    tier_by_id = {tier.pk: tier for tier in tiers}
    if status == "accepted":
        rows = (
            Grant.objects.active()
            .filter(tier__in=tiers)
            .select_related("user", "application")
            .order_by("granted_at", "pk")
        )
        return rows, lambda grant: _request_json(
            user=grant.user,
            request_id=f"grant-{grant.pk}",
            status=status,
            moment=grant.granted_at,
            tier=tier_by_id[grant.tier_id],
            application=grant.application,
        )
    if status == "pending":
        rows = Application.objects.awaiting_decision().order_by("submitted_at", "pk")
    else:
        rows = Application.objects.filter(status=Application.Status.REJECTED).order_by("decided_at", "pk")
    rows = rows.filter(tier__in=tiers).select_related("user")
    return rows, lambda application: _request_json(
        user=application.user,
        request_id=f"application-{application.pk}",
        status=status,
        moment=application.decided_at if status == "rejected" else application.submitted_at,
        tier=tier_by_id[application.tier_id],
        application=application,
    )


def _page_bounds(request: HttpRequest) -> tuple[int, int]:
    try:
        limit = int(request.GET.get("limit", PAGE_SIZE))
        offset = int(request.GET.get("offset", 0))
    except ValueError:
        limit = offset = -1
    if not 1 <= limit <= PAGE_SIZE or offset < 0:
        raise ApiError(400, "pagination_out_of_range", f"Use 1 <= limit <= {PAGE_SIZE} and offset >= 0.")
    return limit, offset


@hub_view("GET")
def access_requests_list(request: HttpRequest, org_slug: str, model_slug: str, status: str):
    """One page of the model's requests in ``status``; ``Link: rel="next"`` while more remain.
    A constant number of queries per page, whatever the number of requests."""
    if status not in HUB_STATUSES:
        raise ApiError(404, "not_found", f"Use one of {', '.join(HUB_STATUSES)}.")
    _, tiers = _reviewed_model(request, org_slug, model_slug)
    limit, offset = _page_bounds(request)
    rows, as_json = _listed(status, tiers)
    page = list(rows[offset : offset + limit + 1])
    response = JsonResponse([as_json(row) for row in page[:limit]], safe=False)
    if len(page) > limit:
        query = urlencode({"limit": limit, "offset": offset + limit})
        response["Link"] = f'<{request.build_absolute_uri(request.path)}?{query}>; rel="next"'
    response["Cache-Control"] = "no-store"
    return response


# --- Handling one request --------------------------------------------------------------------


def _body(request: HttpRequest) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_input", "The body must be a JSON object.")
    return body


def _text(body: dict, key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, "invalid_input", f"'{key}' must be a string.")
    return value


def _user(email: str) -> User:
    user = User.objects.filter(email__iexact=email.strip()).first()
    if user is None:
        raise ApiError(
            404,
            "user_not_found",
            f"No account has the e-mail address {email}; use e-mail addresses as user names.",
        )
    return user


def _by_request_id(request_id: str, tiers: list[Tier]) -> Application | Grant:
    kind, _, number = request_id.partition("-")
    rows = {"application": Application.objects, "grant": Grant.objects}.get(kind)
    found = (
        rows.filter(pk=int(number), tier__in=tiers).first() if rows is not None and number.isdigit() else None
    )
    if found is None:
        raise ApiError(404, "request_not_found", f"No access request {request_id} on this model.")
    return found


def _live_grants(user, tiers: list[Tier]) -> list[int]:
    return list(Grant.objects.active().filter(user=user, tier__in=tiers).values_list("pk", flat=True))


def _revoke(grant_ids: list[int], *, actor, reason: str) -> list[Grant]:
    with transaction.atomic():
        return [grant_revoke(grant_id=pk, actor=actor, reason=reason) for pk in grant_ids]


def _decide_for_user(model: Model, ids: list[int], *, actor, decision: str, reason: str) -> list[Application]:
    """The queue's bulk decision on the user's applications; refused as a whole if none could be decided."""
    outcome = applications_decide(
        organization=model.organization, application_ids=ids, reviewer=actor, decision=decision, reason=reason
    )
    changed = outcome.decided + outcome.approval_recorded
    if not changed:
        raise next(iter(outcome.skipped.values()))
    return changed


def _done(status: str, *, applications=(), grants=()) -> JsonResponse:
    return JsonResponse(
        {
            "status": status,
            "applications": [{"id": a.pk, "status": a.status} for a in applications],
            "grants": [{"id": g.pk, "status": g.status} for g in grants],
        }
    )


@hub_view("POST")
def access_request_handle(request: HttpRequest, org_slug: str, model_slug: str):
    """accept_access_request, reject_access_request and cancel_access_request (see the module)."""
    model, tiers = _reviewed_model(request, org_slug, model_slug)
    actor = request.user
    body = _body(request)
    status, user_email, request_id = _text(body, "status"), _text(body, "user"), _text(body, "requestId")
    reason = _text(body, "rejectionReason") or ""
    if status not in HUB_STATUSES:
        raise ApiError(400, "invalid_input", f"'status' must be one of {', '.join(HUB_STATUSES)}.")
    if (user_email is None) == (request_id is None):
        raise ApiError(400, "invalid_input", "Give exactly one of 'user' and 'requestId'.")
    if request_id is not None:
        return _handle_one(_by_request_id(request_id, tiers), status, actor=actor, reason=reason)

    user = _user(user_email)
    awaiting = list(
        Application.objects.awaiting_decision().filter(user=user, tier__in=tiers).values_list("pk", flat=True)
    )
    live = _live_grants(user, tiers)
    if status == "accepted":
        if awaiting:
            decided = _decide_for_user(model, awaiting, actor=actor, decision="approve", reason="")
            return _done(status, applications=decided)
        if live:
            raise InvalidTransition(
                f"{user.email} already has access to {model.full_slug}.", code="already_accepted"
            )
        raise ApiError(
            404,
            "no_pending_request",
            f"{user.email} has no request awaiting a decision on {model.full_slug}. A rejected application "
            "stays rejected (its applicant may appeal); use grant_access to give access directly.",
        )
    if status == "rejected":
        if awaiting:
            decided = _decide_for_user(model, awaiting, actor=actor, decision="reject", reason=reason)
            return _done(status, applications=decided)
        if live:
            return _done(status, grants=_revoke(live, actor=actor, reason=reason))
        raise ApiError(
            404, "no_request", f"{user.email} has no pending request nor access on {model.full_slug}."
        )
    if live:
        return _done(status, grants=_revoke(live, actor=actor, reason=CANCEL_REASON))
    raise ApiError(404, "no_accepted_request", f"{user.email} has no access to {model.full_slug} to cancel.")


def _handle_one(target: Application | Grant, status: str, *, actor, reason: str) -> JsonResponse:
    if isinstance(target, Grant):
        if target.status != Grant.Status.ACTIVE:
            raise InvalidTransition(f"This access is already {target.get_status_display().lower()}.")
        if status == "accepted":
            raise InvalidTransition("This request is already accepted.", code="already_accepted")
        revoked = _revoke([target.pk], actor=actor, reason=reason if status == "rejected" else CANCEL_REASON)
        return _done(status, grants=revoked)
    if status == "accepted":
        return _done(status, applications=[application_approve(application_id=target.pk, reviewer=actor)])
    if status == "rejected":
        rejected = application_reject(application_id=target.pk, reviewer=actor, reason=reason)
        return _done(status, applications=[rejected])
    raise InvalidTransition(
        "An application cannot be put back to pending: Gatehouse keeps every decision. "
        "Cancel a grant instead.",
        code="cannot_cancel",
    )


# --- Granting --------------------------------------------------------------------------------


def _grant_tier(model: Model) -> Tier:
    """The tier ``grant_access`` grants: the newest published release's application tier, or its
    invitation tier if it has none; refused when that is not exactly one tier."""
    release = model.releases.filter(status=Release.Status.PUBLISHED).order_by("-published_at", "-pk").first()
    tiers = list(release.tiers.select_related("release__model__organization", "license").order_by("position"))
    for gate in (Tier.Gate.APPLICATION, Tier.Gate.INVITATION):
        candidates = [tier for tier in tiers if tier.gate == gate]
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            named = ", ".join(f"{tier.name} (id {tier.pk})" for tier in candidates)
            raise InvalidTransition(
                f"Release {release.version} has several {gate} tiers: {named}. "
                "Grant on one with POST /api/v1/tiers/{id}/grants.",
                code="ambiguous_tier",
            )
    raise InvalidInput(
        f"Release {release.version} has no application or invitation tier to grant access to.",
        code="not_gated",
    )


@hub_view("POST")
def access_request_grant(request: HttpRequest, org_slug: str, model_slug: str):
    """grant_access: access.services.direct_grants.grant_direct on the model's grant tier."""
    model, _ = _reviewed_model(request, org_slug, model_slug)
    email = _text(_body(request), "user")
    if not email:
        raise ApiError(400, "invalid_input", "Give the 'user' to grant access to (their e-mail address).")
    tier = _grant_tier(model)
    done = grant_direct(tier=tier, email=email, actor=request.user)
    return JsonResponse(
        {
            "outcome": done.outcome,
            "user": done.email,
            "tier": {"id": tier.pk, "name": tier.name, "release": tier.release.version},
            "grant_id": done.grant.pk if done.grant else None,
            "application_id": done.application.pk if done.application else None,
            "invitation_id": done.invitation.pk if done.invitation else None,
        }
    )


REPO = "api/models/<str:org_slug>/<str:model_slug>/user-access-request"
urlpatterns = [
    path(f"{REPO}/handle", access_request_handle, name="hub-access-request-handle"),
    path(f"{REPO}/grant", access_request_grant, name="hub-access-request-grant"),
    path(f"{REPO}/<str:status>", access_requests_list, name="hub-access-requests"),
]
