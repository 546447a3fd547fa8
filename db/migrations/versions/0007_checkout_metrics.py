"""checkout_metrics_minutely, checkout_metrics_quarter_hourly, checkout_alerts: live analytics.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

Analytics (ADR 0018) flushes each event-time window's metrics here, one row per (window start,
metric, dimension), written as absolute values recomputed from the window's facts: a replay or a
redelivery writes the same rows again, and `updated_at` moves only when a value does. Owned
tables (analysts read them; a projection replay never rebuilds them). `checkout_alerts` records
each threshold alert sent to ops.alerts, so a restart never sends one twice.
"""

from __future__ import annotations

from alembic import op

from db.migrations import applies_to

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WINDOW_TABLES = ("checkout_metrics_minutely", "checkout_metrics_quarter_hourly")

METRICS = """
CREATE TABLE {table} (
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL CHECK (window_end > window_start),
    metric       text NOT NULL CHECK (metric <> ''),
    dimension    text NOT NULL CHECK (dimension <> ''),
    value        numeric NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, metric, dimension)
);
CREATE INDEX {table}_by_metric ON {table} (metric, window_start);
"""

ALERTS = """
CREATE TABLE checkout_alerts (
    alert        text NOT NULL,
    dimension    text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    alert_id     uuid NOT NULL UNIQUE,
    value        numeric NOT NULL,
    threshold    numeric NOT NULL,
    samples      integer NOT NULL CHECK (samples > 0),
    sent_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert, dimension, window_start)
);
"""


def upgrade() -> None:
    if applies_to("owned"):
        for table in WINDOW_TABLES:
            op.execute(METRICS.format(table=table))
        op.execute(ALERTS)


def downgrade() -> None:
    if applies_to("owned"):
        op.execute("DROP TABLE IF EXISTS checkout_alerts")
        for table in WINDOW_TABLES:
            op.execute(f"DROP TABLE IF EXISTS {table}")
