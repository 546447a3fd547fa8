"""At most one email per (order or checkout, kind): the `sent_notifications` ledger.

Insert-before-send. `claim` inserts the row as `pending` (unique key) and commits *before* the
email goes out; `mark_sent` flips it to `sent` after the provider accepted it.
- Redelivery after success: the row says `sent`, nothing is sent again. This is the guarantee.
- Crash between the provider's accept and `mark_sent`: the row stays `pending`, the redelivery
  sends again. So delivery is at-least-once in that one window (seconds), and never lost. The
  alternative (mark first, send after) would lose the email on that crash; a duplicate
  confirmation is the cheaper failure. Re-sends reuse the idempotency key (SMTP Message-ID,
  SendGrid custom_args), so downstream deduplication can still collapse them.
- Permanent failure: the row says `failed` with the error; redeliveries do not retry it.
Two workers handling the same command at the same instant could both send (both see
`pending`); Kafka partitioning by checkout_id makes that a rebalance-only corner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import psycopg


class Claim(StrEnum):
    SEND = "send"  # first time, or an earlier attempt did not finish: send now
    ALREADY_SENT = "already_sent"
    FAILED = "failed"  # failed permanently before; do not try again


@dataclass(frozen=True, slots=True)
class NotificationKey:
    subject_id: str  # the order id, or the checkout id when there is no order
    kind: str


class SentLog(Protocol):
    def claim(self, key: NotificationKey, checkout_id: str, email: str) -> Claim: ...

    def mark_sent(self, key: NotificationKey, provider: str, message_id: str | None) -> None: ...

    def mark_failed(self, key: NotificationKey, error: str) -> None: ...


class InMemorySentLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows: dict[NotificationKey, dict[str, Any]] = {}

    def claim(self, key: NotificationKey, checkout_id: str, email: str) -> Claim:
        with self._lock:
            fresh = {"status": "pending", "attempts": 0, "email": email, "checkout": checkout_id}
            row = self.rows.setdefault(key, fresh)
            return _decide(row)

    def mark_sent(self, key: NotificationKey, provider: str, message_id: str | None) -> None:
        with self._lock:
            self.rows[key].update(status="sent", provider=provider, message_id=message_id)

    def mark_failed(self, key: NotificationKey, error: str) -> None:
        with self._lock:
            self.rows[key].update(status="failed", last_error=error)


def _decide(row: dict[str, Any]) -> Claim:
    if row["status"] == "sent":
        return Claim.ALREADY_SENT
    if row["status"] == "failed":
        return Claim.FAILED
    row["attempts"] += 1
    return Claim.SEND


Connection = psycopg.Connection[Any]


class PostgresSentLog:
    def __init__(self, connect: Callable[[], Connection]) -> None:
        self._connect = connect

    @classmethod
    def from_url(cls, url: str, *, connect_timeout_s: int = 5) -> PostgresSentLog:
        return cls(lambda: psycopg.connect(url, connect_timeout=connect_timeout_s))

    def claim(self, key: NotificationKey, checkout_id: str, email: str) -> Claim:
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO sent_notifications (subject_id, kind, checkout_id, email, status)"
                " VALUES (%s, %s, %s, %s, 'pending') ON CONFLICT DO NOTHING",
                (key.subject_id, key.kind, checkout_id, email),
            )
            row = conn.execute(
                "SELECT status FROM sent_notifications WHERE subject_id = %s AND kind = %s"
                " FOR UPDATE",
                (key.subject_id, key.kind),
            ).fetchone()
            assert row is not None  # inserted or already there, in this transaction
            if row[0] == "pending":
                conn.execute(
                    "UPDATE sent_notifications SET attempts = attempts + 1"
                    " WHERE subject_id = %s AND kind = %s",
                    (key.subject_id, key.kind),
                )
            return {"pending": Claim.SEND, "sent": Claim.ALREADY_SENT}.get(row[0], Claim.FAILED)

    def mark_sent(self, key: NotificationKey, provider: str, message_id: str | None) -> None:
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "UPDATE sent_notifications SET status = 'sent', provider = %s,"
                " provider_message_id = %s, sent_at = now(), last_error = NULL"
                " WHERE subject_id = %s AND kind = %s",
                (provider, message_id, key.subject_id, key.kind),
            )

    def mark_failed(self, key: NotificationKey, error: str) -> None:
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "UPDATE sent_notifications SET status = 'failed', last_error = %s"
                " WHERE subject_id = %s AND kind = %s AND status <> 'sent'",
                (error[:1000], key.subject_id, key.kind),
            )

    def status(self, key: NotificationKey) -> tuple[str, int] | None:
        """(status, attempts); for operators and tests."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT status, attempts FROM sent_notifications WHERE subject_id = %s"
                " AND kind = %s",
                (key.subject_id, key.kind),
            ).fetchone()
            return None if row is None else (str(row[0]), int(row[1]))
