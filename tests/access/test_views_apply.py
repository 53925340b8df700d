"""A researcher's side of a tier: read the license, apply, accept, follow and withdraw applications."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from access.models import Application, AuditEvent, Grant, LicenseAcceptance
from releases.models import Release, Tier
from tests.conftest import license_text_sha256
from tests.factories import LICENSE_TEXT, ReleaseFactory, TierFactory, UserFactory
from tests.scenes import reject, submit

QUESTIONS = [
    {"name": "orcid", "label": "ORCID iD", "type": "text", "required": True, "max_length": 19},
    {
        "name": "team_size",
        "label": "Team size",
        "type": "choice",
        "choices": ["1", "2-5", "6+"],
        "required": True,
    },
    {
        "name": "no_redistribution",
        "label": "I will not redistribute the weights",
        "type": "checkbox",
        "required": True,
    },
    {"name": "notes", "label": "Anything else", "type": "textarea"},
]


@pytest.fixture
def tier(release):
    return TierFactory(release=release, name="Researchers", gate=Tier.Gate.APPLICATION, questions=QUESTIONS)


def form_data(user, tier, **overrides) -> dict:
    data = {
        "affiliation": "University of Examples",
        "intended_use": "Red-teaming the model for jailbreaks.",
        "q_orcid": "0000-0002-1825-0097",
        "q_team_size": "2-5",
        "q_no_redistribution": "on",
        "q_notes": "",
        "typed_name": user.full_name,
        "text_sha256": license_text_sha256(tier),
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def row_counts() -> tuple[int, int, int, int]:
    return (
        Application.objects.count(),
        LicenseAcceptance.objects.count(),
        Grant.objects.count(),
        AuditEvent.objects.count(),
    )


def apply_url(tier) -> str:
    return reverse("tier-apply", kwargs={"tier_id": tier.pk})


# --- Reading the license before applying -----------------------------------------------------


def test_license_is_readable_anonymously_before_applying(client, tier):
    response = client.get(reverse("tier-detail", kwargs={"tier_id": tier.pk}))

    content = response.content.decode()
    assert response.status_code == 200
    assert LICENSE_TEXT in content
    assert f"sha256 of this text: {license_text_sha256(tier)}" in content
    assert "Sign in</a> to apply." in content


def test_anonymous_visitor_is_sent_to_sign_in_to_apply(client, tier):
    response = client.post(apply_url(tier), {})

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))
    assert Application.objects.count() == 0


def test_apply_form_shows_the_license_and_the_tiers_questions(client, tier, researcher):
    client.force_login(researcher)

    content = client.get(apply_url(tier)).content.decode()

    assert LICENSE_TEXT in content
    for label in (
        "Affiliation",
        "Intended use",
        "ORCID iD",
        "Team size",
        "I will not redistribute the weights",
    ):
        assert label in content
    assert '<option value="2-5">2-5</option>' in content
    assert 'name="q_no_redistribution"' in content
    assert f'value="{license_text_sha256(tier)}"' in content


# --- Submitting ------------------------------------------------------------------------------


def test_submitting_creates_the_application_and_its_license_acceptance(client, tier, researcher):
    client.force_login(researcher)

    response = client.post(apply_url(tier), form_data(researcher, tier, q_notes="  We are three people. "))

    application = Application.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("application-detail", kwargs={"application_id": application.pk})
    assert (application.user, application.tier, application.status) == (
        researcher,
        tier,
        Application.Status.PENDING,
    )
    assert application.affiliation == "University of Examples"
    assert application.answers == {
        "orcid": "0000-0002-1825-0097",
        "team_size": "2-5",
        "no_redistribution": True,
        "notes": "We are three people.",
    }
    acceptance = application.license_acceptance
    assert acceptance.typed_name == researcher.full_name
    assert acceptance.text_sha256 == license_text_sha256(tier)
    assert acceptance.ip_address == "127.0.0.1"
    assert Grant.objects.count() == 0

    page = client.get(response.url).content.decode()
    assert "Your application was submitted." in page
    assert "Pending review" in page
    assert f"Decision expected by {application.decision_due_at:%Y-%m-%d}" in page


def test_auto_approval_tier_grants_on_submit(client, release, researcher):
    tier = TierFactory(release=release, gate=Tier.Gate.APPLICATION, approval=Tier.Approval.AUTO)
    client.force_login(researcher)

    client.post(apply_url(tier), form_data(researcher, tier))

    assert Application.objects.get().status == Application.Status.APPROVED
    assert Grant.objects.get().user == researcher


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"affiliation": "x" * 201},
            "affiliation",
            "Ensure this value has at most 200 characters (it has 201).",
        ),
        ({"intended_use": "x" * 5001}, "intended_use", "Ensure this value has at most 5000 characters"),
        ({"q_orcid": "0000-0002-1825-0097-0"}, "q_orcid", "At most 19 characters."),
        ({"affiliation": ""}, "affiliation", "This field is required."),
        ({"q_orcid": None}, "q_orcid", "This question needs an answer."),
        ({"q_team_size": ""}, "q_team_size", "This question needs an answer."),
        ({"q_no_redistribution": None}, "q_no_redistribution", "This box must be ticked."),
        ({"q_team_size": "100+"}, "q_team_size", "Choose one of the listed options."),
        ({"typed_name": "x" * 201}, "typed_name", "Ensure this value has at most 200 characters"),
    ],
)
def test_bad_field_shows_its_error_and_creates_nothing(client, tier, researcher, overrides, field, message):
    client.force_login(researcher)
    before = row_counts()

    response = client.post(apply_url(tier), form_data(researcher, tier, **overrides))

    assert response.status_code == 400
    assert list(response.context["form"].errors) == [field]
    assert message in response.content.decode()
    assert row_counts() == before


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"typed_name": "Someone Else"}, "Type your full name exactly as on your account (Dana Researcher)."),
        ({"text_sha256": "0" * 64}, "The license changed while you were reading it."),
    ],
)
def test_wrong_typed_name_or_stale_license_is_refused(client, tier, researcher, overrides, message):
    client.force_login(researcher)
    before = row_counts()

    response = client.post(apply_url(tier), form_data(researcher, tier, **overrides))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert row_counts() == before


def test_unknown_tier_is_not_found(client, researcher, db):
    client.force_login(researcher)

    assert client.get(reverse("tier-detail", kwargs={"tier_id": 987654})).status_code == 404
    assert client.post(reverse("tier-apply", kwargs={"tier_id": 987654}), {}).status_code == 404
    assert client.post(reverse("tier-accept", kwargs={"tier_id": 987654}), {}).status_code == 404


def test_tier_of_a_draft_release_is_not_found(client, model, researcher):
    draft = ReleaseFactory(
        model=model, version="v2.0", status=Release.Status.DRAFT, published_at=None, revision=""
    )
    tier = TierFactory(release=draft, gate=Tier.Gate.APPLICATION)
    click_through = TierFactory(release=draft, gate=Tier.Gate.CLICK_THROUGH)
    client.force_login(researcher)
    before = row_counts()

    assert client.get(reverse("tier-detail", kwargs={"tier_id": tier.pk})).status_code == 404
    assert client.post(apply_url(tier), form_data(researcher, tier)).status_code == 404
    accept = {"typed_name": researcher.full_name, "text_sha256": license_text_sha256(click_through)}
    assert (
        client.post(reverse("tier-accept", kwargs={"tier_id": click_through.pk}), accept).status_code == 404
    )
    assert row_counts() == before


def refusal_after_post(client, tier, data):
    """Post the form; the refusal redirects to the tier's page and says why there."""
    response = client.post(apply_url(tier), data)
    assert response.status_code == 302
    assert response.url == reverse("tier-detail", kwargs={"tier_id": tier.pk})
    return client.get(response.url).content.decode()


def test_tier_that_is_not_open_refuses_applications(client, release, researcher):
    opens_at = timezone.now() + timedelta(days=5)
    tier = TierFactory(release=release, gate=Tier.Gate.APPLICATION, opens_at=opens_at)
    client.force_login(researcher)
    before = row_counts()

    page = refusal_after_post(client, tier, form_data(researcher, tier))

    assert f"This tier opens on {opens_at:%Y-%m-%d %H:%M} UTC; applications open then." in page
    assert row_counts() == before


def test_second_application_while_one_is_pending_is_refused(client, tier, researcher):
    first = submit(researcher, tier, answers={"orcid": "1", "team_size": "1", "no_redistribution": True})
    client.force_login(researcher)
    before = row_counts()

    page = refusal_after_post(client, tier, form_data(researcher, tier))

    assert "You already have an application open for this tier." in page
    assert row_counts() == before
    assert list(Application.objects.all()) == [first]


def test_unverified_account_cannot_apply(client, tier):
    unverified = UserFactory(full_name="Una Verified", verified=False)
    client.force_login(unverified)

    page = refusal_after_post(client, tier, form_data(unverified, tier))

    assert "Verify your e-mail address before applying." in page
    assert row_counts() == (0, 0, 0, 0)


def test_application_tier_does_not_grant_on_license_acceptance_alone(client, tier, researcher):
    client.force_login(researcher)
    data = {"typed_name": researcher.full_name, "text_sha256": license_text_sha256(tier)}

    response = client.post(reverse("tier-accept", kwargs={"tier_id": tier.pk}), data, follow=True)

    assert "Access to this tier is not granted by accepting its license alone." in response.content.decode()
    assert row_counts() == (0, 0, 0, 0)


# --- Click-through ---------------------------------------------------------------------------


def test_accepting_a_click_through_license_grants_access(client, click_through_tier, researcher):
    client.force_login(researcher)
    detail = client.get(reverse("tier-detail", kwargs={"tier_id": click_through_tier.pk})).content.decode()
    assert "I accept the license" in detail

    response = client.post(
        reverse("tier-accept", kwargs={"tier_id": click_through_tier.pk}),
        {"typed_name": researcher.full_name, "text_sha256": license_text_sha256(click_through_tier)},
    )

    assert response.status_code == 302
    assert response.url == reverse("tier-files", kwargs={"tier_id": click_through_tier.pk})
    grant = Grant.objects.get(user=researcher, tier=click_through_tier)
    assert grant.status == Grant.Status.ACTIVE
    assert grant.license_acceptance.typed_name == researcher.full_name
    assert grant.license_acceptance.ip_address == "127.0.0.1"
    assert (
        "You accepted the license; the files are yours to download."
        in client.get(response.url).content.decode()
    )


def test_click_through_with_the_wrong_name_grants_nothing(client, click_through_tier, researcher):
    client.force_login(researcher)

    response = client.post(
        reverse("tier-accept", kwargs={"tier_id": click_through_tier.pk}),
        {"typed_name": "Not Me", "text_sha256": license_text_sha256(click_through_tier)},
        follow=True,
    )

    assert "Type your full name exactly as on your account (Dana Researcher)." in response.content.decode()
    assert row_counts() == (0, 0, 0, 0)


# --- Following one's applications ------------------------------------------------------------


def test_my_applications_lists_each_with_its_history(client, tier, researcher, reviewer, outsider):
    answers = {"orcid": "1", "team_size": "1", "no_redistribution": True}
    reject(submit(researcher, tier, answers=answers), reviewer, "Tell us more about your safety plan.")
    pending = submit(researcher, tier, answers=answers)
    submit(outsider, tier, answers=answers, affiliation="Other Lab")
    client.force_login(researcher)

    content = client.get(reverse("my-applications")).content.decode()

    assert content.count('<section class="application">') == 2
    assert "Reason: Tell us more about your safety plan." in content
    assert f"Decision expected by {pending.decision_due_at:%Y-%m-%d}." in content
    assert content.count("· Submitted</li>") == 2
    assert content.count("· Rejected</li>") == 1
    assert "Other Lab" not in content


def test_application_detail_shows_answers_acceptance_and_history(client, tier, researcher):
    application = submit(
        researcher, tier, answers={"orcid": "0000-0001", "team_size": "6+", "no_redistribution": True}
    )
    client.force_login(researcher)

    content = client.get(
        reverse("application-detail", kwargs={"application_id": application.pk})
    ).content.decode()

    assert "<dt>ORCID iD</dt><dd>0000-0001</dd>" in content
    assert "<dt>Team size</dt><dd>6+</dd>" in content
    assert f"by “{researcher.full_name}”" in content
    assert "· Submitted</li>" in content


def test_another_users_application_is_not_found(client, tier, researcher, outsider):
    application = submit(
        researcher, tier, answers={"orcid": "1", "team_size": "1", "no_redistribution": True}
    )
    client.force_login(outsider)

    assert (
        client.get(reverse("application-detail", kwargs={"application_id": application.pk})).status_code
        == 404
    )
    withdraw = client.post(reverse("application-withdraw", kwargs={"application_id": application.pk}))
    assert withdraw.status_code == 404
    application.refresh_from_db()
    assert application.status == Application.Status.PENDING


def test_withdrawing_a_pending_application(client, tier, researcher):
    application = submit(
        researcher, tier, answers={"orcid": "1", "team_size": "1", "no_redistribution": True}
    )
    client.force_login(researcher)
    url = reverse("application-withdraw", kwargs={"application_id": application.pk})

    assert client.get(url).status_code == 405
    response = client.post(url, follow=True)

    application.refresh_from_db()
    assert application.status == Application.Status.WITHDRAWN
    content = response.content.decode()
    assert "Your application was withdrawn." in content
    assert "· Withdrawn</li>" in content

    again = client.post(url, follow=True).content.decode()
    assert "This application is already withdrawn." in again
    assert AuditEvent.objects.filter(action="application.withdrawn").count() == 1
