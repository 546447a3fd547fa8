"""PostgreSQL side of analytics: window rows (idempotent upserts) and the record of sent alerts.

Synchronous psycopg on purpose: the runtime calls it from a worker thread once per flush, and a
flush is a handful of statements. The tables come from migration 0007.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from decimal import Decimal

import psycopg
from psycopg import sql

from analytics.alerts import Breach
from analytics.metrics import Rows
from analytics.windows import SPECS

_TABLES = frozenset(spec.name for spec in SPECS)


def at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def ms(value: dt.datetime) -> int:
    return round(value.timestamp() * 1000)


class MetricsStore:
    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url)
        return self._conn

    def _run(self, work: str, params: Iterable[tuple[object, ...]]) -> int:
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    changed = 0
                    for p in params:
                        cur.execute(work, p)
                        changed += cur.rowcount
                    return changed
            except psycopg.OperationalError:
                # The server went away: reconnect on the next flush, which recomputes all.
                conn.close()
                raise

    def upsert(self, table: str, windows: dict[tuple[int, int], Rows]) -> int:
        """Write every row of `windows` ((start, end) -> rows) as it is now; returns how many
        rows changed (0 when PostgreSQL already holds these values)."""
        if table not in _TABLES:
            raise ValueError(f"not a metrics table: {table}")
        statement = sql.SQL(
            "INSERT INTO {t} AS t (window_start, window_end, metric, dimension, value)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (window_start, metric, dimension) DO UPDATE"
            " SET value = EXCLUDED.value, window_end = EXCLUDED.window_end, updated_at = now()"
            " WHERE t.value IS DISTINCT FROM EXCLUDED.value"
            " OR t.window_end IS DISTINCT FROM EXCLUDED.window_end"
        ).format(t=sql.Identifier(table))
        params = [
            (at(start), at(end), metric, dimension, value)
            for (start, end), rows in sorted(windows.items())
            for (metric, dimension), value in sorted(rows.items())
        ]
        return self._run(statement.as_string(None), params)

    def rows(self, table: str) -> dict[tuple[int, str, str], Decimal]:
        """(window start ms, metric, dimension) -> value: what analysts see."""
        if table not in _TABLES:
            raise ValueError(f"not a metrics table: {table}")
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(
                    sql.SQL("SELECT window_start, metric, dimension, value FROM {t}").format(
                        t=sql.Identifier(table)
                    )
                )
                return {(ms(s), m, d): v for s, m, d, v in cur.fetchall()}

    def sent_alert_ids(self) -> set[str]:
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT alert_id::text FROM checkout_alerts")
                return {row[0] for row in cur.fetchall()}

    def record_alert(self, breach: Breach) -> bool:
        """Remember `breach` as sent; False when it already was."""
        return (
            self._run(
                "INSERT INTO checkout_alerts (alert, dimension, window_start, window_end,"
                " alert_id, value, threshold, samples) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [
                    (
                        breach.name,
                        breach.dimension,
                        at(breach.window_start),
                        at(breach.window_end),
                        breach.alert_id,
                        breach.value,
                        breach.threshold,
                        breach.samples,
                    )
                ],
            )
            == 1
        )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
