"""``audit_record_with_row``: a row and its audit event in one statement, hashed in PostgreSQL.

The download routes write every event this way; the hash PostgreSQL computes must be the one
Python's ``audit_verify`` recomputes, whatever the payload, address or concurrency.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from access.audit import _row_hash, audit_record, audit_record_with_row, audit_verify
from access.models import AuditChainHead, AuditEvent
from releases.models import Organization

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the one-statement write is PostgreSQL's"
)


def new_organization(slug: str) -> Organization:
    return Organization(slug=slug, name=slug.title())


def test_the_row_and_its_event_are_one_statement_and_verify(db, owner):
    row = new_organization("one-statement")

    with CaptureQueriesContext(connection) as captured:
        event = audit_record_with_row(
            row=row,
            action="test.row",
            actor=owner,
            payload={"note": "ünïcode ✓", "ratio": 1.5, "nested": {"b": None, "a": [1, "two"]}},
            ip_address="2001:DB8:0::1",
        )

    assert len(captured) == 1
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.row_hash == event.row_hash == _row_hash(stored)
    assert stored.ip_address == "2001:db8::1"
    assert (stored.target_type, stored.target_id) == ("organization", row.pk)
    assert Organization.objects.get(pk=row.pk).slug == "one-statement"
    assert AuditChainHead.objects.get().row_hash == event.row_hash
    assert audit_verify() is None


def test_it_chains_onto_events_written_the_other_way_and_back(db, owner, organization):
    with transaction.atomic():
        first = audit_record(action="test.before", target=organization, actor=owner)
    second = audit_record_with_row(row=new_organization("in-between"), action="test.row", actor=None)
    with transaction.atomic():
        third = audit_record(action="test.after", target=organization, actor=owner)

    assert second.previous_hash == first.row_hash
    assert third.previous_hash == second.row_hash
    assert second.actor_id is None
    assert audit_verify() is None


def test_inside_a_transaction_it_rolls_back_with_the_rest(db, owner):
    head_before = AuditChainHead.objects.values_list("row_hash", flat=True).first()

    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record_with_row(row=new_organization("rolled-back"), action="test.row", actor=owner)
        raise RuntimeError("the change it records failed")

    assert not Organization.objects.filter(slug="rolled-back").exists()
    assert not AuditEvent.objects.filter(action="test.row").exists()
    assert AuditChainHead.objects.values_list("row_hash", flat=True).first() == head_before


def test_without_a_head_row_nothing_is_written_until_the_chain_is_started_again(db, owner, organization):
    with transaction.atomic():
        newest = audit_record(action="test.before", target=organization, actor=owner)
    AuditChainHead.objects.all().delete()

    event = audit_record_with_row(row=new_organization("after-flush"), action="test.row", actor=owner)

    assert event.previous_hash == newest.row_hash
    assert Organization.objects.filter(slug="after-flush").count() == 1
    assert AuditEvent.objects.filter(action="test.row").count() == 1
    assert audit_verify() is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_outside_transactions_keep_one_unbroken_chain(owner):
    """Each call is its own transaction; the head's row lock orders them and their event ids."""
    writers, each = 6, 15
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            start.wait()
            for index in range(each):
                audit_record_with_row(
                    row=new_organization(f"writer-{number}-{index}"),
                    action="test.concurrent",
                    actor=owner,
                    payload={"writer": number, "index": index},
                )
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(number,)) for number in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert AuditEvent.objects.filter(action="test.concurrent").count() == writers * each
    assert Organization.objects.filter(slug__startswith="writer-").count() == writers * each
    assert audit_verify() is None
    assert AuditChainHead.objects.get().row_hash == AuditEvent.objects.order_by("-id").first().row_hash
