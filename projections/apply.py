"""Apply a batch of Kafka records to the read model, inside the caller's transaction.

`apply_records` is the projection: decode, drop what was applied before (by message_id: the
embedded broker delivers aborted copies, ADR 0006), park what cannot be applied yet, advance each
touched checkout with the saga's `evolve`, write its rows once per batch. It does not touch
offsets: the projector and replay wrap it with their offset bookkeeping in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from events import messages as m
from events.envelope import Envelope
from events.serde import DecodeError, Serde
from events.topics import CHECKOUT_EVENTS, ORDERS_EVENTS
from projections import store
from projections.model import CheckoutProjection, MissingPredecessor, advance
from projections.store import Conn, EventRow

log = logging.getLogger(__name__)

NO_START = "no CheckoutStarted applied for this checkout yet"


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as the projector saw it."""

    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Topics:
    """Which topic plays which part; tests use their own topics on the shared broker."""

    checkout_events: str = CHECKOUT_EVENTS
    orders_events: str = ORDERS_EVENTS


@dataclass
class ApplyResult:
    applied: int = 0
    duplicates: int = 0
    parked: int = 0
    unparked: int = 0
    undecodable: int = 0
    # checkout projections as of the end of this batch: the caller's cache after commit
    touched: dict[str, CheckoutProjection] = field(default_factory=dict)


class _Batch:
    def __init__(
        self,
        conn: Conn,
        serde: Serde,
        topics: Topics,
        cache: dict[str, CheckoutProjection],
    ) -> None:
        self.conn, self.serde, self.topics, self.cache = conn, serde, topics, cache
        self.projections: dict[str, CheckoutProjection | None] = {}
        self.applied: list[tuple[EventRow, int | None]] = []
        self.seen: set[str] = set()
        self.result = ApplyResult()

    # --- loading ------------------------------------------------------------------------------

    def load(self, checkout_ids: Sequence[str]) -> None:
        """Each checkout's projection, from the cache when it matches the stored row (same
        number of events applied), else folded from its stored event log."""
        wanted = sorted(set(checkout_ids) - set(self.projections))
        if not wanted:
            return
        counts = store.stored_event_counts(self.conn, wanted)
        stale = []
        for checkout_id in wanted:
            cached = self.cache.get(checkout_id)
            stored = counts.get(checkout_id)
            if stored is None:
                self.projections[checkout_id] = None
            elif cached is not None and cached.events_applied == stored:
                self.projections[checkout_id] = cached
            else:
                stale.append(checkout_id)
        logs = store.event_logs(self.conn, self.topics.checkout_events, stale)
        for checkout_id in stale:
            projection: CheckoutProjection | None = None
            for payload in logs.get(checkout_id, []):
                projection = advance(projection, self.serde.decode(payload, CHECKOUT_EVENTS))
            self.projections[checkout_id] = projection

    # --- applying -----------------------------------------------------------------------------

    def checkout_event(self, row: EventRow, envelope: Envelope[Any]) -> None:
        checkout_id = envelope.checkout_id
        try:
            projection = advance(self.projections.get(checkout_id), envelope)
        except MissingPredecessor:
            store.park(self.conn, row, NO_START)
            self.result.parked += 1
            return
        self.projections[checkout_id] = projection
        self.applied.append((row, projection.events_applied))
        self.result.applied += 1
        if isinstance(envelope.message, m.CheckoutStarted) and projection.events_applied == 1:
            self.unpark(checkout_id)

    def unpark(self, checkout_id: str) -> None:
        for row in store.take_parked(self.conn, checkout_id):
            envelope = self.serde.decode(row.payload, CHECKOUT_EVENTS)
            self.result.unparked += 1
            self.result.parked -= 1
            self.checkout_event(row, envelope)

    def order_event(self, row: EventRow, envelope: Envelope[Any]) -> None:
        message = envelope.message
        if isinstance(message, m.OrderPlaced):
            store.write_order_placed(self.conn, message)
        elif isinstance(message, m.OrderRefunded):
            store.write_order_refunded(self.conn, message)
        self.applied.append((row, None))
        self.result.applied += 1

    def flush(self) -> ApplyResult:
        for checkout_id, projection in self.projections.items():
            if projection is not None and _changed(projection, self.cache.get(checkout_id)):
                store.write_checkout(self.conn, projection)
                self.result.touched[checkout_id] = projection
        store.record_applied(self.conn, self.applied)
        return self.result


def _changed(projection: CheckoutProjection, cached: CheckoutProjection | None) -> bool:
    return cached is None or cached.events_applied != projection.events_applied


def apply_records(
    conn: Conn,
    serde: Serde,
    records: Sequence[Record],
    *,
    topics: Topics = Topics(),
    cache: dict[str, CheckoutProjection] | None = None,
) -> ApplyResult:
    """Apply `records` (in log order per partition) in the caller's transaction, with the
    caller's search_path. `cache` is read, never written: the caller adopts
    `ApplyResult.touched` once the transaction has committed."""
    batch = _Batch(conn, serde, topics, cache if cache is not None else {})
    decoded: list[tuple[EventRow, Envelope[Any]]] = []
    for record in records:
        try:
            envelope = serde.decode(record.value, _wire_topic(record.topic, topics))
        except DecodeError as e:
            # Never silently dropped: parked with the error for an operator (and counted).
            log.error("undecodable record %s[%d]@%d: %s", *_where(record), e)
            row = EventRow(
                f"undecodable:{record.topic}:{record.partition}:{record.offset}",
                "",
                record.topic,
                record.partition,
                record.offset,
                "",
                None,
                record.value,
            )
            store.park(conn, row, f"undecodable: {e}")
            batch.result.undecodable += 1
            continue
        decoded.append((_row(record, envelope), envelope))
    known = store.known_ids(conn, [env.message_id for _, env in decoded])
    fresh: list[tuple[EventRow, Envelope[Any]]] = []
    for row, envelope in decoded:
        if envelope.message_id in known or envelope.message_id in batch.seen:
            batch.result.duplicates += 1
            continue
        batch.seen.add(envelope.message_id)
        fresh.append((row, envelope))
    batch.load([env.checkout_id for row, env in fresh if row.topic == topics.checkout_events])
    for row, envelope in fresh:
        if row.topic == topics.checkout_events:
            batch.checkout_event(row, envelope)
        else:
            batch.order_event(row, envelope)
    return batch.flush()


def _wire_topic(topic: str, topics: Topics) -> str:
    # The serde may resolve schemas by topic (registry subjects): test topics read as the real ones.
    return CHECKOUT_EVENTS if topic == topics.checkout_events else ORDERS_EVENTS


def _where(record: Record) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


def _row(record: Record, envelope: Envelope[Any]) -> EventRow:
    return EventRow(
        envelope.message_id,
        envelope.checkout_id,
        record.topic,
        record.partition,
        record.offset,
        envelope.type,
        envelope.occurred_at,
        record.value,
    )
