"""A tier's extra application questions: the schema and the answers."""

from __future__ import annotations

import pytest

from access.errors import InvalidInput
from access.questions import clean_answers, validate_question_schema

ORCID = {"name": "orcid", "label": "ORCID iD", "type": "text", "required": True}
FIELD = {"name": "field", "label": "Field", "type": "choice", "choices": ["nlp", "vision"]}
ETHICS = {"name": "ethics", "label": "Ethics approval", "type": "checkbox", "required": True}
PLAN = {"name": "plan", "label": "Evaluation plan", "type": "textarea", "max_length": 20}


def test_a_well_formed_schema_passes():
    validate_question_schema([ORCID, FIELD, ETHICS, PLAN])
    validate_question_schema([])


@pytest.mark.parametrize(
    ("questions", "message"),
    [
        ({"name": "orcid"}, "must be a list"),
        ([ORCID] * 21, "at most 20"),
        (["orcid"], "must be an object"),
        ([{**ORCID, "name": "ORCID"}], "needs a name"),
        ([{**ORCID, "name": "1st"}], "needs a name"),
        ([{**ORCID, "name": "x" * 41}], "needs a name"),
        ([ORCID, {**FIELD, "name": "orcid"}], "used twice or reserved"),
        ([{**ORCID, "name": "affiliation"}], "used twice or reserved"),
        ([{**ORCID, "name": "typed_name"}], "used twice or reserved"),
        ([{**ORCID, "type": "file"}], "unknown type"),
        ([{**ORCID, "label": "  "}], "needs a label"),
        ([{key: value for key, value in ORCID.items() if key != "label"}], "needs a label"),
        ([{**FIELD, "choices": []}], "needs a list of choices"),
        ([{**FIELD, "choices": "nlp,vision"}], "needs a list of choices"),
        ([{**FIELD, "choices": ["nlp", ""]}], "needs a list of choices"),
        ([{**PLAN, "max_length": 5001}], "max_length"),
        ([{**PLAN, "max_length": -1}], "max_length"),
        ([{**PLAN, "max_length": "20"}], "max_length"),
    ],
)
def test_a_malformed_schema_is_refused_with_a_message_naming_the_problem(questions, message):
    with pytest.raises(InvalidInput) as error:
        validate_question_schema(questions)

    assert message in error.value.message


def test_answers_are_stripped_and_unknown_answers_dropped():
    cleaned = clean_answers(
        [ORCID, FIELD, ETHICS, PLAN],
        {"orcid": "  0000-0002  ", "field": "vision", "ethics": True, "plan": "", "is_admin": "yes"},
    )

    assert cleaned == {"orcid": "0000-0002", "field": "vision", "ethics": True}


@pytest.mark.parametrize(("value", "ticked"), [(True, True), ("on", True), ("true", True), ("1", True)])
def test_a_ticked_checkbox_reads_as_true(value, ticked):
    assert clean_answers([ETHICS], {"ethics": value}) == {"ethics": ticked}


@pytest.mark.parametrize("value", [None, "", False, "false", "off"])
def test_an_unticked_optional_checkbox_reads_as_false(value):
    question = {**ETHICS, "required": False}

    assert clean_answers([question], {"ethics": value}) == {"ethics": False}


@pytest.mark.parametrize("value", [None, "", False, "off"])
def test_a_required_checkbox_must_be_ticked(value):
    with pytest.raises(InvalidInput) as error:
        clean_answers([ETHICS], {"ethics": value})

    assert error.value.code == "answer_missing"


@pytest.mark.parametrize("value", ["yes", 2, ["on"], {"on": True}])
def test_a_checkbox_answer_that_is_neither_ticked_nor_empty_is_refused(value):
    with pytest.raises(InvalidInput) as error:
        clean_answers([ETHICS], {"ethics": value})

    assert error.value.code == "answer_invalid"


@pytest.mark.parametrize("answers", [{}, {"orcid": ""}, {"orcid": "   "}, {"orcid": None}])
def test_a_required_text_answer_must_be_given(answers):
    with pytest.raises(InvalidInput) as error:
        clean_answers([ORCID], answers)

    assert error.value.code == "answer_missing"
    assert "ORCID iD" in error.value.message


@pytest.mark.parametrize("value", [42, 4.2, True, ["0000"], {"id": "0000"}])
def test_a_text_answer_of_another_type_is_refused(value):
    with pytest.raises(InvalidInput) as error:
        clean_answers([ORCID], {"orcid": value})

    assert error.value.code == "answer_invalid"


def test_a_choice_outside_the_list_is_refused():
    with pytest.raises(InvalidInput) as error:
        clean_answers([FIELD], {"field": "robotics"})

    assert error.value.code == "answer_invalid"


@pytest.mark.parametrize(
    ("question", "limit"),
    [(ORCID, 300), ({**PLAN, "max_length": 0}, 5000), (PLAN, 20)],
)
def test_answers_are_limited_to_their_length(question, limit):
    name = question["name"]
    assert clean_answers([question], {name: "a" * limit}) == {name: "a" * limit}

    with pytest.raises(InvalidInput) as error:
        clean_answers([question], {name: "a" * (limit + 1)})

    assert error.value.code == "answer_too_long"
    assert str(limit) in error.value.message


@pytest.mark.parametrize("answers", [None, [], "orcid=1"])
def test_answers_must_be_an_object(answers):
    with pytest.raises(InvalidInput):
        clean_answers([ORCID], answers)
