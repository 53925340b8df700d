"""Reviewers' endpoints: the queue by status, one application as a reviewer sees it, approve,
reject, grant directly, revoke, and a tier's grants as JSON or CSV.

Every operation needs a token with the ``manage`` scope (or the session) and calls the same
services as the review pages (access.services.decisions, .grants, .direct_grants); who may
decide what is access.policy. A caller who reviews for no organization gets 403
``not_reviewer`` on every operation; a reviewer asking for an organization, application, tier
or grant of an organization they do not review gets 404 ``not_found``, as on the pages.
"""

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Router, Schema
from ninja.pagination import paginate

from access import policy
from access.models import Application, Grant, User
from access.selectors import application_histories, review_states
from access.services.decisions import application_approve, application_reject
from access.services.direct_grants import grant_direct
from access.services.grants import grant_revoke
from access.views.grants import tier_grants_csv_response
from api.auth import MANAGE
from api.errors import ERROR_RESPONSES, ApiError
from api.pagination import LimitOffset
from releases.models import Organization, Tier

router = Router()

# No ``from __future__ import annotations`` here: django-ninja builds its query and body models
# from the operations' annotations, and cannot resolve postponed (string) ones like these.
# Literals, not the models' TextChoices: two enums both named "Status" would share one schema name.
ApplicationStatus = Literal[tuple(Application.Status.values)]
ApplicationKind = Literal[tuple(Application.Kind.values)]
GrantStatus = Literal[tuple(Grant.Status.values)]

NOT_REVIEWER_MESSAGE = "Only an organization's owners and reviewers may use the review endpoints."


# --- Schemas ---------------------------------------------------------------------------------


class PersonOut(Schema):
    id: int
    email: str
    full_name: str


class TierRefOut(Schema):
    id: int
    name: str
    gate: str
    model: str
    release: str

    @staticmethod
    def resolve_model(tier: Tier) -> str:
        return tier.release.model.full_slug

    @staticmethod
    def resolve_release(tier: Tier) -> str:
        return tier.release.version


class ApplicationSummaryOut(Schema):
    id: int
    status: ApplicationStatus
    kind: ApplicationKind
    revision: int
    applicant: PersonOut
    tier: TierRefOut
    submitted_at: datetime
    decision_due_at: datetime
    decided_at: datetime | None
    decision_reason: str
    appealed_at: datetime | None
    assigned_to: PersonOut | None
    renews_grant_id: int | None = Field(None, description="For a renewal: the grant it would extend.")

    @staticmethod
    def resolve_applicant(application: Application) -> User:
        return application.user

    @staticmethod
    def resolve_renews_grant_id(application: Application) -> int | None:
        return application.renews_id


class AnswerOut(Schema):
    name: str
    label: str
    value: Any


class LicenseAcceptanceOut(Schema):
    license: str
    version: int
    text_sha256: str
    typed_name: str
    accepted_at: datetime


class ScreeningOut(Schema):
    screened_at: datetime | None
    report: dict


class RevisionOut(Schema):
    number: int
    affiliation: str
    intended_use: str
    answers: dict
    submitted_at: datetime
    returned_reason: str


class HistoryEventOut(Schema):
    action: str
    label: str
    created_at: datetime
    actor_id: int | None
    payload: dict


class RefusalOut(Schema):
    code: str
    message: str


class ReviewStateOut(Schema):
    approvals: int
    approvals_required: int
    approvers: list[PersonOut]
    own_application: bool
    conflict_of_interest: bool = Field(description="The applicant shares your e-mail domain: a warning.")
    approve_refusal: RefusalOut | None = Field(description="Why you may not approve now; null if you may.")
    reject_refusal: RefusalOut | None
    claim_refusal: RefusalOut | None


class ApplicationReviewOut(Schema):
    application: ApplicationSummaryOut
    affiliation: str
    intended_use: str
    answers: list[AnswerOut]
    appeal_statement: str
    license_acceptance: LicenseAcceptanceOut
    screening: ScreeningOut
    revisions: list[RevisionOut]
    history: list[HistoryEventOut]
    review: ReviewStateOut


class ApproveIn(Schema):
    reason: str = Field("", description="Optional; shown to the applicant.")


class ReasonIn(Schema):
    reason: str = Field(description="Required; shown to the person concerned.")


class DecisionOut(Schema):
    outcome: Literal["approved", "approval_recorded", "rejected"] = Field(
        description="approval_recorded: the tier needs further approvals before the grant."
    )
    application: ApplicationSummaryOut
    grant_id: int | None


class GrantIn(Schema):
    email: str


class DirectGrantOut(Schema):
    outcome: Literal["granted", "approved", "approval_recorded", "invited"] = Field(
        description="granted (on a license acceptance they already made), approved or approval_recorded "
        "(their pending application), or invited (they get the grant on accepting the license)."
    )
    email: str
    grant_id: int | None
    application_id: int | None
    invitation_id: int | None


class GrantOut(Schema):
    id: int
    user: PersonOut
    tier_id: int
    status: GrantStatus
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str
    license_version: int
    license_text_sha256: str
    application_id: int | None

    @staticmethod
    def resolve_revoked_by(grant: Grant) -> str | None:
        return grant.revoked_by.email if grant.revoked_by_id else None

    @staticmethod
    def resolve_license_version(grant: Grant) -> int:
        return grant.license_acceptance.license_version.number

    @staticmethod
    def resolve_license_text_sha256(grant: Grant) -> str:
        return grant.license_acceptance.text_sha256


# --- Scoping: the caller's organizations -----------------------------------------------------


def _reviewed_organization_ids(request: HttpRequest) -> list[int]:
    """The organizations the caller reviews for; 403 ``not_reviewer`` if none."""
    ids = list(policy.reviewable_organizations(request.auth.user).values_list("pk", flat=True))
    if not ids:
        raise ApiError(403, "not_reviewer", NOT_REVIEWER_MESSAGE)
    return ids


def _reviewed_tier(request: HttpRequest, tier_id: int) -> Tier:
    tier = (
        Tier.objects.select_related("release__model__organization", "license")
        .filter(pk=tier_id, release__model__organization__in=_reviewed_organization_ids(request))
        .first()
    )
    if tier is None:
        raise ApiError(404, "not_found", "No such tier among the organizations you review.")
    return tier


def _reviewed_application_id(request: HttpRequest, application_id: int) -> int:
    found = Application.objects.filter(
        pk=application_id, tier__release__model__organization__in=_reviewed_organization_ids(request)
    ).exists()
    if not found:
        raise ApiError(404, "not_found", "No such application among the organizations you review.")
    return application_id


def _summaries():
    return Application.objects.select_related("user", "tier__release__model__organization", "assigned_to")


# --- The queue and one application -----------------------------------------------------------


@router.get(
    "/orgs/{org_slug}/applications",
    response={200: list[ApplicationSummaryOut], **ERROR_RESPONSES},
    auth=MANAGE,
)
@paginate(LimitOffset)
def organization_applications(
    request: HttpRequest, org_slug: str, status: ApplicationStatus | None = None, tier: int | None = None
):
    """The organization's applications, oldest first as in the queue: by default those awaiting
    a decision (pending and appealed); ``status`` picks one state, ``tier`` one tier."""
    organization = Organization.objects.filter(
        pk__in=_reviewed_organization_ids(request), slug=org_slug
    ).first()
    if organization is None:
        raise ApiError(404, "not_found", "No such organization among those you review.")
    applications = _summaries().filter(
        tier__release__model__organization=organization,
        status__in=[status] if status else Application.AWAITING_DECISION,
    )
    if tier is not None:
        if not Tier.objects.filter(pk=tier, release__model__organization=organization).exists():
            raise ApiError(404, "not_found", "No such tier in this organization.")
        applications = applications.filter(tier_id=tier)
    return applications.order_by("submitted_at", "pk")


@router.get(
    "/applications/{application_id}/review",
    response={200: ApplicationReviewOut, **ERROR_RESPONSES},
    auth=MANAGE,
)
def application_review(request: HttpRequest, application_id: int):
    """The application as its reviewers see it: applicant, answers, license acceptance, screening,
    earlier versions, history, approvals so far, and what the caller may do with it now."""
    _reviewed_application_id(request, application_id)
    application = (
        _summaries()
        .select_related("license_acceptance__license_version__license")
        .prefetch_related("revisions")
        .get(pk=application_id)
    )
    user = request.auth.user
    roles = policy.roles_in(user, application.tier.release.model.organization)
    state = review_states([application])[application.pk]

    def refusal(decision: str):
        return policy.decision_refusal(user, application, decision, roles=roles, state=state)

    acceptance = application.license_acceptance
    questions = {question["name"]: question for question in application.questions}
    return {
        "application": application,
        "affiliation": application.affiliation,
        "intended_use": application.intended_use,
        "answers": [
            {"name": name, "label": questions.get(name, {}).get("label", name), "value": value}
            for name, value in application.answers.items()
        ],
        "appeal_statement": application.appeal_statement,
        "license_acceptance": {
            "license": acceptance.license_version.license.name,
            "version": acceptance.license_version.number,
            "text_sha256": acceptance.text_sha256,
            "typed_name": acceptance.typed_name,
            "accepted_at": acceptance.accepted_at,
        },
        "screening": {"screened_at": application.screened_at, "report": application.screening_report},
        "revisions": list(application.revisions.all()),
        "history": application_histories([application])[application.pk],
        "review": {
            "approvals": len(state.approver_ids),
            "approvals_required": application.tier.approvals_required,
            "approvers": list(User.objects.filter(pk__in=state.approver_ids).order_by("full_name")),
            "own_application": application.user_id == user.pk,
            "conflict_of_interest": policy.conflict_of_interest(user, application.user),
            "approve_refusal": refusal("approve"),
            "reject_refusal": refusal("reject"),
            "claim_refusal": policy.claim_refusal(user, application, roles=roles, state=state),
        },
    }


# --- Decisions -------------------------------------------------------------------------------


def _decision(application: Application) -> dict:
    application = _summaries().get(pk=application.pk)
    grant_id = Grant.objects.filter(application=application).values_list("pk", flat=True).first()
    if application.status == Application.Status.APPROVED:
        outcome = "approved"
    elif application.status == Application.Status.REJECTED:
        outcome = "rejected"
    else:
        outcome = "approval_recorded"
    return {"outcome": outcome, "application": application, "grant_id": grant_id}


@router.post(
    "/applications/{application_id}/approve", response={200: DecisionOut, **ERROR_RESPONSES}, auth=MANAGE
)
def application_approve_endpoint(request: HttpRequest, application_id: int, payload: ApproveIn | None = None):
    """Approve, as the review page does: with the tier's number of approvals reached, the
    application is approved and its grant created (``outcome`` approved, ``grant_id``);
    otherwise the caller's approval is recorded (``approval_recorded``). Refusals: 403
    ``own_application``, ``assigned_to_other``, ``appeal_conflict``; 409 ``invalid_transition``,
    ``already_approved``, ``already_granted``."""
    application = application_approve(
        application_id=_reviewed_application_id(request, application_id),
        reviewer=request.auth.user,
        reason=payload.reason if payload else "",
    )
    return _decision(application)


@router.post(
    "/applications/{application_id}/reject", response={200: DecisionOut, **ERROR_RESPONSES}, auth=MANAGE
)
def application_reject_endpoint(request: HttpRequest, application_id: int, payload: ReasonIn):
    """Reject with a reason, shown to the applicant (400 ``reason_missing`` without one)."""
    application = application_reject(
        application_id=_reviewed_application_id(request, application_id),
        reviewer=request.auth.user,
        reason=payload.reason,
    )
    return _decision(application)


# --- Grants ----------------------------------------------------------------------------------


def _grants():
    return Grant.objects.select_related("user", "revoked_by", "license_acceptance__license_version")


@router.post("/tiers/{tier_id}/grants", response={200: DirectGrantOut, **ERROR_RESPONSES}, auth=MANAGE)
def tier_grant_direct(request: HttpRequest, tier_id: int, payload: GrantIn):
    """Give a person access to the tier by e-mail address. Access rests on their own license
    acceptance, so: their application awaiting a decision is approved; else a grant is made on a
    binding acceptance they already gave; else they are invited and get the grant when they
    accept the license on the tier's page (``outcome`` says which)."""
    done = grant_direct(tier=_reviewed_tier(request, tier_id), email=payload.email, actor=request.auth.user)
    return {
        "outcome": done.outcome,
        "email": done.email,
        "grant_id": done.grant.pk if done.grant else None,
        "application_id": done.application.pk if done.application else None,
        "invitation_id": done.invitation.pk if done.invitation else None,
    }


@router.get("/tiers/{tier_id}/grants", response={200: list[GrantOut], **ERROR_RESPONSES}, auth=MANAGE)
@paginate(LimitOffset)
def tier_grants(request: HttpRequest, tier_id: int, status: GrantStatus | None = None):
    """The tier's grants, newest first, as on the tier's grants page; ``status`` filters."""
    grants = _grants().filter(tier=_reviewed_tier(request, tier_id))
    if status:
        grants = grants.filter(status=status)
    return grants.order_by("-granted_at", "-pk")


@router.get(
    "/tiers/{tier_id}/grants.csv",
    response=ERROR_RESPONSES,
    auth=MANAGE,
    openapi_extra={
        "responses": {
            "200": {
                "description": "Every grant of the tier, one CSV row each, streamed.",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        }
    },
)
def tier_grants_csv(request: HttpRequest, tier_id: int):
    """Every grant of the tier as CSV (the page's export, streamed); the export is audited."""
    return tier_grants_csv_response(request, _reviewed_tier(request, tier_id))


@router.post("/grants/{grant_id}/revoke", response={200: GrantOut, **ERROR_RESPONSES}, auth=MANAGE)
def grant_revoke_endpoint(request: HttpRequest, grant_id: int, payload: ReasonIn):
    """Revoke at once with a reason, shown to the holder: their next download URL is refused.
    409 ``invalid_transition`` if the grant is no longer active."""
    found = Grant.objects.filter(
        pk=grant_id, tier__release__model__organization__in=_reviewed_organization_ids(request)
    ).exists()
    if not found:
        raise ApiError(404, "not_found", "No such grant among the organizations you review.")
    grant_revoke(grant_id=grant_id, actor=request.auth.user, reason=payload.reason)
    return _grants().get(pk=grant_id)
