"""Writing and verifying the hash-chained audit log.

Each row stores the hash of the row before it and its own hash over its content
and that previous hash. Writers serialise on a PostgreSQL advisory lock held until
their transaction ends, so the chain never forks; SQLite (the demo) serialises
writers by itself. Rows are written inside the transaction of the change they
record, so a change and its audit row commit or roll back together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from access.models import AuditEvent

GENESIS_HASH = "0" * 64
# Any constant: the advisory lock that serialises writers of the audit chain.
_AUDIT_LOCK_KEY = 7_245_310_001


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
    return AuditEvent.objects.bulk_create(events)


def _lock_chain() -> str:
    """Take the chain's lock for the rest of the transaction; return the hash of its last row."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the transaction of the change it records")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_LOCK_KEY])
    last_hash = AuditEvent.objects.order_by("-id").values_list("row_hash", flat=True).first()
    return last_hash or GENESIS_HASH


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
    """Walk the chain in order; return the first row that does not fit, or None."""
    expected_previous = GENESIS_HASH
    for event in _iterate_events(batch_size):
        if event.previous_hash != expected_previous:
            return ChainBreak(event.pk, "its previous_hash does not match the row before it")
        if _row_hash(event) != event.row_hash:
            return ChainBreak(event.pk, "its content does not match its row_hash")
        expected_previous = event.row_hash
    return None


def _iterate_events(batch_size: int) -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        batch = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not batch:
            return
        yield from batch
        last_id = batch[-1].pk
