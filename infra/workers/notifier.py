"""The notifier: customer emails driven by the events, run by the one processor runtime.

Consumes `orders.events` and `checkout.events` (dispatching on the message type, not the topic,
so tests can feed it from their own topics):
- OrderPlaced       -> `order_confirmation`, lines and totals from the event itself;
- OrderRefunded     -> `order_refunded` (one per refund: a second partial refund is news too);
- CheckoutFailed    -> `checkout_failed`;  CheckoutCancelled -> `checkout_cancelled`;
- CheckoutStarted   -> nothing sent; its customer email is remembered in
  `notification_recipients`, because the failure and refund events do not carry it.
Everything else on those topics is committed and ignored.

At most one email per (order/checkout[/refund], kind): the `sent_notifications` ledger, not a
message-id set, is the dedup — it also covers redeliveries (Tansu shows aborted copies, decision
0006), batch rewinds and a second worker after a rebalance. Nothing is produced to Kafka: a
handled message just commits its offset.

Failures: a transient send failure (after the service's own bounded retries) is raised, so the
runtime retries the batch and finally dead-letters it with the error; a permanent one (address
refused, unknown recipient) raises `PermanentFailure`, which the runtime dead-letters at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import psycopg

from adapters.notifications.sent_log import NotificationKey, PostgresSentLog
from adapters.notifications.service import Delivery, NotificationFailed, NotificationService
from adapters.notifications.smtp import SmtpSender
from adapters.notifications.summaries import (
    EventSummaries,
    from_order_placed,
    from_order_refunded,
)
from adapters.notifications.templates import OrderSummary
from db.migrate import upgrade
from events import messages as m
from infra.processor import BaseHandler, Incoming, Output, PermanentFailure
from infra.settings import Settings

log = logging.getLogger(__name__)

Connection = psycopg.Connection[Any]


class RecipientStore(Protocol):
    def remember(self, checkout_id: str, email: str) -> None: ...

    def email_of(self, checkout_id: str) -> str | None: ...


class PostgresRecipients:
    """checkout_id -> customer email, written when CheckoutStarted (or OrderPlaced) is seen.
    A table rather than memory: a restarted worker resumes after CheckoutStarted's offset and
    must still know whom to tell that the checkout failed."""

    def __init__(self, connect: Callable[[], Connection]) -> None:
        self._connect = connect

    def remember(self, checkout_id: str, email: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO notification_recipients (checkout_id, email) VALUES (%s, %s)"
                " ON CONFLICT (checkout_id) DO NOTHING",
                (checkout_id, email),
            )

    def email_of(self, checkout_id: str) -> str | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT email FROM notification_recipients WHERE checkout_id = %s",
                (checkout_id,),
            ).fetchone()
            return None if row is None else str(row[0])


class InMemoryRecipients:
    def __init__(self) -> None:
        self.emails: dict[str, str] = {}

    def remember(self, checkout_id: str, email: str) -> None:
        self.emails.setdefault(checkout_id, email)

    def email_of(self, checkout_id: str) -> str | None:
        return self.emails.get(checkout_id)


class NotifierHandler(BaseHandler):
    def __init__(
        self,
        service: NotificationService,
        recipients: RecipientStore,
        summaries: EventSummaries | None = None,
    ) -> None:
        self._service = service
        self._recipients = recipients
        self._summaries = summaries  # shared with the SendNotification path, when wired

    def handle(self, message: Incoming) -> Sequence[Output]:
        event = message.envelope.message
        if isinstance(event, m.CheckoutStarted):
            self._recipients.remember(event.checkout_id, event.customer_email)
        elif isinstance(event, m.OrderPlaced):
            self._recipients.remember(event.checkout_id, event.customer_email)
            if self._summaries is not None:
                self._summaries.observe(event)
            key = NotificationKey(event.order_id, "order_confirmation")
            self._send(key, event.customer_email, from_order_placed(event))
        elif isinstance(event, m.OrderRefunded):
            key = NotificationKey(f"{event.order_id}/{event.refund_id}", "order_refunded")
            self._send(key, self._recipient(event.checkout_id), from_order_refunded(event))
        elif isinstance(event, m.CheckoutFailed):
            summary = OrderSummary(
                event.checkout_id, "", failure_reason=event.reason, failed_step=event.step
            )
            key = NotificationKey(event.checkout_id, "checkout_failed")
            self._send(key, self._recipient(event.checkout_id), summary)
        elif isinstance(event, m.CheckoutCancelled):
            key = NotificationKey(event.checkout_id, "checkout_cancelled")
            summary = OrderSummary(event.checkout_id, "", failure_reason="cancelled")
            self._send(key, self._recipient(event.checkout_id), summary)
        return []

    def _recipient(self, checkout_id: str) -> str:
        email = self._recipients.email_of(checkout_id)
        if email is None:
            # CheckoutStarted precedes every other event of its checkout in the same partition,
            # so this is a gap in the log (retention, a wrong start offset): an operator's case.
            raise PermanentFailure(f"no customer email known for checkout {checkout_id}")
        return email

    def _send(self, key: NotificationKey, to: str, summary: OrderSummary) -> None:
        try:
            outcome = self._service.notify(key, key.kind, to, summary)
        except NotificationFailed as e:
            if e.permanent:
                raise PermanentFailure(f"{key.kind} for {key.subject_id}: {e.reason}") from e
            raise  # transient: the runtime retries the batch, then dead-letters
        if outcome is Delivery.SENT:
            log.info("sent %s for %s", key.kind, key.subject_id)


def sender_from_settings(settings: Settings) -> SmtpSender:
    if not settings.smtp_url:
        raise ValueError("SMTP_URL is not set (or run the embedded stack: saga up)")
    return SmtpSender.from_url(settings.smtp_url, from_address=settings.email_from)


def notifier_handler(settings: Settings) -> NotifierHandler:
    """The notifier on whatever the settings point at (embedded inbox or a real SMTP relay)."""
    url = settings.database_url
    if not url:
        raise ValueError("DATABASE_URL is not set")

    def connect() -> Connection:
        return psycopg.connect(url, connect_timeout=5, autocommit=True)

    upgrade(url)
    sent_log = PostgresSentLog(connect)
    recipients = PostgresRecipients(connect)
    summaries = EventSummaries()
    service = NotificationService(sender_from_settings(settings), sent_log, summaries)
    return NotifierHandler(service, recipients, summaries)
