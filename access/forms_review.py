"""Forms of the reviewers' pages: a decision's reason, the queue's filters, bulk decisions."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from access.models import RejectionReason
from access.services.decisions import BULK_DECISION_MAX
from access.services.grants import MAX_REASON_LENGTH

# The queue's status filter: what each choice shows.
QUEUE_STATUSES = {
    "awaiting": ("Awaiting a decision", ("pending", "appealed")),
    "pending": ("Pending", ("pending",)),
    "appealed": ("Appealed", ("appealed",)),
    "returned": ("Returned for revision", ("returned",)),
    "open": ("All open", ("pending", "returned", "appealed")),
}
QUEUE_PAGE_SIZES = (50, 200, BULK_DECISION_MAX)
MAX_AGE_FILTER_DAYS = 3650


class ReasonFields(forms.Form):
    """A reason for the applicant: one of the organization's preset reasons, free text, or both."""

    preset_reason = forms.ModelChoiceField(
        queryset=RejectionReason.objects.none(),
        required=False,
        empty_label="— none —",
        label="Preset reason",
    )
    reason = forms.CharField(
        max_length=MAX_REASON_LENGTH,
        required=False,
        label="Reason (required to reject; shown to the applicant)",
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        if organization is not None:
            self.fields["preset_reason"].queryset = RejectionReason.objects.filter(
                organization=organization, active=True
            ).order_by("text")

    def clean(self):
        data = super().clean()
        preset = data.get("preset_reason")
        parts = [preset.text if preset else "", (data.get("reason") or "").strip()]
        data["full_reason"] = "\n\n".join(part for part in parts if part)
        if len(data["full_reason"]) > MAX_REASON_LENGTH:
            self.add_error(
                "reason",
                f"The preset reason and your text have at most {MAX_REASON_LENGTH} characters together.",
            )
        return data


class DecisionForm(ReasonFields):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])


class ApplicationIdsField(forms.Field):
    """The ids of the applications ticked in the queue (``name="application"``, many times)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        if not value:
            return []
        if not isinstance(value, list | tuple):
            value = [value]
        ids = []
        for raw in value:
            try:
                ids.append(int(raw))
            except (TypeError, ValueError):
                raise ValidationError(f"“{str(raw)[:20]}” is not an application number.") from None
        return sorted(set(ids))

    def validate(self, value):
        if not value:
            raise ValidationError("Select at least one application.")
        if len(value) > BULK_DECISION_MAX:
            raise ValidationError(
                f"Decide at most {BULK_DECISION_MAX} applications at once; {len(value)} were selected."
            )


class BulkDecisionForm(ReasonFields):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    application = ApplicationIdsField()


class QueueFilterForm(forms.Form):
    """The queue's filters, read from the query string; the tier is checked by the view (404)."""

    status = forms.ChoiceField(
        choices=[(key, label) for key, (label, _) in QUEUE_STATUSES.items()], required=False
    )
    older_than_days = forms.IntegerField(
        min_value=1, max_value=MAX_AGE_FILTER_DAYS, required=False, label="Older than (days)"
    )
    assigned = forms.ChoiceField(
        choices=[("", "Anyone"), ("me", "Assigned to me"), ("unassigned", "Unassigned")], required=False
    )
    per_page = forms.TypedChoiceField(
        choices=[(size, str(size)) for size in QUEUE_PAGE_SIZES],
        coerce=int,
        required=False,
        empty_value=QUEUE_PAGE_SIZES[0],
        label="Per page",
    )

    def statuses(self) -> tuple[str, ...]:
        return QUEUE_STATUSES[self.cleaned_data.get("status") or "awaiting"][1]

    def status_label(self) -> str:
        return QUEUE_STATUSES[self.cleaned_data.get("status") or "awaiting"][0].lower()
