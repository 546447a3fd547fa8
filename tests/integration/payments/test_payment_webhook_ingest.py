"""WebhookIngest on the real broker: a signed webhook becomes exactly one acknowledged
RecordPaymentSignal; a replay none; a forgery raises and produces nothing; a broker that cannot
take the signal releases the dedup claim so the provider's redelivery is accepted."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import redis
import stripe
from confluent_kafka import Producer

from adapters.payments.webhook_ingest import InvalidSignature, WebhookIngest, WebhookNotRecorded
from adapters.payments.webhooks import RedisEventStore, StripeWebhookHandler
from events.messages import PaymentSignal, RecordPaymentSignal
from events.serde import make_serde
from infra.embedded.stack import RunningStack
from infra.processor import producer_config
from tests.integration.kafka_helpers import Seen, fresh_topics, read_topic

pytestmark = pytest.mark.integration
SECRET = "whsec_ingest_test"
SERDE = make_serde(None)


def webhook(checkout_id: str, kind: str = "payment_intent.amount_capturable_updated") -> bytes:
    return json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": kind,
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": f"pi_{uuid.uuid4().hex[:14]}",
                    "object": "payment_intent",
                    "amount": 3800,
                    "amount_capturable": 3800,
                    "currency": "eur",
                    "status": "requires_capture",
                    "metadata": {"checkout_id": checkout_id},
                }
            },
        }
    ).encode()


def sign(payload: bytes, secret: str = SECRET) -> str:
    t = int(time.time())
    sig = stripe.WebhookSignature._compute_signature(f"{t}.{payload.decode()}", secret)
    return f"t={t},v1={sig}"


@pytest.fixture
def bootstrap(stack: RunningStack) -> str:
    assert stack.settings.kafka_bootstrap_servers
    return stack.settings.kafka_bootstrap_servers


@pytest.fixture
def handler(stack: RunningStack) -> Any:
    assert stack.settings.redis_url
    client = redis.Redis.from_url(stack.settings.redis_url)
    store = RedisEventStore(client, prefix=f"test:{uuid.uuid4().hex}:", ttl_s=60)
    yield StripeWebhookHandler([SECRET], store)
    client.close()


def signals_on(bootstrap: str, topic: str, expected: int) -> list[tuple[Seen, Any]]:
    """Read the (fresh) topic until `expected` records are there."""
    seen = read_topic(bootstrap, topic, until=lambda r: len(r) >= expected, timeout_s=20)
    return [(r, SERDE.decode(r.value, topic)) for r in seen]


def test_signed_webhook_is_produced_once_and_acknowledged(
    bootstrap: str, handler: StripeWebhookHandler
) -> None:
    (topic,) = fresh_topics(bootstrap, "checkout.commands")
    ingest = WebhookIngest(handler, Producer(producer_config(bootstrap)), SERDE, topic=topic)
    checkout_id = f"co_{uuid.uuid4().hex[:12]}"
    payload = webhook(checkout_id)
    header = sign(payload)

    ingest(payload, header)  # returns only after the broker acknowledged the signal
    ingest(payload, header)  # Stripe's redelivery of the same event: deduplicated
    with pytest.raises(InvalidSignature):
        forged = webhook(checkout_id)
        ingest(forged, sign(forged, "whsec_attacker"))

    # A later event of the same checkout lands on the same partition after anything the replay
    # or the forgery could have produced, so once it is read, the partition is complete.
    marker = webhook(checkout_id, "payment_intent.canceled")
    ingest(marker, sign(marker))
    records = signals_on(bootstrap, topic, expected=2)
    assert len(records) == 2
    (record, envelope), (_, last) = records
    signal = envelope.message
    assert isinstance(signal, RecordPaymentSignal)
    assert record.key == checkout_id.encode()
    assert record.headers["message_type"] == b"RecordPaymentSignal"
    assert (signal.checkout_id, signal.signal, signal.amount) == (
        checkout_id,
        PaymentSignal.AUTHORIZED,
        3800,
    )
    assert signal.provider_event_id == json.loads(payload)["id"]
    assert last.message.signal == PaymentSignal.CANCELED


def test_broker_failure_releases_the_claim_so_the_redelivery_is_accepted(
    bootstrap: str, handler: StripeWebhookHandler
) -> None:
    (topic,) = fresh_topics(bootstrap, "checkout.commands")
    # Nothing listens on port 1: the produce is never acknowledged.
    dead = Producer(producer_config("127.0.0.1:1", **{"message.timeout.ms": 1500}))
    payload = webhook(f"co_{uuid.uuid4().hex[:12]}")
    header = sign(payload)
    with pytest.raises(WebhookNotRecorded):
        WebhookIngest(handler, dead, SERDE, topic=topic, ack_timeout_s=5)(payload, header)

    live = WebhookIngest(handler, Producer(producer_config(bootstrap)), SERDE, topic=topic)
    live(payload, header)  # the provider's retry: accepted, not dropped as a duplicate
    records = signals_on(bootstrap, topic, expected=1)
    assert [env.message.provider_event_id for _, env in records] == [json.loads(payload)["id"]]
