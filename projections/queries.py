"""Read access to the projections for the API and the CLI: small, typed, psycopg only.

Every function takes a `psycopg.Connection` owned by the caller (the API's pool) and a
`schema` (default: the live one). Names are schema-qualified in each statement rather than set
through search_path, so a reader never changes its connection's state, and a replay's atomic
schema swap is seen by the very next query.

Read-your-writes: a `CheckoutView` says how far the projection has got for that checkout
(`last_event_id`, `last_event_type`, `last_event_at`, `events_applied`), so the API can answer
"PENDING, as of StepStarted at 12:00:01.234" instead of pretending to be current.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from projections.tables import DEFAULT_SCHEMA


@dataclass(frozen=True)
class StepView:
    step: str  # events.messages.Step value, e.g. "reserve_inventory"
    status: str  # saga.state.Phase value, e.g. "in_flight", "succeeded", "failed"
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class NextActionView:
    provider: str
    kind: str | None  # e.g. use_stripe_sdk | redirect_to_url
    redirect_url: str | None
    client_secret: str | None = field(default=None, repr=False)  # sensitive: never log


@dataclass(frozen=True)
class CheckoutView:
    checkout_id: str
    tenant_id: str
    # PENDING|AWAITING_PAYMENT_ACTION|COMPENSATING|COMPLETED|FAILED|CANCELLED|NEEDS_ATTENTION
    status: str
    currency: str
    subtotal: int
    tax: int | None
    shipping: int | None
    total: int | None
    order_id: str | None
    failure_step: str | None
    failure_reason: str | None
    steps: tuple[StepView, ...]
    last_event_id: str
    last_event_type: str
    last_event_at: datetime
    events_applied: int
    # only while AWAITING_PAYMENT_ACTION (the projector writes NULLs once it leaves)
    next_action: NextActionView | None = None


@dataclass(frozen=True)
class OrderView:
    order_id: str
    checkout_id: str
    tenant_id: str
    currency: str
    total: int
    captured: int
    refunded: int

    @property
    def refundable(self) -> int:
        return max(0, self.captured - self.refunded)


@dataclass(frozen=True)
class PartitionProgress:
    """How far one projection has applied one partition (end offsets come from Kafka)."""

    projection: str
    topic: str
    partition: int
    next_offset: int  # the first offset not yet applied
    updated_at: datetime


# Steps in the order a timeline reads naturally (forward, then compensations).
_STEP_ORDER = (
    "reserve_inventory",
    "calculate_tax",
    "quote_shipping",
    "authorize_payment",
    "commit_inventory",
    "capture_payment",
    "release_inventory",
    "void_payment",
    "refund_payment",
)


def _t(schema: str, table: str) -> sql.Identifier:
    return sql.Identifier(schema, table)


def _fetch(conn: psycopg.Connection[Any], query: sql.Composed, params: tuple[Any, ...]) -> Any:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def get_checkout(
    conn: psycopg.Connection[Any], checkout_id: str, *, schema: str = DEFAULT_SCHEMA
) -> CheckoutView | None:
    rows = _fetch(
        conn,
        sql.SQL("SELECT * FROM {} WHERE checkout_id = %s").format(_t(schema, "checkouts")),
        (checkout_id,),
    )
    if not rows:
        return None
    row = rows[0]
    step_rows = _fetch(
        conn,
        sql.SQL(
            "SELECT step, status, attempts, started_at, finished_at, last_error "
            "FROM {} WHERE checkout_id = %s"
        ).format(_t(schema, "checkout_steps")),
        (checkout_id,),
    )
    rank = {s: i for i, s in enumerate(_STEP_ORDER)}
    step_rows.sort(key=lambda r: (rank.get(r["step"], len(rank)), r["step"]))
    return CheckoutView(
        checkout_id=row["checkout_id"],
        tenant_id=row["tenant_id"],
        status=row["status"],
        currency=row["currency"],
        subtotal=row["subtotal"],
        tax=row["tax"],
        shipping=row["shipping"],
        total=row["total"],
        order_id=row["order_id"],
        failure_step=row["failure_step"],
        failure_reason=row["failure_reason"],
        steps=tuple(StepView(**r) for r in step_rows),
        last_event_id=row["last_event_id"],
        last_event_type=row["last_event_type"],
        last_event_at=row["last_event_at"],
        events_applied=row["events_applied"],
        next_action=None
        if row["next_action_provider"] is None
        else NextActionView(
            provider=row["next_action_provider"],
            kind=row["next_action_kind"],
            redirect_url=row["next_action_redirect_url"],
            client_secret=row["next_action_client_secret"],
        ),
    )


def get_order(
    conn: psycopg.Connection[Any], order_id: str, *, schema: str = DEFAULT_SCHEMA
) -> OrderView | None:
    # Captured and refunded money belong to the checkout (a payment or refund can precede the
    # order row), so they are summed from payments/refunds rather than stored on the order.
    rows = _fetch(
        conn,
        sql.SQL(
            "SELECT o.order_id, o.checkout_id, o.tenant_id, o.currency, o.total, "
            " COALESCE((SELECT sum(p.captured) FROM {payments} p "
            "           WHERE p.checkout_id = o.checkout_id), 0)::bigint AS captured, "
            " COALESCE((SELECT sum(r.amount) FROM {refunds} r "
            "           WHERE r.checkout_id = o.checkout_id), 0)::bigint AS refunded "
            "FROM {orders} o WHERE o.order_id = %s"
        ).format(
            payments=_t(schema, "payments"),
            refunds=_t(schema, "refunds"),
            orders=_t(schema, "orders"),
        ),
        (order_id,),
    )
    return OrderView(**rows[0]) if rows else None


def projection_lag(
    conn: psycopg.Connection[Any], *, schema: str = DEFAULT_SCHEMA
) -> list[PartitionProgress]:
    """Applied positions per (projection, topic, partition). Lag = Kafka end offset minus
    `next_offset`; `saga status` and the projector's gauge add the end offsets."""
    rows = _fetch(
        conn,
        sql.SQL(
            "SELECT projection, topic, partition, next_offset, updated_at FROM {} "
            "ORDER BY projection, topic, partition"
        ).format(_t(schema, "projection_offsets")),
        (),
    )
    return [PartitionProgress(**r) for r in rows]


def parked_count(conn: psycopg.Connection[Any], *, schema: str = DEFAULT_SCHEMA) -> int:
    """Events waiting for a predecessor (or undecodable): an operator should look at these."""
    rows = _fetch(
        conn,
        sql.SQL("SELECT count(*) AS n FROM {}").format(_t(schema, "projection_parked_events")),
        (),
    )
    return int(rows[0]["n"])
