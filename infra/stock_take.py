"""A stock take: while a SKU's units are being counted, none of them goes back on the shelf.

The rule is the inventory database's own (migration 0006: `stock_freezes` and a trigger on
`stock`), so every writer obeys it: releases and expiries of a frozen SKU are refused with the
freeze's reason; reservations, commits and restocks go on.

The demo uses it to show what a parked saga is and how an operator resumes one: a declined
checkout cannot give its units back during the freeze, so it waits in NEEDS_ATTENTION; once the
freeze is lifted, `saga checkout retry` (or the console's Retry) finishes it.
"""

from __future__ import annotations

import psycopg


def freeze_releases(database_url: str, sku: str, reason: str = "stock take") -> None:
    """Refuse every release of `sku`'s units until `lift_freeze`. Idempotent."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO stock_freezes (sku, reason) VALUES (%s, %s)"
            " ON CONFLICT (sku) DO UPDATE SET reason = EXCLUDED.reason",
            (sku, reason),
        )


def lift_freeze(database_url: str, sku: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM stock_freezes WHERE sku = %s", (sku,))
