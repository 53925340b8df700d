"""Forms of the access app. They shape input; the services make the decisions."""

from __future__ import annotations

from django import forms

from access.questions import DEFAULT_TEXT_LENGTH, MAX_ANSWER_LENGTH
from access.services.applications import MAX_AFFILIATION_LENGTH, MAX_INTENDED_USE_LENGTH
from access.services.grants import MAX_REASON_LENGTH
from access.services.licenses import MAX_TYPED_NAME_LENGTH
from access.services.tokens import MAX_TOKEN_NAME_LENGTH


class SignupExtraForm(forms.Form):
    """Extra sign-up field for allauth: the full name typed again to accept licenses."""

    full_name = forms.CharField(max_length=200, label="Full name")

    def signup(self, request, user):
        user.full_name = self.cleaned_data["full_name"].strip()
        user.save(update_fields=["full_name"])


class LicenseAcceptanceFields(forms.Form):
    typed_name = forms.CharField(
        max_length=MAX_TYPED_NAME_LENGTH, label="Type your full name to accept the license", strip=True
    )
    # The sha256 of the text the user was shown; the service refuses a stale one.
    text_sha256 = forms.CharField(max_length=64, widget=forms.HiddenInput)


def _question_field(question: dict) -> forms.Field:
    common = {
        "label": question["label"],
        "required": bool(question.get("required")),
        "help_text": question.get("help_text", ""),
    }
    kind = question["type"]
    max_length = question.get("max_length") or DEFAULT_TEXT_LENGTH.get(kind, MAX_ANSWER_LENGTH)
    if kind == "text":
        return forms.CharField(max_length=max_length, **common)
    if kind == "textarea":
        return forms.CharField(max_length=max_length, widget=forms.Textarea(attrs={"rows": 4}), **common)
    if kind == "choice":
        return forms.ChoiceField(choices=[("", "—")] + [(c, c) for c in question["choices"]], **common)
    return forms.BooleanField(**common)


class ApplicationForm(LicenseAcceptanceFields):
    """The application: affiliation, intended use, the tier's own questions, and the license acceptance."""

    affiliation = forms.CharField(max_length=MAX_AFFILIATION_LENGTH)
    intended_use = forms.CharField(
        max_length=MAX_INTENDED_USE_LENGTH, widget=forms.Textarea(attrs={"rows": 5})
    )
    field_order = ["affiliation", "intended_use"]

    def __init__(self, *args, questions: list[dict], **kwargs):
        super().__init__(*args, **kwargs)
        self.question_names = []
        for question in questions:
            name = f"q_{question['name']}"
            self.fields[name] = _question_field(question)
            self.question_names.append(question["name"])
        # The acceptance comes last, after the questions.
        self.order_fields(["affiliation", "intended_use", *[f"q_{n}" for n in self.question_names]])

    def answers(self) -> dict:
        return {name: self.cleaned_data.get(f"q_{name}") for name in self.question_names}


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    reason = forms.CharField(
        max_length=MAX_REASON_LENGTH, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )


class RevokeForm(forms.Form):
    reason = forms.CharField(max_length=MAX_REASON_LENGTH, widget=forms.Textarea(attrs={"rows": 3}))


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=MAX_TOKEN_NAME_LENGTH, label="Token name", help_text="e.g. “cluster login node”"
    )
