"""The hash-chained audit log and ``manage.py audit_verify``."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from access.audit import GENESIS_HASH, audit_record, audit_record_with_row, audit_verify
from access.models import AuditChainHead, AuditEvent
from releases.models import Organization
from tests.factories import OrganizationFactory


@pytest.fixture
def events(organization, owner):
    """Three events in a fresh chain."""
    recorded = []
    for number in range(3):
        with transaction.atomic():
            recorded.append(
                audit_record(
                    action="test.recorded",
                    target=organization,
                    actor=owner,
                    payload={"number": number, "note": "ünïcode", "nested": {"b": 2, "a": [1, 2]}},
                    ip_address="203.0.113.5",
                )
            )
    return recorded


def verify_command() -> str:
    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def raw_sql(sql: str, params: list) -> None:
    """Tamper as someone with the rights to lift the append-only trigger would."""
    with connection.cursor() as cursor:
        # A superuser session that skips triggers, as a restore from a doctored dump would.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET session_replication_role = origin")


def test_each_event_chains_to_the_one_before(events):
    chain = list(AuditEvent.objects.order_by("id"))

    assert chain == events
    assert chain[0].previous_hash == GENESIS_HASH
    assert chain[1].previous_hash == chain[0].row_hash
    assert chain[2].previous_hash == chain[1].row_hash
    assert len({event.row_hash for event in chain}) == 3


def test_an_intact_chain_verifies(events):
    assert audit_verify() is None
    assert audit_verify(batch_size=1) is None

    assert verify_command() == f"Audit chain intact: {AuditEvent.objects.count()} events\n"


def test_an_empty_chain_verifies(db):
    assert not AuditEvent.objects.exists()

    assert verify_command() == "Audit chain intact: 0 events\n"


def test_a_payload_changed_in_the_database_is_found(events):
    tampered = events[1]
    raw_sql(
        "UPDATE access_auditevent SET payload = %s::jsonb WHERE id = %s",
        [json.dumps({**tampered.payload, "number": 99}), tampered.pk],
    )

    chain_break = audit_verify()

    assert chain_break is not None
    assert chain_break.event_id == tampered.pk
    assert "content" in chain_break.problem
    with pytest.raises(CommandError, match=rf"event {tampered.pk}: its content does not match its row_hash"):
        verify_command()


def test_a_tampered_row_whose_hash_was_recomputed_breaks_the_next_link(events):
    tampered = events[1]
    raw_sql(
        "UPDATE access_auditevent SET action = 'test.forged', row_hash = %s WHERE id = %s",
        ["f" * 64, tampered.pk],
    )

    chain_break = audit_verify()

    assert chain_break is not None
    assert chain_break.event_id == tampered.pk


def test_a_deleted_row_is_found_at_the_row_after_it(events):
    raw_sql("DELETE FROM access_auditevent WHERE id = %s", [events[1].pk])

    chain_break = audit_verify()

    assert chain_break is not None
    assert chain_break.event_id == events[2].pk
    assert "previous_hash" in chain_break.problem
    with pytest.raises(CommandError, match=rf"event {events[2].pk}: its previous_hash"):
        verify_command()


def test_a_deleted_first_row_is_found(events):
    first = AuditEvent.objects.order_by("id").first()
    second = AuditEvent.objects.filter(id__gt=first.pk).order_by("id").first()
    raw_sql("DELETE FROM access_auditevent WHERE id = %s", [first.pk])

    assert audit_verify().event_id == second.pk


def test_the_verifier_reports_the_first_break_when_batches_are_small(events):
    raw_sql("DELETE FROM access_auditevent WHERE id = %s", [events[1].pk])
    raw_sql("UPDATE access_auditevent SET ip_address = '203.0.113.6' WHERE id = %s", [events[2].pk])

    assert audit_verify(batch_size=1).event_id == events[2].pk


def test_an_ipv6_address_is_hashed_as_the_database_stores_it(organization):
    with transaction.atomic():
        event = audit_record(action="test.ipv6", target=organization, ip_address="2001:0DB8:0000:0000::0001")

    assert AuditEvent.objects.get(pk=event.pk).ip_address == "2001:db8::1"
    assert audit_verify() is None


def test_a_payload_with_values_json_cannot_hold_natively_verifies(organization, owner):
    with transaction.atomic():
        audit_record(
            action="test.types", target=organization, actor=owner, payload={"when": owner.date_joined}
        )

    assert audit_verify() is None


def test_an_event_rolled_back_with_its_change_leaves_no_row(organization):
    before = AuditEvent.objects.count()

    with pytest.raises(ZeroDivisionError), transaction.atomic():
        audit_record(action="test.rolled_back", target=organization)
        1 / 0  # noqa: B018

    assert AuditEvent.objects.count() == before
    assert audit_verify() is None


def test_events_cannot_be_changed_or_deleted_through_the_orm(events):
    event = AuditEvent.objects.get(pk=events[0].pk)
    event.action = "test.changed"

    with pytest.raises(RuntimeError):
        event.save()
    with pytest.raises(RuntimeError):
        event.delete()

    assert AuditEvent.objects.get(pk=event.pk).action == "test.recorded"


@pytest.mark.django_db(transaction=True)
def test_recording_outside_a_transaction_is_refused():
    organization = OrganizationFactory()

    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_record(action="test.outside", target=organization)

    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE access_auditevent SET action = 'forged' WHERE id = %s",
        "DELETE FROM access_auditevent WHERE id = %s",
    ],
)
def test_the_database_refuses_to_change_or_delete_an_event(events, statement):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw_statement = connection.cursor()
        raw_statement.execute(statement, [events[0].pk])
    assert AuditEvent.objects.get(pk=events[0].pk).action == events[0].action


def test_bulk_queryset_changes_are_refused_too(events):
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=events[0].pk).update(action="forged")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == len(events)


def test_deleting_the_newest_rows_is_found_through_the_chain_head(events):
    raw_sql("DELETE FROM access_auditevent WHERE id = %s", [events[2].pk])

    chain_break = audit_verify()

    assert chain_break is not None
    assert chain_break.event_id == events[1].pk
    assert "head" in chain_break.problem


def test_the_head_follows_every_writer(events, organization, owner):
    with transaction.atomic():
        row = Organization(slug="made-with-its-event", name="Made with its event")
        event = audit_record_with_row(row=row, action="test.row", actor=owner)

    assert AuditChainHead.objects.get().row_hash == event.row_hash == AuditEvent.objects.last().row_hash
    assert event.previous_hash == events[2].row_hash
    assert Organization.objects.get(pk=row.pk).slug == "made-with-its-event"
    assert (event.target_type, event.target_id) == ("organization", row.pk)
    assert audit_verify() is None


def test_a_flushed_head_is_started_again_at_the_newest_event(events, organization, owner):
    AuditChainHead.objects.all().delete()

    with transaction.atomic():
        event = audit_record(action="test.after_flush", target=organization, actor=owner)

    assert event.previous_hash == events[2].row_hash
    assert audit_verify() is None
