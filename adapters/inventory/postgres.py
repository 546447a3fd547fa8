"""InventoryProvider on PostgreSQL (psycopg 3): the embedded default.

How it avoids oversell and deadlocks:
- Every operation is one short transaction on its own connection; nothing is held across a
  network call (the saga talks to us through Kafka, never inside one of these transactions).
- Stock rows are locked with SELECT ... ORDER BY sku FOR UPDATE, always in SKU order, by every
  operation (reserve, commit, release, expiry sweep), so two transactions can never wait on each
  other in a cycle. Availability is checked *after* the lock, under READ COMMITTED, so it sees
  every earlier committed reservation.
- The database enforces the invariant too: CHECK (0 <= reserved <= on_hand). A bug would fail a
  transaction rather than sell stock we do not have.
- Reserve takes a per-checkout advisory transaction lock first, which serialises duplicates of
  the same command and concurrent attempts of the same checkout (idempotency and "one active
  reservation per checkout"); unique indexes back both up.

Errors: a connection, timeout or lock-wait failure raises InventoryUnavailable (retryable);
deadlock/serialization failures (should not happen, see above) are retried a few times here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from adapters.inventory.port import (
    InventoryRefused,
    InventoryUnavailable,
    Line,
    Rejection,
    RejectionReason,
    Reservation,
    ReservationStatus,
    StockLine,
    normalise_lines,
)
from adapters.inventory.seed import StockAuditEntry, StockChange

T = TypeVar("T")
Connection = psycopg.Connection[Any]

# First half of the two-key advisory lock, so our keys cannot collide with another component's.
_ADVISORY_NAMESPACE = 0x494E56  # "INV"
_SWEEP_BATCH = 200
_CONFLICT_RETRIES = 3


class PostgresInventory:
    def __init__(self, connect: Callable[[], Connection]) -> None:
        """`connect` returns a new (or pooled) connection; it is used as a context manager
        and closed after each operation. Wire psycopg_pool here in production."""
        self._connect = connect

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        connect_timeout_s: int = 5,
        statement_timeout_ms: int = 5_000,
        lock_timeout_ms: int = 3_000,
    ) -> PostgresInventory:
        # Server-side timeouts bound every statement and lock wait, so a stuck transaction
        # turns into a retryable error instead of a hung adapter.
        options = f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={lock_timeout_ms}"

        def connect() -> Connection:
            return psycopg.connect(url, connect_timeout=connect_timeout_s, options=options)

        return cls(connect)

    # --- plumbing -----------------------------------------------------------------------

    def _tx(self, work: Callable[[Connection], T]) -> T:
        for _ in range(_CONFLICT_RETRIES):
            try:
                with self._connect() as conn, conn.transaction():
                    return work(conn)
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                continue
            except (psycopg.OperationalError, psycopg.InterfaceError) as e:
                raise InventoryUnavailable(f"postgres: {e}") from e
            except pg_errors.RaiseException as e:
                # A rule the warehouse put in the database (a trigger that RAISEs) said no.
                raise InventoryRefused(f"postgres: {e.diag.message_primary or e}") from e
        raise InventoryUnavailable("postgres: transaction kept conflicting")

    # --- admin (not part of the port) ---------------------------------------------------

    def set_stock(self, levels: Mapping[str, int], change: StockChange) -> None:
        """Upsert on-hand counts (restocking, stock takes) and audit each in `stock_audit` in
        the same transaction: a level never changes without its row, and a refused change
        (below reserved: ValueError, naming the SKU) leaves none."""

        def work(conn: Connection) -> None:
            # Locked in SKU order like every other stock transaction (no deadlock cycles); the
            # reserved count read under the lock is the one the new level is checked against.
            current = {
                str(sku): (int(on_hand), int(reserved))
                for sku, on_hand, reserved in conn.execute(
                    "SELECT sku, on_hand, reserved FROM stock WHERE sku = ANY(%s)"
                    " ORDER BY sku FOR UPDATE",
                    (sorted(levels),),
                ).fetchall()
            }
            for sku in sorted(levels):
                before, reserved = current.get(sku, (None, 0))
                if levels[sku] < reserved:
                    raise ValueError(
                        f"{sku}: {levels[sku]} on hand is below the {reserved} reserved"
                    )
                conn.execute(
                    "INSERT INTO stock (sku, on_hand) VALUES (%s, %s)"
                    " ON CONFLICT (sku) DO UPDATE SET on_hand = EXCLUDED.on_hand",
                    (sku, levels[sku]),
                )
                conn.execute(
                    "INSERT INTO stock_audit (actor, command, sku, on_hand_before, on_hand_after,"
                    " reserved, reason, source) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        change.actor,
                        change.command,
                        sku,
                        before,
                        levels[sku],
                        reserved,
                        change.reason,
                        change.source,
                    ),
                )

        try:
            self._tx(work)
        except pg_errors.CheckViolation as e:  # the database's own guard, should the above miss
            raise ValueError(f"stock level rejected: {e.diag.message_primary}") from e

    def stock_history(self, sku: str | None = None, limit: int = 100) -> list[StockAuditEntry]:
        """Operator changes, newest first (one SKU's, or all)."""

        def work(conn: Connection) -> list[StockAuditEntry]:
            rows = conn.execute(
                "SELECT (extract(epoch FROM at) * 1000)::bigint, actor, command, sku,"
                " on_hand_before, on_hand_after, reserved, reason, source FROM stock_audit"
                " WHERE %(sku)s::text IS NULL OR sku = %(sku)s ORDER BY id DESC LIMIT %(limit)s",
                {"sku": sku, "limit": limit},
            ).fetchall()
            return [StockAuditEntry(*row) for row in rows]

        return self._tx(work)

    def stock_levels(self) -> dict[str, tuple[int, int]]:
        """SKU -> (on_hand, reserved), for every SKU."""

        def work(conn: Connection) -> dict[str, tuple[int, int]]:
            rows = conn.execute("SELECT sku, on_hand, reserved FROM stock ORDER BY sku")
            return {str(r[0]): (int(r[1]), int(r[2])) for r in rows.fetchall()}

        return self._tx(work)

    def stock_level(self, sku: str) -> tuple[int, int]:
        """(on_hand, reserved)."""

        def work(conn: Connection) -> tuple[int, int]:
            row = conn.execute(
                "SELECT on_hand, reserved FROM stock WHERE sku = %s", (sku,)
            ).fetchone()
            if row is None:
                raise KeyError(sku)
            return int(row[0]), int(row[1])

        return self._tx(work)

    # --- port ---------------------------------------------------------------------------

    def reserve(
        self, checkout_id: str, attempt_key: str, items: Sequence[StockLine], expires_at: int
    ) -> Reservation | Rejection:
        lines = normalise_lines(items)
        return self._tx(lambda conn: _reserve(conn, checkout_id, attempt_key, lines, expires_at))

    def commit(self, reservation_id: str) -> Reservation | Rejection:
        return self._tx(lambda conn: _commit(conn, reservation_id))

    def release(self, reservation_id: str) -> Reservation | Rejection:
        return self._tx(lambda conn: _release(conn, reservation_id, ReservationStatus.RELEASED))

    def expire(self, now: int) -> list[str]:
        expired: list[str] = []
        while True:  # batches, each its own short transaction
            batch = self._tx(lambda conn: _expire_batch(conn, now))
            expired.extend(batch)
            if len(batch) < _SWEEP_BATCH:
                return sorted(expired)


# --- transactions (each runs inside one open transaction) ------------------------------


def _reserve(
    conn: Connection,
    checkout_id: str,
    attempt_key: str,
    lines: tuple[Line, ...] | Rejection,
    expires_at: int,
) -> Reservation | Rejection:
    conn.execute(
        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_ADVISORY_NAMESPACE, checkout_id)
    )
    seen = conn.execute(
        "SELECT reservation_id, rejection_reason, rejection_sku FROM reservation_attempts"
        " WHERE checkout_id = %s AND attempt_key = %s",
        (checkout_id, attempt_key),
    ).fetchone()
    if seen is not None:
        if seen[0] is not None:
            return _load(conn, seen[0])
        return Rejection(RejectionReason(seen[1]), seen[2])

    outcome = _decide_reservation(conn, checkout_id, lines, expires_at)
    if isinstance(outcome, Rejection):
        conn.execute(
            "INSERT INTO reservation_attempts (checkout_id, attempt_key, rejection_reason,"
            " rejection_sku) VALUES (%s, %s, %s, %s)",
            (checkout_id, attempt_key, str(outcome.reason), outcome.sku),
        )
    else:
        conn.execute(
            "INSERT INTO reservation_attempts (checkout_id, attempt_key, reservation_id)"
            " VALUES (%s, %s, %s)",
            (checkout_id, attempt_key, outcome.id),
        )
    return outcome


def _decide_reservation(
    conn: Connection, checkout_id: str, lines: tuple[Line, ...] | Rejection, expires_at: int
) -> Reservation | Rejection:
    if isinstance(lines, Rejection):
        return lines
    active = conn.execute(
        "SELECT id FROM reservations WHERE checkout_id = %s"
        " AND status IN ('reserved', 'committed') FOR UPDATE",
        (checkout_id,),
    ).fetchone()
    if active is not None:
        # A later attempt of a checkout that already holds stock: keep that reservation, and
        # honour the later deadline the saga asked for.
        conn.execute(
            "UPDATE reservations SET expires_at = GREATEST(expires_at, %s), updated_at = now()"
            " WHERE id = %s",
            (expires_at, active[0]),
        )
        return _load(conn, active[0])

    available = _lock_stock(conn, [line.sku for line in lines])
    for line in lines:
        if line.sku not in available:
            return Rejection(RejectionReason.UNKNOWN_SKU, line.sku)
        if available[line.sku] < line.quantity:
            return Rejection(RejectionReason.OUT_OF_STOCK, line.sku)

    reservation_id = uuid.uuid4().hex
    conn.execute(
        "INSERT INTO reservations (id, checkout_id, status, expires_at) VALUES (%s, %s, %s, %s)",
        (reservation_id, checkout_id, str(ReservationStatus.RESERVED), expires_at),
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO reservation_lines (reservation_id, sku, quantity) VALUES (%s, %s, %s)",
            [(reservation_id, line.sku, line.quantity) for line in lines],
        )
        cur.executemany(
            "UPDATE stock SET reserved = reserved + %s WHERE sku = %s",
            [(line.quantity, line.sku) for line in lines],
        )
    return Reservation(reservation_id, checkout_id, ReservationStatus.RESERVED, expires_at, lines)


def _lock_stock(conn: Connection, skus: Sequence[str]) -> dict[str, int]:
    """Lock the stock rows of `skus` in SKU order; return available units per known SKU."""
    rows = conn.execute(
        "SELECT sku, on_hand - reserved FROM stock WHERE sku = ANY(%s) ORDER BY sku FOR UPDATE",
        (sorted(set(skus)),),
    ).fetchall()
    return {sku: int(available) for sku, available in rows}


def _lock_reservation(conn: Connection, reservation_id: str) -> ReservationStatus | None:
    row = conn.execute(
        "SELECT status FROM reservations WHERE id = %s FOR UPDATE", (reservation_id,)
    ).fetchone()
    return None if row is None else ReservationStatus(row[0])


def _lines(conn: Connection, reservation_ids: Sequence[str]) -> dict[str, list[Line]]:
    by_reservation: dict[str, list[Line]] = {rid: [] for rid in reservation_ids}
    rows = conn.execute(
        "SELECT reservation_id, sku, quantity FROM reservation_lines"
        " WHERE reservation_id = ANY(%s) ORDER BY reservation_id, sku",
        (list(reservation_ids),),
    ).fetchall()
    for reservation_id, sku, quantity in rows:
        by_reservation[reservation_id].append(Line(sku, int(quantity)))
    return by_reservation


def _load(conn: Connection, reservation_id: str) -> Reservation:
    row = conn.execute(
        "SELECT checkout_id, status, expires_at FROM reservations WHERE id = %s",
        (reservation_id,),
    ).fetchone()
    assert row is not None, reservation_id  # callers only pass ids they just read
    lines = tuple(_lines(conn, [reservation_id])[reservation_id])
    return Reservation(reservation_id, row[0], ReservationStatus(row[1]), int(row[2]), lines)


def _commit(conn: Connection, reservation_id: str) -> Reservation | Rejection:
    status = _lock_reservation(conn, reservation_id)
    if status is None:
        return Rejection(RejectionReason.NOT_FOUND)
    if status == ReservationStatus.RESERVED:
        lines = _lines(conn, [reservation_id])[reservation_id]
        _lock_stock(conn, [line.sku for line in lines])
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE stock SET on_hand = on_hand - %s, reserved = reserved - %s WHERE sku = %s",
                [(line.quantity, line.quantity, line.sku) for line in lines],
            )
        _set_status(conn, [reservation_id], ReservationStatus.COMMITTED)
    elif status != ReservationStatus.COMMITTED:  # committing twice is fine; after release not
        return Rejection(RejectionReason.NOT_COMMITTABLE)
    return _load(conn, reservation_id)


def _release(
    conn: Connection, reservation_id: str, to: ReservationStatus
) -> Reservation | Rejection:
    status = _lock_reservation(conn, reservation_id)
    if status is None:
        return Rejection(RejectionReason.NOT_FOUND)
    if status in (ReservationStatus.RESERVED, ReservationStatus.COMMITTED):
        _restock(conn, {reservation_id: status}, to)
    return _load(conn, reservation_id)  # already released/expired: nothing to do


def _expire_batch(conn: Connection, now: int) -> list[str]:
    # SKIP LOCKED: a reservation being committed or released right now is left to that
    # transaction; if it is still due afterwards, the next sweep takes it.
    rows = conn.execute(
        "SELECT id FROM reservations WHERE status = 'reserved' AND expires_at <= %s"
        " ORDER BY expires_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
        (now, _SWEEP_BATCH),
    ).fetchall()
    due = {row[0]: ReservationStatus.RESERVED for row in rows}
    if due:
        _restock(conn, due, ReservationStatus.EXPIRED)
    return list(due)


def _restock(
    conn: Connection, reservations: Mapping[str, ReservationStatus], to: ReservationStatus
) -> None:
    """Give back the units of locked, active reservations and mark them `to`."""
    lines = _lines(conn, list(reservations))
    # All SKUs of the batch locked up front, in SKU order, like every other transaction.
    _lock_stock(conn, [line.sku for group in lines.values() for line in group])
    reserved_delta: dict[str, int] = {}
    on_hand_delta: dict[str, int] = {}
    for reservation_id, status in reservations.items():
        # Reserved units go back to available; committed (sold) units go back on the shelf.
        target = reserved_delta if status == ReservationStatus.RESERVED else on_hand_delta
        for line in lines[reservation_id]:
            target[line.sku] = target.get(line.sku, 0) + line.quantity
    with conn.cursor() as cur:
        if reserved_delta:
            cur.executemany(
                "UPDATE stock SET reserved = reserved - %s WHERE sku = %s",
                [(q, sku) for sku, q in sorted(reserved_delta.items())],
            )
        if on_hand_delta:
            cur.executemany(
                "UPDATE stock SET on_hand = on_hand + %s WHERE sku = %s",
                [(q, sku) for sku, q in sorted(on_hand_delta.items())],
            )
    _set_status(conn, list(reservations), to)


def _set_status(conn: Connection, reservation_ids: Sequence[str], to: ReservationStatus) -> None:
    conn.execute(
        "UPDATE reservations SET status = %s, updated_at = now() WHERE id = ANY(%s)",
        (str(to), list(reservation_ids)),
    )
