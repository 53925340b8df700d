"""A tier's extra application questions, defined as data and validated on the server.

A question is a dict::

    {"name": "orcid", "label": "ORCID iD", "type": "orcid", "required": false,
     "help_text": "...", "max_length": 200, "choices": ["a", "b"],
     "min_date": "2000-01-01", "max_date": "2030-12-31"}

``type`` is one of QUESTION_TYPES. ``choices`` belongs to the two choice types, ``max_length`` to
the two text types, ``min_date``/``max_date`` to dates. The types of the first forms ("text",
"textarea", "choice", "checkbox") are still read, as short text, long text, single choice and
attestation, because applications keep a copy of the questions they answered: a later change
to the tier's questions never breaks an earlier application, and its copy must still render.

Answers are stored as JSON: text, a list of texts for multiple choice, true/false for an
attestation, an upper-case alpha-2 code for a country, ``yyyy-mm-dd`` for a date, the bare
``0000-0000-0000-000X`` form for an ORCID iD.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from access.countries import COUNTRY_NAMES
from access.errors import InvalidInput

QUESTION_TYPES = (
    "short_text",
    "long_text",
    "single_choice",
    "multiple_choice",
    "attestation",
    "country",
    "date",
    "url",
    "orcid",
    "email",
)
TYPE_LABELS = {
    "short_text": "Short text",
    "long_text": "Long text",
    "single_choice": "Single choice",
    "multiple_choice": "Multiple choice",
    "attestation": "Attestation checkbox",
    "country": "Country",
    "date": "Date",
    "url": "Web address (URL)",
    "orcid": "ORCID iD",
    "email": "E-mail address",
}
# The types of the first forms, which earlier applications' copies of their questions still use.
LEGACY_TYPES = {
    "text": "short_text",
    "textarea": "long_text",
    "choice": "single_choice",
    "checkbox": "attestation",
}
QUESTION_KEYS = frozenset(
    {"name", "label", "type", "required", "help_text", "max_length", "choices", "min_date", "max_date"}
)
RESERVED_NAMES = ("affiliation", "intended_use", "typed_name")

MAX_QUESTIONS = 20
MAX_LABEL_LENGTH = 200
MAX_HELP_TEXT_LENGTH = 500
MAX_CHOICES = 50
MAX_CHOICE_LENGTH = 200
MAX_ANSWER_LENGTH = 5000
DEFAULT_TEXT_LENGTH = {"short_text": 300, "long_text": 5000}
MAX_URL_LENGTH = 2000
MAX_EMAIL_LENGTH = 254
# A date question without its own range accepts dates in this one.
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2100, 12, 31)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ORCID = re.compile(r"^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$")
_ORCID_PREFIXES = ("https://orcid.org/", "http://orcid.org/", "orcid.org/")
_UNTICKED = (None, "", False, "false", "off")
_TICKED = (True, "true", "on", "1")
_url_validator = URLValidator(schemes=["http", "https"])


def question_type(question: dict) -> str:
    """The question's type, with the first forms' types read as their current names."""
    kind = question.get("type")
    return LEGACY_TYPES.get(kind, kind)


# --- The schema -----------------------------------------------------------------------------


def validate_question_schema(questions: Any) -> None:
    """Raise InvalidInput unless ``questions`` is a well-formed list of questions."""
    if not isinstance(questions, list):
        raise InvalidInput("Questions must be a list.")
    if len(questions) > MAX_QUESTIONS:
        raise InvalidInput(f"A tier may ask at most {MAX_QUESTIONS} questions.")
    names = set()
    for position, question in enumerate(questions, start=1):
        if not isinstance(question, dict):
            raise InvalidInput(f"Question {position} must be an object.")
        name = question.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput(
                f"Question {position} needs a name of lower-case letters, digits and '_' "
                "(up to 40, starting with a letter)."
            )
        if name in names or name in RESERVED_NAMES:
            raise InvalidInput(f"Question name {name!r} is used twice or reserved.")
        names.add(name)
        unknown = set(question) - QUESTION_KEYS
        if unknown:
            raise InvalidInput(f"Question {name!r} has unknown settings: {', '.join(sorted(unknown))}.")
        if question.get("type") not in QUESTION_TYPES and question.get("type") not in LEGACY_TYPES:
            raise InvalidInput(
                f"Question {name!r} has an unknown type; use one of {', '.join(QUESTION_TYPES)}."
            )
        label = question.get("label")
        if not isinstance(label, str) or not label.strip():
            raise InvalidInput(f"Question {name!r} needs a label.")
        if len(label) > MAX_LABEL_LENGTH:
            raise InvalidInput(f"Question {name!r}: a label has at most {MAX_LABEL_LENGTH} characters.")
        if not isinstance(question.get("required", False), bool):
            raise InvalidInput(f"Question {name!r}: required must be true or false.")
        help_text = question.get("help_text", "")
        if not isinstance(help_text, str) or len(help_text) > MAX_HELP_TEXT_LENGTH:
            raise InvalidInput(f"Question {name!r}: help text has at most {MAX_HELP_TEXT_LENGTH} characters.")
        _validate_type_settings(name, question)


def _validate_type_settings(name: str, question: dict) -> None:
    kind = question_type(question)
    if kind in ("single_choice", "multiple_choice"):
        choices = question.get("choices")
        if (
            not isinstance(choices, list)
            or not choices
            or not all(isinstance(choice, str) and choice.strip() for choice in choices)
        ):
            raise InvalidInput(f"Question {name!r} needs a list of choices.")
        if len(choices) > MAX_CHOICES:
            raise InvalidInput(f"Question {name!r}: at most {MAX_CHOICES} choices.")
        if any(len(choice) > MAX_CHOICE_LENGTH for choice in choices):
            raise InvalidInput(f"Question {name!r}: a choice has at most {MAX_CHOICE_LENGTH} characters.")
        if len(set(choices)) != len(choices):
            raise InvalidInput(f"Question {name!r} lists a choice twice.")
    max_length = question.get("max_length", 0)
    if (
        not isinstance(max_length, int)
        or isinstance(max_length, bool)
        or not 0 <= max_length <= MAX_ANSWER_LENGTH
    ):
        raise InvalidInput(f"Question {name!r}: max_length must be an integer up to {MAX_ANSWER_LENGTH}.")
    earliest, latest = EARLIEST_DATE, LATEST_DATE
    for key in ("min_date", "max_date"):
        if key not in question:
            continue
        parsed = _parse_date(question[key])
        if parsed is None or not EARLIEST_DATE <= parsed <= LATEST_DATE:
            raise InvalidInput(
                f"Question {name!r}: {key} must be a date (yyyy-mm-dd) between "
                f"{EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}."
            )
        if key == "min_date":
            earliest = parsed
        else:
            latest = parsed
    if earliest > latest:
        raise InvalidInput(f"Question {name!r}: min_date is after max_date.")


def date_range(question: dict) -> tuple[date, date]:
    """The first and last date a date question accepts."""
    earliest = _parse_date(question.get("min_date")) or EARLIEST_DATE
    latest = _parse_date(question.get("max_date")) or LATEST_DATE
    return earliest, latest


def _parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def text_limit(question: dict) -> int:
    """The longest answer a text question takes."""
    return question.get("max_length") or DEFAULT_TEXT_LENGTH.get(question_type(question), MAX_ANSWER_LENGTH)


# --- ORCID iDs ------------------------------------------------------------------------------


def orcid_check_character(base_digits: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the 15 digits before it."""
    total = 0
    for digit in base_digits:
        total = (total + int(digit)) * 2
    result = (12 - total % 11) % 11
    return "X" if result == 10 else str(result)


def normalize_orcid(value: str) -> str | None:
    """The bare ``0000-0000-0000-000X`` form of an ORCID iD, or None when the format or the
    checksum is wrong. The https://orcid.org/ form is accepted too."""
    value = value.strip()
    for prefix in _ORCID_PREFIXES:
        if value.lower().startswith(prefix):
            value = value[len(prefix) :]
            break
    value = value.upper()
    if not _ORCID.match(value):
        return None
    digits = value.replace("-", "")
    if orcid_check_character(digits[:15]) != digits[15]:
        return None
    return value


# --- Answers --------------------------------------------------------------------------------


def clean_answers(questions: list[dict], answers: dict) -> dict:
    """Validate answers against the questions; return only the answers to known questions.

    Raises InvalidInput naming the first question whose answer is missing or unusable.
    """
    if not isinstance(answers, dict):
        raise InvalidInput("Answers must be an object.")
    cleaned: dict[str, Any] = {}
    for question in questions:
        try:
            value = clean_answer(question, answers.get(question["name"]))
        except InvalidInput as error:
            raise InvalidInput(f"{question['label']}: {error.message}", code=error.code) from None
        if value is not None:
            cleaned[question["name"]] = value
    return cleaned


def clean_answer(question: dict, value: Any) -> Any:
    """One answer, cleaned to what is stored; None for no answer. Raises InvalidInput with a
    message for the applicant (without the question's label) and a code: ``answer_missing``,
    ``answer_invalid`` or ``answer_too_long``."""
    kind = question_type(question)
    if kind == "attestation":
        return _clean_attestation(question, value)
    if kind == "multiple_choice":
        return _clean_multiple_choice(question, value)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput("the answer must be text.", code="answer_invalid")
    value = value.strip()
    if not value:
        if question.get("required"):
            raise InvalidInput("this question needs an answer.", code="answer_missing")
        return None
    return _TEXT_CLEANERS[kind](question, value)


def _clean_attestation(question: dict, value: Any) -> bool:
    if value in _UNTICKED:
        ticked = False
    elif value in _TICKED:
        ticked = True
    else:
        raise InvalidInput("tick the box or leave it empty.", code="answer_invalid")
    if question.get("required") and not ticked:
        raise InvalidInput("this box must be ticked.", code="answer_missing")
    return ticked


def _clean_multiple_choice(question: dict, value: Any) -> list[str] | None:
    if value is None or value == "":
        value = []
    if not isinstance(value, list | tuple) or not all(isinstance(choice, str) for choice in value):
        raise InvalidInput("the answer must be a list of the listed options.", code="answer_invalid")
    if not value:
        if question.get("required"):
            raise InvalidInput("choose at least one option.", code="answer_missing")
        return None
    unknown = [choice for choice in value if choice not in question["choices"]]
    if unknown:
        raise InvalidInput(f"{unknown[0]!r} is not one of the listed options.", code="answer_invalid")
    # In the order the options are listed, each once.
    return [choice for choice in question["choices"] if choice in value]


def _clean_text(question: dict, value: str) -> str:
    limit = text_limit(question)
    if len(value) > limit:
        raise InvalidInput(f"at most {limit} characters.", code="answer_too_long")
    return value


def _clean_single_choice(question: dict, value: str) -> str:
    if value not in question["choices"]:
        raise InvalidInput("choose one of the listed options.", code="answer_invalid")
    return value


def _clean_country(question: dict, value: str) -> str:
    code = value.upper()
    if code not in COUNTRY_NAMES:
        raise InvalidInput(
            f"{value!r} is not a country code (ISO 3166-1, two letters such as DE).", code="answer_invalid"
        )
    return code


def _clean_date(question: dict, value: str) -> str:
    parsed = _parse_date(value)
    if parsed is None:
        raise InvalidInput("give a real date as yyyy-mm-dd.", code="answer_invalid")
    earliest, latest = date_range(question)
    if not earliest <= parsed <= latest:
        raise InvalidInput(
            f"give a date from {earliest.isoformat()} to {latest.isoformat()}.", code="answer_invalid"
        )
    return parsed.isoformat()


def _clean_url(question: dict, value: str) -> str:
    if len(value) > MAX_URL_LENGTH:
        raise InvalidInput(f"at most {MAX_URL_LENGTH} characters.", code="answer_too_long")
    try:
        _url_validator(value)
    except ValidationError:
        raise InvalidInput(
            "give a web address starting with https:// or http://.", code="answer_invalid"
        ) from None
    return value


def _clean_orcid(question: dict, value: str) -> str:
    orcid = normalize_orcid(value)
    if orcid is None:
        if _ORCID.match(value.upper().rsplit("/", 1)[-1]):
            raise InvalidInput(
                "this ORCID iD's check digit is wrong; copy it from your ORCID record.", code="answer_invalid"
            )
        raise InvalidInput("give an ORCID iD as 0000-0000-0000-000X.", code="answer_invalid")
    return orcid


def _clean_email(question: dict, value: str) -> str:
    if len(value) > MAX_EMAIL_LENGTH:
        raise InvalidInput(f"at most {MAX_EMAIL_LENGTH} characters.", code="answer_too_long")
    try:
        validate_email(value)
    except ValidationError:
        raise InvalidInput(
            "give an e-mail address such as name@example.org.", code="answer_invalid"
        ) from None
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


_TEXT_CLEANERS = {
    "short_text": _clean_text,
    "long_text": _clean_text,
    "single_choice": _clean_single_choice,
    "country": _clean_country,
    "date": _clean_date,
    "url": _clean_url,
    "orcid": _clean_orcid,
    "email": _clean_email,
}


def display_answer(question: dict | None, value: Any) -> str:
    """An answer as reviewers and the applicant read it."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if question is not None and question_type(question) == "country" and value in COUNTRY_NAMES:
        return f"{COUNTRY_NAMES[value]} ({value})"
    return str(value)
