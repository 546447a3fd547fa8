"""checkouts.next_action_*: what the storefront needs to finish 3-D Secure (issue 13 item 3).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Set by the projector from the payment adapter's `PaymentActionRequired` while the checkout is
AWAITING_PAYMENT_ACTION, and written back to NULL by the same upsert once it leaves that status,
so a Stripe client secret lives in the read model only as long as it can be used. Nullable
columns without defaults: adding them rewrites no rows, and a replay fills them from the log.
"""

from __future__ import annotations

from alembic import op

from db.migrations import applies_to

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ("provider", "kind", "client_secret", "redirect_url")


def upgrade() -> None:
    if applies_to("read_models"):
        op.execute(
            "ALTER TABLE checkouts "
            + ", ".join(f"ADD COLUMN next_action_{c} text" for c in COLUMNS)
        )


def downgrade() -> None:
    if applies_to("read_models"):
        op.execute(
            "ALTER TABLE checkouts " + ", ".join(f"DROP COLUMN next_action_{c}" for c in COLUMNS)
        )
