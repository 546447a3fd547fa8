"""Our durable record of every authorization attempt sent to a provider.

A row is written (and committed) before the create request leaves, and gets the provider's
payment id as soon as an answer names one. So, to learn what earlier attempts of a checkout did,
the gateway reads O(attempts) rows of ours instead of listing the provider's account, whose size
grows with its whole history. A row that stays `pending` is an attempt whose answer never came:
it may or may not have created a payment (see adapters/payments/keyed.py for how that is
resolved). The row holds every parameter of the create, so it can be re-sent identically.

`PostgresAttemptLog` is the one production uses (table `payment_attempts`, db/migrations 0005);
`InMemoryAttemptLog` lives as long as its process (unit tests, a gateway built standalone).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

import psycopg

from adapters.payments.port import AttemptLogUnavailable, AuthorizationRequest


class Outcome(StrEnum):
    PENDING = "pending"  # sent (or about to be); no answer yet
    AUTHORIZED = "authorized"
    ACTION_REQUIRED = "action_required"
    DECLINED = "declined"
    FAILED = "failed"  # a definite "no payment was made" (invalid request, nothing found)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    provider: str
    idempotency_key: str
    checkout_id: str
    attempt: int
    amount: int
    currency: str
    payment_method: str
    customer_id: str
    started_at: float
    payment_id: str | None = None
    outcome: Outcome = Outcome.PENDING
    decline_code: str | None = None
    # The latest (re-)send under this key; None: only the first, at `started_at`.
    last_sent_at: float | None = None

    @property
    def sent_until(self) -> float:
        return self.started_at if self.last_sent_at is None else self.last_sent_at

    @classmethod
    def of(cls, provider: str, request: AuthorizationRequest, started_at: float) -> AttemptRecord:
        return cls(
            provider=provider,
            idempotency_key=request.idempotency_key,
            checkout_id=request.checkout_id,
            attempt=request.attempt,
            amount=request.amount,
            currency=request.currency.lower(),
            payment_method=request.payment_method,
            customer_id=request.customer_id,
            started_at=started_at,
            last_sent_at=started_at,
        )

    def request(self) -> AuthorizationRequest:
        """The create exactly as it was sent: what a re-send under the same key must repeat."""
        return AuthorizationRequest(
            checkout_id=self.checkout_id,
            attempt=self.attempt,
            idempotency_key=self.idempotency_key,
            payment_method=self.payment_method,
            customer_id=self.customer_id,
            amount=self.amount,
            currency=self.currency,
        )

    def same_request(self, request: AuthorizationRequest) -> bool:
        return self.request() == replace(request, currency=request.currency.lower())


class AttemptLog(Protocol):
    def attempts(self, provider: str, checkout_id: str) -> list[AttemptRecord]:
        """This checkout's attempts at `provider`, oldest first."""
        ...

    def begin(self, record: AttemptRecord) -> AttemptRecord:
        """Record an attempt about to be sent (durably, before returning); if its key is
        already recorded, nothing changes and the stored record is returned."""
        ...

    def resolve(
        self,
        provider: str,
        idempotency_key: str,
        outcome: Outcome,
        payment_id: str | None,
        decline_code: str | None = None,
    ) -> None:
        """Record what an answer said. A payment id once known is never forgotten."""
        ...

    def resent(self, provider: str, idempotency_key: str, at: float) -> None:
        """Record (durably, before it leaves) that the attempt is being sent again at `at`."""
        ...


class InMemoryAttemptLog:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], AttemptRecord] = {}
        self._lock = threading.Lock()

    def attempts(self, provider: str, checkout_id: str) -> list[AttemptRecord]:
        with self._lock:
            rows = [
                r
                for (p, _), r in self._rows.items()
                if p == provider and r.checkout_id == checkout_id
            ]
        return sorted(rows, key=lambda r: (r.started_at, r.attempt))

    def begin(self, record: AttemptRecord) -> AttemptRecord:
        with self._lock:
            return self._rows.setdefault((record.provider, record.idempotency_key), record)

    def resolve(
        self,
        provider: str,
        idempotency_key: str,
        outcome: Outcome,
        payment_id: str | None,
        decline_code: str | None = None,
    ) -> None:
        with self._lock:
            row = self._rows.get((provider, idempotency_key))
            if row is not None:
                self._rows[(provider, idempotency_key)] = replace(
                    row,
                    outcome=outcome,
                    payment_id=payment_id or row.payment_id,
                    decline_code=decline_code,
                )

    def resent(self, provider: str, idempotency_key: str, at: float) -> None:
        with self._lock:
            row = self._rows.get((provider, idempotency_key))
            if row is not None:
                self._rows[(provider, idempotency_key)] = replace(
                    row, last_sent_at=max(at, row.sent_until)
                )


# A new connection (closed on exit) or a pool's `connection` (returned on exit): three short
# transactions per authorization, so the payment worker hands in a pool.
Connect = Callable[[], AbstractContextManager[psycopg.Connection]]

_COLUMNS = (
    "provider, idempotency_key, checkout_id, attempt, amount, currency, payment_method,"
    " customer_id, started_at, payment_id, outcome, decline_code, last_sent_at"
)


def _record(row: tuple[object, ...]) -> AttemptRecord:
    (provider, key, checkout_id, attempt, amount, currency, method, customer, started) = row[:9]
    payment_id, outcome, decline_code, last_sent = row[9:]
    return AttemptRecord(
        provider=str(provider),
        idempotency_key=str(key),
        checkout_id=str(checkout_id),
        attempt=int(attempt),  # type: ignore[call-overload]
        amount=int(amount),  # type: ignore[call-overload]
        currency=str(currency),
        payment_method=str(method),
        customer_id=str(customer),
        started_at=float(started),  # type: ignore[arg-type]
        payment_id=None if payment_id is None else str(payment_id),
        outcome=Outcome(str(outcome)),
        decline_code=None if decline_code is None else str(decline_code),
        last_sent_at=float(last_sent),  # type: ignore[arg-type]
    )


class PostgresAttemptLog:
    """Each call is its own short transaction, committed before it returns: `begin` must be
    durable before the request it records is sent."""

    def __init__(self, connect: Connect, *, clock: Callable[[], float] = time.time) -> None:
        self._connect = connect
        self._clock = clock

    @contextlib.contextmanager
    def _store(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection; the store being away (restart, failover, pool exhausted) is raised as
        the payment port's AttemptLogUnavailable, translated here at the edge."""
        try:
            with self._connect() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as e:
            raise AttemptLogUnavailable(f"payment attempt log: {type(e).__name__}: {e}") from e

    def attempts(self, provider: str, checkout_id: str) -> list[AttemptRecord]:
        with self._store() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM payment_attempts"
                " WHERE provider = %s AND checkout_id = %s ORDER BY started_at, attempt",
                (provider, checkout_id),
            ).fetchall()
        return [_record(r) for r in rows]

    def begin(self, record: AttemptRecord) -> AttemptRecord:
        with self._store() as conn, conn.transaction():
            conn.execute(
                f"INSERT INTO payment_attempts ({_COLUMNS}, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (provider, idempotency_key) DO NOTHING",
                (
                    record.provider,
                    record.idempotency_key,
                    record.checkout_id,
                    record.attempt,
                    record.amount,
                    record.currency,
                    record.payment_method,
                    record.customer_id,
                    record.started_at,
                    record.payment_id,
                    str(record.outcome),
                    record.decline_code,
                    record.sent_until,
                    record.started_at,
                ),
            )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM payment_attempts"
                " WHERE provider = %s AND idempotency_key = %s",
                (record.provider, record.idempotency_key),
            ).fetchone()
        assert row is not None  # inserted or already there, in this very transaction
        return _record(row)

    def resolve(
        self,
        provider: str,
        idempotency_key: str,
        outcome: Outcome,
        payment_id: str | None,
        decline_code: str | None = None,
    ) -> None:
        with self._store() as conn, conn.transaction():
            conn.execute(
                "UPDATE payment_attempts SET outcome = %s,"
                " payment_id = coalesce(%s, payment_id), decline_code = %s, updated_at = %s"
                " WHERE provider = %s AND idempotency_key = %s",
                (str(outcome), payment_id, decline_code, self._clock(), provider, idempotency_key),
            )

    def resent(self, provider: str, idempotency_key: str, at: float) -> None:
        with self._store() as conn, conn.transaction():
            conn.execute(
                "UPDATE payment_attempts SET last_sent_at = greatest(last_sent_at, %s),"
                " updated_at = %s WHERE provider = %s AND idempotency_key = %s",
                (at, self._clock(), provider, idempotency_key),
            )
