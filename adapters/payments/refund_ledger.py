"""Refund guard: concurrent refunds of one payment can never jointly exceed what was captured.

Per refund: (1) one short transaction takes a per-payment advisory lock, reads the provider's own
record (captured - refunded), subtracts amounts reserved by refunds still in flight, and reserves
ours; (2) the provider call runs with no lock held; (3) a second short transaction settles or
releases the reservation. A reservation whose outcome stayed unknown is kept until the provider
shows the refund (settled) or it is older than the TTL (released), so a crash between (2) and (3)
errs towards refunding less, never more.

The `payment_refunds` table comes from the schema history (db/migrations).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psycopg

from adapters.payments.port import (
    AuthorizationRequest,
    AuthorizationResult,
    Captured,
    CaptureRequest,
    PaymentGateway,
    PaymentSnapshot,
    PermanentPaymentError,
    Refunded,
    RefundExceedsCapturedError,
    RefundRequest,
    RetryablePaymentError,
    UnknownOutcomeError,
    Voided,
    VoidRequest,
)

log = logging.getLogger(__name__)

Connect = Callable[[], psycopg.Connection]


def operation_of(request: RefundRequest) -> str:
    """The refund this request is an attempt of: its key without the attempt suffix.

    Keys are `checkout_id:step:attempt` (saga/ids.py), so a saga retry gets a new key but the
    same operation. A key in any other shape is its own operation (never merged)."""
    head, sep, tail = request.idempotency_key.rpartition(":")
    return head if sep and tail == str(request.attempt) else request.idempotency_key


class RefundLedger:
    def __init__(
        self,
        connect: Connect,
        *,
        reservation_ttl_s: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connect = connect
        self._ttl = reservation_ttl_s
        self._clock = clock

    def reserve(
        self, provider: str, request: RefundRequest, read_provider: Callable[[], PaymentSnapshot]
    ) -> Refunded | None:
        """Reserve `request.amount`; or return the refund that already satisfies this request
        (same key, or an earlier attempt of the same refund: settled, or whose outcome was
        unknown and the provider shows it).

        Raises RefundExceedsCapturedError when the provider's record cannot cover it, and
        RetryablePaymentError when only refunds still in flight stand in the way.
        `read_provider` is called under the lock: the one network read we accept there, so the
        check uses the provider's record as of now rather than a stale copy."""
        now = self._clock()
        key = request.idempotency_key
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"refund:{provider}:{request.payment_id}",),
            )
            own = conn.execute(
                "SELECT status, reserved_at, provider_refund_id, amount FROM payment_refunds"
                " WHERE idempotency_key = %s",
                (key,),
            ).fetchone()
            if own is not None and own[0] == "settled" and own[2]:
                return Refunded(request.payment_id, own[2], int(own[3]), request.currency.lower())
            snapshot = read_provider()
            mine = snapshot.refund_with_key(key)
            if mine is not None:
                self._settle(conn, key, mine.refund_id, now)
                return Refunded(snapshot.payment_id, mine.refund_id, mine.amount, snapshot.currency)
            if own is not None and own[0] == "pending" and now - own[1] < self._ttl:
                raise RetryablePaymentError(f"refund {key} is already in flight")
            # A saga retry of a refund an earlier attempt already made: that attempt settled,
            # but its reply reached the saga too late (the saga had timed it out and asked
            # again under a new key). Answer with that refund rather than refunding twice.
            done = conn.execute(
                "SELECT provider_refund_id, amount FROM payment_refunds"
                " WHERE provider = %s AND payment_id = %s AND operation = %s AND amount = %s"
                " AND status = 'settled' AND provider_refund_id IS NOT NULL"
                " AND idempotency_key <> %s ORDER BY reserved_at LIMIT 1",
                (provider, request.payment_id, operation_of(request), request.amount, key),
            ).fetchone()
            if done is not None:
                self._record(conn, provider, request, "settled", done[0], now)
                return Refunded(snapshot.payment_id, done[0], int(done[1]), snapshot.currency)
            pending = 0
            earlier: Refunded | None = None
            rows = conn.execute(
                "SELECT idempotency_key, amount, reserved_at, operation FROM payment_refunds"
                " WHERE provider = %s AND payment_id = %s AND status = 'pending'"
                " AND idempotency_key <> %s ORDER BY reserved_at",
                (provider, request.payment_id, key),
            ).fetchall()
            for other_key, amount, reserved_at, operation in rows:
                found = snapshot.refund_with_key(other_key)
                if found is not None:
                    # Its outcome was unknown and it did happen: it is in the provider's total.
                    self._settle(conn, other_key, found.refund_id, now)
                    if (
                        earlier is None
                        and operation == operation_of(request)
                        and amount == request.amount
                    ):
                        # A saga retry (new attempt, new key) of that very refund: never a
                        # different refund that merely has the same amount.
                        earlier = Refunded(
                            snapshot.payment_id, found.refund_id, found.amount, snapshot.currency
                        )
                elif now - reserved_at >= self._ttl:
                    log.warning("releasing stale refund reservation", extra={"key": other_key})
                    self._mark(conn, other_key, "released", now)
                else:
                    pending += amount
            if earlier is not None:
                self._record(conn, provider, request, "settled", earlier.refund_id, now)
                return earlier
            if request.amount > snapshot.refundable:
                raise RefundExceedsCapturedError(request.amount, snapshot.refundable)
            if request.amount > snapshot.refundable - pending:
                raise RetryablePaymentError(
                    f"refund of {request.amount} waits for {pending} in flight on "
                    f"{request.payment_id}"
                )
            self._record(conn, provider, request, "pending", None, now)
            return None

    @staticmethod
    def _record(
        conn: psycopg.Connection,
        provider: str,
        request: RefundRequest,
        status: str,
        refund_id: str | None,
        now: float,
    ) -> None:
        conn.execute(
            "INSERT INTO payment_refunds (idempotency_key, provider, payment_id, checkout_id,"
            " operation, amount, currency, status, provider_refund_id, reserved_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (idempotency_key) DO UPDATE SET status = EXCLUDED.status,"
            " amount = EXCLUDED.amount, provider_refund_id = EXCLUDED.provider_refund_id,"
            " reserved_at = EXCLUDED.reserved_at, updated_at = EXCLUDED.updated_at",
            (
                request.idempotency_key,
                provider,
                request.payment_id,
                request.checkout_id,
                operation_of(request),
                request.amount,
                request.currency.lower(),
                status,
                refund_id,
                now,
                now,
            ),
        )

    @staticmethod
    def _settle(conn: psycopg.Connection, key: str, refund_id: str, now: float) -> None:
        conn.execute(
            "UPDATE payment_refunds SET status = 'settled', provider_refund_id = %s,"
            " updated_at = %s WHERE idempotency_key = %s",
            (refund_id, now, key),
        )

    def settle(self, idempotency_key: str, refund_id: str) -> None:
        with self._connect() as conn, conn.transaction():
            self._settle(conn, idempotency_key, refund_id, self._clock())

    def release(self, idempotency_key: str) -> None:
        with self._connect() as conn, conn.transaction():
            self._mark(conn, idempotency_key, "released", self._clock())

    def pending_amount(self, provider: str, payment_id: str) -> int:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT coalesce(sum(amount), 0) FROM payment_refunds WHERE provider = %s"
                " AND payment_id = %s AND status = 'pending'",
                (provider, payment_id),
            ).fetchone()
            return int(row[0]) if row else 0

    @staticmethod
    def _mark(conn: psycopg.Connection, key: str, status: str, now: float) -> None:
        conn.execute(
            "UPDATE payment_refunds SET status = %s, updated_at = %s WHERE idempotency_key = %s",
            (status, now, key),
        )


class LedgerGuardedGateway:
    """A `PaymentGateway` whose refunds go through the ledger; everything else is delegated."""

    def __init__(self, gateway: PaymentGateway, ledger: RefundLedger) -> None:
        self._gateway = gateway
        self._ledger = ledger

    @property
    def provider(self) -> str:
        return self._gateway.provider

    def authorize(self, request: AuthorizationRequest) -> AuthorizationResult:
        return self._gateway.authorize(request)

    def capture(self, request: CaptureRequest) -> Captured:
        return self._gateway.capture(request)

    def void(self, request: VoidRequest) -> Voided:
        return self._gateway.void(request)

    def retrieve(self, payment_id: str) -> PaymentSnapshot:
        return self._gateway.retrieve(payment_id)

    def find_by_checkout(self, checkout_id: str) -> list[PaymentSnapshot]:
        return self._gateway.find_by_checkout(checkout_id)

    def refund(self, request: RefundRequest) -> Refunded:
        done = self._ledger.reserve(
            self.provider, request, lambda: self._gateway.retrieve(request.payment_id)
        )
        if done is not None:
            return done
        try:
            refunded = self._gateway.refund(request)
        except UnknownOutcomeError:
            raise  # keep the reservation: the refund may exist; see the module docstring
        except (PermanentPaymentError, RetryablePaymentError):
            self._ledger.release(request.idempotency_key)
            raise
        self._ledger.settle(request.idempotency_key, refunded.refund_id)
        return refunded
