"""The publisher workspace pages, for owner, publisher, reviewer, researcher and outsider."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse
from django.utils import timezone

from access.models import AuditEvent, License, LicenseVersion, User
from releases.models import Artifact, Membership, Model, OrganizationInvitation, Release, Tier
from tests.factories import (
    ArtifactFactory,
    LicenseFactory,
    MembershipFactory,
    ModelFactory,
    ReleaseFactory,
    TierFactory,
    UserFactory,
)
from tests.helpers import audit_actions, last_audit_id

Role = Membership.Role
PASSWORD = "a long enough passphrase 42"
# Measured: session, user, the organization, the owner check, the page's own reads (at most four: the
# overview's models, their releases, licenses and member counts) and the header's "Publish" link; the
# same whatever the number of rows.
LIST_PAGE_MAX_QUERIES = 9


# --- Scene ----------------------------------------------------------------------------------


@pytest.fixture
def auditor(organization):
    user = UserFactory(email="ada@acme.example", full_name="Ada Auditor")
    MembershipFactory(organization=organization, user=user, role=Role.AUDITOR)
    return user


@pytest.fixture
def weights(draft):
    return ArtifactFactory(release=draft, path="weights/model-00001.safetensors")


@pytest.fixture
def config_file(draft):
    return ArtifactFactory(release=draft, path="config.json")


@pytest.fixture
def research_license(organization):
    return LicenseFactory(organization=organization, name="Acme research license")


@pytest.fixture
def draft_tier(draft, weights, research_license):
    return TierFactory(
        release=draft,
        name="Red team",
        gate=Tier.Gate.INVITATION,
        license=research_license,
        opens_at=timezone.now() + timedelta(days=3),
        artifacts=[weights],
    )


@pytest.fixture
def invitation(organization, owner):
    return OrganizationInvitation.objects.create(
        organization=organization, email="frank@partner.example", role=Role.PUBLISHER, invited_by=owner
    )


def text_of(response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def url(name: str, **kwargs) -> str:
    return reverse(name, kwargs=kwargs)


def state() -> tuple:
    """Every row a workspace page could write."""
    return (
        sorted(Membership.objects.values_list("organization_id", "user_id", "role")),
        sorted(OrganizationInvitation.objects.values_list("pk", "email", "role", "accepted_at")),
        sorted(Model.objects.values_list("pk", "slug", "name", "summary", "card")),
        sorted(Release.objects.values_list("pk", "version", "status", "notes")),
        sorted(Tier.objects.values_list("pk", "name", "gate", "license_id", "opens_at", "position")),
        sorted(Tier.artifacts.through.objects.values_list("tier_id", "artifact_id")),
        sorted(License.objects.values_list("pk", "name")),
        sorted(LicenseVersion.objects.values_list("pk", "number", "text_sha256", "requires_reacceptance")),
        AuditEvent.objects.count(),
    )


@contextmanager
def nothing_changes() -> Iterator[None]:
    before = state()
    yield
    assert state() == before


# --- Who may open what ----------------------------------------------------------------------


def pages(organization, model, draft, draft_tier, research_license, reviewer, invitation) -> dict[str, str]:
    slug = organization.slug
    membership = Membership.objects.get(user=reviewer, organization=organization)
    return {
        "overview": url("publish-organization", org_slug=slug),
        "members": url("publish-members", org_slug=slug),
        "member-role": url("publish-member-role", org_slug=slug, membership_id=membership.pk),
        "member-remove": url("publish-member-remove", org_slug=slug, membership_id=membership.pk),
        "invitation-withdraw": url("publish-invitation-withdraw", org_slug=slug, invitation_id=invitation.pk),
        "models": url("publish-models", org_slug=slug),
        "model-new": url("publish-model-new", org_slug=slug),
        "model": url("publish-model", org_slug=slug, model_id=model.pk),
        "release-new": url("publish-release-new", org_slug=slug, model_id=model.pk),
        "release": url("publish-release", org_slug=slug, release_id=draft.pk),
        "release-publish": url("publish-release-publish", org_slug=slug, release_id=draft.pk),
        "tier-new": url("publish-tier-new", org_slug=slug, release_id=draft.pk),
        "tier": url("publish-tier", org_slug=slug, tier_id=draft_tier.pk),
        "licenses": url("publish-licenses", org_slug=slug),
        "license": url("publish-license", org_slug=slug, license_id=research_license.pk),
    }


GET_PAGES = [
    "overview",
    "members",
    "models",
    "model-new",
    "model",
    "release-new",
    "release",
    "tier-new",
    "tier",
    "licenses",
    "license",
]
POST_ONLY = ["member-role", "member-remove", "invitation-withdraw", "release-publish"]
# What a POST would carry if it were allowed: enough to change something.
POST_DATA = {
    "members": {"email": "mallory@evil.example", "role": "owner"},
    "member-role": {"role": "owner"},
    "model-new": {"slug": "stolen", "name": "Stolen"},
    "model": {"name": "Defaced", "summary": "", "card": "defaced"},
    "release-new": {"version": "v9"},
    "licenses": {"name": "Evil", "text": "Anything goes."},
    "license": {"text": "Anything goes.", "requires_reacceptance": "on"},
}


@pytest.fixture
def workspace(organization, model, draft, draft_tier, research_license, reviewer, invitation):
    return pages(organization, model, draft, draft_tier, research_license, reviewer, invitation)


@pytest.mark.parametrize("person", ["owner", "publisher"])
@pytest.mark.parametrize("page", GET_PAGES)
def test_owner_and_publisher_open_every_page(client, request, workspace, person, page):
    client.force_login(request.getfixturevalue(person))

    assert client.get(workspace[page]).status_code == 200


@pytest.mark.parametrize("person", ["reviewer", "auditor", "researcher", "outsider"])
@pytest.mark.parametrize("page", GET_PAGES + POST_ONLY)
def test_anyone_else_gets_404_for_every_page_and_post(client, request, workspace, person, page):
    client.force_login(request.getfixturevalue(person))

    with nothing_changes():
        if page not in POST_ONLY:
            assert client.get(workspace[page]).status_code == 404
        assert client.post(workspace[page], POST_DATA.get(page, {})).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, workspace):
    for page in GET_PAGES:
        response = client.get(workspace[page])
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))


def test_unknown_ids_and_ids_of_another_organization_are_404(client, owner, outsider, organization):
    foreign_release = ReleaseFactory(model=ModelFactory(organization=outsider.memberships.get().organization))
    foreign_license = LicenseFactory(organization=foreign_release.model.organization)
    foreign_tier = TierFactory(release=foreign_release)
    client.force_login(owner)
    slug = organization.slug

    for address in [
        url("publish-release", org_slug=slug, release_id=foreign_release.pk),
        url("publish-model", org_slug=slug, model_id=foreign_release.model.pk),
        url("publish-license", org_slug=slug, license_id=foreign_license.pk),
        url("publish-tier", org_slug=slug, tier_id=foreign_tier.pk),
        url("publish-release", org_slug=slug, release_id=987654),
        url("publish-organization", org_slug="no-such-org"),
    ]:
        assert client.get(address).status_code == 404, address


def test_csrf_is_enforced_on_workspace_posts(organization, owner):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)

    with nothing_changes():
        response = strict.post(
            url("publish-model-new", org_slug=organization.slug), {"slug": "x", "name": "X"}
        )

    assert response.status_code == 403


# --- Home and header ------------------------------------------------------------------------


def test_home_lists_my_organizations(client, owner, outsider):
    second = outsider.memberships.get().organization
    MembershipFactory(organization=second, user=owner, role=Role.PUBLISHER)
    client.force_login(owner)

    response = client.get(url("publish-home"))

    assert response.status_code == 200
    assert 'href="/publish/acme/"' in response.content.decode()
    assert f'href="/publish/{second.slug}/"' in response.content.decode()


def test_home_with_one_organization_goes_straight_to_it(client, publisher):
    client.force_login(publisher)

    response = client.get(url("publish-home"))

    assert response.status_code == 302
    assert response["Location"] == "/publish/acme/"


def test_home_of_a_reviewer_says_there_is_nothing_to_publish(client, reviewer):
    client.force_login(reviewer)

    response = client.get(url("publish-home"))

    assert "You do not publish for any organization." in text_of(response)


@pytest.mark.parametrize(
    ("person", "shown"), [("owner", True), ("publisher", True), ("reviewer", False), ("researcher", False)]
)
def test_the_header_links_to_the_workspace_for_publishing_members_only(
    client, request, release, person, shown
):
    client.force_login(request.getfixturevalue(person))

    response = client.get(reverse("catalogue"))

    assert ('id="publish-link"' in response.content.decode()) is shown


def test_anonymous_header_asks_nothing_about_organizations(client, release, django_assert_num_queries):
    # The catalogue's count and page: no session, no user, no membership query.
    with django_assert_num_queries(2):
        response = client.get(reverse("catalogue"))

    assert 'id="publish-link"' not in response.content.decode()


# --- Members --------------------------------------------------------------------------------


def test_owner_invites_by_email_and_the_invitee_joins_by_the_link(client, organization, owner, emails):
    frank = UserFactory(email="frank@partner.example", full_name="Frank Partner")
    client.force_login(owner)

    with emails.on_commit():
        response = client.post(
            url("publish-members", org_slug="acme"), {"email": "Frank@Partner.example", "role": "publisher"}
        )

    assert response.status_code == 302
    [message] = emails.outbox
    link = re.search(r"http://127\.0\.0\.1:8000(/publish/invitations/\d+/)", message.body).group(1)
    assert "frank@partner.example as publisher" in text_of(
        client.get(url("publish-members", org_slug="acme"))
    )

    client.force_login(frank)
    page = client.get(link)
    assert page.status_code == 200
    assert "Alice Owner invites frank@partner.example to Acme AI as publisher" in text_of(page)
    joined = client.post(link)

    assert joined.status_code == 302
    assert joined["Location"] == "/publish/acme/"
    assert Membership.objects.get(user=frank, organization=organization).role == Role.PUBLISHER
    assert client.get("/publish/acme/").status_code == 200


def test_a_new_person_signs_up_and_becomes_a_member_when_their_email_is_verified(
    client, organization, owner, emails
):
    client.force_login(owner)
    with emails.on_commit():
        client.post(
            url("publish-members", org_slug="acme"), {"email": "nora@partner.example", "role": "reviewer"}
        )
    client.logout()

    signup = client.post(
        "/accounts/signup/",
        {
            "email": "nora@partner.example",
            "full_name": "Nora New",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert signup.status_code == 302
    nora = User.objects.get(email="nora@partner.example")
    assert not Membership.objects.filter(user=nora).exists()
    confirm = re.search(r"(/accounts/confirm-email/\S+/)", emails.outbox[-1].body).group(1)

    client.post(confirm)

    assert EmailAddress.objects.get(user=nora).verified
    assert Membership.objects.get(user=nora, organization=organization).role == Role.REVIEWER
    assert OrganizationInvitation.objects.get(email="nora@partner.example").accepted_at is not None
    assert AuditEvent.objects.filter(action="organization.member_joined", actor=nora).count() == 1


def test_an_invitation_link_is_404_for_anyone_but_the_invited_address(client, invitation, researcher, owner):
    for person in (researcher, owner):
        client.force_login(person)
        with nothing_changes():
            assert client.get(url("publish-invitation", invitation_id=invitation.pk)).status_code == 404
            assert client.post(url("publish-invitation", invitation_id=invitation.pk)).status_code == 404


def test_owner_changes_a_role_and_removes_a_member(client, organization, owner, reviewer):
    membership = Membership.objects.get(user=reviewer)
    client.force_login(owner)

    client.post(
        url("publish-member-role", org_slug="acme", membership_id=membership.pk), {"role": "publisher"}
    )
    assert Membership.objects.get(pk=membership.pk).role == Role.PUBLISHER

    response = client.post(
        url("publish-member-remove", org_slug="acme", membership_id=membership.pk), follow=True
    )
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert "bob@acme.example is no longer a member." in text_of(response)


def test_the_last_owner_is_told_why_they_cannot_step_down(client, organization, owner):
    membership = Membership.objects.get(user=owner)
    client.force_login(owner)

    with nothing_changes():
        demote = client.post(
            url("publish-member-role", org_slug="acme", membership_id=membership.pk),
            {"role": "reviewer"},
            follow=True,
        )
        remove = client.post(
            url("publish-member-remove", org_slug="acme", membership_id=membership.pk), follow=True
        )

    for response in (demote, remove):
        assert "An organization needs at least one owner: make someone else owner first." in text_of(response)


def test_a_publisher_sees_the_members_but_may_not_change_them(
    client, organization, publisher, reviewer, invitation
):
    membership = Membership.objects.get(user=reviewer)
    client.force_login(publisher)

    page = client.get(url("publish-members", org_slug="acme"))
    with nothing_changes():
        refused = [
            client.post(url("publish-members", org_slug="acme"), {"email": "x@example.org", "role": "owner"}),
            client.post(
                url("publish-member-role", org_slug="acme", membership_id=membership.pk), {"role": "owner"}
            ),
            client.post(url("publish-member-remove", org_slug="acme", membership_id=membership.pk)),
            client.post(url("publish-invitation-withdraw", org_slug="acme", invitation_id=invitation.pk)),
        ]

    assert page.status_code == 200
    assert "bob@acme.example" in page.content.decode()
    assert "Change role" not in page.content.decode()
    assert "Send the invitation" not in page.content.decode()
    assert [response.status_code for response in refused] == [403, 403, 403, 403]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not-an-address", "role": "reviewer"}, "Enter a valid email address."),
        (
            {"email": "bob@acme.example", "role": "reviewer"},
            "bob@acme.example is already a member of Acme AI.",
        ),
        ({"email": "x@example.org", "role": "emperor"}, "Select a valid choice."),
        ({"email": "x" * 250 + "@example.org", "role": "reviewer"}, "at most 254 characters"),
    ],
)
def test_a_bad_invitation_is_refused_with_a_message(client, owner, reviewer, mailoutbox, data, message):
    client.force_login(owner)

    with nothing_changes():
        response = client.post(url("publish-members", org_slug="acme"), data)

    assert response.status_code == 400
    assert message in text_of(response)
    assert mailoutbox == []


def test_owner_withdraws_an_invitation(client, owner, invitation):
    client.force_login(owner)

    client.post(url("publish-invitation-withdraw", org_slug="acme", invitation_id=invitation.pk))

    assert not OrganizationInvitation.objects.exists()


# --- Models ---------------------------------------------------------------------------------


def test_publisher_creates_a_model_with_a_markdown_card(client, organization, publisher):
    client.force_login(publisher)

    response = client.post(
        url("publish-model-new", org_slug="acme"),
        {"slug": "tiny-7b", "name": "Tiny 7B", "summary": "Small.", "card": "# Tiny\n\nA **small** model."},
    )

    model = Model.objects.get(organization=organization, slug="tiny-7b")
    assert response["Location"] == url("publish-model", org_slug="acme", model_id=model.pk)
    assert (model.name, model.summary, model.card) == ("Tiny 7B", "Small.", "# Tiny\n\nA **small** model.")
    assert AuditEvent.objects.filter(action="model.created", actor=publisher).count() == 1
    page = client.get(response["Location"]).content.decode()
    assert "<h1>Tiny</h1>" in page and "<strong>small</strong>" in page


def test_the_preview_renders_the_card_sanitised_and_saves_nothing(client, publisher, model):
    client.force_login(publisher)
    card = (
        '# Hello\n\n<script>alert("x")</script>\n\n'
        '[click](javascript:alert(1)) <img src=x onerror="alert(2)">'
    )

    with nothing_changes():
        response = client.post(
            url("publish-model", org_slug="acme", model_id=model.pk),
            {"name": model.name, "summary": "", "card": card, "preview": "1"},
        )

    preview = re.search(
        r'<section class="card" id="card-preview">(.*?)</section>', response.content.decode(), re.S
    )
    assert response.status_code == 200
    assert "<h1>Hello</h1>" in preview.group(1)
    assert "<script" not in preview.group(1)
    assert "javascript:" not in preview.group(1)
    assert "onerror" not in preview.group(1)


def test_publisher_edits_a_model_card(client, publisher, model):
    client.force_login(publisher)
    since = last_audit_id()

    client.post(
        url("publish-model", org_slug="acme", model_id=model.pk),
        {"name": "Llama Lite 2", "summary": "Now smaller.", "card": "New card."},
    )

    model.refresh_from_db()
    assert (model.slug, model.name, model.summary, model.card) == (
        "llama-lite",
        "Llama Lite 2",
        "Now smaller.",
        "New card.",
    )
    assert audit_actions(since) == ["model.updated"]
    assert AuditEvent.objects.get(pk__gt=since).payload == {"changed": ["name", "summary", "card"]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"slug": "Tiny 7B", "name": "Tiny"}, "Use 1 to 63 lower-case letters"),
        ({"slug": "-tiny", "name": "Tiny"}, "Use 1 to 63 lower-case letters"),
        ({"slug": "t" * 64, "name": "Tiny"}, "at most 63 characters"),
        ({"slug": "llama-lite", "name": "Again"}, "acme/llama-lite already exists; choose another slug."),
        ({"slug": "tiny", "name": ""}, "This field is required."),
        ({"slug": "tiny", "name": "n" * 201}, "at most 200 characters"),
        ({"slug": "tiny", "name": "Tiny", "summary": "s" * 301}, "at most 300 characters"),
        ({"slug": "tiny", "name": "Tiny", "card": "c" * 100_001}, "at most 100000 characters"),
    ],
)
def test_bad_model_input_is_refused_with_a_clear_message(client, publisher, model, data, message):
    client.force_login(publisher)

    with nothing_changes():
        response = client.post(url("publish-model-new", org_slug="acme"), data)

    assert response.status_code == 400
    assert message in text_of(response)


# --- Releases -------------------------------------------------------------------------------


def test_publisher_creates_a_draft_release(client, publisher, model):
    client.force_login(publisher)

    response = client.post(
        url("publish-release-new", org_slug="acme", model_id=model.pk), {"version": "v3.0", "notes": "First."}
    )

    release = Release.objects.get(model=model, version="v3.0")
    assert release.status == Release.Status.DRAFT
    assert response["Location"] == url("publish-release", org_slug="acme", release_id=release.pk)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("v1.0", "acme/llama-lite already has a release v1.0."),
        ("V 2", "Use 1 to 63 lower-case letters"),
        ("../v2", "Use 1 to 63 lower-case letters"),
        ("v" * 64, "at most 63 characters"),
    ],
)
def test_bad_release_versions_are_refused(client, publisher, release, version, message):
    client.force_login(publisher)

    with nothing_changes():
        response = client.post(
            url("publish-release-new", org_slug="acme", model_id=release.model.pk), {"version": version}
        )

    assert response.status_code == 400
    assert message in text_of(response)


def test_the_release_page_shows_each_file_with_its_status_and_links_to_the_upload_page(
    client, publisher, draft, weights, draft_tier
):
    failed = ArtifactFactory(
        release=draft,
        path="bad.bin",
        status=Artifact.Status.FAILED,
        size=None,
        sha256="",
        failure_reason="sha256 mismatch",
    )
    client.force_login(publisher)

    response = client.get(url("publish-release", org_slug="acme", release_id=draft.pk))

    content = response.content.decode()
    row = re.search(rf'<tr data-artifact="{failed.pk}">(.*?)</tr>', content, re.S).group(1)
    assert "Failed" in row and "sha256 mismatch" in row
    assert "weights/model-00001.safetensors" in content and weights.sha256 in content
    assert f'href="/publish/acme/releases/{draft.pk}/upload/"' in content
    assert 'id="publish-button"' in content
    assert "Red team" in content


def test_publishing_freezes_the_release_and_the_page_turns_read_only(
    client, publisher, draft, weights, draft_tier
):
    client.force_login(publisher)

    response = client.post(url("publish-release-publish", org_slug="acme", release_id=draft.pk), follow=True)

    draft.refresh_from_db()
    assert draft.status == Release.Status.PUBLISHED
    assert len(draft.revision) == 40
    content = response.content.decode()
    assert 'id="read-only"' in content
    assert 'id="publish-button"' not in content
    assert 'id="upload-link"' not in content
    assert url("publish-tier", org_slug="acme", tier_id=draft_tier.pk) not in content
    assert url("publish-tier-new", org_slug="acme", release_id=draft.pk) not in content


def test_a_published_release_refuses_every_change(client, publisher, release, research_license):
    tier = TierFactory(release=release, opens_at=timezone.now() + timedelta(days=5), license=research_license)
    artifact = tier.artifacts.get()
    client.force_login(publisher)
    tier_data = tier_form(research_license, artifact, name="Changed")

    with nothing_changes():
        responses = [
            client.post(url("publish-release-publish", org_slug="acme", release_id=release.pk), follow=True),
            client.post(
                url("publish-tier-new", org_slug="acme", release_id=release.pk), tier_data, follow=True
            ),
            client.post(url("publish-tier", org_slug="acme", tier_id=tier.pk), tier_data, follow=True),
            client.get(url("publish-tier", org_slug="acme", tier_id=tier.pk), follow=True),
        ]

    assert "This release is already published." in text_of(responses[0])
    for response in responses[1:]:
        assert "This release is published: its tiers and files cannot change." in text_of(response)


def test_publishing_a_release_without_files_says_why(client, publisher, draft):
    client.force_login(publisher)

    with nothing_changes():
        response = client.post(
            url("publish-release-publish", org_slug="acme", release_id=draft.pk), follow=True
        )

    assert "A release needs at least one file before it can be published." in text_of(response)


# --- Tiers ----------------------------------------------------------------------------------


def tier_form(license, *artifacts, **overrides) -> dict:
    data = {
        "name": "Researchers",
        "description": "Vetted researchers.",
        "gate": "application",
        "approval": "manual",
        "license": license.pk if license else "",
        "position": 1,
        "selection": "files",
        "artifacts": [artifact.pk for artifact in artifacts],
        "artifact_patterns": "",
        "opening": "relative",
        "opens_after_days": 30,
        "opens_after_hours": 0,
        "opens_at": "",
        "closes_at": "",
        "grant_duration_days": 365,
        "review_days": 10,
        "approvals_required": 1,
    }
    data.update(overrides)
    return data


def test_publisher_adds_a_tier_with_chosen_files_opening_30_days_after_day_zero(
    client, publisher, draft, weights, config_file, research_license, draft_tier
):
    client.force_login(publisher)

    response = client.post(
        url("publish-tier-new", org_slug="acme", release_id=draft.pk),
        tier_form(research_license, weights, config_file, approvals_required=2),
    )

    assert response.status_code == 302, text_of(response)
    tier = Tier.objects.get(release=draft, name="Researchers")
    assert tier.approvals_required == 2
    assert (tier.gate, tier.approval, tier.license, tier.position) == (
        "application",
        "manual",
        research_license,
        1,
    )
    assert (tier.grant_duration_days, tier.review_days, tier.description) == (365, 10, "Vetted researchers.")
    assert tier.opens_after == timedelta(days=30)
    assert set(tier.artifacts.all()) == {weights, config_file}
    assert tier.artifact_patterns == []
    assert AuditEvent.objects.filter(action="tier.created", target_id=tier.pk, actor=publisher).exists()


def test_publisher_adds_a_tier_by_path_pattern_on_a_date_with_a_closing_date(
    client, publisher, draft, weights, config_file, research_license
):
    client.force_login(publisher)
    opens = (timezone.now() + timedelta(days=10)).replace(microsecond=0, second=0)
    closes = opens + timedelta(days=60)

    response = client.post(
        url("publish-tier-new", org_slug="acme", release_id=draft.pk),
        tier_form(
            research_license,
            selection="patterns",
            artifact_patterns="weights/*.safetensors\r\n\r\n",
            opening="date",
            opens_at=opens.strftime("%Y-%m-%dT%H:%M"),
            closes_at=closes.strftime("%Y-%m-%dT%H:%M"),
            gate="click_through",
            grant_duration_days="",
        ),
    )

    assert response.status_code == 302, text_of(response)
    tier = Tier.objects.get(release=draft, name="Researchers")
    assert (tier.opens_at, tier.opens_after, tier.closes_at) == (opens, None, closes)
    assert tier.artifact_patterns == ["weights/*.safetensors"]
    assert list(tier.artifacts.all()) == [weights]
    assert tier.grant_duration_days is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"license": None}, "A gated tier needs a license; create one under Licenses first."),
        ({"artifacts": []}, "Tick at least one file."),
        ({"selection": "patterns", "artifact_patterns": "  "}, "Give at least one pattern."),
        (
            {"selection": "patterns", "artifact_patterns": "*.gguf"},
            "The pattern '*.gguf' matches no file of this release.",
        ),
        ({"opening": "date", "opens_at": ""}, "When does the tier open?"),
        ({"opens_after_days": ""}, "How many days after day zero does the tier open?"),
        ({"opens_after_days": -1}, "greater than or equal to 0"),
        ({"opening": "date", "opens_at": "tomorrow"}, "Enter a valid date/time."),
        ({"name": "n" * 121}, "at most 120 characters"),
        ({"gate": "secret_handshake"}, "Select a valid choice."),
        ({"review_days": 0}, "greater than or equal to 1"),
        ({"approvals_required": 6}, "less than or equal to 5"),
        ({"opens_after_days": 1}, "before 'Red team'"),
    ],
)
def test_bad_tier_input_is_refused_with_a_clear_message(
    client, publisher, draft, weights, research_license, draft_tier, overrides, message
):
    client.force_login(publisher)

    license = overrides.pop("license", research_license)

    with nothing_changes():
        response = client.post(
            url("publish-tier-new", org_slug="acme", release_id=draft.pk),
            tier_form(license, weights, **overrides),
        )

    assert response.status_code == 400
    assert message in text_of(response)


def test_a_license_of_another_organization_cannot_be_chosen(client, publisher, draft, weights, outsider):
    foreign = LicenseFactory(organization=outsider.memberships.get().organization)
    client.force_login(publisher)

    with nothing_changes():
        response = client.post(
            url("publish-tier-new", org_slug="acme", release_id=draft.pk), tier_form(foreign, weights)
        )

    assert response.status_code == 400
    assert "Select a valid choice." in text_of(response)


def test_a_file_of_another_release_cannot_be_chosen(client, publisher, draft, research_license, release):
    other_file = ArtifactFactory(release=release)
    client.force_login(publisher)

    with nothing_changes():
        response = client.post(
            url("publish-tier-new", org_slug="acme", release_id=draft.pk),
            tier_form(research_license, other_file),
        )

    assert response.status_code == 400


def test_publisher_edits_a_tiers_terms_and_plan(
    client, publisher, draft, weights, config_file, research_license, draft_tier
):
    client.force_login(publisher)
    page = client.get(url("publish-tier", org_slug="acme", tier_id=draft_tier.pk))
    assert 'value="Red team"' in page.content.decode()
    since = last_audit_id()

    response = client.post(
        url("publish-tier", org_slug="acme", tier_id=draft_tier.pk),
        tier_form(
            research_license,
            weights,
            config_file,
            name="Red team (extended)",
            gate="invitation",
            position=0,
            opens_after_days=2,
            opens_after_hours=6,
        ),
    )

    assert response.status_code == 302, text_of(response)
    draft_tier.refresh_from_db()
    assert draft_tier.name == "Red team (extended)"
    assert draft_tier.opens_after == timedelta(days=2, hours=6)
    assert set(draft_tier.artifacts.all()) == {weights, config_file}
    assert audit_actions(since) == ["tier.terms_changed", "tier.updated"]
    terms = AuditEvent.objects.get(pk__gt=since, action="tier.terms_changed").payload
    # The factory's tier already lasted 365 days; only what changed is recorded.
    assert terms == {"description": "Vetted researchers.", "name": "Red team (extended)", "review_days": 10}


def test_an_illegal_edit_changes_neither_terms_nor_plan(
    client, publisher, draft, weights, research_license, draft_tier
):
    TierFactory(
        release=draft,
        name="Public",
        gate=Tier.Gate.OPEN,
        license=None,
        position=5,
        opens_at=timezone.now() + timedelta(days=4),
        artifacts=[weights],
    )
    client.force_login(publisher)

    with nothing_changes():
        # Renamed, and moved after the public tier's date while staying before it in the plan.
        response = client.post(
            url("publish-tier", org_slug="acme", tier_id=draft_tier.pk),
            tier_form(
                research_license, weights, name="Renamed", position=0, opens_after_days=9, gate="invitation"
            ),
        )

    assert response.status_code == 400
    assert "Tier 'Public' would open on" in text_of(response)


# --- Licenses -------------------------------------------------------------------------------


def test_publisher_creates_a_license_and_publishes_a_new_version(client, organization, publisher):
    client.force_login(publisher)

    created = client.post(
        url("publish-licenses", org_slug="acme"),
        {"name": "Community license", "text": "Be nice.\r\nNo harm.\r\n"},
    )
    license = License.objects.get(organization=organization, name="Community license")
    assert created["Location"] == url("publish-license", org_slug="acme", license_id=license.pk)
    assert license.current_version.text == "Be nice.\nNo harm.\n"
    assert license.current_version.text_sha256 == LicenseVersion.hash_text("Be nice.\nNo harm.\n")

    client.post(
        created["Location"],
        {"text": "Be nice.\nNo harm.\nNo redistribution.\n", "requires_reacceptance": "on"},
    )

    versions = list(license.versions.order_by("number").values_list("number", "requires_reacceptance"))
    assert versions == [(1, False), (2, True)]
    page = client.get(created["Location"])
    assert LicenseVersion.hash_text("Be nice.\nNo harm.\nNo redistribution.\n") in page.content.decode()
    assert "required" in text_of(page)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "text": "Text."}, "This field is required."),
        ({"name": "L", "text": ""}, "This field is required."),
        ({"name": "L", "text": "   "}, "A license needs a text."),
        ({"name": "n" * 201, "text": "Text."}, "at most 200 characters"),
        ({"name": "L", "text": "t" * 100_001}, "at most 100000 characters"),
    ],
)
def test_bad_license_input_is_refused(client, publisher, data, message):
    client.force_login(publisher)

    with nothing_changes():
        response = client.post(url("publish-licenses", org_slug="acme"), data)

    assert response.status_code == 400
    assert message in text_of(response)


def test_publishing_the_same_text_again_is_refused(client, publisher, research_license):
    client.force_login(publisher)

    with nothing_changes():
        response = client.post(
            url("publish-license", org_slug="acme", license_id=research_license.pk),
            {"text": research_license.current_version.text},
        )

    assert response.status_code == 400
    assert "This text is the same as version 1; change it to publish a new version." in text_of(response)


# --- Query counts ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["members", "models", "licenses", "release", "overview"])
def test_list_pages_query_count_stays_flat(
    client, owner, organization, draft, page, django_assert_max_num_queries
):
    def grow(n: int) -> None:
        for _ in range(n):
            MembershipFactory(organization=organization, role=Role.REVIEWER)
            model = ModelFactory(organization=organization)
            ReleaseFactory(model=model)
            license = LicenseFactory(organization=organization)
            artifact = ArtifactFactory(release=draft)
            TierFactory(
                release=draft,
                license=license,
                artifacts=[artifact],
                opens_at=timezone.now() + timedelta(days=9),
            )

    address = {
        "members": url("publish-members", org_slug="acme"),
        "models": url("publish-models", org_slug="acme"),
        "licenses": url("publish-licenses", org_slug="acme"),
        "release": url("publish-release", org_slug="acme", release_id=draft.pk),
        "overview": url("publish-organization", org_slug="acme"),
    }[page]
    client.force_login(owner)
    grow(2)
    with django_assert_max_num_queries(LIST_PAGE_MAX_QUERIES) as with_two:
        assert client.get(address).status_code == 200
    grow(20)
    with django_assert_max_num_queries(LIST_PAGE_MAX_QUERIES) as with_twenty_two:
        assert client.get(address).status_code == 200

    assert len(with_two) == len(with_twenty_two)


def test_saving_a_tier_with_its_dates_untouched_changes_only_what_was_edited(
    client, publisher, draft, weights, research_license, draft_tier
):
    client.force_login(publisher)
    page = client.get(url("publish-tier", org_slug="acme", tier_id=draft_tier.pk)).content.decode()
    shown_opening = re.search(r'name="opens_at" value="([^"]+)"', page).group(1)
    opens_at = draft_tier.opens_at
    since = last_audit_id()

    response = client.post(
        url("publish-tier", org_slug="acme", tier_id=draft_tier.pk),
        tier_form(
            research_license,
            weights,
            name="Red team, renamed",
            description="",
            gate="invitation",
            position=0,
            opening="date",
            opens_at=shown_opening,
            review_days=14,
        ),
    )

    assert response.status_code == 302, text_of(response)
    draft_tier.refresh_from_db()
    assert (draft_tier.name, draft_tier.opens_at) == ("Red team, renamed", opens_at)
    assert audit_actions(since) == ["tier.terms_changed"]


def test_the_invitee_finds_the_invitation_on_the_publish_home_whatever_the_case_of_the_address(
    client, invitation
):
    frank = UserFactory(email="Frank@Partner.example", full_name="Frank Partner")
    client.force_login(frank)

    home = client.get(url("publish-home"))
    page = client.get(url("publish-invitation", invitation_id=invitation.pk))

    assert f'href="/publish/invitations/{invitation.pk}/"' in home.content.decode()
    assert "Acme AI invites you as publisher." in text_of(home)
    assert page.status_code == 200
