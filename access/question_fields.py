"""Form fields for a tier's questions: a fitting widget per type, validated by access.questions.

The field cleans with access.questions.clean_answer, the same function the service applies
again, so the form and a JSON client get the same rules and the same messages.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from access.countries import COUNTRY_CHOICES
from access.errors import InvalidInput
from access.questions import (
    MAX_EMAIL_LENGTH,
    MAX_URL_LENGTH,
    clean_answer,
    date_range,
    question_type,
    text_limit,
)


class QuestionField(forms.Field):
    """One question of a tier's form. ``cleaned_data`` holds the answer as it is stored."""

    def __init__(self, question: dict, **kwargs):
        self.question = question
        super().__init__(
            label=question["label"],
            required=bool(question.get("required")),
            help_text=question.get("help_text", ""),
            widget=question_widget(question),
            **kwargs,
        )

    def clean(self, value: Any) -> Any:
        try:
            return clean_answer(self.question, value)
        except InvalidInput as error:
            message = error.message[:1].upper() + error.message[1:]
            raise ValidationError(message, code=error.code) from None


def question_widget(question: dict) -> forms.Widget:
    kind = question_type(question)
    if kind == "short_text":
        return forms.TextInput(attrs={"maxlength": text_limit(question)})
    if kind == "long_text":
        return forms.Textarea(attrs={"rows": 4, "maxlength": text_limit(question)})
    if kind == "single_choice":
        return forms.Select(choices=[("", "—")] + [(choice, choice) for choice in question["choices"]])
    if kind == "multiple_choice":
        return forms.CheckboxSelectMultiple(choices=[(choice, choice) for choice in question["choices"]])
    if kind == "attestation":
        return forms.CheckboxInput()
    if kind == "country":
        return forms.Select(choices=[("", "—")] + COUNTRY_CHOICES)
    if kind == "date":
        earliest, latest = date_range(question)
        return forms.DateInput(attrs={"type": "date", "min": earliest.isoformat(), "max": latest.isoformat()})
    if kind == "url":
        return forms.URLInput(attrs={"maxlength": MAX_URL_LENGTH, "placeholder": "https://"})
    if kind == "orcid":
        return forms.TextInput(
            attrs={"placeholder": "0000-0000-0000-000X", "maxlength": 40, "autocomplete": "off"}
        )
    if kind == "email":
        return forms.EmailInput(attrs={"maxlength": MAX_EMAIL_LENGTH})
    raise ValueError(f"Unknown question type {question.get('type')!r}")
