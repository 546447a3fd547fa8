"""WebhookIngest without a broker: where the signal goes, and the claim is released on failure."""

from __future__ import annotations

import json
from typing import Any

import pytest
import stripe

from adapters.payments.webhook_ingest import InvalidSignature, WebhookIngest, WebhookNotRecorded
from adapters.payments.webhooks import InMemoryEventStore, StripeWebhookHandler
from events.serde import make_serde
from events.topics import CHECKOUT_COMMANDS

SECRET = "whsec_unit"
NOW = 1_900_000_000
SERDE = make_serde(None)


class FakeProducer:
    """Acks (or fails) every produce on the next poll, like librdkafka's delivery callbacks."""

    def __init__(self, error: str | None = None, ack: bool = True) -> None:
        self.error, self.ack = error, ack
        self.produced: list[dict[str, Any]] = []
        self._pending: list[Any] = []

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        self.produced.append({"topic": topic, **kwargs})
        self._pending.append(kwargs["on_delivery"])

    def poll(self, timeout: float = 0) -> int:
        if not self.ack:
            return 0
        served, self._pending = self._pending, []
        for callback in served:
            callback(self.error, None)
        return len(served)


def payload(event_id: str = "evt_1") -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": "pi_1",
                    "amount": 1500,
                    "currency": "eur",
                    "metadata": {"checkout_id": "co_1"},
                }
            },
        }
    ).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    sig = stripe.WebhookSignature._compute_signature(f"{NOW}.{body.decode()}", secret)
    return f"t={NOW},v1={sig}"


def ingest(producer: FakeProducer, **kw: Any) -> WebhookIngest:
    handler = StripeWebhookHandler([SECRET], InMemoryEventStore())
    return WebhookIngest(handler, producer, SERDE, clock=lambda: float(NOW), **kw)


def test_signal_goes_to_checkout_commands_keyed_by_checkout() -> None:
    producer = FakeProducer()
    ingest(producer)(payload(), sign(payload()))
    (sent,) = producer.produced
    assert sent["topic"] == CHECKOUT_COMMANDS
    assert sent["key"] == b"co_1"
    envelope = SERDE.decode(sent["value"], CHECKOUT_COMMANDS)
    assert envelope.message.provider_event_id == "evt_1"


def test_redeliveries_carry_the_same_message_id() -> None:
    first, second = FakeProducer(), FakeProducer()
    ingest(first)(payload(), sign(payload()))
    ingest(second)(payload(), sign(payload()))  # another replica, empty dedup store
    ids = [
        SERDE.decode(p.produced[0]["value"], CHECKOUT_COMMANDS).message_id for p in (first, second)
    ]
    assert ids[0] == ids[1]


def test_invalid_signature_produces_nothing() -> None:
    producer = FakeProducer()
    with pytest.raises(InvalidSignature):
        ingest(producer)(payload(), sign(payload(), "whsec_other"))
    assert producer.produced == []


@pytest.mark.parametrize(
    "producer", [FakeProducer(error="broker down"), FakeProducer(ack=False)], ids=["nack", "no-ack"]
)
def test_failed_produce_releases_the_claim(producer: FakeProducer) -> None:
    webhooks = ingest(producer, ack_timeout_s=0.05)
    with pytest.raises(WebhookNotRecorded):
        webhooks(payload(), sign(payload()))
    healthy = FakeProducer()
    webhooks._producer = healthy  # the broker is back; the provider redelivers
    webhooks(payload(), sign(payload()))
    assert len(healthy.produced) == 1


def test_repr_shows_no_secret() -> None:
    assert SECRET not in repr(ingest(FakeProducer()))
