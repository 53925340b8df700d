"""Writing and verifying the hash-chained audit log.

Each row stores the hash of the row before it and its own hash over its content
and that previous hash. Writers serialise on the single AuditChainHead row
(``SELECT … FOR UPDATE``, held until their transaction ends) and move it to their
last event's hash, so the chain never forks; SQLite (the demo) serialises writers by
itself. Rows are written inside the transaction of the change they record, so a
change and its audit row commit or roll back together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connection, transaction
from django.db.models import Model
from django.db.models.sql import InsertQuery
from django.utils import timezone

from access.models import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64


def _row_hash(event: AuditEvent) -> str:
    content = {
        "previous_hash": event.previous_hash,
        "created_at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "payload": event.payload,
        "ip_address": event.ip_address,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def audit_record(
    *,
    action: str,
    target: Model,
    actor=None,
    payload: dict[str, Any] | None = None,
    ip_address: str | None = None,
) -> AuditEvent:
    """Append one event to the chain. Must run inside the transaction of the change."""
    previous_hash = _lock_chain()
    event = _chained_event(
        AuditEntry(action=action, target=target, actor=actor, payload=payload, ip_address=ip_address),
        previous_hash,
    )
    event.save()
    _advance_head(event.row_hash)
    return event


@dataclass(frozen=True)
class AuditEntry:
    """One event for ``audit_record_many``: the arguments of ``audit_record``."""

    action: str
    target: Model
    actor: Any = None
    payload: dict[str, Any] | None = None
    ip_address: str | None = None


def audit_record_many(entries: Sequence[AuditEntry]) -> list[AuditEvent]:
    """Append several events to the chain, in order, with one lock, one read and one insert.

    Bulk actions (a reviewer deciding a thousand applications at once) still write one event
    per change, chained exactly as ``audit_record`` would, in a constant number of queries.
    Must run inside the transaction of the changes.
    """
    if not entries:
        return []
    previous_hash = _lock_chain()
    events = []
    for entry in entries:
        event = _chained_event(entry, previous_hash)
        events.append(event)
        previous_hash = event.row_hash
    events = AuditEvent.objects.bulk_create(events)
    _advance_head(previous_hash)
    return events


def audit_record_with_row(
    *, row: Model, action: str, actor=None, payload=None, ip_address=None
) -> AuditEvent:
    """Insert the new ``row`` and its audit event; on PostgreSQL in two statements.

    For the download routes, which must stay within a few queries per URL: the first
    statement locks the chain head and draws ``row``'s id from its sequence, the second
    inserts both rows and moves the head (one statement with data-modifying CTEs). The
    INSERTs are compiled by Django's own InsertQuery, so values are adapted exactly as
    ``save()`` would. Elsewhere it is ``row.save()`` followed by ``audit_record``.
    Must run inside a transaction.
    """
    if connection.vendor != "postgresql":
        row.save()
        return audit_record(action=action, target=row, actor=actor, payload=payload, ip_address=ip_address)
    _require_transaction()
    table = row._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT h.row_hash, nextval(pg_get_serial_sequence(%s, 'id')) "  # noqa: S608 - table name from the model
            f"FROM {AuditChainHead._meta.db_table} h WHERE h.id = %s FOR UPDATE",
            [table, AuditChainHead.SINGLETON_ID],
        )
        found = cursor.fetchone()
    if found is None:
        # The head row is gone (a test database flushed between tests): recreate it, then retry.
        _lock_chain()
        return audit_record_with_row(
            row=row, action=action, actor=actor, payload=payload, ip_address=ip_address
        )
    previous_hash, row.pk = found
    event = _chained_event(
        AuditEntry(action=action, target=row, actor=actor, payload=payload, ip_address=ip_address),
        previous_hash,
    )
    row_sql, row_params = _insert_sql(row)
    event_sql, event_params = _insert_sql(event)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH new_row AS ({row_sql}), new_event AS ({event_sql}) "  # noqa: S608 - compiled by Django
            f"UPDATE {AuditChainHead._meta.db_table} SET row_hash = %s WHERE id = %s",
            [*row_params, *event_params, event.row_hash, AuditChainHead.SINGLETON_ID],
        )
    row._state.adding = False
    row._state.db = connection.alias
    return event


def _insert_sql(instance: Model) -> tuple[str, tuple]:
    """The INSERT of ``instance`` as Django's compiler writes it: SQL text compiled once per model
    and set of fields, values prepared per row exactly as the compiler prepares them."""
    fields = tuple(field for field in instance._meta.concrete_fields if not field.primary_key or instance.pk)
    sql = _compiled_insert(type(instance), fields)
    params = tuple(field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields)
    return sql, params


@cache
def _compiled_insert(model: type[Model], fields: tuple) -> str:
    query = InsertQuery(model)
    query.insert_values(fields, [model()])
    [(sql, _)] = query.get_compiler(connection=connection).as_sql()
    return sql


def _require_transaction() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the change it records")


def _lock_chain() -> str:
    """Lock the chain's head row for the rest of the transaction; return the newest row's hash."""
    _require_transaction()
    heads = AuditChainHead.objects.select_for_update().filter(pk=AuditChainHead.SINGLETON_ID)
    head_hash = heads.values_list("row_hash", flat=True).first()
    if head_hash is None:
        # Only after the table was emptied (a flushed test database): start it again at the
        # newest event. Two writers racing here both insert-or-ignore, then queue on the lock.
        newest = AuditEvent.objects.order_by("-id").values_list("row_hash", flat=True).first()
        AuditChainHead.objects.bulk_create(
            [AuditChainHead(pk=AuditChainHead.SINGLETON_ID, row_hash=newest or GENESIS_HASH)],
            ignore_conflicts=True,
        )
        head_hash = heads.values_list("row_hash", flat=True).first()
    return head_hash


def _advance_head(row_hash: str) -> None:
    AuditChainHead.objects.filter(pk=AuditChainHead.SINGLETON_ID).update(row_hash=row_hash)


def _chained_event(entry: AuditEntry, previous_hash: str) -> AuditEvent:
    actor = entry.actor
    event = AuditEvent(
        created_at=timezone.now(),
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=entry.action,
        target_type=entry.target._meta.model_name,
        target_id=entry.target.pk,
        payload=entry.payload or {},
        previous_hash=previous_hash,
    )
    # Hash what the database will give back: JSON round-trips through the column type,
    # and an IPv6 address is stored compressed and lower-case ("2001:DB8:0::1" -> "2001:db8::1").
    event.payload = json.loads(json.dumps(event.payload, default=str))
    event.ip_address = AuditEvent._meta.get_field("ip_address").get_prep_value(entry.ip_address or None)
    event.row_hash = _row_hash(event)
    return event


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    problem: str


def audit_verify(batch_size: int = 2000) -> ChainBreak | None:
    """Walk the chain in order; return the first row that does not fit, or None.

    The head row is read first and must name a row of the chain (or the genesis hash when
    there is none): deleting the newest rows then shows, unless the head was moved back too.
    Events appended while the walk runs come after the head and are checked like the rest.
    """
    head_hash = (
        AuditChainHead.objects.filter(pk=AuditChainHead.SINGLETON_ID)
        .values_list("row_hash", flat=True)
        .first()
    )
    head_seen = head_hash in (None, GENESIS_HASH)
    expected_previous = GENESIS_HASH
    last_id = 0
    for event in _iterate_events(batch_size):
        if event.previous_hash != expected_previous:
            return ChainBreak(event.pk, "its previous_hash does not match the row before it")
        if _row_hash(event) != event.row_hash:
            return ChainBreak(event.pk, "its content does not match its row_hash")
        expected_previous = event.row_hash
        head_seen = head_seen or event.row_hash == head_hash
        last_id = event.pk
    if not head_seen:
        return ChainBreak(last_id, "the chain's head names no row: the newest rows were removed")
    return None


def _iterate_events(batch_size: int) -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        batch = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not batch:
            return
        yield from batch
        last_id = batch[-1].pk
