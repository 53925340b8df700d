"""A researcher's side of a tier: its gate status, form, license and files; applying, accepting
the license, and following one's own applications (``/me/applications``, ``/applications/{id}``:
another user's application answers 404, as on the pages).

Gate status. ``GET /tiers/{id}`` (and each tier of ``GET /models/{org}/{model}``) carries
``gate_status``, read from access.policy.tier_standing (the model page's badge) so that the
API and the pages cannot disagree. ``status`` is the standing's code, except:

    policy code           status               extra fields
    not_open              not_open             opens_at
    open                  open                 (can_download true)
    not_requested         not_requested        (also for anonymous callers: sign in first)
    invitation_only       invitation_only
    invited               invited              (accept the license: POST …/accept)
    pending               pending              decision_expected_at, application_id
    returned              returned             reason (what to change), application_id
    appealed              appealed             decision_expected_at, application_id
    approved              approved             expires_at (null: never), can_download true
    rejected              rejected             reason, reapply_at null (may apply again now)
    cooldown              rejected             reason, reapply_at (the cool-down's end)
    application_expired   application_expired  application_id
    expired               expired              expires_at (when access ended)
    revoked               revoked              reason, revoked_at
    license_changed       license_changed      expires_at; action_url is the re-acceptance page

``action_url`` is the absolute URL of the page where the caller can do the next thing (apply,
accept, revise, follow the application, re-accept, fetch the files), or null when there is
nothing to do (not yet open, by invitation only, revoked).

Scopes. Reads of a tier (details, form, license) are public, like the tier's page; its files
and one's own applications need ``read``. Applying and accepting a license change state, and
are what a researcher's script does before downloading, so they need ``download``: a
read-only token (a dashboard, a status check) cannot sign a license in its owner's name, and
the ``manage`` scope stays what organizations' members use. A session works for all of them.

Applying and accepting call the services the pages call (application_submit,
tier_license_accept, grant_reaccept) after the same policy check the pages make first, so a
refusal carries its ``action_url``. A license text that changed between reading it and
sending its sha256 answers 409 ``license_changed``; nothing is written.
"""

# No ``from __future__ import annotations``: ninja reads the paginated view's annotations in
# ninja.pagination's namespace, where string annotations cannot be resolved.
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from ninja import Router, Status
from ninja.pagination import paginate

from access import download_policy, policy
from access.errors import InvalidInput
from access.models import Application
from access.services.applications import application_submit
from access.services.grants import grant_reaccept, tier_license_accept
from access.views.common import client_ip
from api.auth import DOWNLOAD, READ, READ_OR_ANONYMOUS
from api.errors import ERROR_RESPONSES, ApiError
from api.pagination import LimitOffset
from api.schemas_researcher import (
    AcceptedGrantOut,
    ApplicationIn,
    LicenseAcceptanceIn,
    MyApplicationDetailOut,
    MyApplicationOut,
    MyApplicationStatus,
    TierDetailOut,
    TierFilesOut,
    TierFormOut,
    TierLicenseOut,
    question_schema,
)
from releases.models import Release, Tier

router = Router()


# --- Gate status ------------------------------------------------------------------------------


def gate_status_code(standing: policy.TierStanding) -> str:
    """The API's status for a standing: the policy's code, but a cool-down is a rejection
    (with ``reapply_at``). Shared with the hub routes' tier statuses."""
    return "rejected" if standing.code == "cooldown" else standing.code


def gate_status(request: HttpRequest, tier: Tier, standing: policy.TierStanding) -> dict:
    """The machine-readable form of ``standing`` (see the module docstring). No queries."""
    grant, application = standing.grant, standing.application
    status = gate_status_code(standing)
    out = {
        "status": status,
        "label": standing.label,
        "message": standing.detail,
        "can_download": standing.can_download,
        "action_url": None,
        "opens_at": tier.opens_at if status == "not_open" else None,
        "decision_expected_at": None,
        "expires_at": grant.expires_at if status in ("approved", "license_changed", "expired") else None,
        "revoked_at": grant.revoked_at if grant is not None and status == "revoked" else None,
        "reason": None,
        "reapply_at": standing.date if standing.code == "cooldown" else None,
        "application_id": application.pk if application is not None else None,
    }
    if status in ("pending", "appealed"):
        out["decision_expected_at"] = application.decision_due_at
    if status in ("rejected", "returned"):
        out["reason"] = application.decision_reason
    if status == "revoked":
        out["reason"] = grant.revoke_reason
    path = _action_path(request, tier, status, standing)
    out["action_url"] = request.build_absolute_uri(path) if path else None
    return out


def _action_path(request: HttpRequest, tier: Tier, status: str, standing: policy.TierStanding) -> str:
    tier_kwargs = {"tier_id": tier.pk}
    closed = tier.closes_at is not None and tier.closes_at <= timezone.now()
    if status in ("open", "approved"):
        return reverse("tier-files", kwargs=tier_kwargs)
    if status == "license_changed":
        return policy.reaccept_url(tier)
    if status in ("pending", "appealed") or (status == "rejected" and standing.date is not None):
        # The application's page: follow it, withdraw it, or appeal a rejection.
        return reverse("application-detail", kwargs={"application_id": standing.application.pk})
    if status == "returned":
        return reverse("application-edit", kwargs={"application_id": standing.application.pk})
    if status in ("not_requested", "rejected", "application_expired") and not closed:
        if tier.gate == Tier.Gate.APPLICATION and request.user.is_authenticated:
            return reverse("tier-apply", kwargs=tier_kwargs)
        return reverse("tier-detail", kwargs=tier_kwargs)
    if status in ("invited", "expired"):
        # The tier's page holds the acceptance form, or says how to renew or apply again.
        return reverse("tier-detail", kwargs=tier_kwargs)
    return ""


def tier_api_url(request: HttpRequest, tier: Tier, name: str = "researcher_tier_detail") -> str:
    return request.build_absolute_uri(reverse(f"api-v1:{name}", kwargs={"tier_id": tier.pk}))


# --- Reading a tier ---------------------------------------------------------------------------


def published_tier(tier_id: int) -> Tier:
    """Tiers of published releases; any other is not there for researchers (404)."""
    return get_object_or_404(
        Tier.objects.select_related("release__model__organization", "license"),
        pk=tier_id,
        release__status=Release.Status.PUBLISHED,
    )


@router.get(
    "/tiers/{tier_id}",
    response={200: TierDetailOut, **ERROR_RESPONSES},
    auth=READ_OR_ANONYMOUS,
    url_name="researcher_tier_detail",
)
def tier_detail(request: HttpRequest, tier_id: int):
    """The tier, its current license version and the caller's gate status."""
    tier = published_tier(tier_id)
    version = tier.license.current_version if tier.license else None
    # request.user is the token's user, the session's, or AnonymousUser on this public read.
    standing = policy.tier_standing(request.user, tier)
    release = tier.release
    return {
        "id": tier.pk,
        "name": tier.name,
        "description": tier.description,
        "gate": tier.gate,
        "approval": tier.approval,
        "model": release.model.full_slug,
        "release": release.version,
        "revision": release.revision,
        "opens_at": tier.opens_at,
        "opened_at": tier.opened_at,
        "closes_at": tier.closes_at,
        "grant_duration_days": tier.grant_duration_days,
        "review_days": tier.review_days,
        "license": (
            {"name": tier.license.name, "version": version.number, "text_sha256": version.text_sha256}
            if version
            else None
        ),
        "gate_status": gate_status(request, tier, standing),
        "form_url": tier_api_url(request, tier, "researcher_tier_form"),
        "license_url": tier_api_url(request, tier, "researcher_tier_license"),
        "files_url": tier_api_url(request, tier, "researcher_tier_files"),
        "web_url": request.build_absolute_uri(reverse("tier-detail", kwargs={"tier_id": tier.pk})),
    }


@router.get(
    "/tiers/{tier_id}/form",
    response={200: TierFormOut, **ERROR_RESPONSES},
    auth=READ_OR_ANONYMOUS,
    url_name="researcher_tier_form",
)
def tier_form(request: HttpRequest, tier_id: int):
    """The application form: the tier's own questions (empty for tiers without applications),
    besides affiliation, intended use and the license acceptance every application carries."""
    tier = published_tier(tier_id)
    return {"tier_id": tier.pk, "questions": [question_schema(question) for question in tier.questions]}


@router.get(
    "/tiers/{tier_id}/license",
    response={200: TierLicenseOut, **ERROR_RESPONSES},
    auth=READ_OR_ANONYMOUS,
    url_name="researcher_tier_license",
)
def tier_license(request: HttpRequest, tier_id: int):
    """The current version of the tier's license, readable before applying; 404 ``no_license``
    for an open tier, which has none."""
    tier = published_tier(tier_id)
    version = tier.license.current_version if tier.license else None
    if version is None:
        raise ApiError(404, "no_license", "This tier is open to everyone and has no license to accept.")
    return {
        "tier_id": tier.pk,
        "name": tier.license.name,
        "version": version.number,
        "text": version.text,
        "text_sha256": version.text_sha256,
        "published_at": version.created_at,
    }


@router.get(
    "/tiers/{tier_id}/files",
    response={200: TierFilesOut, **ERROR_RESPONSES},
    auth=READ,
    url_name="researcher_tier_files",
)
def tier_files(request: HttpRequest, tier_id: int):
    """Each file with its size and sha256 and where to ask for its download URL, for callers who
    may download the tier now; otherwise 403 with the code and page of the tier's files page
    (``not_open``, ``email_unverified``, ``no_grant``, ``pending``, ``expired``, ``revoked``,
    ``license_changed``)."""
    tier = published_tier(tier_id)
    refusal = download_policy.tier_download_refusal(request.auth.user, tier)
    if refusal is not None:
        raise ApiError(403, refusal.code, refusal.message, action_url=_absolute(request, refusal.action_url))
    return {
        "tier_id": tier.pk,
        "files": [
            {
                "id": artifact.pk,
                "path": artifact.path,
                "size": artifact.size,
                "sha256": artifact.sha256,
                "download_url_endpoint": request.build_absolute_uri(
                    reverse("api-v1:download_url", kwargs={"artifact_id": artifact.pk})
                ),
            }
            for artifact in tier.artifacts.order_by("path")
        ],
    }


# --- Applying and accepting -------------------------------------------------------------------


def _absolute(request: HttpRequest, path: str) -> str:
    return request.build_absolute_uri(path) if path else ""


def _refuse(request: HttpRequest, refusal: policy.Refusal | None) -> None:
    if refusal is not None:
        raise ApiError(403, refusal.code, refusal.message, action_url=_absolute(request, refusal.action_url))


def _license_changed(request: HttpRequest, error: InvalidInput, page: str, tier: Tier) -> ApiError:
    return ApiError(
        409,
        "license_changed",
        f"{error.message} GET {tier_api_url(request, tier, 'researcher_tier_license')} for the new text.",
        action_url=_absolute(request, reverse(page, kwargs={"tier_id": tier.pk})),
    )


@router.post(
    "/tiers/{tier_id}/applications",
    response={201: MyApplicationOut, **ERROR_RESPONSES},
    auth=DOWNLOAD,
    url_name="researcher_tier_apply",
)
def tier_apply(request: HttpRequest, tier_id: int, payload: ApplicationIn):
    """Apply for the tier with the answers to its form and the license acceptance (the typed
    name and the sha256 of the text read). 201 with the application: ``pending`` until a
    reviewer decides, ``approved`` at once on an automatic tier.

    Refusals: 403 with the policy's code (``email_unverified``, ``not_open``, ``closed``,
    ``no_application``, ``already_pending``, ``already_granted``, ``revoked``, ``cooldown``);
    400 ``unknown_question``, ``answer_missing``, ``answer_invalid``, ``answer_too_long``,
    ``affiliation``, ``intended_use``, ``typed_name_missing``, ``typed_name_mismatch``;
    409 ``license_changed``.
    """
    tier = published_tier(tier_id)
    user = request.auth.user
    _refuse(request, policy.application_refusal(user, tier))
    # The service keeps only answers to known questions; a client sending others has a wrong
    # idea of the form, and is told rather than silently ignored.
    unknown = sorted(set(payload.answers) - {question["name"] for question in tier.questions})
    if unknown:
        raise ApiError(
            400,
            "unknown_question",
            f"This tier asks no question {', '.join(map(repr, unknown))}; "
            f"GET {tier_api_url(request, tier, 'researcher_tier_form')} lists them.",
        )
    try:
        application = application_submit(
            user=user,
            tier=tier,
            affiliation=payload.affiliation,
            intended_use=payload.intended_use,
            answers=payload.answers,
            typed_name=payload.license.typed_name,
            seen_text_sha256=payload.license.text_sha256,
            ip_address=client_ip(request),
        )
    except InvalidInput as error:
        if error.code == "license_changed":
            raise _license_changed(request, error, "tier-apply", tier) from None
        raise
    return Status(201, application)


def _accepted(request: HttpRequest, grant) -> dict:
    return {
        "grant_id": grant.pk,
        "tier_id": grant.tier_id,
        "granted_at": grant.granted_at,
        "expires_at": grant.expires_at,
        "license_version": grant.license_acceptance.license_version.number,
        "files_url": tier_api_url(request, grant.tier, "researcher_tier_files"),
    }


@router.post(
    "/tiers/{tier_id}/accept",
    response={201: AcceptedGrantOut, **ERROR_RESPONSES},
    auth=DOWNLOAD,
    url_name="researcher_tier_accept",
)
def tier_accept(request: HttpRequest, tier_id: int, payload: LicenseAcceptanceIn):
    """Accept the license of a click-through tier, or of a tier one is invited to: access is
    granted at once (201). Refusals: 403 ``email_unverified``, ``not_open``, ``closed``,
    ``not_invited``, ``no_click_through``, ``revoked``, ``already_granted``; 400
    ``typed_name_missing``, ``typed_name_mismatch``; 409 ``license_changed``."""
    tier = published_tier(tier_id)
    user = request.auth.user
    _refuse(request, policy.license_acceptance_refusal(user, tier))
    try:
        grant = tier_license_accept(
            user=user,
            tier=tier,
            typed_name=payload.typed_name,
            seen_text_sha256=payload.text_sha256,
            ip_address=client_ip(request),
        )
    except InvalidInput as error:
        if error.code == "license_changed":
            raise _license_changed(request, error, "tier-detail", tier) from None
        raise
    return Status(201, _accepted(request, grant))


@router.post(
    "/tiers/{tier_id}/reaccept",
    response={200: AcceptedGrantOut, **ERROR_RESPONSES},
    auth=DOWNLOAD,
    url_name="researcher_tier_reaccept",
)
def tier_reaccept(request: HttpRequest, tier_id: int, payload: LicenseAcceptanceIn):
    """Accept the current license version after the publisher required it of existing grantees
    (gate status ``license_changed``); downloads work again. Refusals: 403 ``no_grant``, 409
    ``already_accepted``, 409 ``license_changed`` (it changed again), 400 for the typed name."""
    tier = published_tier(tier_id)
    try:
        grant = grant_reaccept(
            user=request.auth.user,
            tier=tier,
            typed_name=payload.typed_name,
            seen_text_sha256=payload.text_sha256,
            ip_address=client_ip(request),
        )
    except InvalidInput as error:
        if error.code == "license_changed":
            raise _license_changed(request, error, "tier-reaccept", tier) from None
        raise
    return _accepted(request, grant)


# --- One's own applications -------------------------------------------------------------------


def _own_applications(request: HttpRequest):
    return Application.objects.filter(user=request.auth.user).select_related(
        "tier__release__model__organization"
    )


@router.get(
    "/me/applications",
    response={200: list[MyApplicationOut], **ERROR_RESPONSES},
    auth=READ,
    tags=["applications"],
    url_name="researcher_my_applications",
)
@paginate(LimitOffset)
def my_applications(request: HttpRequest, status: MyApplicationStatus | None = None):
    """The caller's applications, newest first; ``status`` picks one state."""
    applications = _own_applications(request)
    if status is not None:
        applications = applications.filter(status=status)
    return applications.order_by("-submitted_at", "-pk")


@router.get(
    "/applications/{application_id}",
    response={200: MyApplicationDetailOut, **ERROR_RESPONSES},
    auth=READ,
    tags=["applications"],
    url_name="researcher_application_detail",
)
def application_detail(request: HttpRequest, application_id: int):
    """One of the caller's own applications with what it said; anyone else's answers 404."""
    return get_object_or_404(
        _own_applications(request).select_related("license_acceptance__license_version__license"),
        pk=application_id,
    )
