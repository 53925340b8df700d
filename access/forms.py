"""Forms of the access app. They shape input; the services make the decisions."""

from __future__ import annotations

from django import forms
from django.conf import settings

from access.models import AccessToken, User
from access.question_fields import QuestionField
from access.services.applications import MAX_AFFILIATION_LENGTH, MAX_INTENDED_USE_LENGTH
from access.services.grants import MAX_REASON_LENGTH
from access.services.licenses import MAX_TYPED_NAME_LENGTH
from access.services.outcomes import MAX_APPEAL_STATEMENT_LENGTH
from access.services.renewals import MAX_RENEWAL_STATEMENT_LENGTH
from access.services.tokens import DEFAULT_TOKEN_SCOPES, MAX_TOKEN_NAME_LENGTH


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
            self.fields[name] = QuestionField(question)
            self.question_names.append(question["name"])
        # The acceptance comes last, after the questions.
        self.order_fields(["affiliation", "intended_use", *[f"q_{n}" for n in self.question_names]])

    def answers(self) -> dict:
        return {name: self.cleaned_data.get(f"q_{name}") for name in self.question_names}


class RevokeForm(forms.Form):
    reason = forms.CharField(max_length=MAX_REASON_LENGTH, widget=forms.Textarea(attrs={"rows": 3}))


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=MAX_TOKEN_NAME_LENGTH, label="Token name", help_text="e.g. “cluster login node”"
    )
    scopes = forms.MultipleChoiceField(
        choices=AccessToken.Scope.choices,
        initial=list(DEFAULT_TOKEN_SCOPES),
        widget=forms.CheckboxSelectMultiple,
        label="What the token may do",
    )
    lifetime_days = forms.IntegerField(
        min_value=1,
        max_value=settings.MAX_ACCESS_TOKEN_LIFETIME_DAYS,
        initial=settings.ACCESS_TOKEN_DEFAULT_LIFETIME_DAYS,
        label="Expires after (days)",
        help_text=f"1 to {settings.MAX_ACCESS_TOKEN_LIFETIME_DAYS} days.",
    )


class NotificationEmailModeForm(forms.Form):
    """How notifications reach the user by e-mail; they always appear in the in-app list."""

    mode = forms.ChoiceField(
        choices=User.EmailMode.choices, widget=forms.RadioSelect, label="E-mail me about notifications"
    )


class ApplicationRevisionForm(ApplicationForm):
    """A returned application, edited for resubmission: the application's fields and questions
    without a second license acceptance (the first one still stands)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["typed_name"]
        del self.fields["text_sha256"]


class ReturnForm(forms.Form):
    message = forms.CharField(
        max_length=MAX_REASON_LENGTH,
        label="What should the applicant change?",
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class AppealForm(forms.Form):
    statement = forms.CharField(
        max_length=MAX_APPEAL_STATEMENT_LENGTH,
        label="Why should the decision change?",
        widget=forms.Textarea(attrs={"rows": 6}),
    )


class RenewalForm(forms.Form):
    statement = forms.CharField(
        max_length=MAX_RENEWAL_STATEMENT_LENGTH,
        label="Why do you still need access?",
        widget=forms.Textarea(attrs={"rows": 4}),
    )
