"""Webhook verification, dedup and translation (no network)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import stripe

from adapters.payments.webhooks import InMemoryEventStore, InvalidSignature, StripeWebhookHandler
from events.messages import PaymentSignal, RecordPaymentSignal

OLD, NEW = "whsec_old_secret", "whsec_new_secret"
NOW = 1_900_000_000


def event(kind: str = "payment_intent.succeeded", **obj: Any) -> bytes:
    body = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": kind,
        "created": NOW,
        "data": {
            "object": {
                "id": "pi_1",
                "object": "payment_intent",
                "amount": 1500,
                "amount_received": 1500,
                "currency": "eur",
                "metadata": {"checkout_id": "co_1"},
                **obj,
            }
        },
    }
    return json.dumps(body).encode()


def sign(payload: bytes, *secrets: str, t: int = NOW) -> str:
    sigs = [
        stripe.WebhookSignature._compute_signature(f"{t}.{payload.decode()}", s) for s in secrets
    ]
    return ",".join([f"t={t}", *(f"v1={s}" for s in sigs)])


@pytest.fixture
def handler() -> StripeWebhookHandler:
    return StripeWebhookHandler([NEW], InMemoryEventStore(), tolerance_s=300)


def test_valid_event_becomes_a_signal(handler: StripeWebhookHandler) -> None:
    payload = event()
    signal = handler.handle_webhook(payload, sign(payload, NEW), now=NOW + 10)
    assert signal == RecordPaymentSignal(
        checkout_id="co_1",
        provider="stripe",
        provider_event_id=json.loads(payload)["id"],
        signal=PaymentSignal.SUCCEEDED,
        payment_id="pi_1",
        amount=1500,
        currency="eur",
    )


def test_invalid_signature_is_rejected(handler: StripeWebhookHandler) -> None:
    payload = event()
    with pytest.raises(InvalidSignature):
        handler.handle_webhook(payload, sign(payload, "whsec_attacker"), now=NOW)
    tampered = payload.replace(b"1500", b"1")
    with pytest.raises(InvalidSignature):
        handler.handle_webhook(tampered, sign(payload, NEW), now=NOW)
    with pytest.raises(InvalidSignature):
        handler.handle_webhook(payload, "", now=NOW)


@pytest.mark.parametrize("skew", [301, -301, 10_000])
def test_timestamp_outside_tolerance_is_rejected(handler: StripeWebhookHandler, skew: int) -> None:
    payload = event()
    with pytest.raises(InvalidSignature, match="tolerance"):
        handler.handle_webhook(payload, sign(payload, NEW, t=NOW), now=NOW + skew)


def test_edge_of_tolerance_is_accepted(handler: StripeWebhookHandler) -> None:
    payload = event()
    assert handler.handle_webhook(payload, sign(payload, NEW), now=NOW + 300) is not None


def test_replayed_event_yields_no_second_signal(handler: StripeWebhookHandler) -> None:
    payload = event()
    header = sign(payload, NEW)
    assert handler.handle_webhook(payload, header, now=NOW) is not None
    assert handler.handle_webhook(payload, header, now=NOW + 1) is None


def test_released_event_is_accepted_again(handler: StripeWebhookHandler) -> None:
    payload = event()
    first = handler.handle_webhook(payload, sign(payload, NEW), now=NOW)
    assert first is not None
    handler.release(first.provider_event_id)  # e.g. producing to Kafka failed
    assert handler.handle_webhook(payload, sign(payload, NEW), now=NOW) == first


def test_rotated_secrets(handler: StripeWebhookHandler) -> None:
    rotating = StripeWebhookHandler([OLD, NEW], InMemoryEventStore())
    for header_secrets in [(OLD,), (NEW,), (OLD, NEW), ("whsec_other", NEW)]:
        payload = event()
        assert rotating.handle_webhook(payload, sign(payload, *header_secrets), now=NOW)
    # After rotation completes the old secret alone no longer verifies.
    payload = event()
    with pytest.raises(InvalidSignature):
        handler.handle_webhook(payload, sign(payload, OLD), now=NOW)


@pytest.mark.parametrize(
    ("kind", "obj", "expected", "amount", "reason"),
    [
        (
            "payment_intent.amount_capturable_updated",
            {"amount_capturable": 1500},
            PaymentSignal.AUTHORIZED,
            1500,
            None,
        ),
        (
            "payment_intent.payment_failed",
            {"last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds"}},
            PaymentSignal.FAILED,
            1500,
            "insufficient_funds",
        ),
        (
            "payment_intent.canceled",
            {"cancellation_reason": "abandoned"},
            PaymentSignal.CANCELED,
            1500,
            "abandoned",
        ),
    ],
)
def test_payment_intent_events(
    handler: StripeWebhookHandler,
    kind: str,
    obj: dict[str, Any],
    expected: PaymentSignal,
    amount: int,
    reason: str | None,
) -> None:
    payload = event(kind, **obj)
    signal = handler.handle_webhook(payload, sign(payload, NEW), now=NOW)
    assert signal is not None
    assert (signal.signal, signal.amount, signal.reason) == (expected, amount, reason)


def test_charge_refunded_resolves_checkout_when_metadata_is_missing() -> None:
    handler = StripeWebhookHandler(
        [NEW], InMemoryEventStore(), resolve_checkout={"pi_9": "co_9"}.get
    )
    payload = event(
        "charge.refunded",
        id="ch_1",
        object="charge",
        payment_intent="pi_9",
        amount_refunded=700,
        metadata={},
    )
    signal = handler.handle_webhook(payload, sign(payload, NEW), now=NOW)
    assert signal is not None
    assert (signal.checkout_id, signal.payment_id, signal.signal, signal.amount) == (
        "co_9",
        "pi_9",
        PaymentSignal.REFUNDED,
        700,
    )


def test_events_not_ours_or_not_relevant_are_ignored(handler: StripeWebhookHandler) -> None:
    foreign = event(metadata={})
    assert handler.handle_webhook(foreign, sign(foreign, NEW), now=NOW) is None
    other = event("customer.created")
    assert handler.handle_webhook(other, sign(other, NEW), now=NOW) is None


def test_secrets_never_in_repr() -> None:
    assert NEW not in repr(StripeWebhookHandler([NEW], InMemoryEventStore()))
