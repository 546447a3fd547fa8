"""payment_attempts: our own durable record of every authorization attempt (issue 13 item 1).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

One row per (provider account, idempotency key), committed before the create call is sent and
given the provider's payment id as soon as an answer names it, so authorizing never has to list
the provider's account to learn what an earlier attempt did (ADR 0003, decision 17). The row
keeps every parameter of the create, so an attempt whose answer was lost can be re-sent with its
own key and identical parameters. `started_at` (first send: what the 23 h re-send rule counts
from) and `last_sent_at` (latest re-send: a lookup's window must reach past it) are epoch
seconds like `payment_refunds`. A new, empty table: nothing to backfill, no rows rewritten.
"""

from __future__ import annotations

from alembic import op

from db.migrations import applies_to

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PAYMENT_ATTEMPTS = """
CREATE TABLE payment_attempts (
    provider        text NOT NULL,
    idempotency_key text NOT NULL,
    checkout_id     text NOT NULL,
    attempt         integer NOT NULL,
    amount          bigint NOT NULL CHECK (amount >= 0),
    currency        text NOT NULL,
    payment_method  text NOT NULL,
    customer_id     text NOT NULL,
    started_at      double precision NOT NULL,
    last_sent_at    double precision NOT NULL,
    payment_id      text,
    outcome         text NOT NULL CHECK (outcome IN
                        ('pending', 'authorized', 'action_required', 'declined', 'failed')),
    decline_code    text,
    updated_at      double precision NOT NULL,
    PRIMARY KEY (provider, idempotency_key)
);
CREATE INDEX payment_attempts_checkout ON payment_attempts (provider, checkout_id);
"""


def upgrade() -> None:
    if applies_to("owned"):
        op.execute(PAYMENT_ATTEMPTS)


def downgrade() -> None:
    if applies_to("owned"):
        op.execute("DROP TABLE IF EXISTS payment_attempts")
