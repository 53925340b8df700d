"""Request and response shapes of the researcher endpoints (api.catalogue, api.tiers).

Names differ from the reviewers' schemas in api.review: the OpenAPI document has one
namespace of component names.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from django.urls import reverse
from ninja import Field, Schema

from access.models import Application
from access.questions import MAX_EMAIL_LENGTH, MAX_URL_LENGTH, date_range, question_type, text_limit
from access.services.applications import MAX_AFFILIATION_LENGTH, MAX_INTENDED_USE_LENGTH
from access.services.licenses import MAX_TYPED_NAME_LENGTH
from releases.models import Tier

# What api.tiers.gate_status answers; its module docstring maps policy.tier_standing's codes.
GATE_STATUSES = (
    "not_open",
    "open",
    "not_requested",
    "invitation_only",
    "invited",
    "pending",
    "returned",
    "appealed",
    "approved",
    "rejected",
    "application_expired",
    "expired",
    "revoked",
    "license_changed",
)
GateStatusCode = Literal[GATE_STATUSES]
TierGate = Literal[tuple(Tier.Gate.values)]
TierApproval = Literal[tuple(Tier.Approval.values)]
MyApplicationStatus = Literal[tuple(Application.Status.values)]
MyApplicationKind = Literal[tuple(Application.Kind.values)]
SHA256_PATTERN = r"^[0-9a-f]{64}$"


def model_api_path(model) -> str:
    return reverse(
        "api-v1:researcher_model_detail",
        kwargs={"org_slug": model.organization.slug, "model_slug": model.slug},
    )


# --- Gate status, tiers, the catalogue -------------------------------------------------------


class GateStatusOut(Schema):
    status: GateStatusCode
    label: str = Field(description="A short phrase for people.")
    message: str = Field(description="A sentence for people; may be empty.")
    can_download: bool
    action_url: str | None = Field(description="The page where the caller can act now; null if none.")
    opens_at: datetime | None = Field(description="not_open: when the tier opens.")
    decision_expected_at: datetime | None = Field(description="pending, appealed.")
    expires_at: datetime | None = Field(
        description="approved, license_changed: when access ends (null: never); expired: when it ended."
    )
    revoked_at: datetime | None = Field(description="revoked.")
    reason: str | None = Field(description="rejected, returned, revoked: the reviewer's words.")
    reapply_at: datetime | None = Field(
        description="rejected: when one may apply again; null when one may apply now."
    )
    application_id: int | None = Field(description="The application the status is about, if any.")


class TierSummaryOut(Schema):
    id: int
    name: str
    gate: TierGate
    approval: TierApproval
    opens_at: datetime
    opened_at: datetime | None
    closes_at: datetime | None
    gate_status: GateStatusOut
    api_url: str


class ReleaseOut(Schema):
    version: str
    revision: str
    published_at: datetime
    notes: str
    tiers: list[TierSummaryOut]


class OrganizationRefOut(Schema):
    slug: str
    name: str


class CatalogueModelOut(Schema):
    repo_id: str = Field(description="org/model, as in the model's URLs and for huggingface_hub.")
    organization: OrganizationRefOut
    slug: str
    name: str
    summary: str
    published_releases: int
    api_url: str
    web_url: str

    @staticmethod
    def resolve_repo_id(model) -> str:
        return model.full_slug

    @staticmethod
    def resolve_api_url(model, context) -> str:
        return context["request"].build_absolute_uri(model_api_path(model))

    @staticmethod
    def resolve_web_url(model, context) -> str:
        return context["request"].build_absolute_uri(model.get_absolute_url())


class ModelDetailOut(Schema):
    repo_id: str
    organization: OrganizationRefOut
    slug: str
    name: str
    summary: str
    card: str = Field(description="The model card, in Markdown.")
    web_url: str
    releases: list[ReleaseOut] = Field(description="Published releases, newest first.")


class LicenseRefOut(Schema):
    name: str
    version: int
    text_sha256: str


class TierDetailOut(Schema):
    id: int
    name: str
    description: str
    gate: TierGate
    approval: TierApproval
    model: str = Field(description="org/model")
    release: str
    revision: str
    opens_at: datetime
    opened_at: datetime | None
    closes_at: datetime | None
    grant_duration_days: int | None = Field(description="How long access lasts; null: no end.")
    review_days: int = Field(description="A decision is expected within this many days of applying.")
    license: LicenseRefOut | None
    gate_status: GateStatusOut
    form_url: str
    license_url: str
    files_url: str
    web_url: str


def question_schema(question: dict) -> dict:
    """One of a tier's questions (access.questions) as a JSON client needs it."""
    kind = question_type(question)
    limits: dict = {}
    if kind in ("short_text", "long_text"):
        limits["max_length"] = text_limit(question)
    elif kind == "url":
        limits["max_length"] = MAX_URL_LENGTH
    elif kind == "email":
        limits["max_length"] = MAX_EMAIL_LENGTH
    elif kind == "date":
        limits["min_date"], limits["max_date"] = date_range(question)
    return {
        "id": question["name"],
        "label": question["label"],
        "type": kind,
        "value_type": {"attestation": "boolean", "multiple_choice": "array"}.get(kind, "string"),
        "format": QUESTION_FORMATS.get(kind),
        "required": bool(question.get("required")),
        "help": question.get("help_text", ""),
        "choices": question.get("choices") if kind in ("single_choice", "multiple_choice") else None,
        "limits": limits,
    }


QUESTION_FORMATS = {
    "country": "ISO 3166-1 alpha-2 code, e.g. DE",
    "date": "yyyy-mm-dd",
    "orcid": "0000-0000-0000-000X",
    "url": "http:// or https:// URL",
    "email": "e-mail address",
}


class QuestionLimitsOut(Schema):
    max_length: int | None = None
    min_date: date | None = None
    max_date: date | None = None


class QuestionOut(Schema):
    id: str = Field(description="The key of this question's answer in `answers`.")
    label: str
    type: str
    value_type: Literal["string", "boolean", "array"] = Field(
        description="The JSON type of the answer: array of strings for multiple_choice."
    )
    format: str | None = Field(description="The text format, for country, date and orcid.")
    required: bool
    help: str
    choices: list[str] | None
    limits: QuestionLimitsOut


class TierFormOut(Schema):
    tier_id: int
    affiliation_max_length: int = MAX_AFFILIATION_LENGTH
    intended_use_max_length: int = MAX_INTENDED_USE_LENGTH
    typed_name_max_length: int = MAX_TYPED_NAME_LENGTH
    questions: list[QuestionOut]


class TierLicenseOut(Schema):
    tier_id: int
    name: str
    version: int
    text: str
    text_sha256: str = Field(description="Send it back when applying or accepting.")
    published_at: datetime


class TierFileOut(Schema):
    id: int
    path: str
    size: int | None
    sha256: str
    download_url_endpoint: str = Field(description="POST here for a short-lived download URL.")


class TierFilesOut(Schema):
    tier_id: int
    files: list[TierFileOut]


# --- Applying and accepting ------------------------------------------------------------------


class LicenseAcceptanceIn(Schema):
    typed_name: str = Field(
        max_length=MAX_TYPED_NAME_LENGTH, description="Your full name, as on your account."
    )
    text_sha256: str = Field(
        pattern=SHA256_PATTERN, description="The sha256 of the license text you read (GET …/license)."
    )


class ApplicationIn(Schema):
    affiliation: str = Field(max_length=MAX_AFFILIATION_LENGTH)
    intended_use: str = Field(max_length=MAX_INTENDED_USE_LENGTH)
    answers: dict[str, Any] = Field(default_factory=dict, description="question id → answer (GET …/form).")
    license: LicenseAcceptanceIn


class MyApplicationOut(Schema):
    id: int
    tier_id: int
    tier_name: str
    model: str = Field(description="org/model")
    release: str
    kind: MyApplicationKind
    status: MyApplicationStatus
    submitted_at: datetime
    decision_expected_at: datetime | None = Field(description="Set while a decision is awaited.")
    decided_at: datetime | None
    decision_reason: str
    web_url: str

    @staticmethod
    def resolve_tier_name(application) -> str:
        return application.tier.name

    @staticmethod
    def resolve_model(application) -> str:
        return application.tier.release.model.full_slug

    @staticmethod
    def resolve_release(application) -> str:
        return application.tier.release.version

    @staticmethod
    def resolve_decision_expected_at(application) -> datetime | None:
        if application.status in Application.AWAITING_DECISION:
            return application.decision_due_at
        return None

    @staticmethod
    def resolve_web_url(application, context) -> str:
        path = reverse("application-detail", kwargs={"application_id": application.pk})
        return context["request"].build_absolute_uri(path)


class MyLicenseAcceptanceOut(Schema):
    license: str
    version: int
    text_sha256: str
    typed_name: str
    accepted_at: datetime


class MyApplicationDetailOut(MyApplicationOut):
    affiliation: str
    intended_use: str
    answers: dict[str, Any]
    license_acceptance: MyLicenseAcceptanceOut

    @staticmethod
    def resolve_license_acceptance(application) -> dict:
        acceptance = application.license_acceptance
        return {
            "license": acceptance.license_version.license.name,
            "version": acceptance.license_version.number,
            "text_sha256": acceptance.text_sha256,
            "typed_name": acceptance.typed_name,
            "accepted_at": acceptance.accepted_at,
        }


class AcceptedGrantOut(Schema):
    grant_id: int
    tier_id: int
    granted_at: datetime
    expires_at: datetime | None
    license_version: int
    files_url: str
