"""SQL for the projector: every function runs inside the caller's transaction, against the schema
the caller put first on search_path (`use_schema`), so live and shadow share the code."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from events import messages as m
from projections.model import CheckoutProjection

Conn = psycopg.Connection[Any]
TopicPartitionKey = tuple[str, int]


def ts(epoch_ms: int | None) -> datetime | None:
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, UTC)


def use_schema(conn: Conn, schema: str) -> None:
    """Scope this transaction's unqualified names to `schema` (SET LOCAL ends with it)."""
    conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))


# --- offsets -----------------------------------------------------------------------------------


def lock_offsets(
    conn: Conn, projection: str, keys: Iterable[TopicPartitionKey]
) -> dict[TopicPartitionKey, int]:
    """Stored next offsets, row-locked until commit: a second projector instance (or a replay
    swapping schemas) waits instead of interleaving with us."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = conn.execute(
        "SELECT topic, partition, next_offset FROM projection_offsets "
        "WHERE projection = %s "
        "AND (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[])) "
        "ORDER BY topic, partition FOR UPDATE",
        (projection, [t for t, _ in wanted], [p for _, p in wanted]),
    ).fetchall()
    return {(t, p): int(o) for t, p, o in rows}


def read_offsets(conn: Conn, projection: str) -> dict[TopicPartitionKey, int]:
    rows = conn.execute(
        "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = %s",
        (projection,),
    ).fetchall()
    return {(t, p): int(o) for t, p, o in rows}


def save_offsets(conn: Conn, projection: str, offsets: Mapping[TopicPartitionKey, int]) -> None:
    conn.cursor().executemany(
        "INSERT INTO projection_offsets (projection, topic, partition, next_offset, updated_at) "
        "VALUES (%s, %s, %s, %s, now()) ON CONFLICT (projection, topic, partition) "
        "DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        [(projection, t, p, o) for (t, p), o in offsets.items()],
    )


def init_offsets(conn: Conn, projection: str, offsets: Mapping[TopicPartitionKey, int]) -> None:
    """Rows for partitions never seen, at the given start; existing rows are kept."""
    conn.cursor().executemany(
        "INSERT INTO projection_offsets (projection, topic, partition, next_offset, updated_at) "
        "VALUES (%s, %s, %s, %s, now()) ON CONFLICT DO NOTHING",
        [(projection, t, p, o) for (t, p), o in offsets.items()],
    )


# --- event log, deduplication, parking ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventRow:
    message_id: str
    checkout_id: str
    topic: str
    partition: int
    offset: int
    event_type: str
    occurred_at: int | None
    payload: bytes


def known_ids(conn: Conn, ids: Sequence[str]) -> set[str]:
    """Ids applied or parked already: a redelivered or duplicated copy changes nothing."""
    if not ids:
        return set()
    rows = conn.execute(
        "SELECT message_id FROM projection_applied_events WHERE message_id = ANY(%s) "
        "UNION SELECT message_id FROM projection_parked_events WHERE message_id = ANY(%s)",
        (list(ids), list(ids)),
    ).fetchall()
    return {r[0] for r in rows}


def record_applied(conn: Conn, rows: Sequence[tuple[EventRow, int | None]]) -> None:
    conn.cursor().executemany(
        "INSERT INTO projection_applied_events (message_id, checkout_id, seq, topic, partition, "
        '"offset", event_type, occurred_at, payload, applied_at) '
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())",
        [
            (
                r.message_id,
                r.checkout_id,
                seq,
                r.topic,
                r.partition,
                r.offset,
                r.event_type,
                ts(r.occurred_at or 0),
                r.payload,
            )
            for r, seq in rows
        ],
    )


def park(conn: Conn, row: EventRow, reason: str) -> None:
    conn.execute(
        "INSERT INTO projection_parked_events (message_id, checkout_id, topic, partition, "
        '"offset", event_type, occurred_at, payload, reason, parked_at) '
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT DO NOTHING",
        (
            row.message_id,
            row.checkout_id,
            row.topic,
            row.partition,
            row.offset,
            row.event_type,
            ts(row.occurred_at),
            row.payload,
            reason,
        ),
    )


def take_parked(conn: Conn, checkout_id: str) -> list[EventRow]:
    """Parked events of a checkout, in log order, removed from the parking table."""
    rows = conn.execute(
        "DELETE FROM projection_parked_events WHERE checkout_id = %s AND event_type <> '' "
        'RETURNING message_id, checkout_id, topic, partition, "offset", event_type, payload',
        (checkout_id,),
    ).fetchall()
    out = [EventRow(r[0], r[1], r[2], r[3], r[4], r[5], None, bytes(r[6])) for r in rows]
    return sorted(out, key=lambda e: (e.topic, e.partition, e.offset))


def stored_event_counts(conn: Conn, checkout_ids: Sequence[str]) -> dict[str, int]:
    rows = conn.execute(
        "SELECT checkout_id, events_applied FROM checkouts WHERE checkout_id = ANY(%s)",
        (list(checkout_ids),),
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def event_logs(conn: Conn, topic: str, checkout_ids: Sequence[str]) -> dict[str, list[bytes]]:
    rows = conn.execute(
        "SELECT checkout_id, payload FROM projection_applied_events "
        "WHERE checkout_id = ANY(%s) AND topic = %s AND seq IS NOT NULL ORDER BY checkout_id, seq",
        (list(checkout_ids), topic),
    ).fetchall()
    out: dict[str, list[bytes]] = {}
    for checkout_id, payload in rows:
        out.setdefault(checkout_id, []).append(bytes(payload))
    return out


# --- read model rows ------------------------------------------------------------------------------


def write_checkout(conn: Conn, p: CheckoutProjection) -> None:
    s = p.state
    failure, attention, action = s.failure, s.attention, p.next_action
    conn.execute(
        "INSERT INTO checkouts (checkout_id, tenant_id, customer_id, customer_email, status, "
        "currency, subtotal, tax, shipping, total, payment_provider, order_id, failure_step, "
        "failure_reason, attention_step, attention_reason, next_action_provider, "
        "next_action_kind, next_action_client_secret, next_action_redirect_url, started_at, "
        "completed_at, last_event_id, last_event_type, last_event_at, events_applied) "
        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
        "ON CONFLICT (checkout_id) DO UPDATE SET status = EXCLUDED.status, tax = EXCLUDED.tax, "
        "shipping = EXCLUDED.shipping, total = EXCLUDED.total, order_id = EXCLUDED.order_id, "
        "failure_step = EXCLUDED.failure_step, failure_reason = EXCLUDED.failure_reason, "
        "attention_step = EXCLUDED.attention_step, attention_reason = EXCLUDED.attention_reason, "
        "next_action_provider = EXCLUDED.next_action_provider, "
        "next_action_kind = EXCLUDED.next_action_kind, "
        "next_action_client_secret = EXCLUDED.next_action_client_secret, "
        "next_action_redirect_url = EXCLUDED.next_action_redirect_url, "
        "completed_at = EXCLUDED.completed_at, last_event_id = EXCLUDED.last_event_id, "
        "last_event_type = EXCLUDED.last_event_type, last_event_at = EXCLUDED.last_event_at, "
        "events_applied = EXCLUDED.events_applied",
        (
            s.checkout_id,
            s.order.tenant_id,
            s.order.customer_id,
            s.order.customer_email,
            s.status.value,
            s.currency,
            s.subtotal,
            s.tax,
            s.shipping,
            s.total,
            s.order.payment_provider,
            s.order_id,
            None if failure is None or failure.step is None else failure.step.value,
            None if failure is None else failure.reason,
            None if attention is None or attention.step is None else attention.step.value,
            None if attention is None else attention.reason,
            None if action is None else action.provider,
            None if action is None else action.kind,
            None if action is None else action.client_secret,
            None if action is None else action.redirect_url,
            ts(p.started_at),
            ts(s.completed_at),
            p.last_event_id,
            p.last_event_type,
            ts(p.last_event_at),
            p.events_applied,
        ),
    )
    _write_steps(conn, p)
    _write_payments(conn, p)
    _write_refunds(conn, p)
    if s.order_id is not None and s.completed_at is not None:
        _write_order(conn, s.order_id, s.order, s.tax or 0, s.shipping or 0, s.completed_at, True)


def _write_steps(conn: Conn, p: CheckoutProjection) -> None:
    conn.cursor().executemany(
        "INSERT INTO checkout_steps (checkout_id, step, status, attempts, started_at, "
        "finished_at, last_error) VALUES (%s,%s,%s,%s,%s,%s,%s) "
        "ON CONFLICT (checkout_id, step) DO UPDATE SET status = EXCLUDED.status, "
        "attempts = EXCLUDED.attempts, started_at = EXCLUDED.started_at, "
        "finished_at = EXCLUDED.finished_at, last_error = EXCLUDED.last_error",
        [
            (
                p.state.checkout_id,
                step.value,
                row.status,
                row.attempts,
                ts(row.started_at),
                ts(row.finished_at),
                row.last_error,
            )
            for step, row in p.steps.items()
        ],
    )


def _write_payments(conn: Conn, p: CheckoutProjection) -> None:
    s = p.state
    rows = []
    for pay in s.payments:
        t = p.payment_times.get(pay.payment_id)
        if t is None:
            continue
        rows.append(
            (
                pay.payment_id,
                s.checkout_id,
                s.order.payment_provider,
                pay.status.value,
                s.currency,
                pay.captured,
                pay.refunded,
                ts(t.authorized_at),
                ts(t.captured_at),
                ts(t.voided_at),
                ts(t.updated_at),
            )
        )
    conn.cursor().executemany(
        "INSERT INTO payments (payment_id, checkout_id, provider, status, currency, captured, "
        "refunded, authorized_at, captured_at, voided_at, updated_at) "
        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (payment_id) DO UPDATE SET "
        "status = EXCLUDED.status, captured = EXCLUDED.captured, refunded = EXCLUDED.refunded, "
        "authorized_at = EXCLUDED.authorized_at, captured_at = EXCLUDED.captured_at, "
        "voided_at = EXCLUDED.voided_at, updated_at = EXCLUDED.updated_at",
        rows,
    )


def _write_refunds(conn: Conn, p: CheckoutProjection) -> None:
    s = p.state
    conn.cursor().executemany(
        "INSERT INTO refunds (refund_id, checkout_id, payment_id, order_id, amount, currency, "
        "refunded_at) VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (refund_id) DO UPDATE SET "
        # checkout.events is authoritative for the money; OrderRefunded may have come first
        "payment_id = EXCLUDED.payment_id, amount = EXCLUDED.amount, "
        "refunded_at = EXCLUDED.refunded_at, "
        "order_id = COALESCE(refunds.order_id, EXCLUDED.order_id)",
        [
            (
                r.refund_id,
                s.checkout_id,
                r.payment_id,
                s.order_id,
                r.amount,
                s.currency,
                ts(r.refunded_at),
            )
            for r in p.refunds
        ],
    )


def _write_order(
    conn: Conn,
    order_id: str,
    order: m.CheckoutStarted | m.OrderPlaced,
    tax: int,
    shipping: int,
    placed_at: int,
    authoritative: bool,
) -> None:
    # The same order arrives twice (CheckoutCompleted on checkout.events, OrderPlaced on
    # orders.events) with the same values. Whichever comes first writes it; checkout.events
    # wins any disagreement, so the result does not depend on which topic was read first.
    subtotal = order.subtotal
    on_conflict = (
        "DO UPDATE SET tax = EXCLUDED.tax, shipping = EXCLUDED.shipping, "
        "total = EXCLUDED.total, placed_at = EXCLUDED.placed_at"
        if authoritative
        else "DO NOTHING"
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO orders (order_id, checkout_id, tenant_id, customer_id, customer_email, "
            "currency, subtotal, tax, shipping, total, placed_at) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (order_id) {}"
        ).format(sql.SQL(on_conflict)),
        (
            order_id,
            order.checkout_id,
            order.tenant_id,
            order.customer_id,
            order.customer_email,
            order.currency,
            subtotal,
            tax,
            shipping,
            subtotal + tax + shipping,
            ts(placed_at),
        ),
    )
    conn.cursor().executemany(
        "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_amount, amount) "
        "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
        [
            (
                order_id,
                i,
                item.sku,
                item.quantity,
                item.unit_amount,
                item.quantity * item.unit_amount,
            )
            for i, item in enumerate(order.items, start=1)
        ],
    )


def write_order_placed(conn: Conn, event: m.OrderPlaced) -> None:
    _write_order(conn, event.order_id, event, event.tax, event.shipping, event.placed_at, False)


def write_order_refunded(conn: Conn, event: m.OrderRefunded) -> None:
    """The public twin of a PaymentRefunded: same refund id and amount, so either one creates
    the row and the other only fills in what it alone knows (the order id)."""
    conn.execute(
        "INSERT INTO refunds (refund_id, checkout_id, payment_id, order_id, amount, currency, "
        "refunded_at) VALUES (%s,%s,NULL,%s,%s,%s,%s) ON CONFLICT (refund_id) DO UPDATE SET "
        "order_id = EXCLUDED.order_id",
        (
            event.refund_id,
            event.checkout_id,
            event.order_id,
            event.amount,
            event.currency,
            ts(event.refunded_at),
        ),
    )
