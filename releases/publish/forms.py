"""Forms of the publisher workspace. They shape and bound input; the services decide."""

from __future__ import annotations

from datetime import timedelta

from django import forms

from access.models import License
from access.services.licenses import MAX_LICENSE_NAME_LENGTH, MAX_LICENSE_TEXT_LENGTH
from releases.members import MAX_EMAIL_LENGTH
from releases.models import Membership, Release, Tier, slug_validator
from releases.rollout import MAX_ARTIFACT_PATTERN_LENGTH, MAX_ARTIFACT_PATTERNS, MAX_POSITION
from releases.services import (
    MAX_APPROVALS_REQUIRED,
    MAX_GRANT_DURATION_DAYS,
    MAX_MODEL_CARD_LENGTH,
    MAX_MODEL_NAME_LENGTH,
    MAX_MODEL_SUMMARY_LENGTH,
    MAX_RELEASE_NOTES_LENGTH,
    MAX_REVIEW_DAYS,
    MAX_TIER_DESCRIPTION_LENGTH,
    SLUG_RULE,
)

MAX_SLUG_LENGTH = 63
MAX_OPENS_AFTER_DAYS = 3650
DATETIME_INPUT = forms.DateTimeInput(
    attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S"
)


def _slug_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=MAX_SLUG_LENGTH,
        validators=[slug_validator],
        help_text=f"{help_text}: {SLUG_RULE}.",
        error_messages={"invalid": f"Use {SLUG_RULE}."},
    )


# --- Members --------------------------------------------------------------------------------


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail address", max_length=MAX_EMAIL_LENGTH)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.PUBLISHER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


# --- Models and releases --------------------------------------------------------------------


class ModelCardForm(forms.Form):
    """A model's page: name, one-line summary and card in Markdown. The slug is set once."""

    slug = _slug_field("Slug", "Part of the model's address, /models/<organization>/<slug>/")
    name = forms.CharField(max_length=MAX_MODEL_NAME_LENGTH)
    summary = forms.CharField(max_length=MAX_MODEL_SUMMARY_LENGTH, required=False)
    card = forms.CharField(
        label="Model card (Markdown)",
        max_length=MAX_MODEL_CARD_LENGTH,
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 16}),
    )

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            del self.fields["slug"]


class ReleaseForm(forms.Form):
    version = _slug_field("Version", "e.g. v1.0")
    notes = forms.CharField(
        max_length=MAX_RELEASE_NOTES_LENGTH, required=False, widget=forms.Textarea(attrs={"rows": 4})
    )


# --- Tiers ----------------------------------------------------------------------------------


class TierForm(forms.Form):
    """A tier of a draft release: who gets in and how, which files, and when."""

    SELECTION_CHOICES = [("files", "These files"), ("patterns", "Files whose path matches patterns")]
    OPENING_CHOICES = [("relative", "After the release's day zero"), ("date", "On a date")]

    name = forms.CharField(max_length=Tier._meta.get_field("name").max_length)
    description = forms.CharField(
        max_length=MAX_TIER_DESCRIPTION_LENGTH, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    gate = forms.ChoiceField(choices=Tier.Gate.choices, initial=Tier.Gate.APPLICATION)
    approval = forms.ChoiceField(
        choices=Tier.Approval.choices,
        initial=Tier.Approval.MANUAL,
        help_text="How applications are decided (application tiers only).",
    )
    license = forms.ModelChoiceField(
        queryset=License.objects.none(), required=False, help_text="Needed by every tier but an open one."
    )
    position = forms.IntegerField(
        min_value=0, max_value=MAX_POSITION, initial=0, help_text="Order in the plan, from 0."
    )
    selection = forms.ChoiceField(choices=SELECTION_CHOICES, widget=forms.RadioSelect, initial="files")
    artifacts = forms.ModelMultipleChoiceField(
        label="Files", queryset=None, required=False, widget=forms.CheckboxSelectMultiple
    )
    artifact_patterns = forms.CharField(
        label="Path patterns",
        required=False,
        max_length=MAX_ARTIFACT_PATTERNS * (MAX_ARTIFACT_PATTERN_LENGTH + 1),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One pattern a line, e.g. *.safetensors or tokenizer/*; each must match a file.",
    )
    opening = forms.ChoiceField(choices=OPENING_CHOICES, widget=forms.RadioSelect, initial="relative")
    opens_after_days = forms.IntegerField(
        label="Days after day zero", min_value=0, max_value=MAX_OPENS_AFTER_DAYS, required=False
    )
    opens_after_hours = forms.IntegerField(
        label="and hours", min_value=0, max_value=23, required=False, initial=0
    )
    opens_at = forms.DateTimeField(label="Opening date (UTC)", required=False, widget=DATETIME_INPUT)
    closes_at = forms.DateTimeField(
        label="Closing date (UTC)",
        required=False,
        widget=DATETIME_INPUT,
        help_text="Optional: no new applications or acceptances after it.",
    )
    grant_duration_days = forms.IntegerField(
        min_value=1,
        max_value=MAX_GRANT_DURATION_DAYS,
        required=False,
        help_text="Empty: access never expires.",
    )
    review_days = forms.IntegerField(
        min_value=1, max_value=MAX_REVIEW_DAYS, initial=14, help_text="Decision expected within these days."
    )
    approvals_required = forms.IntegerField(
        min_value=1,
        max_value=MAX_APPROVALS_REQUIRED,
        initial=1,
        help_text="Reviewers who must approve an application (application tiers with manual review).",
    )

    def __init__(self, *args, release: Release, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["license"].queryset = License.objects.filter(
            organization_id=release.model.organization_id
        ).order_by("name")
        self.fields["artifacts"].queryset = release.artifacts.order_by("path")

    @classmethod
    def initial_for(cls, tier: Tier) -> dict:
        opens_after = tier.opens_after
        return {
            "name": tier.name,
            "description": tier.description,
            "gate": tier.gate,
            "approval": tier.approval,
            "license": tier.license_id,
            "position": tier.position,
            "selection": "patterns" if tier.artifact_patterns else "files",
            "artifacts": [artifact.pk for artifact in tier.artifacts.all()],
            "artifact_patterns": "\n".join(tier.artifact_patterns),
            "opening": "relative" if opens_after is not None else "date",
            "opens_after_days": opens_after.days if opens_after is not None else None,
            "opens_after_hours": opens_after.seconds // 3600 if opens_after is not None else 0,
            "opens_at": tier.opens_at if opens_after is None else None,
            "closes_at": tier.closes_at,
            "grant_duration_days": tier.grant_duration_days,
            "review_days": tier.review_days,
            "approvals_required": tier.approvals_required,
        }

    def clean(self):
        data = super().clean()
        if data.get("gate") and data["gate"] != Tier.Gate.OPEN and not data.get("license"):
            self.add_error("license", "A gated tier needs a license; create one under Licenses first.")
        if data.get("selection") == "files":
            if not data.get("artifacts"):
                self.add_error("artifacts", "Tick at least one file.")
            data["patterns"] = []
        elif data.get("selection") == "patterns":
            patterns = [
                line.strip() for line in data.get("artifact_patterns", "").splitlines() if line.strip()
            ]
            if not patterns:
                self.add_error("artifact_patterns", "Give at least one pattern.")
            elif len(patterns) > MAX_ARTIFACT_PATTERNS:
                self.add_error("artifact_patterns", f"At most {MAX_ARTIFACT_PATTERNS} patterns.")
            elif any(len(pattern) > MAX_ARTIFACT_PATTERN_LENGTH for pattern in patterns):
                self.add_error(
                    "artifact_patterns", f"A pattern has at most {MAX_ARTIFACT_PATTERN_LENGTH} characters."
                )
            data["patterns"] = patterns
        if data.get("opening") == "relative":
            if data.get("opens_after_days") is None:
                self.add_error("opens_after_days", "How many days after day zero does the tier open?")
        elif data.get("opening") == "date" and not data.get("opens_at"):
            self.add_error("opens_at", "When does the tier open?")
        return data

    def schedule_arguments(self) -> dict:
        """``opens_at`` or ``opens_after``, exactly one, as the rollout services take them."""
        data = self.cleaned_data
        if data["opening"] == "relative":
            opens_after = timedelta(days=data["opens_after_days"], hours=data.get("opens_after_hours") or 0)
            return {"opens_at": None, "opens_after": opens_after}
        return {"opens_at": data["opens_at"], "opens_after": None}

    def selection_arguments(self) -> dict:
        """``artifacts`` or ``artifact_patterns``, exactly one non-empty."""
        data = self.cleaned_data
        if data["selection"] == "files":
            return {"artifacts": list(data["artifacts"]), "artifact_patterns": None}
        return {"artifacts": None, "artifact_patterns": data["patterns"]}

    def terms(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "description": data["description"],
            "gate": data["gate"],
            "approval": data["approval"],
            "license": data["license"],
            "grant_duration_days": data["grant_duration_days"],
            "review_days": data["review_days"],
            "approvals_required": data["approvals_required"],
        }


# --- Licenses -------------------------------------------------------------------------------


class _LicenseTextMixin:
    def clean_text(self) -> str:
        # Browsers send textarea lines with CRLF; the accepted text (and its sha256) uses LF.
        return self.cleaned_data["text"].replace("\r\n", "\n")


class LicenseCreateForm(_LicenseTextMixin, forms.Form):
    name = forms.CharField(max_length=MAX_LICENSE_NAME_LENGTH)
    text = forms.CharField(
        label="License text",
        max_length=MAX_LICENSE_TEXT_LENGTH,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 16}),
        help_text="Researchers accept this exact text; its sha256 identifies the version.",
    )


class LicenseVersionForm(_LicenseTextMixin, forms.Form):
    text = forms.CharField(
        label="New text",
        max_length=MAX_LICENSE_TEXT_LENGTH,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 16}),
    )
    requires_reacceptance = forms.BooleanField(
        label="Everyone with access must accept this version before downloading again",
        required=False,
        help_text="Leave unticked for a correction that does not change the terms.",
    )
