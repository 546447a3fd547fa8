"""stock_audit: one row per on-hand change an operator makes (`saga stock set|load`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Written in the same transaction as the change (adapters/inventory/postgres.py), so a level that
changed has its row and a refused change leaves none. `on_hand_before` is NULL when the SKU was
new; `reserved` is what was held at that moment, which is what a level is judged against.
The saga's own movements are not repeated here: its reservations, commits and releases are the
`reservations`/`reservation_lines` rows with their status and timestamps.
"""

from __future__ import annotations

from alembic import op

from db.migrations import applies_to

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STOCK_AUDIT = """
CREATE TABLE stock_audit (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,
    command         text NOT NULL CHECK (command IN ('set', 'load')),
    sku             text NOT NULL,
    on_hand_before  integer,
    on_hand_after   integer NOT NULL,
    reserved        integer NOT NULL,
    reason          text,
    source          text
);
CREATE INDEX stock_audit_sku_at ON stock_audit (sku, at);
"""


def upgrade() -> None:
    if applies_to("owned"):
        op.execute(STOCK_AUDIT)


def downgrade() -> None:
    if applies_to("owned"):
        op.execute("DROP TABLE stock_audit")
