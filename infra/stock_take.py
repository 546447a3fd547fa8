"""A stock-take freeze: the warehouse's own rule, put into the inventory database, that no unit
of a SKU goes back on the shelf while it is being counted. Releases (and expiries) of that SKU
are refused with a reason; reservations and commits go on.

The demo uses it to show what a parked saga is and how an operator resumes one: a declined
checkout cannot give its units back during the freeze, so it waits in NEEDS_ATTENTION; once
the freeze is lifted, `saga checkout retry` (or the console's Retry) finishes it.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

_FUNCTION = "stock_take_freeze"


def freeze_releases(database_url: str, sku: str) -> None:
    """Refuse every release of `sku`'s units until `lift_freeze`. Idempotent."""
    trigger = sql.Identifier(_trigger_name(sku))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN"
                "  IF NEW.reserved < OLD.reserved AND NEW.on_hand = OLD.on_hand THEN"
                "   RAISE EXCEPTION 'stock take of % in progress: units cannot go back on the"
                " shelf', OLD.sku;"
                "  END IF;"
                "  RETURN NEW;"
                " END $$"
            ).format(fn=sql.Identifier(_FUNCTION))
        )
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {t} ON stock").format(t=trigger))
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {t} BEFORE UPDATE ON stock FOR EACH ROW"
                " WHEN (OLD.sku = {sku}) EXECUTE FUNCTION {fn}()"
            ).format(t=trigger, sku=sql.Literal(sku), fn=sql.Identifier(_FUNCTION))
        )


def lift_freeze(database_url: str, sku: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP TRIGGER IF EXISTS {t} ON stock").format(
                t=sql.Identifier(_trigger_name(sku))
            )
        )


def _trigger_name(sku: str) -> str:
    return f"stock_take_{sku.lower()}"[:63]
