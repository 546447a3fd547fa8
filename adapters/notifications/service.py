"""SendNotification in, NotificationSent out: at most one email per (order/checkout, kind).

The message contract has no failure reply for notifications (they are off the money path), so
a failure is raised as NotificationFailed for the adapter processor: `permanent=True` (bad
address, rejected content, unknown kind) goes to the DLQ for an operator; `permanent=False`
(provider down after our bounded retries) leaves the ledger row `pending`, so a redelivery
tries again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

import pybreaker

from adapters.notifications.port import (
    EmailSender,
    OutgoingEmail,
    PermanentSendError,
    TransientSendError,
)
from adapters.notifications.sent_log import Claim, NotificationKey, SentLog
from adapters.notifications.templates import OrderSummary, UnknownTemplate, render
from adapters.resilience import CircuitBreakerError, call_with_resilience, make_breaker
from events.messages import NotificationSent, SendNotification


class Delivery(StrEnum):
    SENT = "sent"
    ALREADY_SENT = "already_sent"  # a redelivery: the ledger says it went out before


class NotificationFailed(Exception):
    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class SummaryLookup(Protocol):
    """Order details for the templates (the orders read model, or OrderPlaced events)."""

    def summary(self, checkout_id: str, order_id: str | None) -> OrderSummary | None: ...


class InMemorySummaries:
    def __init__(self) -> None:
        self._by_checkout: dict[str, OrderSummary] = {}

    def put(self, summary: OrderSummary) -> None:
        self._by_checkout[summary.checkout_id] = summary

    def summary(self, checkout_id: str, order_id: str | None) -> OrderSummary | None:
        return self._by_checkout.get(checkout_id)


class NotificationService:
    def __init__(
        self,
        sender: EmailSender,
        sent_log: SentLog,
        summaries: SummaryLookup,
        *,
        breaker: pybreaker.CircuitBreaker | None = None,
        retries: int = 3,
        timeout_s: float | None = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sender = sender
        self._log = sent_log
        self._summaries = summaries
        # A rejected message is not a sick provider: permanent errors do not trip the breaker.
        self._breaker = breaker or make_breaker(
            f"email-{sender.name}", exclude=[PermanentSendError]
        )
        self._retries = retries
        self._timeout_s = timeout_s
        self._sleep = sleep

    def handle(self, cmd: SendNotification) -> NotificationSent:
        summary = self._summaries.summary(cmd.checkout_id, cmd.order_id) or OrderSummary(
            checkout_id=cmd.checkout_id, currency="", order_id=cmd.order_id
        )
        key = NotificationKey(cmd.order_id or cmd.checkout_id, cmd.kind)
        self.notify(key, cmd.kind, cmd.email, summary)
        return NotificationSent(cmd.checkout_id, cmd.attempt, cmd.kind)

    def notify(self, key: NotificationKey, kind: str, to: str, summary: OrderSummary) -> Delivery:
        """Send `kind` to `to` at most once per `key`. Raises NotificationFailed."""
        try:
            subject, body = render(kind, summary)
        except UnknownTemplate as e:
            raise NotificationFailed(f"unknown notification kind {kind!r}", permanent=True) from e

        claim = self._log.claim(key, summary.checkout_id, to)
        if claim == Claim.ALREADY_SENT:
            return Delivery.ALREADY_SENT
        if claim == Claim.FAILED:
            raise NotificationFailed("failed permanently before; not retried", permanent=True)

        email = OutgoingEmail(
            to=to,
            subject=subject,
            body=body,
            idempotency_key=f"{key.subject_id}:{key.kind}",
            kind=kind,
        )
        try:
            message_id = call_with_resilience(
                lambda: self._sender.send(email),
                breaker=self._breaker,
                timeout_s=self._timeout_s,
                retries=self._retries,
                retry_on=(TransientSendError, TimeoutError),
                sleep=self._sleep,
            )
        except PermanentSendError as e:
            self._log.mark_failed(key, str(e))
            raise NotificationFailed(str(e), permanent=True) from e
        except (TransientSendError, TimeoutError, CircuitBreakerError) as e:
            raise NotificationFailed(f"{type(e).__name__}: {e}", permanent=False) from e
        self._log.mark_sent(key, self._sender.name, message_id)
        return Delivery.SENT
