"""Razorpay webhook verification (X-Razorpay-Signature), dedup, replay window, translation."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from adapters.payments.razorpay_webhooks import (
    MAX_EVENT_AGE_S,
    RazorpayWebhookHandler,
    sign,
)
from adapters.payments.webhook_ingest import WebhookIngest
from adapters.payments.webhooks import InMemoryEventStore, InvalidSignature
from events.messages import PaymentSignal, RecordPaymentSignal
from events.serde import SingleObjectSerde

OLD, NEW = "rzp_whsec_old", "rzp_whsec_new"
NOW = 1_900_000_000


def payment(**fields: Any) -> dict[str, Any]:
    return {
        "id": "pay_1",
        "entity": "payment",
        "amount": 50000,
        "currency": "INR",
        "status": "authorized",
        "order_id": "order_1",
        "amount_refunded": 0,
        "captured": False,
        "notes": {"checkout_id": "co_1", "attempt": "1", "idempotency_key": "co_1:a:1"},
        "error_code": None,
        "error_reason": None,
        **fields,
    }


def event(kind: str = "payment.authorized", created_at: int = NOW, **fields: Any) -> bytes:
    payload: dict[str, Any] = {"payment": {"entity": payment(**fields)}}
    if kind.startswith("refund."):
        refund = {"id": "rfnd_1", "entity": "refund", "amount": 20000, "payment_id": "pay_1"}
        payload = {"refund": {"entity": {**refund, "currency": "INR", "notes": []}}, **payload}
    body = {
        "entity": "event",
        "account_id": "acc_1",
        "event": kind,
        "contains": list(payload),
        "payload": payload,
        "created_at": created_at,
        "nonce": uuid.uuid4().hex,  # distinct bodies per test event
    }
    return json.dumps(body).encode()


@pytest.fixture
def handler() -> RazorpayWebhookHandler:
    return RazorpayWebhookHandler([NEW], InMemoryEventStore())


def test_payment_authorized_becomes_a_signal(handler: RazorpayWebhookHandler) -> None:
    body = event()
    signal = handler.handle_webhook(body, sign(body, NEW), NOW + 5, event_id="evt_1")
    assert signal == RecordPaymentSignal(
        checkout_id="co_1",
        provider="razorpay",
        provider_event_id="evt_1",
        signal=PaymentSignal.AUTHORIZED,
        payment_id="pay_1",
        amount=50000,
        currency="INR",
        reason=None,
    )


@pytest.mark.parametrize(
    ("kind", "fields", "signal", "amount", "reason"),
    [
        ("payment.failed", {"status": "failed", "error_reason": "card_declined"},
         PaymentSignal.FAILED, 50000, "card_declined"),
        ("payment.captured", {"status": "captured", "captured": True},
         PaymentSignal.SUCCEEDED, 50000, None),
        ("refund.processed", {"status": "captured", "captured": True, "amount_refunded": 20000},
         PaymentSignal.REFUNDED, 20000, None),
    ],
)  # fmt: skip
def test_failed_captured_and_refunded(
    handler: RazorpayWebhookHandler,
    kind: str,
    fields: dict[str, Any],
    signal: PaymentSignal,
    amount: int,
    reason: str | None,
) -> None:
    body = event(kind, **fields)
    got = handler.handle_webhook(body, sign(body, NEW), NOW)
    assert got is not None
    assert (got.signal, got.payment_id, got.amount, got.reason) == (
        signal,
        "pay_1",
        amount,
        reason,
    )


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "0" * 64,
        "sha256=" + "0" * 64,
        "not hex at all",
    ],
)
def test_invalid_signatures_are_refused(handler: RazorpayWebhookHandler, signature: str) -> None:
    with pytest.raises(InvalidSignature):
        handler.handle_webhook(event(), signature, NOW)


def test_signature_of_another_secret_or_a_tampered_body_is_refused(
    handler: RazorpayWebhookHandler,
) -> None:
    body = event()
    with pytest.raises(InvalidSignature):
        handler.handle_webhook(body, sign(body, "someone_else"), NOW)
    tampered = body.replace(b"50000", b"50001")
    with pytest.raises(InvalidSignature):
        handler.handle_webhook(tampered, sign(body, NEW), NOW)


def test_rotation_accepts_old_and_new_secret() -> None:
    handler = RazorpayWebhookHandler([OLD, NEW], InMemoryEventStore())
    for secret in (OLD, NEW):
        body = event()
        assert handler.handle_webhook(body, sign(body, secret).upper(), NOW) is not None


def test_replayed_event_is_dropped_by_event_id_and_by_body(
    handler: RazorpayWebhookHandler,
) -> None:
    body = event()
    assert handler.handle_webhook(body, sign(body, NEW), NOW, event_id="evt_9") is not None
    assert handler.handle_webhook(body, sign(body, NEW), NOW + 60, event_id="evt_9") is None
    # Without the event id header the body's digest identifies the delivery.
    other = event()
    assert handler.handle_webhook(other, sign(other, NEW), NOW) is not None
    assert handler.handle_webhook(other, sign(other, NEW), NOW + 1) is None


def test_replay_after_the_dedup_window_is_refused_as_stale(
    handler: RazorpayWebhookHandler,
) -> None:
    # The signature has no timestamp: an old, validly signed body stays valid forever, so the
    # event's own created_at bounds how late it may arrive.
    body = event(created_at=NOW - MAX_EVENT_AGE_S - 1)
    with pytest.raises(InvalidSignature, match="outside the accepted window"):
        handler.handle_webhook(body, sign(body, NEW), NOW)
    future = event(created_at=NOW + 3600)
    with pytest.raises(InvalidSignature):
        handler.handle_webhook(future, sign(future, NEW), NOW)


def test_released_claim_accepts_the_redelivery(handler: RazorpayWebhookHandler) -> None:
    body = event()
    first = handler.handle_webhook(body, sign(body, NEW), NOW)
    assert first is not None
    handler.release(first.provider_event_id)
    assert handler.handle_webhook(body, sign(body, NEW), NOW) == first


def test_payments_we_did_not_create_and_other_events_are_ignored(
    handler: RazorpayWebhookHandler,
) -> None:
    foreign = event(notes=[])
    assert handler.handle_webhook(foreign, sign(foreign, NEW), NOW) is None
    other = event("order.paid")
    assert handler.handle_webhook(other, sign(other, NEW), NOW) is None


def test_secrets_are_not_in_repr() -> None:
    handler = RazorpayWebhookHandler([OLD, NEW], InMemoryEventStore())
    assert OLD not in repr(handler) and NEW not in repr(handler)


class AckingProducer:
    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes]] = []
        self._pending: list[Any] = []

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        self.produced.append((topic, kwargs["value"]))
        self._pending.append(kwargs["on_delivery"])

    def poll(self, timeout: float = 0) -> int:
        served = len(self._pending)
        for callback in self._pending:
            callback(None, None)
        self._pending.clear()
        return served


def test_webhook_ingest_serves_razorpay_too() -> None:
    """The endpoint passes the raw body and X-Razorpay-Signature; the signal is produced to
    checkout.commands and a redelivery is not produced again."""
    producer = AckingProducer()
    serde = SingleObjectSerde()
    ingest = WebhookIngest(
        RazorpayWebhookHandler([NEW], InMemoryEventStore()), producer, serde, clock=lambda: NOW
    )
    body = event("payment.failed", status="failed", error_reason="payment_failed")
    ingest(body, sign(body, NEW))
    ingest(body, sign(body, NEW))
    assert len(producer.produced) == 1
    topic, value = producer.produced[0]
    message = serde.decode(value, topic).message
    assert isinstance(message, RecordPaymentSignal)
    assert (message.signal, message.reason) == (PaymentSignal.FAILED, "payment_failed")
    with pytest.raises(InvalidSignature):
        ingest(body, sign(body, OLD))
