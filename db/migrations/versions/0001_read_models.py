"""Read models, projector bookkeeping and the analyst views.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Written out (not generated from projections.tables at run time) so that this revision stays what
it was when later ones change the tables; tests/integration/db/test_migrations.py
checks that the migrated database matches projections.tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.migrations import applies_to

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tables() -> None:
    op.create_table(
        "checkouts",
        sa.Column("checkout_id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("customer_email", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("subtotal", sa.BigInteger, nullable=False),
        sa.Column("tax", sa.BigInteger),
        sa.Column("shipping", sa.BigInteger),
        sa.Column("total", sa.BigInteger),
        sa.Column("payment_provider", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text),
        sa.Column("failure_step", sa.Text),
        sa.Column("failure_reason", sa.Text),
        sa.Column("attention_step", sa.Text),
        sa.Column("attention_reason", sa.Text),
        _ts("started_at", nullable=False),
        _ts("completed_at"),
        sa.Column("last_event_id", sa.Text, nullable=False),
        sa.Column("last_event_type", sa.Text, nullable=False),
        _ts("last_event_at", nullable=False),
        sa.Column("events_applied", sa.Integer, nullable=False),
    )
    op.create_index("checkouts_status_idx", "checkouts", ["status"])
    op.create_index("checkouts_started_at_idx", "checkouts", ["started_at"])
    op.create_table(
        "checkout_steps",
        sa.Column("checkout_id", sa.Text, nullable=False),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _ts("started_at"),
        _ts("finished_at"),
        sa.Column("last_error", sa.Text),
        sa.PrimaryKeyConstraint("checkout_id", "step"),
    )
    op.create_table(
        "orders",
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("checkout_id", sa.Text, nullable=False, unique=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("customer_email", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("subtotal", sa.BigInteger, nullable=False),
        sa.Column("tax", sa.BigInteger, nullable=False),
        sa.Column("shipping", sa.BigInteger, nullable=False),
        sa.Column("total", sa.BigInteger, nullable=False),
        _ts("placed_at", nullable=False),
    )
    op.create_index("orders_placed_at_idx", "orders", ["placed_at"])
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("line_no", sa.Integer, nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_amount", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("order_id", "line_no"),
    )
    op.create_table(
        "payments",
        sa.Column("payment_id", sa.Text, primary_key=True),
        sa.Column("checkout_id", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("captured", sa.BigInteger, nullable=False),
        sa.Column("refunded", sa.BigInteger, nullable=False),
        _ts("authorized_at"),
        _ts("captured_at"),
        _ts("voided_at"),
        _ts("updated_at", nullable=False),
    )
    op.create_index("payments_checkout_idx", "payments", ["checkout_id"])
    op.create_index("payments_captured_at_idx", "payments", ["captured_at"])
    op.create_table(
        "refunds",
        sa.Column("refund_id", sa.Text, primary_key=True),
        sa.Column("checkout_id", sa.Text, nullable=False),
        sa.Column("payment_id", sa.Text),
        sa.Column("order_id", sa.Text),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        _ts("refunded_at", nullable=False),
    )
    op.create_index("refunds_checkout_idx", "refunds", ["checkout_id"])
    op.create_index("refunds_refunded_at_idx", "refunds", ["refunded_at"])


def _bookkeeping() -> None:
    op.create_table(
        "projection_offsets",
        sa.Column("projection", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("projection", "topic", "partition"),
    )
    op.create_table(
        "projection_applied_events",
        sa.Column("message_id", sa.Text, primary_key=True),
        sa.Column("checkout_id", sa.Text, nullable=False),
        sa.Column("seq", sa.Integer),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        _ts("occurred_at", nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        _ts("applied_at", nullable=False),
    )
    op.create_index(
        "applied_events_checkout_seq_idx", "projection_applied_events", ["checkout_id", "seq"]
    )
    op.create_table(
        "projection_parked_events",
        sa.Column("message_id", sa.Text, primary_key=True),
        sa.Column("checkout_id", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        _ts("occurred_at"),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        _ts("parked_at", nullable=False),
    )
    op.create_index("parked_events_checkout_idx", "projection_parked_events", ["checkout_id"])
    op.create_table(
        "projection_meta",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


# Days are UTC calendar days. Money moves on the day it moved (capture, refund), which is what
# finance reconciles against the provider's payouts; order_count counts orders placed that day.
DAILY_REVENUE = """
CREATE VIEW daily_revenue AS
WITH movements AS (
    SELECT (p.captured_at AT TIME ZONE 'UTC')::date AS day, p.currency,
           p.captured AS gross, 0::bigint AS refunded, 0 AS placed
      FROM payments p
     WHERE p.captured_at IS NOT NULL AND p.captured > 0
    UNION ALL
    SELECT (r.refunded_at AT TIME ZONE 'UTC')::date, r.currency, 0, r.amount, 0
      FROM refunds r
    UNION ALL
    SELECT (o.placed_at AT TIME ZONE 'UTC')::date, o.currency, 0, 0, 1
      FROM orders o
)
SELECT day, currency,
       sum(gross)::bigint AS gross,
       sum(refunded)::bigint AS refunded,
       (sum(gross) - sum(refunded))::bigint AS net,
       sum(placed)::bigint AS order_count
  FROM movements
 GROUP BY day, currency
"""

# Long format, one row per (day, stage[, failure]): stages 1-4 are the happy path, stage 5 rows
# are checkouts that left it, by status and the step and reason they failed at.
CHECKOUT_FUNNEL = """
CREATE VIEW checkout_funnel AS
WITH c AS (
    SELECT c.checkout_id,
           (c.started_at AT TIME ZONE 'UTC')::date AS day,
           c.status,
           COALESCE(c.failure_step, c.attention_step) AS failure_step,
           COALESCE(c.failure_reason, c.attention_reason) AS failure_reason,
           EXISTS (SELECT 1 FROM checkout_steps s
                    WHERE s.checkout_id = c.checkout_id AND s.step = 'reserve_inventory'
                      AND s.status = 'succeeded') AS reserved,
           EXISTS (SELECT 1 FROM checkout_steps s
                    WHERE s.checkout_id = c.checkout_id AND s.step = 'authorize_payment'
                      AND s.status = 'succeeded') AS authorized
      FROM checkouts c
)
SELECT day, 1 AS stage_order, 'started' AS stage,
       NULL::text AS failure_step, NULL::text AS failure_reason, count(*) AS checkouts
  FROM c GROUP BY day
UNION ALL
SELECT day, 2, 'reserved', NULL, NULL, count(*) FROM c WHERE reserved GROUP BY day
UNION ALL
SELECT day, 3, 'authorized', NULL, NULL, count(*) FROM c WHERE authorized GROUP BY day
UNION ALL
SELECT day, 4, 'completed', NULL, NULL, count(*) FROM c WHERE status = 'COMPLETED' GROUP BY day
UNION ALL
SELECT day, 5, lower(status), failure_step, failure_reason, count(*)
  FROM c
 WHERE status IN ('FAILED', 'CANCELLED', 'NEEDS_ATTENTION', 'COMPENSATING')
 GROUP BY day, status, failure_step, failure_reason
"""

# A step's duration runs from its first StepStarted to its success, retries included: that is
# the time the customer waited for it.
STEP_LATENCY = """
CREATE VIEW step_latency AS
SELECT step,
       count(*) AS samples,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms,
       max(duration_ms) AS max_ms
  FROM (SELECT step,
               (extract(epoch FROM finished_at - started_at) * 1000)::double precision
                   AS duration_ms
          FROM checkout_steps
         WHERE status = 'succeeded' AND started_at IS NOT NULL AND finished_at IS NOT NULL) s
 GROUP BY step
"""


def upgrade() -> None:
    if not applies_to("read_models"):
        return
    _tables()
    _bookkeeping()
    op.execute(DAILY_REVENUE)
    op.execute(CHECKOUT_FUNNEL)
    op.execute(STEP_LATENCY)


def downgrade() -> None:
    if not applies_to("read_models"):
        return
    for view in ("step_latency", "checkout_funnel", "daily_revenue"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    for table in (
        "projection_meta",
        "projection_parked_events",
        "projection_applied_events",
        "projection_offsets",
        "refunds",
        "payments",
        "order_lines",
        "orders",
        "checkout_steps",
        "checkouts",
    ):
        op.drop_table(table)
