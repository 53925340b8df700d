"""The form builder: a tier's questions, a row each, and its screening rules.

The rows shape and bound input; access.questions.validate_question_schema and
access.screening.validate_screening_rules (through releases.application_form) decide.
"""

from __future__ import annotations

import re

from django import forms
from django.core.validators import RegexValidator

from access.errors import InvalidInput
from access.questions import (
    MAX_ANSWER_LENGTH,
    MAX_CHOICE_LENGTH,
    MAX_CHOICES,
    MAX_HELP_TEXT_LENGTH,
    MAX_LABEL_LENGTH,
    MAX_QUESTIONS,
    TYPE_LABELS,
    question_type,
    validate_question_schema,
)
from access.screening import MAX_DOMAIN_LENGTH, MAX_DOMAINS, RULE_LABELS
from releases.models import Tier

# Blank rows offered under the questions; saving offers them again.
BLANK_QUESTION_ROWS = 2
MAX_CHOICES_TEXT_LENGTH = MAX_CHOICES * (MAX_CHOICE_LENGTH + 2)
MAX_DOMAINS_TEXT_LENGTH = MAX_DOMAINS * (MAX_DOMAIN_LENGTH + 2)
MAX_COUNTRIES_TEXT_LENGTH = 1000
_SEPARATORS = re.compile(r"[\s,;]+")


class QuestionRowForm(forms.Form):
    """One question: what the applicant sees, and the settings of its type."""

    name = forms.CharField(
        max_length=40,
        validators=[RegexValidator(r"^[a-z][a-z0-9_]*$")],
        error_messages={"invalid": "Lower-case letters, digits and '_', starting with a letter."},
        help_text="Stored with the answers; lower-case letters, digits and _.",
    )
    label = forms.CharField(max_length=MAX_LABEL_LENGTH)
    type = forms.ChoiceField(choices=list(TYPE_LABELS.items()), initial="short_text")
    required = forms.BooleanField(required=False, help_text="For an attestation: must be ticked.")
    help_text = forms.CharField(max_length=MAX_HELP_TEXT_LENGTH, required=False)
    choices = forms.CharField(
        max_length=MAX_CHOICES_TEXT_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Choice questions: one option a line.",
    )
    max_length = forms.IntegerField(
        min_value=1, max_value=MAX_ANSWER_LENGTH, required=False, help_text="Text questions: longest answer."
    )
    min_date = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Date questions: earliest."
    )
    max_date = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Date questions: latest."
    )

    @staticmethod
    def initial_for(question: dict) -> dict:
        return {
            "name": question["name"],
            "label": question["label"],
            # The first forms' types are offered as their current names.
            "type": question_type(question),
            "required": bool(question.get("required")),
            "help_text": question.get("help_text", ""),
            "choices": "\n".join(question.get("choices", [])),
            "max_length": question.get("max_length") or None,
            "min_date": question.get("min_date"),
            "max_date": question.get("max_date"),
        }

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        self.question = self._question(data)
        try:
            validate_question_schema([self.question])
        except InvalidInput as error:
            raise forms.ValidationError(error.message) from None
        return data

    @staticmethod
    def _question(data: dict) -> dict:
        kind = data["type"]
        question = {"name": data["name"], "label": data["label"].strip(), "type": kind}
        if data["required"]:
            question["required"] = True
        if data["help_text"].strip():
            question["help_text"] = data["help_text"].strip()
        if kind in ("single_choice", "multiple_choice"):
            question["choices"] = [line.strip() for line in data["choices"].splitlines() if line.strip()]
        if kind in ("short_text", "long_text") and data["max_length"]:
            question["max_length"] = data["max_length"]
        if kind == "date":
            for key in ("min_date", "max_date"):
                if data[key]:
                    question[key] = data[key].isoformat()
        return question


class BaseQuestionFormSet(forms.BaseFormSet):
    def clean(self):
        if any(self.errors):
            return
        try:
            validate_question_schema(self.questions())
        except InvalidInput as error:
            raise forms.ValidationError(error.message) from None

    def questions(self) -> list[dict]:
        """The kept rows' questions, in the order the publisher gave them."""
        return [form.question for form in self.ordered_forms]


QuestionFormSet = forms.formset_factory(
    QuestionRowForm,
    formset=BaseQuestionFormSet,
    extra=BLANK_QUESTION_ROWS,
    can_order=True,
    can_delete=True,
    max_num=MAX_QUESTIONS,
    validate_max=True,
    absolute_max=MAX_QUESTIONS + BLANK_QUESTION_ROWS,
)


def question_formset(data, tier: Tier) -> BaseQuestionFormSet:
    return QuestionFormSet(
        data,
        initial=[QuestionRowForm.initial_for(question) for question in tier.questions],
        prefix="questions",
    )


def _listed(text: str) -> list[str]:
    return [item for item in _SEPARATORS.split(text) if item]


class ScreeningRulesForm(forms.Form):
    """The tier's automatic checks, and what screening may decide alone."""

    allowed_email_domains = forms.CharField(
        label="Allowed e-mail domains",
        max_length=MAX_DOMAINS_TEXT_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=f"One a line (at most {MAX_DOMAINS}); subdomains match. Empty: any address.",
    )
    denied_email_domains = forms.CharField(
        label="Denied e-mail domains",
        max_length=MAX_DOMAINS_TEXT_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One a line; subdomains match.",
    )
    denied_countries = forms.CharField(
        label="Denied countries",
        max_length=MAX_COUNTRIES_TEXT_LENGTH,
        required=False,
        help_text="ISO 3166-1 two-letter codes separated by spaces, e.g. KP IR; "
        "read from the country question.",
    )
    country_question = forms.CharField(
        max_length=40,
        required=False,
        help_text="Name of the country question checked; may stay empty when the form has one.",
    )
    require_orcid = forms.BooleanField(label="Require an ORCID iD with a right check digit", required=False)
    orcid_question = forms.CharField(
        max_length=40,
        required=False,
        help_text="Name of the ORCID iD question checked; may stay empty when the form has one.",
    )
    soft_rules = forms.MultipleChoiceField(
        label="Only flag, never reject automatically",
        choices=list(RULE_LABELS.items()),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Other rules are hard: with automatic rejection on, failing one rejects.",
    )
    auto_reject_on_hard_rule = forms.BooleanField(
        label="Reject automatically when a hard rule fails, giving the rule's reason", required=False
    )
    auto_approve_on_screening = forms.BooleanField(
        label="Approve automatically when every rule passes", required=False
    )

    @staticmethod
    def initial_for(tier: Tier) -> dict:
        rules = tier.screening_rules or {}
        return {
            "allowed_email_domains": "\n".join(rules.get("allowed_email_domains", [])),
            "denied_email_domains": "\n".join(rules.get("denied_email_domains", [])),
            "denied_countries": " ".join(rules.get("denied_countries", [])),
            "country_question": rules.get("country_question", ""),
            "require_orcid": bool(rules.get("require_orcid")),
            "orcid_question": rules.get("orcid_question", ""),
            "soft_rules": rules.get("soft_rules", []),
            "auto_reject_on_hard_rule": tier.auto_reject_on_hard_rule,
            "auto_approve_on_screening": tier.auto_approve_on_screening,
        }

    def settings(self, questions: list[dict]) -> dict:
        """The arguments of releases.application_form.tier_application_form_update but the questions.
        An empty question name means the form's only question of that type."""
        data = self.cleaned_data
        rules: dict = {
            "allowed_email_domains": _listed(data["allowed_email_domains"]),
            "denied_email_domains": _listed(data["denied_email_domains"]),
            "denied_countries": _listed(data["denied_countries"]),
            "require_orcid": data["require_orcid"],
            "soft_rules": data["soft_rules"],
        }
        if rules["denied_countries"]:
            rules["country_question"] = data["country_question"] or _only(questions, ("country",))
        if rules["require_orcid"]:
            rules["orcid_question"] = data["orcid_question"] or _only(questions, ("orcid",))
        return {
            "screening_rules": rules,
            "auto_approve_on_screening": data["auto_approve_on_screening"],
            "auto_reject_on_hard_rule": data["auto_reject_on_hard_rule"],
        }


def _only(questions: list[dict], types: tuple[str, ...]) -> str:
    names = [question["name"] for question in questions if question_type(question) in types]
    return names[0] if len(names) == 1 else ""
