"""Writing and verifying the hash-chained audit log.

Each row stores the hash of the row before it and its own hash over its content
and that previous hash. Writers serialise on the single AuditChainHead row
(``SELECT … FOR UPDATE``, held until their transaction ends) and move it to their
last event's hash, so the chain never forks; SQLite (the demo) serialises writers by
itself. Rows are written inside the transaction of the change they record, so a
change and its audit row commit or roll back together; ``audit_record_with_row`` (the
download routes) makes the change and its row one statement, which may be its own transaction.
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
from django.utils import timezone

from access.models import AuditChainHead, AuditEvent
from portal.prepared import prepared_cursor

GENESIS_HASH = "0" * 64


def _content(event: AuditEvent) -> dict[str, Any]:
    """What an event's hash covers."""
    return {
        "previous_hash": event.previous_hash,
        "created_at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "payload": event.payload,
        "ip_address": event.ip_address,
    }


def _canonical(content: dict[str, Any]) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)


def _row_hash(event: AuditEvent) -> str:
    return hashlib.sha256(_canonical(_content(event)).encode("utf-8")).hexdigest()


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
    """Insert the new ``row`` and its audit event; on PostgreSQL in one statement.

    For the download routes, which must stay within a few queries per URL. One statement
    with data-modifying CTEs locks the chain head, inserts ``row``, inserts the event chained
    onto the head and moves the head. Outside a transaction the statement is a transaction of
    its own: the routes pay no BEGIN and COMMIT round trips, and hold the head's lock only
    while the statement runs. Inside one, it commits or rolls back with the rest, as
    ``audit_record`` does. Either way the row and its event are written together or not at all.

    The event's hash is exactly ``_row_hash``'s: Python writes the canonical JSON of every key
    but the three that sort last (``previous_hash``, ``target_id``, ``target_type``), and
    PostgreSQL appends those, from the locked head and the row's new id, and takes the sha256.
    ``audit_verify`` recomputes every hash in Python. Values are prepared as ``save()``
    prepares them. Elsewhere (SQLite) it is ``row.save()`` and ``audit_record`` in a transaction.
    """
    if connection.vendor != "postgresql":
        with transaction.atomic():
            row.save()
            return audit_record(
                action=action, target=row, actor=actor, payload=payload, ip_address=ip_address
            )
    entry = AuditEntry(action=action, target=row, actor=actor, payload=payload, ip_address=ip_address)
    event = _new_event(entry)
    row_fields = _insert_fields(row)
    event_fields = [field for field in _insert_fields(event) if field.column not in _SQL_COLUMNS]
    with prepared_cursor() as cursor:
        cursor.execute(
            _with_row_sql(type(row), tuple(row_fields), tuple(event_fields)),
            [
                AuditChainHead.SINGLETON_ID,
                *_prepared_values(row, row_fields),
                *_prepared_values(event, event_fields),
                _hash_prefix(event),
                json.dumps(event.target_type),
                AuditChainHead.SINGLETON_ID,
            ],
        )
        found = cursor.fetchone()
    if found is None:
        # No head row, so nothing was written (a test database flushed between tests): start
        # the chain again at its newest event, then retry.
        with transaction.atomic():
            _lock_chain()
        return audit_record_with_row(
            row=row, action=action, actor=actor, payload=payload, ip_address=ip_address
        )
    event.pk, event.target_id, event.previous_hash, event.row_hash = found
    row.pk = event.target_id
    for instance in (row, event):
        instance._state.adding = False
        instance._state.db = connection.alias
    return event


# The keys of an event's hashed content that audit_record_with_row's statement appends. They
# sort after every other key, so Python's canonical JSON of the rest is the text's beginning.
_HASHED_IN_SQL = ("previous_hash", "target_id", "target_type")
# The event's columns the statement writes from the head and the new row rather than from Python.
_SQL_COLUMNS = ("target_id", "previous_hash", "row_hash")


def _hash_prefix(event: AuditEvent) -> str:
    """The canonical JSON of ``event``'s hashed content up to the keys the database appends."""
    content = {key: value for key, value in _content(event).items() if key not in _HASHED_IN_SQL}
    if max(content) >= min(_HASHED_IN_SQL):
        raise RuntimeError("audit_record_with_row's hash needs the keys it fills in to sort last")
    return _canonical(content)[:-1] + ","


def _insert_fields(instance: Model) -> list:
    return [field for field in instance._meta.concrete_fields if not field.primary_key or instance.pk]


def _prepared_values(instance: Model, fields) -> list:
    """Values as Django's INSERT compiler prepares them for ``save()``."""
    return [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]


def _columns(fields) -> str:
    return ", ".join(connection.ops.quote_name(field.column) for field in fields)


@cache
def _with_row_sql(row_model: type[Model], row_fields: tuple, event_fields: tuple) -> str:
    """audit_record_with_row's statement; SQL text from model metadata only, built once per shape.

    Parameters, in order: the head's id, the row's values, the event's values, the hash's JSON
    prefix, the target type as a JSON string, the head's id. Rows come from ``head``, so with
    no head row nothing is inserted and nothing is returned. A hash is 64 hex digits, so the
    head's needs no JSON escaping. Event ids are drawn after the head is locked, so they follow
    the chain's order, which ``audit_verify`` walks.
    """
    head = connection.ops.quote_name(AuditChainHead._meta.db_table)
    row_table = connection.ops.quote_name(row_model._meta.db_table)
    row_pk = connection.ops.quote_name(row_model._meta.pk.column)
    event_table = connection.ops.quote_name(AuditEvent._meta.db_table)
    sql_columns = ", ".join(connection.ops.quote_name(column) for column in _SQL_COLUMNS)
    row_hash = (
        'encode(sha256(convert_to(%s || \'"previous_hash":"\' || head.row_hash || \'","target_id":\' '
        f"|| new_row.{row_pk} || ',\"target_type\":' || %s || '}}', 'UTF8')), 'hex')"
    )
    # Names from model metadata; every value is a parameter.
    return (
        f"WITH head AS (SELECT h.row_hash FROM {head} h WHERE h.id = %s FOR UPDATE), "  # noqa: S608
        f"new_row AS (INSERT INTO {row_table} ({_columns(row_fields)}) "
        f"SELECT {', '.join(['%s'] * len(row_fields))} FROM head RETURNING {row_pk}), "
        f"new_event AS (INSERT INTO {event_table} ({_columns(event_fields)}, {sql_columns}) "
        f"SELECT {', '.join(['%s'] * len(event_fields))}, new_row.{row_pk}, head.row_hash, {row_hash} "
        f"FROM head, new_row RETURNING id, target_id, previous_hash, row_hash) "
        f"UPDATE {head} h SET row_hash = new_event.row_hash FROM new_event WHERE h.id = %s "
        f"RETURNING new_event.id, new_event.target_id, new_event.previous_hash, new_event.row_hash"
    )


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
    event = _new_event(entry)
    event.previous_hash = previous_hash
    event.row_hash = _row_hash(event)
    return event


def _new_event(entry: AuditEntry) -> AuditEvent:
    """The event of ``entry``, not yet chained: no previous_hash or row_hash."""
    actor = entry.actor
    return AuditEvent(
        created_at=timezone.now(),
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=entry.action,
        target_type=entry.target._meta.model_name,
        target_id=entry.target.pk,
        # Hash what the database will give back: JSON round-trips through the column type,
        # and an IPv6 address is stored compressed and lower-case ("2001:DB8:0::1" -> "2001:db8::1").
        payload=json.loads(json.dumps(entry.payload or {}, default=str)),
        ip_address=AuditEvent._meta.get_field("ip_address").get_prep_value(entry.ip_address or None),
    )


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
