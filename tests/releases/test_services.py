"""Releases, artifacts and tiers: publishing once, and opening each tier exactly once."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from access.models import AuditEvent
from releases.models import Artifact, Release, Tier
from releases.rollout import tier_create
from releases.services import (
    ReleaseError,
    artifact_add,
    release_publish,
    release_revision,
    tier_open,
    tiers_open_due,
    validate_artifact_path,
)
from releases.tasks import open_due_tiers
from tests.factories import ArtifactFactory, LicenseFactory, ReleaseFactory, TierFactory
from tests.helpers import audit_actions, last_audit_id, nothing_changes

SHA = hashlib.sha256(b"weights").hexdigest()


def add(release, path="model.safetensors", **overrides):
    arguments = {"size": 7, "sha256": SHA, "storage_key": f"acme/{path}"}
    arguments.update(overrides)
    return artifact_add(release=release, path=path, **arguments)


# --- Artifact paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["model.safetensors", "tokenizer/tokenizer.json", "a/b/c/d.bin", ".gitattributes", "x" * 512]
)
def test_a_relative_path_is_accepted(path):
    assert validate_artifact_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "..",
        "../secrets",
        "weights/../../etc/passwd",
        "weights/..",
        "/etc/passwd",
        "/model.safetensors",
        "",
        "weights//model.bin",
        "weights/",
        "./model.bin",
        "weights/./model.bin",
        "weights\\model.bin",
        "model\x00.bin",
        "model\n.bin",
        "x" * 513,
    ],
)
def test_a_path_that_could_escape_or_confuse_is_refused(draft, path):
    with pytest.raises(ReleaseError):
        validate_artifact_path(path)
    with nothing_changes(), pytest.raises(ReleaseError):
        add(draft, path=path)


def test_adding_a_file_records_it_with_an_audit_event(draft, owner):
    since = last_audit_id()

    artifact = add(draft, path="weights/model.safetensors", object_version="v-1", actor=owner)

    artifact.refresh_from_db()
    assert (artifact.path, artifact.size, artifact.sha256, artifact.object_version) == (
        "weights/model.safetensors",
        7,
        SHA,
        "v-1",
    )
    assert artifact.filename == "model.safetensors"
    assert audit_actions(since) == ["artifact.added"]
    assert AuditEvent.objects.get(pk__gt=since).payload == {
        "path": "weights/model.safetensors",
        "sha256": SHA,
        "size": 7,
    }


def test_a_second_file_at_the_same_path_is_refused(draft):
    add(draft, path="model.safetensors")

    with nothing_changes(), pytest.raises(ReleaseError, match="already has a file"):
        add(draft, path="model.safetensors", sha256="0" * 64)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"sha256": "ABC"}, "sha256"), ({"sha256": SHA.upper()}, "sha256"), ({"size": -1}, "size")],
)
def test_a_file_with_an_unusable_sha256_or_size_is_refused(draft, overrides, message):
    with nothing_changes(), pytest.raises(ReleaseError, match=message):
        add(draft, **overrides)


# --- Publishing -----------------------------------------------------------------------------


def test_publishing_freezes_the_release_with_a_content_revision(draft, owner):
    first = add(draft, path="b.bin")
    second = add(draft, path="a.bin", sha256="1" * 64)
    since = last_audit_id()

    release = release_publish(release=draft, actor=owner)

    release.refresh_from_db()
    assert release.status == Release.Status.PUBLISHED
    assert release.published_at is not None
    manifest = f"{second.sha256}  a.bin\n{first.sha256}  b.bin\n"
    assert release.revision == hashlib.sha1(manifest.encode(), usedforsecurity=False).hexdigest()
    assert audit_actions(since) == ["release.published"]


def test_the_revision_depends_on_the_files_not_their_order():
    one = Artifact(path="a.bin", sha256="1" * 64)
    two = Artifact(path="b.bin", sha256="2" * 64)

    assert release_revision([one, two]) == release_revision([two, one])
    assert release_revision([one, two]) != release_revision([one, Artifact(path="b.bin", sha256="3" * 64)])


def test_a_release_without_files_cannot_be_published(draft):
    with nothing_changes(), pytest.raises(ReleaseError, match="at least one file"):
        release_publish(release=draft)

    draft.refresh_from_db()
    assert draft.status == Release.Status.DRAFT


def test_a_published_release_cannot_be_published_again(draft):
    add(draft)
    release_publish(release=draft)
    draft.refresh_from_db()
    revision = draft.revision

    with nothing_changes(), pytest.raises(ReleaseError, match="already published"):
        release_publish(release=draft)

    draft.refresh_from_db()
    assert draft.revision == revision


def test_a_published_release_takes_no_new_files(draft):
    add(draft)
    release_publish(release=draft)

    with nothing_changes(), pytest.raises(ReleaseError, match="cannot change"):
        add(draft, path="extra.bin")


# --- Creating tiers -------------------------------------------------------------------------


def test_creating_a_tier_records_its_plan(release, owner):
    artifact = ArtifactFactory(release=release)
    license = LicenseFactory(organization=release.model.organization)
    opens_at = timezone.now() + timedelta(days=30)
    since = last_audit_id()

    tier = tier_create(
        release=release,
        name="Researchers",
        gate=Tier.Gate.APPLICATION,
        opens_at=opens_at,
        artifacts=[artifact],
        license=license,
        questions=[{"name": "orcid", "label": "ORCID iD", "type": "text"}],
        actor=owner,
    )

    assert list(tier.artifacts.all()) == [artifact]
    assert tier.opened_at is None
    assert audit_actions(since) == ["tier.created"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gate": "secret"}, "Unknown gate"),
        ({"license": None}, "needs a license"),
        ({"artifacts": []}, "at least one file"),
        ({"questions": [{"name": "orcid"}]}, "unknown type"),
    ],
)
def test_a_tier_with_an_unusable_plan_is_refused(release, overrides, message):
    arguments = {
        "release": release,
        "name": "Researchers",
        "gate": Tier.Gate.APPLICATION,
        "opens_at": timezone.now(),
        "artifacts": [ArtifactFactory(release=release)],
        "license": LicenseFactory(organization=release.model.organization),
    }
    arguments.update(overrides)

    with nothing_changes(), pytest.raises(ReleaseError, match=message):
        tier_create(**arguments)


def test_a_tier_cannot_include_files_of_another_release(release, model):
    foreign = ArtifactFactory(release=ReleaseFactory(model=model))

    with nothing_changes(), pytest.raises(ReleaseError, match="its own release"):
        tier_create(
            release=release, name="Public", gate=Tier.Gate.OPEN, opens_at=timezone.now(), artifacts=[foreign]
        )


# --- Opening tiers --------------------------------------------------------------------------


def closed_tier(release, opens_at=None, **kwargs):
    return TierFactory(
        release=release, opens_at=opens_at or timezone.now() - timedelta(minutes=1), opened_at=None, **kwargs
    )


def test_a_tier_opens_exactly_once(release):
    tier = closed_tier(release)
    since = last_audit_id()
    now = timezone.now()

    assert tier_open(tier_id=tier.pk, now=now) is True
    assert tier_open(tier_id=tier.pk) is False

    tier.refresh_from_db()
    assert tier.opened_at == now
    assert audit_actions(since) == ["tier.opened"]
    assert AuditEvent.objects.get(pk__gt=since).payload == {
        "opens_at": tier.opens_at.isoformat(),
        "scheduled": True,
    }


def test_a_tier_of_a_draft_release_does_not_open(draft):
    tier = closed_tier(draft)

    with nothing_changes():
        assert tier_open(tier_id=tier.pk) is False

    tier.refresh_from_db()
    assert tier.opened_at is None


def test_due_tiers_of_published_releases_open_and_others_wait(release, draft):
    now = timezone.now()
    due = closed_tier(release, opens_at=now - timedelta(hours=1))
    due_now = closed_tier(release, opens_at=now)
    future = closed_tier(release, opens_at=now + timedelta(seconds=1))
    draft_due = closed_tier(draft, opens_at=now - timedelta(days=1))
    already_open = TierFactory(release=release, opens_at=now - timedelta(days=2))
    opened_at = already_open.opened_at

    assert tiers_open_due(now=now) == [due.pk, due_now.pk]
    assert tiers_open_due(now=now) == []

    for tier in (future, draft_due):
        tier.refresh_from_db()
        assert tier.opened_at is None
    already_open.refresh_from_db()
    assert already_open.opened_at == opened_at
    assert AuditEvent.objects.filter(action="tier.opened").count() == 2


def test_the_scan_task_opens_due_tiers(release):
    tier = closed_tier(release)

    assert open_due_tiers() == [tier.pk]
    assert open_due_tiers() == []


def _in_threads(count: int, work) -> list:
    """Run ``work`` in ``count`` threads released together; each thread uses its own connection."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = work()
        except BaseException as error:  # noqa: BLE001 - reported to the test below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_racing_openers_open_a_tier_once(organization):
    release = ReleaseFactory(model__organization=organization)
    tier = closed_tier(release)

    results = _in_threads(8, lambda: tier_open(tier_id=tier.pk))

    assert sorted(results) == [False] * 7 + [True]
    assert AuditEvent.objects.filter(action="tier.opened", target_id=tier.pk).count() == 1


@pytest.mark.django_db(transaction=True)
def test_racing_scans_open_each_due_tier_once(organization):
    release = ReleaseFactory(model__organization=organization)
    tiers = [closed_tier(release) for _ in range(5)]

    results = _in_threads(4, tiers_open_due)

    opened = sorted(tier_id for result in results for tier_id in result)
    assert opened == sorted(tier.pk for tier in tiers)
    assert AuditEvent.objects.filter(action="tier.opened").count() == 5


@pytest.mark.django_db(transaction=True)
def test_a_lock_on_the_release_row_does_not_stop_a_tier_opening(organization):
    # Other services lock the release row (publishing, adding files, revoking a grant);
    # the opener must not mistake that for another opener holding the tier.
    release = ReleaseFactory(model__organization=organization)
    tier = closed_tier(release)
    locked, finish = threading.Event(), threading.Event()

    def hold_release_lock():
        try:
            with transaction.atomic():
                Release.objects.select_for_update().get(pk=release.pk)
                locked.set()
                finish.wait(timeout=10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_release_lock)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        assert tier_open(tier_id=tier.pk) is True
    finally:
        finish.set()
        holder.join(timeout=10)
