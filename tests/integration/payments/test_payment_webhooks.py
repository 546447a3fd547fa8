"""Webhooks with real pieces: Redis dedup shared by two replicas; localstripe's own events."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
import stripe

from adapters.payments.port import Authorized
from adapters.payments.stripe_gateway import StripeGateway
from adapters.payments.webhooks import RedisEventStore, StripeWebhookHandler
from events.messages import PaymentSignal
from infra.settings import Settings
from tests.integration.payments.payment_contract import auth, capture, refund

pytestmark = pytest.mark.integration
SECRET = "whsec_integration"


def signed(payload: bytes, t: int) -> str:
    sig = stripe.WebhookSignature._compute_signature(f"{t}.{payload.decode()}", SECRET)
    return f"t={t},v1={sig}"


def test_localstripe_events_become_signals_once_across_replicas(settings: Settings) -> None:
    assert settings.redis_url
    client = redis.Redis.from_url(settings.redis_url)
    prefix = f"test:{uuid.uuid4().hex}:"
    gateway = StripeGateway(settings.stripe_api_key, api_base=settings.stripe_api_base)
    replicas = [
        StripeWebhookHandler(
            [SECRET],
            RedisEventStore(client, prefix=prefix, ttl_s=60),
            resolve_checkout=lambda pi: gateway.retrieve(pi).checkout_id,
        )
        for _ in range(2)
    ]
    checkout_id = f"co_{uuid.uuid4().hex[:12]}"
    authorized = gateway.authorize(auth(checkout_id, "pm_card_visa", 1200))
    assert isinstance(authorized, Authorized)
    payment_id = authorized.payment_id
    gateway.capture(capture(checkout_id, payment_id, 1200))
    gateway.refund(refund(checkout_id, payment_id, 200))

    raw = stripe.StripeClient(
        settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base}
    )
    ours = []
    for ev in raw.v1.events.list(params={"limit": 100}).auto_paging_iter():
        data = ev.to_dict()
        if data["data"]["object"].get("id") == payment_id:
            ours.append(data)
    # localstripe emits payment_intent.succeeded on capture; it sends no
    # amount_capturable_updated for manual capture and no charge.refunded (real Stripe does).
    succeeded = [e for e in ours if e["type"] == "payment_intent.succeeded"]
    assert len(succeeded) == 1
    payload = json.dumps(succeeded[0]).encode()
    now = int(succeeded[0]["created"])
    header = signed(payload, now)
    first = replicas[0].handle_webhook(payload, header, now)
    assert first is not None
    assert (first.checkout_id, first.signal, first.payment_id, first.amount) == (
        checkout_id,
        PaymentSignal.SUCCEEDED,
        payment_id,
        1200,
    )
    # The same delivery retried to the other replica: no second signal.
    assert replicas[1].handle_webhook(payload, header, now + 5) is None
    client.close()
