"""stock_freezes: a warehouse's stock take, enforced by the inventory database itself.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

While a SKU is listed in `stock_freezes`, no unit of it goes back on the shelf: an UPDATE of
`stock` that lowers `reserved` without touching `on_hand` (a release or an expiry) is refused
with the freeze's reason. Reservations, commits and restocks go on. The rule lives in the
database so every writer obeys it, and a refused release reaches the saga as a permanent failure
that names the reason (it parks in NEEDS_ATTENTION until an operator retries it). The trigger's
WHEN clause keeps the lookup off every other update of `stock`.
"""

from __future__ import annotations

from alembic import op

from db.migrations import applies_to

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STOCK_FREEZES = """
CREATE TABLE stock_freezes (
    sku       text PRIMARY KEY REFERENCES stock (sku),
    reason    text NOT NULL CHECK (reason <> ''),
    frozen_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION stock_refuse_release_while_frozen() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    why text;
BEGIN
    SELECT reason INTO why FROM stock_freezes WHERE sku = OLD.sku;
    IF FOUND THEN
        RAISE EXCEPTION 'stock of % is frozen (%): units cannot go back on the shelf',
            OLD.sku, why;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER stock_releases_respect_freezes
    BEFORE UPDATE OF reserved ON stock
    FOR EACH ROW
    WHEN (NEW.reserved < OLD.reserved AND NEW.on_hand = OLD.on_hand)
    EXECUTE FUNCTION stock_refuse_release_while_frozen();
"""


def upgrade() -> None:
    if applies_to("owned"):
        op.execute(STOCK_FREEZES)


def downgrade() -> None:
    if applies_to("owned"):
        op.execute("DROP TRIGGER IF EXISTS stock_releases_respect_freezes ON stock")
        op.execute("DROP FUNCTION IF EXISTS stock_refuse_release_while_frozen()")
        op.execute("DROP TABLE IF EXISTS stock_freezes")
