"""A tier's extra application questions, defined as data and validated on the server.

A question is a dict::

    {"name": "orcid", "label": "ORCID iD", "type": "text", "required": false,
     "help_text": "...", "max_length": 200, "choices": ["a", "b"]}

``type`` is one of QUESTION_TYPES; ``choices`` is required for "choice" and
ignored otherwise. Applications keep a copy of the questions they answered, so a
later change to the tier's questions never breaks an earlier application.
"""

from __future__ import annotations

import re
from typing import Any

from access.errors import InvalidInput

QUESTION_TYPES = ("text", "textarea", "choice", "checkbox")
MAX_QUESTIONS = 20
MAX_ANSWER_LENGTH = 5000
DEFAULT_TEXT_LENGTH = {"text": 300, "textarea": 5000}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


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
            raise InvalidInput(f"Question {position} needs a name of lower-case letters, digits and '_'.")
        if name in names or name in ("affiliation", "intended_use", "typed_name"):
            raise InvalidInput(f"Question name {name!r} is used twice or reserved.")
        names.add(name)
        if question.get("type") not in QUESTION_TYPES:
            raise InvalidInput(
                f"Question {name!r} has an unknown type; use one of {', '.join(QUESTION_TYPES)}."
            )
        if not isinstance(question.get("label"), str) or not question["label"].strip():
            raise InvalidInput(f"Question {name!r} needs a label.")
        if question["type"] == "choice":
            choices = question.get("choices")
            if (
                not isinstance(choices, list)
                or not choices
                or not all(isinstance(c, str) and c for c in choices)
            ):
                raise InvalidInput(f"Question {name!r} needs a list of choices.")
        max_length = question.get("max_length", 0)
        if not isinstance(max_length, int) or not 0 <= max_length <= MAX_ANSWER_LENGTH:
            raise InvalidInput(f"Question {name!r}: max_length must be an integer up to {MAX_ANSWER_LENGTH}.")


def _max_length(question: dict) -> int:
    return question.get("max_length") or DEFAULT_TEXT_LENGTH.get(question["type"], MAX_ANSWER_LENGTH)


def clean_answers(questions: list[dict], answers: dict) -> dict:
    """Validate answers against the questions; return only the answers to known questions.

    Raises InvalidInput naming the first question whose answer is missing or unusable.
    """
    if not isinstance(answers, dict):
        raise InvalidInput("Answers must be an object.")
    cleaned: dict[str, Any] = {}
    for question in questions:
        name, kind, label = question["name"], question["type"], question["label"]
        value = answers.get(name)
        if kind == "checkbox":
            if value in (None, "", False, "false", "off"):
                value = False
            elif value in (True, "true", "on", "1"):
                value = True
            else:
                raise InvalidInput(f"{label}: tick the box or leave it empty.", code="answer_invalid")
            if question.get("required") and not value:
                raise InvalidInput(f"{label}: this box must be ticked.", code="answer_missing")
            cleaned[name] = value
            continue
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise InvalidInput(f"{label}: the answer must be text.", code="answer_invalid")
        value = value.strip()
        if not value:
            if question.get("required"):
                raise InvalidInput(f"{label}: this question needs an answer.", code="answer_missing")
            continue
        if len(value) > _max_length(question):
            raise InvalidInput(
                f"{label}: at most {_max_length(question)} characters.", code="answer_too_long"
            )
        if kind == "choice" and value not in question["choices"]:
            raise InvalidInput(f"{label}: choose one of the listed options.", code="answer_invalid")
        cleaned[name] = value
    return cleaned
