"""The question types of a tier's form: their schema, the answers they take, and their widgets."""

from __future__ import annotations

import pytest
from django.urls import reverse

from access.errors import InvalidInput
from access.forms import ApplicationForm
from access.models import Application
from access.questions import (
    QUESTION_TYPES,
    clean_answers,
    display_answer,
    orcid_check_character,
    question_type,
    validate_question_schema,
)
from releases.models import Tier
from tests.conftest import license_text_sha256
from tests.factories import TierFactory
from tests.helpers import nothing_changes

SHORT = {"name": "title", "label": "Your title", "type": "short_text"}
LONG = {"name": "plan", "label": "Evaluation plan", "type": "long_text", "max_length": 50}
SINGLE = {"name": "field", "label": "Field", "type": "single_choice", "choices": ["nlp", "vision"]}
MULTIPLE = {
    "name": "methods",
    "label": "Methods",
    "type": "multiple_choice",
    "choices": ["red-teaming", "benchmarks", "interpretability"],
}
ATTEST = {
    "name": "no_redistribution",
    "label": "I will not redistribute",
    "type": "attestation",
    "required": True,
}
COUNTRY = {"name": "country", "label": "Country of residence", "type": "country", "required": True}
DATE = {
    "name": "start",
    "label": "Project start",
    "type": "date",
    "min_date": "2024-01-01",
    "max_date": "2026-12-31",
}
OPEN_DATE = {"name": "born", "label": "Founded", "type": "date"}
URL = {"name": "homepage", "label": "Project page", "type": "url"}
ORCID = {"name": "orcid", "label": "ORCID iD", "type": "orcid", "required": True}
EMAIL = {"name": "supervisor", "label": "Supervisor's e-mail", "type": "email"}
ALL_TYPES = [SHORT, LONG, SINGLE, MULTIPLE, ATTEST, COUNTRY, DATE, URL, ORCID, EMAIL]

VALID_ORCID = "0000-0002-1825-0097"


def answer(question: dict, value):
    """The stored answer to one question, or InvalidInput."""
    return clean_answers([question], {question["name"]: value}).get(question["name"])


def refusal(question: dict, value) -> InvalidInput:
    with pytest.raises(InvalidInput) as error:
        clean_answers([question], {question["name"]: value})
    return error.value


# --- The schema -----------------------------------------------------------------------------


def test_every_type_is_offered_and_a_form_using_all_of_them_is_well_formed():
    assert {question["type"] for question in ALL_TYPES} == set(QUESTION_TYPES)

    validate_question_schema(ALL_TYPES)


@pytest.mark.parametrize(
    ("legacy", "current"),
    [
        ("text", "short_text"),
        ("textarea", "long_text"),
        ("choice", "single_choice"),
        ("checkbox", "attestation"),
    ],
)
def test_the_first_forms_types_are_read_as_their_current_names(legacy, current):
    question = {"name": "q", "label": "Q", "type": legacy, "choices": ["a"]}

    validate_question_schema([question])
    assert question_type(question) == current


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ({**SHORT, "placeholder": "x"}, "unknown settings: placeholder"),
        ({**SHORT, "label": "x" * 201}, "at most 200 characters"),
        ({**SHORT, "help_text": "x" * 501}, "at most 500 characters"),
        ({**SHORT, "help_text": 5}, "help text"),
        ({**SHORT, "required": "yes"}, "required must be true or false"),
        ({**MULTIPLE, "choices": []}, "needs a list of choices"),
        ({**MULTIPLE, "choices": [f"option {n}" for n in range(51)]}, "at most 50 choices"),
        ({**SINGLE, "choices": ["x" * 201]}, "a choice has at most 200 characters"),
        ({**SINGLE, "choices": ["nlp", "nlp"]}, "lists a choice twice"),
        ({**SHORT, "max_length": True}, "max_length"),
        ({**DATE, "min_date": "01/01/2024"}, "min_date must be a date"),
        ({**DATE, "max_date": "2024-02-30"}, "max_date must be a date"),
        ({**DATE, "min_date": "1899-12-31"}, "between 1900-01-01 and 2100-12-31"),
        ({**DATE, "min_date": "2027-01-01"}, "min_date is after max_date"),
    ],
)
def test_a_malformed_question_is_refused_with_a_message_naming_the_problem(question, message):
    with pytest.raises(InvalidInput) as error:
        validate_question_schema([question])

    assert message in error.value.message


def test_the_limits_of_a_question_are_inclusive():
    validate_question_schema(
        [
            {**SHORT, "label": "x" * 200, "help_text": "h" * 500},
            {**MULTIPLE, "choices": [f"option {n}" for n in range(50)]},
            {**SINGLE, "choices": ["x" * 200]},
            {**DATE, "min_date": "1900-01-01", "max_date": "2100-12-31"},
        ]
    )


# --- Answers of each type -------------------------------------------------------------------


def test_a_single_choice_takes_one_listed_option():
    assert answer(SINGLE, "vision") == "vision"
    assert refusal(SINGLE, "robotics").message == "Field: choose one of the listed options."


def test_a_multiple_choice_keeps_the_listed_options_in_their_order_once_each():
    assert answer(MULTIPLE, ["interpretability", "red-teaming", "interpretability"]) == [
        "red-teaming",
        "interpretability",
    ]


def test_a_multiple_choice_refuses_an_option_that_is_not_listed():
    error = refusal(MULTIPLE, ["red-teaming", "mind reading"])

    assert error.code == "answer_invalid"
    assert "'mind reading' is not one of the listed options" in error.message


def test_a_required_multiple_choice_needs_one_option_and_an_optional_one_may_stay_empty():
    assert refusal({**MULTIPLE, "required": True}, []).code == "answer_missing"
    assert clean_answers([MULTIPLE], {"methods": []}) == {}


def test_an_attestation_must_be_ticked_when_required():
    assert answer(ATTEST, "on") is True
    error = refusal(ATTEST, "")

    assert error.code == "answer_missing"
    assert error.message == "I will not redistribute: this box must be ticked."


@pytest.mark.parametrize(("value", "stored"), [("DE", "DE"), ("de", "DE"), (" fr ", "FR"), ("CI", "CI")])
def test_a_country_is_stored_as_its_upper_case_iso_code(value, stored):
    assert answer(COUNTRY, value) == stored


@pytest.mark.parametrize("value", ["XX", "UK", "DEU", "Germany", "D"])
def test_a_country_code_that_does_not_exist_is_refused(value):
    error = refusal(COUNTRY, value)

    assert error.code == "answer_invalid"
    assert error.message == (
        f"Country of residence: {value!r} is not a country code (ISO 3166-1, two letters such as DE)."
    )


@pytest.mark.parametrize("value", ["2024-01-01", "2024-02-29", "2026-12-31"])
def test_a_date_in_its_range_is_stored_as_iso(value):
    assert answer(DATE, value) == value


@pytest.mark.parametrize("value", ["2023-12-31", "2027-01-01"])
def test_a_date_outside_its_explicit_range_is_refused(value):
    error = refusal(DATE, value)

    assert error.message == "Project start: give a date from 2024-01-01 to 2026-12-31."


@pytest.mark.parametrize("value", ["2023-02-29", "29/02/2024", "20240229", "2024-2-1", "tomorrow"])
def test_a_date_that_is_not_a_real_yyyy_mm_dd_date_is_refused(value):
    assert refusal(DATE, value).message == "Project start: give a real date as yyyy-mm-dd."


def test_a_date_without_its_own_range_takes_1900_to_2100():
    assert answer(OPEN_DATE, "1900-01-01") == "1900-01-01"
    assert answer(OPEN_DATE, "2100-12-31") == "2100-12-31"
    assert refusal(OPEN_DATE, "1899-12-31").message == "Founded: give a date from 1900-01-01 to 2100-12-31."
    assert refusal(OPEN_DATE, "2101-01-01").code == "answer_invalid"


@pytest.mark.parametrize("value", ["https://example.org/project", "http://lab.example.edu/~dana"])
def test_an_http_or_https_address_is_accepted(value):
    assert answer(URL, value) == value


@pytest.mark.parametrize(
    "value",
    ["ftp://example.org/file", "javascript:alert(1)", "example.org", "https://", "file:///etc/passwd"],
)
def test_any_other_address_is_refused(value):
    assert (
        refusal(URL, value).message == "Project page: give a web address starting with https:// or http://."
    )


def test_an_address_is_limited_to_2000_characters():
    long_address = "https://example.org/" + "a" * (2000 - len("https://example.org/"))

    assert answer(URL, long_address) == long_address
    assert refusal(URL, long_address + "a").code == "answer_too_long"


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("0000-0002-1825-0097", "0000-0002-1825-0097"),
        ("0000-0001-5109-3700", "0000-0001-5109-3700"),
        ("0000-0002-1694-233X", "0000-0002-1694-233X"),
        ("0000-0002-1694-233x", "0000-0002-1694-233X"),
        ("https://orcid.org/0000-0002-1825-0097", "0000-0002-1825-0097"),
    ],
)
def test_an_orcid_id_with_the_right_check_digit_is_stored_bare(value, stored):
    assert answer(ORCID, value) == stored


@pytest.mark.parametrize("value", ["0000-0002-1825-0098", "0000-0002-1694-2330", "0000-0001-5109-370X"])
def test_an_orcid_id_with_a_wrong_check_digit_is_refused(value):
    error = refusal(ORCID, value)

    assert error.code == "answer_invalid"
    assert error.message == "ORCID iD: this ORCID iD's check digit is wrong; copy it from your ORCID record."


@pytest.mark.parametrize(
    "value", ["0000000218250097", "0000-0002-1825-009", "0000-0002-1825-00971", "abcd-efgh-ijkl-mnop"]
)
def test_an_orcid_id_of_another_format_is_refused(value):
    assert refusal(ORCID, value).message == "ORCID iD: give an ORCID iD as 0000-0000-0000-000X."


def test_the_check_character_is_iso_7064_mod_11_2():
    # The worked example of ORCID's documentation: 0000-0002-1694-233X.
    assert orcid_check_character("000000021694233") == "X"
    assert orcid_check_character("000000021825009") == "7"


def test_an_email_address_is_checked_and_its_domain_lower_cased():
    assert answer(EMAIL, "Ada.Lovelace@Example.ORG") == "Ada.Lovelace@example.org"
    assert refusal(EMAIL, "ada at example.org").message == (
        "Supervisor's e-mail: give an e-mail address such as name@example.org."
    )
    assert refusal(EMAIL, "a" * 250 + "@x.org").code == "answer_too_long"


@pytest.mark.parametrize(
    ("question", "value"),
    [
        (SHORT, 42),
        (LONG, ["plan"]),
        (SINGLE, ["nlp"]),
        (MULTIPLE, "red-teaming"),
        (MULTIPLE, [1, 2]),
        (MULTIPLE, {"red-teaming": True}),
        (ATTEST, "yes"),
        (COUNTRY, 49),
        (DATE, 20240101),
        (URL, {"href": "https://example.org"}),
        (ORCID, 18250097),
        (EMAIL, True),
    ],
)
def test_an_answer_of_the_wrong_type_is_refused(question, value):
    assert refusal(question, value).code == "answer_invalid"


def test_answers_are_shown_as_people_read_them():
    assert display_answer(COUNTRY, "DE") == "Germany (DE)"
    assert display_answer(MULTIPLE, ["red-teaming", "benchmarks"]) == "red-teaming, benchmarks"
    assert display_answer(ATTEST, True) == "Yes"
    assert (
        display_answer(None, "an answer to a question since removed")
        == "an answer to a question since removed"
    )


# --- The application form -------------------------------------------------------------------


def test_each_type_gets_a_fitting_widget():
    form = ApplicationForm(questions=ALL_TYPES, initial={"text_sha256": "0" * 64})
    rendered = {name: str(form[f"q_{name}"]) for name in form.question_names}

    assert 'type="text"' in rendered["title"]
    assert "<textarea" in rendered["plan"] and 'maxlength="50"' in rendered["plan"]
    assert "<select" in rendered["field"] and '<option value="vision">vision</option>' in rendered["field"]
    assert rendered["methods"].count('type="checkbox"') == 3
    assert 'type="checkbox"' in rendered["no_redistribution"]
    assert '<option value="DE">Germany</option>' in rendered["country"]
    assert rendered["country"].count("<option") == 250  # 249 countries and the empty choice
    assert 'type="date"' in rendered["start"]
    assert 'min="2024-01-01"' in rendered["start"] and 'max="2026-12-31"' in rendered["start"]
    assert 'type="url"' in rendered["homepage"]
    assert 'placeholder="0000-0000-0000-000X"' in rendered["orcid"]
    assert 'type="email"' in rendered["supervisor"]


def test_a_field_error_names_the_problem_without_repeating_the_label():
    form = ApplicationForm(
        {"affiliation": "Lab", "intended_use": "Tests.", "typed_name": "Dana", "text_sha256": "0" * 64},
        questions=[COUNTRY],
    )

    assert not form.is_valid()
    assert form.errors["q_country"] == ["This question needs an answer."]


# --- Through the apply page -----------------------------------------------------------------


@pytest.fixture
def tier(release):
    return TierFactory(release=release, name="Researchers", gate=Tier.Gate.APPLICATION, questions=ALL_TYPES)


def form_data(user, tier, **overrides) -> dict:
    data = {
        "affiliation": "University of Examples",
        "intended_use": "Red-teaming the model for jailbreaks.",
        "q_title": "Dr",
        "q_plan": "Jailbreak suite.",
        "q_field": "nlp",
        "q_methods": ["benchmarks", "red-teaming"],
        "q_no_redistribution": "on",
        "q_country": "DE",
        "q_start": "2025-03-01",
        "q_homepage": "https://example.edu/lab",
        "q_orcid": VALID_ORCID,
        "q_supervisor": "prof@example.edu",
        "typed_name": user.full_name,
        "text_sha256": license_text_sha256(tier),
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_an_application_answering_every_type_stores_each_answer_as_data(client, tier, researcher):
    client.force_login(researcher)

    response = client.post(reverse("tier-apply", args=[tier.pk]), form_data(researcher, tier))

    application = Application.objects.get()
    assert response.status_code == 302
    assert application.answers == {
        "title": "Dr",
        "plan": "Jailbreak suite.",
        "field": "nlp",
        "methods": ["red-teaming", "benchmarks"],
        "no_redistribution": True,
        "country": "DE",
        "start": "2025-03-01",
        "homepage": "https://example.edu/lab",
        "orcid": VALID_ORCID,
        "supervisor": "prof@example.edu",
    }
    page = client.get(reverse("application-detail", args=[application.pk])).content.decode()
    assert "Germany (DE)" in page
    assert "red-teaming, benchmarks" in page


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"q_country": "XX"}, "q_country", "&#x27;XX&#x27; is not a country code"),
        ({"q_orcid": "0000-0002-1825-0098"}, "q_orcid", "check digit is wrong"),
        ({"q_start": "2031-01-01"}, "q_start", "Give a date from 2024-01-01 to 2026-12-31."),
        ({"q_start": "2025-02-30"}, "q_start", "Give a real date as yyyy-mm-dd."),
        ({"q_homepage": "ftp://example.edu"}, "q_homepage", "Give a web address starting with https://"),
        ({"q_methods": ["telepathy"]}, "q_methods", "is not one of the listed options"),
        ({"q_supervisor": "prof"}, "q_supervisor", "Give an e-mail address"),
        ({"q_no_redistribution": None}, "q_no_redistribution", "This box must be ticked."),
        ({"q_plan": "x" * 51}, "q_plan", "At most 50 characters."),
    ],
)
def test_a_bad_answer_shows_its_error_on_its_field_and_creates_nothing(
    client, tier, researcher, overrides, field, message
):
    client.force_login(researcher)

    with nothing_changes():
        response = client.post(
            reverse("tier-apply", args=[tier.pk]), form_data(researcher, tier, **overrides)
        )

    assert response.status_code == 400
    assert list(response.context["form"].errors) == [field]
    assert message in response.content.decode()


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"country": "ZZ"}, "Country of residence: 'ZZ' is not a country code"),
        ({"country": 276}, "Country of residence: the answer must be text."),
        ({"country": "DE", "orcid": "0000-0002-1825-0098"}, "ORCID iD: this ORCID iD's check digit is wrong"),
    ],
)
def test_the_service_refuses_bad_answers_from_any_client_and_changes_nothing(
    release, researcher, submit, answers, message
):
    tier = TierFactory(release=release, gate=Tier.Gate.APPLICATION, questions=[COUNTRY, ORCID])

    with nothing_changes(), pytest.raises(InvalidInput) as error:
        submit(researcher, tier, answers={"orcid": VALID_ORCID, **answers})

    assert error.value.message.startswith(message)
