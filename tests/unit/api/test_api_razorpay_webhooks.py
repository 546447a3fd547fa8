"""POST /v1/webhooks/razorpay: the route's contract around the injected ingest, with the real
Razorpay handler (signature, dedup) behind a fake producer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapters.payments.razorpay_webhooks import RazorpayWebhookHandler, sign
from adapters.payments.webhook_ingest import WebhookIngest, WebhookNotRecorded
from adapters.payments.webhooks import InMemoryEventStore
from api.app import create_app
from events.messages import PaymentSignal
from events.serde import make_serde
from events.topics import CHECKOUT_COMMANDS
from tests.unit.api.fakes import World, make_world

SECRET = "rzp_webhook_secret_for_tests"
NOW = 1_700_000_000
SERDE = make_serde(None)


class AckingProducer:
    """Acknowledges every record at once (the real broker path is tested in integration)."""

    def __init__(self, fail: bool = False) -> None:
        self.records: list[dict[str, Any]] = []
        self.fail = fail
        self._pending: list[Any] = []

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        self.records.append({"topic": topic, **kwargs})
        self._pending.append(kwargs["on_delivery"])

    def poll(self, timeout: float = 0) -> int:
        while self._pending:
            self._pending.pop()("broker down" if self.fail else None, None)
        return 0


def event(checkout_id: str = "co_rzp_1", kind: str = "payment.authorized") -> bytes:
    return json.dumps(
        {
            "entity": "event",
            "event": kind,
            "contains": ["payment"],
            "created_at": NOW,
            "payload": {
                "payment": {
                    "entity": {
                        "id": "pay_123",
                        "amount": 50_000,
                        "currency": "INR",
                        "status": "authorized",
                        "notes": {"checkout_id": checkout_id},
                    }
                }
            },
        }
    ).encode()


def razorpay_world(producer: AckingProducer) -> tuple[World, TestClient]:
    world = make_world(clock=lambda: float(NOW))
    ingest = WebhookIngest(
        RazorpayWebhookHandler([SECRET], InMemoryEventStore()),
        producer,
        SERDE,
        clock=lambda: float(NOW),
        ack_timeout_s=1,
    )

    def razorpay(payload: bytes, headers: Any) -> None:
        ingest(payload, headers.get("x-razorpay-signature", ""), headers.get("x-razorpay-event-id"))

    world.deps.provider_webhooks = {"razorpay": razorpay}
    return world, TestClient(create_app(world.deps))


def post(client: TestClient, body: bytes, signature: str | None, event_id: str = "evt_1") -> Any:
    headers = {"X-Razorpay-Event-Id": event_id, "Content-Type": "application/json"}
    if signature is not None:
        headers["X-Razorpay-Signature"] = signature
    return client.post("/v1/webhooks/razorpay", content=body, headers=headers)


def test_a_signed_event_becomes_one_signal_and_its_redelivery_none() -> None:
    producer = AckingProducer()
    _, client = razorpay_world(producer)
    body = event()
    for _ in range(2):
        r = post(client, body, sign(body, SECRET))
        assert r.status_code == 200 and r.json() == {"received": True}, r.text
    [record] = producer.records
    assert record["topic"] == CHECKOUT_COMMANDS and record["key"] == b"co_rzp_1"
    signal = SERDE.decode(record["value"], CHECKOUT_COMMANDS).message
    assert signal.signal is PaymentSignal.AUTHORIZED
    assert (signal.provider, signal.provider_event_id, signal.payment_id, signal.amount) == (
        "razorpay",
        "evt_1",
        "pay_123",
        50_000,
    )


@pytest.mark.parametrize("signature", [None, "", "00" * 32, sign(b"other body", SECRET)])
def test_missing_or_wrong_signatures_are_400_and_produce_nothing(signature: str | None) -> None:
    producer = AckingProducer()
    _, client = razorpay_world(producer)
    r = post(client, event(), signature)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_signature"
    assert "Razorpay-Signature" in r.json()["reason"]
    assert producer.records == []


def test_a_signal_the_broker_did_not_take_is_503_and_the_redelivery_is_accepted() -> None:
    producer = AckingProducer(fail=True)
    _, client = razorpay_world(producer)
    body = event()
    assert post(client, body, sign(body, SECRET)).status_code == 503
    producer.fail = False
    assert post(client, body, sign(body, SECRET)).status_code == 200
    assert len(producer.records) == 2  # the failed try and the accepted redelivery


def test_not_configured_is_404_with_a_reason() -> None:
    world = make_world()
    client = TestClient(create_app(world.deps))
    body = event()
    r = post(client, body, sign(body, SECRET))
    assert r.status_code == 404
    assert r.json()["error"] == "not_configured" and "Razorpay" in r.json()["reason"]


def test_the_ingest_raising_not_recorded_is_503() -> None:
    world = make_world()

    def failing(payload: bytes, headers: Any) -> None:
        raise WebhookNotRecorded("broker down")

    world.deps.provider_webhooks = {"razorpay": failing}
    r = post(TestClient(create_app(world.deps)), event(), "ab" * 32)
    assert r.status_code == 503 and r.json()["error"] == "broker_unavailable"
