"""POST /v1/webhooks/paypal with real pieces: the PayPal peer's signed deliveries (certificate
fetched over HTTP from the peer), dedup in the stack's Redis, and the signal acknowledged by
the stack's Kafka before the route answers 200."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from confluent_kafka import Producer
from fastapi.testclient import TestClient

from adapters.payments.paypal_gateway import PayPalGateway
from adapters.payments.paypal_webhooks import PayPalWebhookHandler, from_headers
from adapters.payments.port import Authorized
from adapters.payments.webhook_ingest import WebhookIngest
from adapters.payments.webhooks import RedisEventStore
from events.messages import PaymentSignal, RecordPaymentSignal
from events.serde import make_serde
from infra.embedded.stack import RunningStack
from infra.processor import producer_config
from tests.integration.kafka_helpers import fresh_topics, read_topic
from tests.integration.payments.payment_contract import auth, capture
from tests.integration.payments.paypal_peer import PayPalPeer, vault_for
from tests.unit.api.fakes import app_for, make_world

pytestmark = pytest.mark.integration
SERDE = make_serde(None)


@pytest.fixture
def route(stack: RunningStack, paypal_peer: PayPalPeer) -> Iterator[tuple[TestClient, str]]:
    bootstrap, redis_url = stack.settings.kafka_bootstrap_servers, stack.settings.redis_url
    assert bootstrap and redis_url
    (topic,) = fresh_topics(bootstrap, "checkout.commands")
    client = redis.Redis.from_url(redis_url)
    handler = PayPalWebhookHandler(
        [paypal_peer.webhook_id],
        RedisEventStore(client, prefix=f"test:{uuid.uuid4().hex}:", ttl_s=60),
        cert_hosts=["127.0.0.1"],  # the peer serves its certificate on loopback
    )
    ingest = WebhookIngest(handler, Producer(producer_config(bootstrap)), SERDE, topic=topic)
    world = make_world(provider_webhooks={"paypal": from_headers(ingest)})
    with TestClient(app_for(world), raise_server_exceptions=False) as http:
        yield http, topic
    client.close()


def test_peer_webhooks_through_the_route_become_acknowledged_signals_once(
    stack: RunningStack, paypal_peer: PayPalPeer, route: tuple[TestClient, str]
) -> None:
    http, topic = route
    gateway = PayPalGateway(
        paypal_peer.client_id, paypal_peer.client_secret, api_base=paypal_peer.base_url
    )
    checkout_id = f"co_{uuid.uuid4().hex[:12]}"
    result = gateway.authorize(auth(checkout_id, vault_for("4242424242424242"), 2500))
    assert isinstance(result, Authorized)
    gateway.capture(capture(checkout_id, result.payment_id, 2500))
    hooks = paypal_peer.webhooks_of(result.payment_id)
    assert [h.event_type for h in hooks] == [
        "PAYMENT.AUTHORIZATION.CREATED",
        "PAYMENT.CAPTURE.COMPLETED",
    ]
    first, last = hooks
    r = http.post("/v1/webhooks/paypal", content=first.body, headers=first.headers)
    assert r.status_code == 200, r.text
    # PayPal's redelivery of that event (signed afresh): acknowledged, not produced again.
    again = paypal_peer.identity.sign(
        first.body, paypal_peer.webhook_id, cert_url=paypal_peer.cert_url
    )
    assert http.post("/v1/webhooks/paypal", content=first.body, headers=again).status_code == 200
    # A forged body under a genuine delivery's headers is refused.
    forged = first.body.replace(b"25.00", b"0.01")
    r = http.post("/v1/webhooks/paypal", content=forged, headers=first.headers)
    assert r.status_code == 400 and r.json()["error"] == "invalid_signature"
    r = http.post("/v1/webhooks/paypal", content=last.body, headers=last.headers)
    assert r.status_code == 200, r.text

    bootstrap = stack.settings.kafka_bootstrap_servers
    assert bootstrap
    seen = read_topic(bootstrap, topic, until=lambda rs: len(rs) >= 2, timeout_s=20)
    signals: list[Any] = [SERDE.decode(r.value, topic).message for r in seen]
    assert all(isinstance(s, RecordPaymentSignal) for s in signals)
    assert [(s.signal, s.payment_id, s.amount, s.checkout_id) for s in signals] == [
        (PaymentSignal.AUTHORIZED, result.payment_id, 2500, checkout_id),
        (PaymentSignal.SUCCEEDED, result.payment_id, 2500, checkout_id),
    ]
    assert [s.provider_event_id for s in signals] == [h.event_id for h in hooks]
    assert {r.key for r in seen} == {checkout_id.encode()}
    # One partition (one key), in order: the redelivery and the forgery, posted between the
    # two, produced nothing, or it would sit between them.
    assert json.loads(first.body)["id"] == signals[0].provider_event_id
