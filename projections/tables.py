"""The read models, as SQLAlchemy Core tables (the documentation of record; Alembic migrations in
db/migrations create them, and a test checks the two never drift apart).

Tables carry no schema: every projection lives in a PostgreSQL schema chosen at run time
(`projections` when live, `proj_shadow_<ts>` while a replay rebuilds it), so the same
definitions serve the live read model and its shadow. Money is BIGINT minor units plus an
ISO-4217 currency; times are timestamptz (UTC), converted from the events' epoch ms.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

DEFAULT_SCHEMA = "projections"
"""Where the live read models are; readers name it explicitly (no search_path side effects)."""

metadata = MetaData()


def _ts(name: str, nullable: bool = True) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


checkouts = Table(
    "checkouts",
    metadata,
    Column("checkout_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("customer_email", Text, nullable=False),
    # PENDING | AWAITING_PAYMENT_ACTION | COMPENSATING | COMPLETED | FAILED | CANCELLED |
    # NEEDS_ATTENTION — exactly saga.state.Status, computed by the saga's own `evolve`.
    Column("status", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("subtotal", BigInteger, nullable=False),
    Column("tax", BigInteger),
    Column("shipping", BigInteger),
    Column("total", BigInteger),
    Column("payment_provider", Text, nullable=False),
    Column("order_id", Text),
    Column("failure_step", Text),  # NULL with a failure_reason: the customer cancelled
    Column("failure_reason", Text),
    Column("attention_step", Text),  # NEEDS_ATTENTION: the compensation that kept failing
    Column("attention_reason", Text),
    # AWAITING_PAYMENT_ACTION only (NULL otherwise): what the storefront's client library needs
    # to finish 3-D Secure. The client secret is sensitive: served only to the owning tenant.
    Column("next_action_provider", Text),
    Column("next_action_kind", Text),  # e.g. use_stripe_sdk | redirect_to_url
    Column("next_action_client_secret", Text),
    Column("next_action_redirect_url", Text),
    _ts("started_at", nullable=False),
    _ts("completed_at"),
    Column("last_event_id", Text, nullable=False),
    Column("last_event_type", Text, nullable=False),
    _ts("last_event_at", nullable=False),
    Column("events_applied", Integer, nullable=False),
    Index("checkouts_status_idx", "status"),
    Index("checkouts_started_at_idx", "started_at"),
)

checkout_steps = Table(
    "checkout_steps",
    metadata,
    Column("checkout_id", Text, nullable=False),
    Column("step", Text, nullable=False),  # events.messages.Step value
    # saga.state.Phase value: in_flight | awaiting_action | attempt_failed | retry_wait |
    # succeeded | failed | abandoned (steps never started have no row)
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    _ts("started_at"),  # first StepStarted of the step
    _ts("finished_at"),  # when it succeeded, failed for good or was abandoned
    Column("last_error", Text),
    PrimaryKeyConstraint("checkout_id", "step"),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", Text, primary_key=True),
    Column("checkout_id", Text, nullable=False, unique=True),
    Column("tenant_id", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("customer_email", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("subtotal", BigInteger, nullable=False),
    Column("tax", BigInteger, nullable=False),
    Column("shipping", BigInteger, nullable=False),
    Column("total", BigInteger, nullable=False),
    _ts("placed_at", nullable=False),
    Index("orders_placed_at_idx", "placed_at"),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", Text, nullable=False),
    Column("line_no", Integer, nullable=False),  # 1-based, in the order the customer sent
    Column("sku", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_amount", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),  # quantity * unit_amount
    PrimaryKeyConstraint("order_id", "line_no"),
)

payments = Table(
    "payments",
    metadata,
    Column("payment_id", Text, primary_key=True),
    Column("checkout_id", Text, nullable=False),
    Column("provider", Text, nullable=False),
    # saga.state.PaymentStatus: action_required | failed | authorized | captured | voided
    Column("status", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("captured", BigInteger, nullable=False),
    Column("refunded", BigInteger, nullable=False),
    _ts("authorized_at"),
    _ts("captured_at"),
    _ts("voided_at"),
    _ts("updated_at", nullable=False),
    Index("payments_checkout_idx", "checkout_id"),
    Index("payments_captured_at_idx", "captured_at"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("refund_id", Text, primary_key=True),  # the provider's refund id
    Column("checkout_id", Text, nullable=False),
    Column("payment_id", Text),
    Column("order_id", Text),  # NULL: a compensation refund of a checkout that never completed
    Column("amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    _ts("refunded_at", nullable=False),
    Index("refunds_checkout_idx", "checkout_id"),
    Index("refunds_refunded_at_idx", "refunded_at"),
)

# --- the projector's own bookkeeping (in the same schema, so a shadow has its own) ----------

projection_offsets = Table(
    "projection_offsets",
    metadata,
    Column("projection", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger, nullable=False),  # the first offset not yet applied
    _ts("updated_at", nullable=False),
    PrimaryKeyConstraint("projection", "topic", "partition"),
)

projection_applied_events = Table(
    "projection_applied_events",
    metadata,
    # Deduplication (the embedded broker delivers aborted copies; ADR 0006) and the per-checkout
    # event log the projector folds with the saga's `evolve` after a restart.
    Column("message_id", Text, primary_key=True),
    Column("checkout_id", Text, nullable=False),
    Column("seq", Integer),  # position in the checkout's fold (checkout.events only)
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("event_type", Text, nullable=False),
    _ts("occurred_at", nullable=False),
    Column("payload", LargeBinary, nullable=False),  # the record value as it was on Kafka
    _ts("applied_at", nullable=False),
    Index("applied_events_checkout_seq_idx", "checkout_id", "seq"),
)

projection_parked_events = Table(
    "projection_parked_events",
    metadata,
    # Events that cannot be applied yet (no CheckoutStarted for their checkout) or at all
    # (undecodable). Never silently dropped: applied when their predecessor arrives.
    Column("message_id", Text, primary_key=True),
    Column("checkout_id", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("event_type", Text, nullable=False),
    _ts("occurred_at"),
    Column("payload", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    _ts("parked_at", nullable=False),
    Index("parked_events_checkout_idx", "checkout_id"),
)

projection_meta = Table(
    "projection_meta",
    metadata,
    # Small facts about this copy of the projection: how a replay started, when it swapped in.
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

VIEWS: tuple[str, ...] = ("daily_revenue", "checkout_funnel", "step_latency")
"""Created by migrations as SQL views (see db/migrations/versions/)."""
