"""3-D Secure end to end on the real stack: orchestrator, the real PaymentService on localstripe
(refund ledger on Postgres), scripted inventory/tax/shipping, the real broker, WebhookIngest with
Redis dedup. The customer's authentication and Stripe's webhook are played by the test.

localstripe sends no webhook when 3-D Secure completes on a manual-capture intent (real Stripe
sends `payment_intent.amount_capturable_updated`), so the test builds that event from the
intent as localstripe reports it and signs it with the endpoint secret, as Stripe would.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import stripe
from confluent_kafka import Producer

from adapters.payments.webhook_ingest import WebhookIngest
from adapters.payments.webhooks import RedisEventStore, StripeWebhookHandler
from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from events.topics import CHECKOUT_COMMANDS, CHECKOUT_EVENTS
from infra.adapters_wiring import payment_service
from infra.bootstrap import build_processor
from infra.demo import tokenize
from infra.embedded.stack import RunningStack
from infra.processor import producer_config
from infra.settings import Settings
from infra.topics import ensure_topics
from tests.integration.kafka_helpers import Seen, produce, read_topic
from tests.integration.scripted_adapters import ScriptedWorld
from tests.integration.workers import running

pytestmark = pytest.mark.integration
SERDE = make_serde(None)
THREE_DS_CARD = "4000002500003155"
TERMINAL = (m.CheckoutCompleted, m.CheckoutFailed, m.CheckoutCancelled, m.CheckoutNeedsAttention)


@pytest.fixture(scope="module")
def engine_settings(stack: RunningStack) -> Settings:
    settings = stack.settings
    assert settings.kafka_bootstrap_servers
    ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
    return settings


@pytest.fixture
def engine(engine_settings: Settings) -> Iterator[None]:
    """Scripted inventory/tax/shipping/notification, the real payment adapter, the orchestrator."""
    services = {**ScriptedWorld().services(), "payment": payment_service(engine_settings)}
    processors = [
        build_processor(role, engine_settings, services=services, instance_id=uuid.uuid4().hex[:6])
        for role in ("inventory", "tax", "shipping", "payment", "notification", "orchestrator")
    ]
    with running(*processors):
        yield


def stripe_client(settings: Settings) -> stripe.StripeClient:
    return stripe.StripeClient(
        settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base or ""}
    )


def events_until(settings: Settings, checkout_id: str, done: Any, timeout_s: float = 90) -> list:
    """The checkout's events (deduplicated by message id) once `done(events)` holds."""
    assert settings.kafka_bootstrap_servers
    found: list[Any] = []

    def mine(records: list[Seen]) -> list[Any]:
        unique: dict[str, Any] = {}
        for r in records:
            if r.key == checkout_id.encode():
                envelope = SERDE.decode(r.value, CHECKOUT_EVENTS)
                unique.setdefault(envelope.message_id, envelope.message)
        return list(unique.values())

    def check(records: list[Seen]) -> bool:
        found[:] = mine(records)
        return bool(done(found))

    try:
        read_topic(
            settings.kafka_bootstrap_servers, CHECKOUT_EVENTS, timeout_s=timeout_s, until=check
        )
    except AssertionError as e:
        names = [type(x).__name__ for x in found]
        raise AssertionError(f"{checkout_id}: condition not met; its events: {names}") from e
    return found


def test_3ds_checkout_completes_after_authentication_and_the_signed_webhook(
    engine_settings: Settings, engine: None
) -> None:
    settings = engine_settings
    assert settings.kafka_bootstrap_servers and settings.redis_url and settings.stripe_api_base
    checkout_id = f"co-3ds-{uuid.uuid4().hex[:10]}"
    start = m.StartCheckout(
        checkout_id=checkout_id,
        tenant_id="shop-1",
        customer_id=f"cus-{uuid.uuid4().hex[:8]}",
        customer_email="buyer@example.com",
        currency="EUR",
        items=(m.LineItem("SKU-1", 2, 1250), m.LineItem("SKU-2", 1, 500)),
        shipping_address=m.Address("1 Main St", "Berlin", "BE", "10115", "DE"),
        payment_provider="stripe",
        payment_method=tokenize(settings, THREE_DS_CARD),
    )
    produce(
        settings.kafka_bootstrap_servers,
        CHECKOUT_COMMANDS,
        SERDE,
        [Envelope.new(start, occurred_at=int(time.time() * 1000), producer="storefront")],
    )

    # 1. The authorization needs 3-D Secure: the saga waits for the customer.
    waiting = events_until(
        settings, checkout_id, lambda es: any(isinstance(e, m.PaymentActionAwaited) for e in es)
    )
    required = [e for e in waiting if isinstance(e, m.PaymentActionRequired)]
    assert len(required) == 1
    payment_id = required[0].payment_id
    assert not any(isinstance(e, TERMINAL) for e in waiting)

    # 2. The customer authenticates (what Stripe.js does; the client secret stays with Stripe
    #    and the browser, so the test reads it from the provider, not from our messages).
    client = stripe_client(settings)
    intent = client.v1.payment_intents.retrieve(payment_id)
    response = httpx.post(
        f"{settings.stripe_api_base}/v1/payment_intents/{payment_id}/_authenticate",
        params={"client_secret": intent.client_secret, "success": "true"},
        auth=(settings.stripe_api_key, ""),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    intent = client.v1.payment_intents.retrieve(payment_id)
    assert intent.status == "requires_capture"

    # 3. The webhook real Stripe would send now, signed with our endpoint secret, through the
    #    same entry point the HTTP endpoint uses.
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "payment_intent.amount_capturable_updated",
        "created": int(time.time()),
        "data": {"object": intent.to_dict()},
    }
    payload = json.dumps(event).encode()
    t = int(time.time())
    secret = settings.stripe_webhook_secrets[0]
    signature = stripe.WebhookSignature._compute_signature(f"{t}.{payload.decode()}", secret)
    header = f"t={t},v1={signature}"
    redis_client = redis.Redis.from_url(settings.redis_url)
    store = RedisEventStore(redis_client, prefix=f"test:{uuid.uuid4().hex}:", ttl_s=300)
    ingest = WebhookIngest(
        StripeWebhookHandler(settings.stripe_webhook_secrets, store),
        Producer(producer_config(settings.kafka_bootstrap_servers)),
        SERDE,
    )
    ingest(payload, header)
    ingest(payload, header)  # Stripe redelivers: deduplicated, the saga sees it once
    redis_client.close()

    # 4. The saga continues: commit, capture, complete.
    events = events_until(
        settings, checkout_id, lambda es: any(isinstance(e, TERMINAL) for e in es)
    )
    completed = [e for e in events if isinstance(e, m.CheckoutCompleted)]
    assert len(completed) == 1, [type(e).__name__ for e in events]
    total = completed[0].total
    assert total == 2 * 1250 + 500 + completed[0].tax + completed[0].shipping
    assert [e.provider_event_id for e in events if isinstance(e, m.PaymentSignalRecorded)] == [
        event["id"]
    ]
    assert len([e for e in events if isinstance(e, m.PaymentCaptured)]) == 1

    # 5. At the provider: exactly one PaymentIntent for the checkout, captured once, in full.
    ours = [
        pi
        for pi in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
        if pi.to_dict().get("metadata", {}).get("checkout_id") == checkout_id
    ]
    assert [pi.id for pi in ours] == [payment_id]
    final = ours[0]
    assert final.status == "succeeded" and final.amount == total
    succeeded = [
        e
        for e in client.v1.events.list(params={"limit": 100}).auto_paging_iter()
        if e.type == "payment_intent.succeeded"
        and e.to_dict()["data"]["object"].get("id") == payment_id
    ]
    assert len(succeeded) == 1  # localstripe emits one per capture
