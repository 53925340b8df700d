"""The rollout plan: dates absolute or after day zero, order, files, closing, hold, resume, open now,
and the publisher's timeline page."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from access import policy
from access.errors import NotAllowed
from access.models import AuditEvent
from access.services.grants import tier_license_accept
from releases.models import Release, Tier, Watch
from releases.rollout import (
    offset_label,
    plan_hold,
    plan_resume,
    release_day_zero_set,
    release_timeline,
    rollout_tick,
    tier_create,
    tier_open_now,
    tier_update,
)
from releases.services import ReleaseError, artifact_add, release_publish, tier_open, tiers_open_due
from tests.factories import ArtifactFactory, LicenseFactory, ReleaseFactory, TierFactory, UserFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes

DAY = timedelta(days=1)
# Measured: session, user, organization, release, tiers with licenses and watcher counts, their files,
# and the header's "may publish somewhere" check; whatever the number of tiers and files.
TIMELINE_MAX_QUERIES = 7


@pytest.fixture
def license(organization):
    return LicenseFactory(organization=organization)


def files(release, *paths):
    return [ArtifactFactory(release=release, path=path) for path in paths]


def plan_state(release: Release):
    """Everything a plan change could touch: the release's plan fields, each tier's, the watches."""
    release = Release.objects.get(pk=release.pk)
    tiers = [
        (
            tier.pk,
            tier.position,
            tier.opens_at,
            tier.opens_after,
            tier.closes_at,
            tier.opened_at,
            tuple(tier.artifact_patterns),
            tuple(sorted(tier.artifacts.values_list("pk", flat=True))),
        )
        for tier in release.tiers.order_by("pk")
    ]
    return (release.status, release.day_zero, release.plan_held_at), tiers, Watch.objects.count()


@contextmanager
def plan_unchanged(release: Release) -> Iterator[None]:
    before = plan_state(release)
    with nothing_changes():
        yield
    assert plan_state(release) == before


def scheduled(release, name, opens_at, position=0, **kwargs):
    return TierFactory(
        release=release, name=name, opens_at=opens_at, opened_at=None, position=position, **kwargs
    )


# --- Dates ----------------------------------------------------------------------------------


def test_a_tier_can_open_a_delay_after_day_zero(release, license, owner):
    day_zero = timezone.now() + 2 * DAY
    release_day_zero_set(release=release, day_zero=day_zero, actor=owner)
    [weights] = files(release, "model.safetensors")
    since = last_audit_id()

    tier = tier_create(
        release=release,
        name="Researchers",
        gate=Tier.Gate.APPLICATION,
        license=license,
        opens_after=30 * DAY,
        artifacts=[weights],
        actor=owner,
    )

    assert tier.opens_at == day_zero + 30 * DAY
    assert tier.opens_after == 30 * DAY
    assert audit_actions(since) == ["tier.created"]
    assert AuditEvent.objects.get(pk__gt=since).payload["opens_after_seconds"] == 30 * 86400


def test_relative_dates_of_a_draft_count_from_its_publish_time(draft, license, owner):
    files(draft, "model.safetensors")
    red_team = tier_create(
        release=draft, name="Red team", gate=Tier.Gate.INVITATION, license=license,
        opens_after=timedelta(0), artifact_patterns=["*"], actor=owner,
    )  # fmt: skip
    public = tier_create(
        release=draft, name="Public", gate=Tier.Gate.CLICK_THROUGH, license=license, position=1,
        opens_after=90 * DAY, artifact_patterns=["*"], actor=owner,
    )  # fmt: skip
    since = last_audit_id()

    published = release_publish(release=draft, actor=owner)

    red_team.refresh_from_db()
    public.refresh_from_db()
    assert red_team.opens_at == published.published_at
    assert public.opens_at == published.published_at + 90 * DAY
    assert audit_actions(since) == ["release.published", "release.plan_scheduled"]


def test_setting_day_zero_moves_only_the_unopened_relative_tiers(release, license, owner):
    now = timezone.now()
    opened = scheduled(release, "Red team", now - DAY, opens_after=timedelta(0))
    Tier.objects.filter(pk=opened.pk).update(opened_at=now - DAY)
    absolute = scheduled(release, "Partners", now + DAY, position=1)
    relative = scheduled(release, "Public", now + 2 * DAY, position=2, opens_after=10 * DAY)
    since = last_audit_id()

    release_day_zero_set(release=release, day_zero=now, actor=owner)

    for tier in (opened, absolute, relative):
        tier.refresh_from_db()
    assert opened.opens_at == now - DAY
    assert absolute.opens_at == now + DAY
    assert relative.opens_at == now + 10 * DAY
    event = AuditEvent.objects.get(pk__gt=since)
    assert (event.action, event.actor, event.payload["rescheduled"]) == (
        "release.day_zero_set",
        owner,
        {str(relative.pk): (now + 10 * DAY).isoformat()},
    )


def test_a_day_zero_that_would_put_a_tier_before_the_previous_one_is_refused(release, owner):
    now = timezone.now()
    scheduled(release, "Partners", now + 5 * DAY)
    scheduled(release, "Public", now + 6 * DAY, position=1, opens_after=DAY)

    with plan_unchanged(release), pytest.raises(ReleaseError, match="before 'Partners'"):
        release_day_zero_set(release=release, day_zero=now, actor=owner)


def test_a_plan_that_fell_out_of_order_before_publishing_refuses_publication(draft, license, owner):
    files(draft, "model.safetensors")
    first = tier_create(
        release=draft, name="Red team", gate=Tier.Gate.INVITATION, license=license,
        opens_after=DAY, artifact_patterns=["*"], actor=owner,
    )  # fmt: skip
    second = tier_create(
        release=draft, name="Partners", gate=Tier.Gate.INVITATION, license=license, position=1,
        opens_at=first.opens_at + timedelta(hours=1), artifact_patterns=["*"], actor=owner,
    )  # fmt: skip
    # The absolute date was set while the draft's day zero was "now"; publishing later moves the first tier.
    Tier.objects.filter(pk=second.pk).update(opens_at=first.opens_at)

    with plan_unchanged(draft), pytest.raises(ReleaseError, match="before 'Red team'"):
        release_publish(release=draft, actor=owner)


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        ({}, "either an opening date or a delay"),
        ({"opens_at": timezone.now(), "opens_after": DAY}, "either an opening date or a delay"),
        ({"opens_after": -DAY}, "zero or more"),
        ({"opens_at": timezone.now().replace(tzinfo=None)}, "time zone"),
        ({"opens_at": timezone.now(), "closes_at": timezone.now() - DAY}, "must close after it opens"),
    ],
)
def test_a_tier_needs_one_sensible_opening_date(release, license, dates, message):
    [weights] = files(release, "model.safetensors")

    with plan_unchanged(release), pytest.raises(ReleaseError, match=message):
        tier_create(
            release=release, name="Public", gate=Tier.Gate.OPEN, artifacts=[weights], **dates
        )  # fmt: skip


# --- Order ----------------------------------------------------------------------------------


def test_an_opening_date_before_the_previous_tiers_is_refused(release, license, owner):
    [weights] = files(release, "model.safetensors")
    scheduled(release, "Researchers", timezone.now() + 30 * DAY, position=1)

    with plan_unchanged(release), pytest.raises(ReleaseError, match="before 'Researchers'"):
        tier_create(
            release=release, name="Public", gate=Tier.Gate.OPEN, position=2,
            opens_at=timezone.now() + 10 * DAY, artifacts=[weights], actor=owner,
        )  # fmt: skip


def test_a_tier_may_open_on_the_same_date_as_the_previous_one(release, owner):
    [weights] = files(release, "model.safetensors")
    when = timezone.now() + DAY
    scheduled(release, "Red team", when)

    tier = tier_create(
        release=release, name="Public", gate=Tier.Gate.OPEN, position=1, opens_at=when, artifacts=[weights]
    )

    assert tier.opens_at == when


def test_moving_a_tier_before_the_previous_one_is_refused(release, owner):
    now = timezone.now()
    scheduled(release, "Red team", now + DAY, position=1)
    public = scheduled(release, "Public", now + 10 * DAY, position=2)

    with plan_unchanged(release), pytest.raises(ReleaseError, match="before 'Red team'"):
        tier_update(tier=public, actor=owner, opens_at=now + timedelta(hours=1))
    with plan_unchanged(release), pytest.raises(ReleaseError, match="before 'Public'"):
        tier_update(tier=public, actor=owner, position=0)


def test_a_tier_opened_early_sits_in_the_plan_at_its_opening(release, owner):
    now = timezone.now()
    red_team = scheduled(release, "Red team", now + 10 * DAY)
    tier_open_now(tier=red_team, actor=owner)
    [weights] = files(release, "model.safetensors")

    tier = tier_create(
        release=release,
        name="Public",
        gate=Tier.Gate.OPEN,
        position=1,
        opens_at=now + DAY,
        artifacts=[weights],
    )

    assert tier.opens_at == now + DAY


def test_opening_a_later_tier_early_does_not_freeze_the_rest_of_the_plan(release, owner):
    now = timezone.now()
    researchers = scheduled(release, "Researchers", now + 30 * DAY, position=1)
    public = scheduled(release, "Public", now + 90 * DAY, position=2)
    tier_open_now(tier=public, actor=owner)

    tier_update(tier=researchers, actor=owner, opens_at=now + 40 * DAY)

    researchers.refresh_from_db()
    assert researchers.opens_at == now + 40 * DAY


# --- Files ----------------------------------------------------------------------------------


def test_patterns_choose_the_release_files_and_a_wider_tier_carries_an_earlier_ones(release, license):
    shard_1, shard_2, config, readme = files(
        release, "model-00001.safetensors", "model-00002.safetensors", "config.json", "README.md"
    )
    now = timezone.now()
    preview = tier_create(
        release=release, name="Preview", gate=Tier.Gate.CLICK_THROUGH, license=license,
        opens_at=now + DAY, artifact_patterns=["*.json", "README.md"],
    )  # fmt: skip
    weights = tier_create(
        release=release, name="Weights", gate=Tier.Gate.APPLICATION, license=license, position=1,
        opens_at=now + 2 * DAY, artifact_patterns=["*"],
    )  # fmt: skip

    assert set(preview.artifacts.all()) == {config, readme}
    assert set(weights.artifacts.all()) == {shard_1, shard_2, config, readme}
    assert set(config.tiers.all()) == {preview, weights}
    assert weights.artifact_patterns == ["*"]


def test_patterns_match_paths_case_sensitively_across_directories(release):
    nested, upper = files(release, "weights/model.safetensors", "MODEL.SAFETENSORS")

    tier = tier_create(
        release=release, name="Public", gate=Tier.Gate.OPEN, opens_at=timezone.now() + DAY,
        artifact_patterns=["*.safetensors"],
    )  # fmt: skip

    assert list(tier.artifacts.all()) == [nested]


def test_patterns_of_a_draft_take_the_files_it_has_when_published(draft, license, owner):
    [first] = files(draft, "model-00001.safetensors")
    tier = tier_create(
        release=draft, name="Public", gate=Tier.Gate.CLICK_THROUGH, license=license,
        opens_after=timedelta(0), artifact_patterns=["*.safetensors"], actor=owner,
    )  # fmt: skip
    second = artifact_add(
        release=draft,
        path="model-00002.safetensors",
        size=1,
        sha256=hashlib.sha256(b"x").hexdigest(),
        storage_key="k",
        actor=owner,
    )

    release_publish(release=draft, actor=owner)

    assert set(tier.artifacts.all()) == {first, second}


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({}, "at least one file"),
        ({"artifacts": [], "artifact_patterns": []}, "at least one file"),
        ({"artifact_patterns": ["*.gguf"]}, "'\\*.gguf' matches no file"),
        ({"artifact_patterns": ["*.safetensors", "tokenizer.json"]}, "'tokenizer.json' matches no file"),
        ({"artifact_patterns": [""]}, "1 to 512 characters"),
        ({"artifact_patterns": ["*"] * 51}, "at most 50 patterns"),
        ({"artifact_patterns": "*.safetensors"}, "as a list"),
        ("both", "by list or by patterns, not both"),
        ("foreign", "its own release"),
    ],
)
def test_a_tier_with_no_files_or_a_bad_selection_is_refused(release, model, selection, message):
    [weights] = files(release, "model.safetensors")
    if selection == "both":
        selection = {"artifacts": [weights], "artifact_patterns": ["*"]}
    elif selection == "foreign":
        selection = {"artifacts": files(ReleaseFactory(model=model), "other.bin")}

    with plan_unchanged(release), pytest.raises(ReleaseError, match=message):
        tier_create(
            release=release, name="Public", gate=Tier.Gate.OPEN, opens_at=timezone.now(), **selection
        )  # fmt: skip


def test_a_draft_whose_patterns_lost_their_files_cannot_be_published(draft, license, owner):
    [weights] = files(draft, "model.safetensors")
    tier_create(
        release=draft, name="Public", gate=Tier.Gate.CLICK_THROUGH, license=license,
        opens_after=timedelta(0), artifact_patterns=["*.safetensors"], actor=owner,
    )  # fmt: skip
    # The publisher replaced the file with another format before publishing.
    type(weights).objects.filter(pk=weights.pk).update(path="model.gguf")

    with plan_unchanged(draft), pytest.raises(ReleaseError, match="match no file"):
        release_publish(release=draft, actor=owner)


# --- Other tier rules -----------------------------------------------------------------------


def test_a_license_of_another_organization_is_refused(release, outsider):
    [weights] = files(release, "model.safetensors")
    foreign = LicenseFactory()

    with plan_unchanged(release), pytest.raises(ReleaseError, match="release's organization"):
        tier_create(
            release=release, name="Public", gate=Tier.Gate.CLICK_THROUGH, license=foreign,
            opens_at=timezone.now(), artifacts=[weights],
        )  # fmt: skip


def test_updating_a_tier_changes_its_schedule_and_files_with_an_audit_event(release, owner):
    day_zero = timezone.now()
    release_day_zero_set(release=release, day_zero=day_zero, actor=owner)
    weights, config = files(release, "model.safetensors", "config.json")
    tier = scheduled(release, "Public", timezone.now() + DAY, artifacts=[config])
    closes_at = timezone.now() + 60 * DAY
    since = last_audit_id()

    tier = tier_update(
        tier=tier, actor=owner, opens_after=7 * DAY, closes_at=closes_at, artifact_patterns=["*.safetensors"]
    )

    tier.refresh_from_db()
    assert tier.opens_at == day_zero + 7 * DAY
    assert (tier.opens_after, tier.closes_at, tier.artifact_patterns) == (
        7 * DAY,
        closes_at,
        ["*.safetensors"],
    )
    assert list(tier.artifacts.all()) == [weights]
    event = AuditEvent.objects.get(pk__gt=since)
    assert (event.action, event.actor) == ("tier.updated", owner)
    assert event.payload["artifacts"] == [weights.pk]


@pytest.mark.parametrize(
    "changes",
    [
        {"opens_at": timezone.now() + 90 * DAY},
        {"closes_at": timezone.now() + 90 * DAY},
        {"artifact_patterns": ["*"]},
        {"position": 3},
    ],
)
def test_an_opened_tier_cannot_change(release, owner, changes):
    tier = TierFactory(release=release)

    with plan_unchanged(release), pytest.raises(ReleaseError, match="has opened"):
        tier_update(tier=tier, actor=owner, **changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "Everyone"}, "cannot be changed here: name"),
        ({"gate": "open", "license": None}, "cannot be changed here: gate, license"),
        ({"opens_at": None}, "either an opening date or a delay"),
        ({"closes_at": timezone.now() - DAY}, "must close after it opens"),
        ({"artifacts": []}, "at least one file"),
        ({"position": -1}, "between 0 and"),
    ],
)
def test_a_bad_change_to_a_tier_is_refused(release, owner, changes, message):
    tier = scheduled(release, "Public", timezone.now() + DAY)

    with plan_unchanged(release), pytest.raises(ReleaseError, match=message):
        tier_update(tier=tier, actor=owner, **changes)


def test_a_closed_tier_takes_no_new_applications_or_acceptances(release, researcher):
    closed = {"closes_at": timezone.now() - timedelta(minutes=1)}
    application_tier = TierFactory(release=release, gate=Tier.Gate.APPLICATION, **closed)
    click_through = TierFactory(release=release, gate=Tier.Gate.CLICK_THROUGH, **closed)
    still_open = TierFactory(
        release=release, gate=Tier.Gate.CLICK_THROUGH, closes_at=timezone.now() + timedelta(minutes=1)
    )

    assert policy.application_refusal(researcher, application_tier).code == "closed"
    assert policy.license_acceptance_refusal(researcher, click_through).code == "closed"
    assert policy.license_acceptance_refusal(researcher, still_open) is None
    with nothing_changes(), pytest.raises(NotAllowed, match="to new requests"):
        tier_license_accept(
            user=researcher,
            tier=click_through,
            typed_name=researcher.full_name,
            seen_text_sha256=click_through.license.current_version.text_sha256,
        )


# --- Hold, resume, open now -----------------------------------------------------------------


def test_nothing_opens_while_the_plan_is_held_and_it_catches_up_on_resume(release, owner):
    due = scheduled(release, "Public", timezone.now() - timedelta(minutes=1))
    since = last_audit_id()

    plan_hold(release=release, actor=owner)
    assert tiers_open_due() == []
    assert rollout_tick().opened == []
    due.refresh_from_db()
    assert due.opened_at is None

    plan_resume(release=release, actor=owner)
    assert rollout_tick().opened == [due.pk]

    events = list(AuditEvent.objects.filter(pk__gt=since).order_by("pk"))
    assert [(event.action, event.actor) for event in events] == [
        ("release.plan_held", owner),
        ("release.plan_resumed", owner),
        ("tier.opened", None),
    ]
    assert events[0].payload == {"unopened": [due.pk]}
    assert events[1].payload["due_now"] == [due.pk]


def test_a_hold_wins_over_a_scan_that_already_saw_the_tier_due(release, owner):
    due = scheduled(release, "Public", timezone.now() - timedelta(minutes=1))
    seen_by_the_scan = list(Tier.objects.due().values_list("pk", flat=True))

    plan_hold(release=release, actor=owner)

    assert seen_by_the_scan == [due.pk]
    with nothing_changes():
        assert tier_open(tier_id=due.pk) is False


def test_a_tier_moved_later_after_the_scan_does_not_open(release):
    tier = scheduled(release, "Public", timezone.now() + DAY)

    with nothing_changes():
        assert tier_open(tier_id=tier.pk, now=timezone.now()) is False


def test_holding_twice_or_resuming_a_running_plan_is_refused(release, owner):
    with plan_unchanged(release), pytest.raises(ReleaseError, match="not on hold"):
        plan_resume(release=release, actor=owner)
    plan_hold(release=release, actor=owner)
    with plan_unchanged(release), pytest.raises(ReleaseError, match="already on hold"):
        plan_hold(release=release, actor=owner)


def test_open_now_opens_early_even_while_held_and_records_who(release, owner):
    tier = scheduled(release, "Public", timezone.now() + 30 * DAY)
    plan_hold(release=release, actor=owner)
    since = last_audit_id()

    opened = tier_open_now(tier=tier, actor=owner)

    assert opened.opened_at is not None
    event = AuditEvent.objects.get(pk__gt=since)
    assert (event.action, event.actor, event.target_id) == ("tier.opened", owner, tier.pk)
    assert event.payload == {
        "opens_at": tier.opens_at.isoformat(),
        "scheduled": False,
        "early": True,
        "while_held": True,
    }


def test_open_now_refuses_an_open_tier_and_a_draft(release, draft, owner):
    opened = TierFactory(release=release)
    waiting = scheduled(draft, "Public", timezone.now() - DAY)

    with plan_unchanged(release), pytest.raises(ReleaseError, match="already open"):
        tier_open_now(tier=opened, actor=owner)
    with plan_unchanged(draft), pytest.raises(ReleaseError, match="Publish the release"):
        tier_open_now(tier=waiting, actor=owner)


# --- The timeline ---------------------------------------------------------------------------


def test_the_timeline_shows_each_tier_in_order_with_its_date_people_files_and_state(release, owner, license):
    now = timezone.now()
    release_day_zero_set(release=release, day_zero=now - DAY, actor=owner)
    weights, config = files(release, "model.safetensors", "config.json")
    red_team = TierFactory(release=release, name="Red team", gate=Tier.Gate.INVITATION, position=0,
                           opens_at=now - DAY, artifacts=[weights, config])  # fmt: skip
    researchers = tier_create(
        release=release, name="Researchers", gate=Tier.Gate.APPLICATION, approval=Tier.Approval.AUTO,
        license=license, position=1, opens_after=30 * DAY, artifact_patterns=["*.safetensors"],
    )  # fmt: skip
    public = scheduled(release, "Public", now - timedelta(minutes=1), position=2, gate=Tier.Gate.OPEN,
                       license=None, artifacts=[config])  # fmt: skip
    Tier.objects.filter(pk=public.pk).update(opens_at=now + 31 * DAY)
    Watch.objects.create(user=UserFactory(), tier=researchers)

    rows = release_timeline(release, now=now)

    assert [(row.tier, row.relative_label, row.state) for row in rows] == [
        (red_team, "", "open"),
        (researchers, "T+30 days", "scheduled"),
        (public, "", "scheduled"),
    ]
    assert rows[0].who == "Invitation only"
    assert rows[1].who == "Application (approved automatically)"
    assert rows[0].files == ["config.json", "model.safetensors"]
    assert rows[1].files == ["model.safetensors"]
    assert rows[1].opens_at == now - DAY + 30 * DAY
    assert [row.watchers for row in rows] == [0, 1, 0]


@pytest.mark.parametrize(
    ("offset", "label"),
    [(timedelta(0), "T+0"), (DAY, "T+1 day"), (timedelta(days=2, hours=6), "T+2 days 6 h"),
     (timedelta(minutes=45), "T+45 min")],
)  # fmt: skip
def test_relative_dates_read_as_offsets_from_day_zero(offset, label):
    assert offset_label(offset) == label


# --- The publisher's timeline page ----------------------------------------------------------


def timeline_url(release, name="publish-timeline", **extra):
    return reverse(
        name, kwargs={"org_slug": release.model.organization.slug, "release_id": release.pk, **extra}
    )


def test_the_publisher_sees_the_timeline_with_a_flat_query_count(
    client, release, owner, django_assert_max_num_queries
):
    for position in range(3):
        scheduled(release, f"Tier {position}", timezone.now() + (position + 1) * DAY, position=position)
    client.force_login(owner)

    with django_assert_max_num_queries(TIMELINE_MAX_QUERIES):
        response = client.get(timeline_url(release))
    for position in range(3, 12):
        scheduled(release, f"Tier {position}", timezone.now() + (position + 1) * DAY, position=position)
    with django_assert_max_num_queries(TIMELINE_MAX_QUERIES):
        bigger = client.get(timeline_url(release))

    assert response.status_code == bigger.status_code == 200
    content = bigger.content.decode()
    assert content.count('class="open-now"') == 12
    assert 'id="hold"' in content


@pytest.mark.parametrize("person", ["outsider", "reviewer", "researcher"])
def test_anyone_but_owners_and_publishers_gets_404_and_changes_nothing(client, release, person, request):
    tier = scheduled(release, "Public", timezone.now() + DAY)
    client.force_login(request.getfixturevalue(person))

    with plan_unchanged(release):
        responses = [
            client.get(timeline_url(release)),
            client.post(timeline_url(release, "publish-rollout-hold")),
            client.post(timeline_url(release, "publish-rollout-resume")),
            client.post(timeline_url(release, "publish-tier-open-now", tier_id=tier.pk)),
        ]

    assert [response.status_code for response in responses] == [404] * 4


def test_a_signed_out_visitor_is_sent_to_sign_in(client, release):
    response = client.get(timeline_url(release))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_the_publisher_holds_resumes_and_opens_a_tier_now_from_the_page(client, release, owner):
    tier = scheduled(release, "Public", timezone.now() + DAY)
    client.force_login(owner)

    held = client.post(timeline_url(release, "publish-rollout-hold"), follow=True)
    release.refresh_from_db()
    assert release.plan_held_at is not None
    assert "On hold since" in held.content.decode()

    opened = client.post(timeline_url(release, "publish-tier-open-now", tier_id=tier.pk), follow=True)
    tier.refresh_from_db()
    assert tier.opened_at is not None
    assert "Public is open" in opened.content.decode()

    client.post(timeline_url(release, "publish-rollout-resume"))
    release.refresh_from_db()
    assert release.plan_held_at is None


def test_a_refused_action_on_the_page_says_why_and_changes_nothing(client, release, owner):
    tier = TierFactory(release=release, name="Researchers")
    client.force_login(owner)

    with plan_unchanged(release):
        response = client.post(timeline_url(release, "publish-tier-open-now", tier_id=tier.pk), follow=True)
        resumed = client.post(timeline_url(release, "publish-rollout-resume"), follow=True)

    assert "Tier &#x27;Researchers&#x27; is already open." in response.content.decode()
    assert "not on hold" in resumed.content.decode()


def test_open_now_on_a_tier_of_another_release_is_404(client, release, model, owner):
    other = scheduled(ReleaseFactory(model=model), "Public", timezone.now() + DAY)
    client.force_login(owner)

    with plan_unchanged(other.release):
        response = client.post(timeline_url(release, "publish-tier-open-now", tier_id=other.pk))

    assert response.status_code == 404


def test_the_actions_only_take_post(client, release, owner):
    client.force_login(owner)

    assert client.get(timeline_url(release, "publish-rollout-hold")).status_code == 405
