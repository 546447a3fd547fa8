"""Which service level each checkout was quoted, remembered for buying its label later.

OrderPlaced carries the shipping amount but not the level (standard/express) the customer chose;
the saga's ShippingQuoted (on checkout.events) does. The fulfilment worker records it here when it
sees it, and reads it back when the order is placed. A table, not memory: a restarted worker
resumes after ShippingQuoted's offset and must still know it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import psycopg

Connection = psycopg.Connection[Any]


class QuotedLevels(Protocol):
    def remember(
        self, checkout_id: str, attempt: int, carrier: str, service_level: str
    ) -> None: ...

    def level_of(self, checkout_id: str) -> str | None: ...


class PostgresQuotedLevels:
    def __init__(self, connect: Callable[[], Connection]) -> None:
        self._connect = connect

    def remember(self, checkout_id: str, attempt: int, carrier: str, service_level: str) -> None:
        # The latest attempt wins: a retried quote replaces the one the saga gave up on, and a
        # redelivered older reply never overwrites a newer one.
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO shipping_quotes (checkout_id, attempt, carrier, service_level)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (checkout_id) DO UPDATE"
                " SET attempt = EXCLUDED.attempt, carrier = EXCLUDED.carrier,"
                " service_level = EXCLUDED.service_level"
                " WHERE shipping_quotes.attempt <= EXCLUDED.attempt",
                (checkout_id, attempt, carrier, service_level),
            )

    def level_of(self, checkout_id: str) -> str | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT service_level FROM shipping_quotes WHERE checkout_id = %s", (checkout_id,)
            ).fetchone()
        return None if row is None else str(row[0])


class InMemoryQuotedLevels:
    def __init__(self) -> None:
        self._levels: dict[str, tuple[int, str]] = {}

    def remember(self, checkout_id: str, attempt: int, carrier: str, service_level: str) -> None:
        known = self._levels.get(checkout_id)
        if known is None or known[0] <= attempt:
            self._levels[checkout_id] = (attempt, service_level)

    def level_of(self, checkout_id: str) -> str | None:
        known = self._levels.get(checkout_id)
        return None if known is None else known[1]
