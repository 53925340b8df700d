"""The form builder: publishers define a tier's questions and screening rules, on draft and
published tiers; earlier applications keep the form they answered."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.urls import reverse

from access.models import Application, AuditEvent, Grant
from access.services.applications import application_approve
from releases.models import Membership, Tier
from tests.factories import MembershipFactory, ModelFactory, ReleaseFactory, TierFactory, UserFactory
from tests.helpers import audit_actions, last_audit_id
from tests.scenes import submit

V1_QUESTIONS = [
    {"name": "orcid", "label": "ORCID iD", "type": "text", "required": True},
    {
        "name": "team_size",
        "label": "Team size",
        "type": "choice",
        "choices": ["1", "2-5", "6+"],
        "required": True,
    },
    {"name": "ethics", "label": "Ethics board approved", "type": "checkbox", "required": True},
]


@pytest.fixture
def publisher(organization):
    user = UserFactory(email="erin@acme.example", full_name="Erin Publisher")
    MembershipFactory(organization=organization, user=user, role=Membership.Role.PUBLISHER)
    return user


@pytest.fixture
def tier(release):
    """An application tier of a published release, asking the first form's questions."""
    return TierFactory(
        release=release, name="Researchers", gate=Tier.Gate.APPLICATION, questions=V1_QUESTIONS
    )


@pytest.fixture
def draft_tier(model):
    draft = ReleaseFactory(model=model, version="v2.0-draft", status="draft", published_at=None, revision="")
    return TierFactory(release=draft, name="Early", gate=Tier.Gate.APPLICATION)


def builder_url(tier: Tier) -> str:
    return reverse(
        "publish-tier-form", kwargs={"org_slug": tier.release.model.organization.slug, "tier_id": tier.pk}
    )


def row(name: str, label: str, type: str = "short_text", **fields) -> dict:
    return {"name": name, "label": label, "type": type, **fields}


def builder_data(
    rows: list[dict], *, initial: int = 0, rules: dict | None = None, total: int | None = None
) -> dict:
    """A POST of the builder: the question rows (the first ``initial`` of them the tier's current
    questions) and the screening fields."""
    data = {
        "questions-TOTAL_FORMS": str(len(rows) if total is None else total),
        "questions-INITIAL_FORMS": str(initial),
        "questions-MIN_NUM_FORMS": "0",
        "questions-MAX_NUM_FORMS": "20",
    }
    for index, fields in enumerate(rows):
        for key, value in fields.items():
            if value is True:
                value = "on"
            if value not in (False, None):
                data[f"questions-{index}-{key}"] = value
    for key, value in (rules or {}).items():
        if value is True:
            value = "on"
        if value not in (False, None):
            data[f"screening-{key}"] = value
    return data


def state(tier: Tier) -> tuple:
    tier = Tier.objects.get(pk=tier.pk)
    return (
        tier.questions,
        tier.screening_rules,
        tier.auto_approve_on_screening,
        tier.auto_reject_on_hard_rule,
        AuditEvent.objects.count(),
    )


@contextmanager
def tier_unchanged(tier: Tier) -> Iterator[None]:
    before = state(tier)
    yield
    assert state(tier) == before


# --- Who may open it ------------------------------------------------------------------------


@pytest.mark.parametrize("person", ["owner", "publisher"])
@pytest.mark.parametrize("which", ["tier", "draft_tier"])
def test_owners_and_publishers_open_the_builder_of_draft_and_published_tiers(client, request, person, which):
    client.force_login(request.getfixturevalue(person))

    response = client.get(builder_url(request.getfixturevalue(which)))

    assert response.status_code == 200
    assert "Application form of" in response.content.decode()


@pytest.mark.parametrize("person", ["reviewer", "researcher", "outsider"])
def test_anyone_else_gets_404_and_changes_nothing(client, request, tier, person):
    client.force_login(request.getfixturevalue(person))

    with tier_unchanged(tier):
        assert client.get(builder_url(tier)).status_code == 404
        assert client.post(builder_url(tier), builder_data([row("x", "X")])).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, tier):
    response = client.get(builder_url(tier))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_foreign_unknown_and_non_application_tiers_are_404(client, owner, outsider, organization, release):
    foreign_release = ReleaseFactory(model=ModelFactory(organization=outsider.memberships.get().organization))
    foreign_tier = TierFactory(release=foreign_release, gate=Tier.Gate.APPLICATION)
    click_through = TierFactory(release=release, gate=Tier.Gate.CLICK_THROUGH)
    client.force_login(owner)

    for address in [
        reverse("publish-tier-form", kwargs={"org_slug": organization.slug, "tier_id": foreign_tier.pk}),
        reverse("publish-tier-form", kwargs={"org_slug": organization.slug, "tier_id": 987654}),
        builder_url(click_through),
    ]:
        assert client.get(address).status_code == 404, address


def test_the_release_page_links_each_application_tier_to_its_form(client, publisher, tier, release):
    client.force_login(publisher)

    page = client.get(reverse("publish-release", kwargs={"org_slug": "acme", "release_id": release.pk}))

    assert f'href="{builder_url(tier)}"' in page.content.decode()


# --- Defining the questions -----------------------------------------------------------------

EVERY_TYPE_ROWS = [
    row("title", "Your title", "short_text", max_length="80", help_text="As on your web page."),
    row("plan", "Evaluation plan", "long_text", required=True),
    row("field", "Field", "single_choice", choices="nlp\r\nvision\r\n\r\n"),
    row("methods", "Methods", "multiple_choice", choices="red-teaming\nbenchmarks"),
    row("no_redistribution", "I will not redistribute", "attestation", required=True),
    row("country", "Country of residence", "country", required=True),
    row("start", "Project start", "date", min_date="2024-01-01", max_date="2026-12-31"),
    row("homepage", "Project page", "url"),
    row("orcid_id", "ORCID iD", "orcid"),
    row("supervisor", "Supervisor's e-mail", "email"),
]


def test_a_publisher_defines_questions_of_every_type(client, publisher, draft_tier):
    client.force_login(publisher)
    since = last_audit_id()

    response = client.post(builder_url(draft_tier), builder_data(EVERY_TYPE_ROWS))

    assert response.status_code == 302
    draft_tier.refresh_from_db()
    assert draft_tier.questions == [
        {
            "name": "title",
            "label": "Your title",
            "type": "short_text",
            "help_text": "As on your web page.",
            "max_length": 80,
        },
        {"name": "plan", "label": "Evaluation plan", "type": "long_text", "required": True},
        {"name": "field", "label": "Field", "type": "single_choice", "choices": ["nlp", "vision"]},
        {
            "name": "methods",
            "label": "Methods",
            "type": "multiple_choice",
            "choices": ["red-teaming", "benchmarks"],
        },
        {
            "name": "no_redistribution",
            "label": "I will not redistribute",
            "type": "attestation",
            "required": True,
        },
        {"name": "country", "label": "Country of residence", "type": "country", "required": True},
        {
            "name": "start",
            "label": "Project start",
            "type": "date",
            "min_date": "2024-01-01",
            "max_date": "2026-12-31",
        },
        {"name": "homepage", "label": "Project page", "type": "url"},
        {"name": "orcid_id", "label": "ORCID iD", "type": "orcid"},
        {"name": "supervisor", "label": "Supervisor's e-mail", "type": "email"},
    ]
    assert audit_actions(since) == ["tier.application_form_changed"]
    event = AuditEvent.objects.get(action="tier.application_form_changed")
    assert event.actor == publisher
    assert event.payload == {"questions": draft_tier.questions}


def test_the_builder_shows_the_questions_again_with_the_first_forms_types_under_their_new_names(
    client, publisher, tier
):
    client.force_login(publisher)

    page = client.get(builder_url(tier)).content.decode()

    assert 'name="questions-0-name" value="orcid"' in page
    assert '<option value="short_text" selected>Short text</option>' in page
    assert '<option value="single_choice" selected>Single choice</option>' in page
    assert '<option value="attestation" selected>Attestation checkbox</option>' in page
    assert "1\n2-5\n6+</textarea>" in page


def test_rows_are_kept_in_the_given_order_and_ticked_ones_deleted(client, publisher, tier):
    client.force_login(publisher)
    rows = [
        row("orcid", "ORCID iD", "orcid", required=True, ORDER="2"),
        row("team_size", "Team size", "single_choice", choices="1\n2-5\n6+", ORDER="3", DELETE=True),
        row("ethics", "Ethics board approved", "attestation", required=True, ORDER="1"),
        row("country", "Country", "country", ORDER=""),
        row("", "", ORDER=""),  # a blank row is ignored
    ]

    response = client.post(builder_url(tier), builder_data(rows, initial=3))

    assert response.status_code == 302
    tier.refresh_from_db()
    assert [(question["name"], question["type"]) for question in tier.questions] == [
        ("ethics", "attestation"),
        ("orcid", "orcid"),
        ("country", "country"),
    ]


def test_saving_an_unchanged_form_writes_no_audit_event(client, publisher, draft_tier):
    client.force_login(publisher)
    client.post(builder_url(draft_tier), builder_data([row("country", "Country", "country")]))

    with tier_unchanged(draft_tier):
        response = client.post(
            builder_url(draft_tier), builder_data([row("country", "Country", "country")], initial=1)
        )

    assert response.status_code == 302


@pytest.mark.parametrize(
    ("rows", "rules", "message"),
    [
        (
            [row("orcid", "A"), row("orcid", "B")],
            {},
            "Question name &#x27;orcid&#x27; is used twice or reserved.",
        ),
        ([row("affiliation", "Where")], {}, "is used twice or reserved"),
        ([row("Bad Name", "A")], {}, "Lower-case letters, digits and"),
        ([row("field", "Field", "single_choice", choices="\n \n")], {}, "needs a list of choices"),
        ([row("field", "Field", "multiple_choice", choices="a\na")], {}, "lists a choice twice"),
        ([row("plan", "Plan", "long_text", max_length="5001")], {}, "less than or equal to 5000"),
        (
            [row("when", "When", "date", min_date="2026-01-01", max_date="2025-01-01")],
            {},
            "min_date is after max_date",
        ),
        ([row("when", "When", "date", min_date="1850-01-01")], {}, "between 1900-01-01 and 2100-12-31"),
        ([row("name_only", "")], {}, "This field is required."),
        ([row("q", "Q", "file")], {}, "Select a valid choice."),
        (
            [row("country", "Country", "country")],
            {"denied_countries": "KP XX"},
            "&#x27;XX&#x27; is not an ISO 3166-1 country code.",
        ),
        ([row("title", "Title")], {"denied_countries": "KP"}, "needs the name of a country question"),
        (
            [row("home", "Home", "country"), row("work", "Work", "country")],
            {"denied_countries": "KP"},
            "needs the name of a country question",
        ),
        ([], {"require_orcid": True}, "needs the name of an ORCID iD question"),
        (
            [],
            {"allowed_email_domains": "https://example.edu"},
            "&#x27;https://example.edu&#x27; is not a domain name (like example.edu).",
        ),
        (
            [],
            {"allowed_email_domains": "a.edu", "denied_email_domains": "A.EDU"},
            "a.edu is both allowed and denied.",
        ),
        (
            [],
            {"auto_approve_on_screening": True},
            "Approving on screening needs at least one screening rule.",
        ),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(
    client, publisher, tier, rows, rules, message
):
    client.force_login(publisher)

    with tier_unchanged(tier):
        response = client.post(builder_url(tier), builder_data(rows, rules=rules))

    assert response.status_code == 400
    assert message in response.content.decode()


def test_at_most_twenty_questions(client, publisher, draft_tier):
    client.force_login(publisher)
    twenty = [row(f"q{n}", f"Question {n}") for n in range(20)]

    assert client.post(builder_url(draft_tier), builder_data(twenty)).status_code == 302
    assert len(Tier.objects.get(pk=draft_tier.pk).questions) == 20

    with tier_unchanged(draft_tier):
        response = client.post(
            builder_url(draft_tier), builder_data([*twenty, row("q20", "Question 20")], initial=20)
        )
    assert response.status_code == 400
    assert "Please submit at most 20 forms." in response.content.decode()


def test_a_forged_row_count_is_refused(client, publisher, draft_tier):
    client.force_login(publisher)

    with tier_unchanged(draft_tier):
        response = client.post(builder_url(draft_tier), builder_data([row("a", "A")], total=1000))

    assert response.status_code == 400


# --- Screening rules ------------------------------------------------------------------------


def test_a_publisher_sets_the_screening_rules_and_what_screening_may_decide(client, publisher, draft_tier):
    client.force_login(publisher)
    rows = [row("country", "Country", "country", required=True), row("orcid", "ORCID iD", "orcid")]
    rules = {
        "allowed_email_domains": "Example.EDU\r\n@ox.ac.uk, cam.ac.uk",
        "denied_email_domains": "mailinator.com",
        "denied_countries": "kp, ir",
        "require_orcid": True,
        "soft_rules": "email_domain_allow_list",
        "auto_reject_on_hard_rule": True,
        "auto_approve_on_screening": True,
    }

    response = client.post(builder_url(draft_tier), builder_data(rows, rules=rules))

    assert response.status_code == 302
    draft_tier.refresh_from_db()
    assert draft_tier.screening_rules == {
        "allowed_email_domains": ["example.edu", "ox.ac.uk", "cam.ac.uk"],
        "denied_email_domains": ["mailinator.com"],
        # The form's only country and ORCID questions are the ones checked.
        "denied_countries": ["KP", "IR"],
        "country_question": "country",
        "require_orcid": True,
        "orcid_question": "orcid",
        "soft_rules": ["email_domain_allow_list"],
    }
    assert draft_tier.auto_reject_on_hard_rule is True
    assert draft_tier.auto_approve_on_screening is True
    page = client.get(builder_url(draft_tier)).content.decode()
    assert "example.edu\nox.ac.uk\ncam.ac.uk</textarea>" in page
    assert 'value="KP IR"' in page


def test_removing_the_question_a_rule_reads_is_refused(client, publisher, draft_tier):
    client.force_login(publisher)
    client.post(
        builder_url(draft_tier),
        builder_data([row("country", "Country", "country")], rules={"denied_countries": "KP"}),
    )

    with tier_unchanged(draft_tier):
        response = client.post(
            builder_url(draft_tier),
            builder_data(
                [row("country", "Country", "country", DELETE=True)],
                initial=1,
                rules={"denied_countries": "KP"},
            ),
        )

    assert response.status_code == 400
    assert "Denying countries needs the name of a country question of this form." in response.content.decode()


# --- Changing the form never breaks earlier applications ------------------------------------


def test_an_application_made_with_the_first_form_still_renders_and_is_decided_after_the_form_changes(
    client, publisher, reviewer, researcher, tier
):
    application = submit(
        researcher, tier, answers={"orcid": "0000-0002-1825-0097", "team_size": "2-5", "ethics": "on"}
    )
    client.force_login(publisher)
    second_form = [
        row(
            "team_size", "How many people will use the weights?", "multiple_choice", choices="just me\na team"
        ),
        row("country", "Country of residence", "country", required=True),
    ]
    assert client.post(builder_url(tier), builder_data(second_form)).status_code == 302

    client.force_login(reviewer)
    review_page = client.get(reverse("review-application", args=[application.pk]))
    client.force_login(researcher)
    detail_page = client.get(reverse("application-detail", args=[application.pk]))
    apply_page = client.get(reverse("tier-apply", args=[tier.pk]))  # another open application is refused
    application_approve(application_id=application.pk, reviewer=reviewer)

    for page in (review_page, detail_page):
        assert page.status_code == 200
        content = page.content.decode()
        assert "<dt>ORCID iD</dt><dd>0000-0002-1825-0097</dd>" in content
        assert "<dt>Team size</dt><dd>2-5</dd>" in content
        assert "<dt>Ethics board approved</dt><dd>Yes</dd>" in content
        assert "How many people" not in content
    assert apply_page.status_code == 302
    application.refresh_from_db()
    assert application.status == Application.Status.APPROVED
    assert application.questions == V1_QUESTIONS
    assert Grant.objects.get(application=application).user == researcher


def test_new_applicants_answer_the_new_form(client, publisher, tier, researcher):
    client.force_login(publisher)
    client.post(
        builder_url(tier), builder_data([row("country", "Country of residence", "country", required=True)])
    )
    client.force_login(researcher)

    page = client.get(reverse("tier-apply", args=[tier.pk])).content.decode()

    assert '<option value="NO">Norway</option>' in page
    assert "Team size" not in page
    application = submit(researcher, Tier.objects.get(pk=tier.pk), answers={"country": "no"})
    assert application.answers == {"country": "NO"}
    assert application.questions == [
        {"name": "country", "label": "Country of residence", "type": "country", "required": True}
    ]
