"""Razorpay's authentication flow finished the way a storefront does it, through our API only:
a tenant whose payments go to Razorpay (a stored, encrypted provider account) starts a checkout
with a card that needs 3-D Secure -> GET shows AWAITING_PAYMENT_ACTION with Razorpay's redirect
-> the buyer authenticates at Razorpay (the contract peer's authentication page) -> Razorpay's
signed `payment.authorized` webhook to POST /v1/webhooks/razorpay -> COMPLETED, captured once at
Razorpay for the checkout's total. Redelivering the webhook changes nothing; a forged one is
refused with a reason."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet

from adapters.payments.registry import (
    PostgresProviderStore,
    ProviderAccount,
    RoutingRule,
    Secret,
    register_provider,
)
from infra.embedded.stack import RunningStack
from tests.e2e.storefront import TERMINAL, Storefront, own_database, poll, storefront_engine
from tests.integration.payments.razorpay_peer import RazorpayPeer, running_peer, token_for
from tests.unit.api.fakes import checkout_body

pytestmark = pytest.mark.integration
THREE_DS_CARD = "4000002500003155"
WEBHOOK_SECRET = "rzp_whsec_" + uuid.uuid4().hex


@dataclasses.dataclass
class RazorpayShop:
    sf: Storefront
    peer: RazorpayPeer


@pytest.fixture(scope="module")
def shop(stack: RunningStack) -> Iterator[RazorpayShop]:
    providers_key = Fernet.generate_key().decode()
    settings = dataclasses.replace(
        stack.settings,
        payment_providers_key=providers_key,
        razorpay_webhook_secrets=(WEBHOOK_SECRET,),
    )
    with running_peer(webhook_secret=WEBHOOK_SECRET) as peer, own_database(stack, "sfrzp") as db:

        def register(tenant: str) -> None:
            store = PostgresProviderStore.from_key(lambda: psycopg.connect(db), providers_key)
            account = ProviderAccount(
                f"{tenant}/razorpay",
                tenant,
                "razorpay",
                peer.key_id,
                Secret(peer.key_secret),
                {"api_base": peer.base_url},
            )
            register_provider(store, account, [RoutingRule(tenant, f"{tenant}/razorpay")])

        with storefront_engine(settings, db, before_start=register) as sf:
            yield RazorpayShop(sf, peer)


def deliver(sf: Storefront, body: bytes, signature: str, event_id: str) -> httpx.Response:
    return sf.client.post(
        "/v1/webhooks/razorpay",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Razorpay-Signature": signature,
            "X-Razorpay-Event-Id": event_id,
        },
    )


def test_storefront_finishes_razorpay_authentication_through_our_api(shop: RazorpayShop) -> None:
    sf, peer = shop.sf, shop.peer
    body = checkout_body(
        customer={"id": f"cus-{uuid.uuid4().hex[:8]}", "email": "buyer@example.com"},
        currency="INR",
        payment={"provider": "razorpay", "payment_method": token_for(THREE_DS_CARD)},
    )
    checkout_id = sf.start(body)

    # 1. The storefront polls until the buyer has something to do: Razorpay's redirect.
    waiting = poll(
        lambda: sf.status(checkout_id),
        lambda s: s["status"] == "AWAITING_PAYMENT_ACTION" or s["status"] in TERMINAL,
    )
    assert waiting["status"] == "AWAITING_PAYMENT_ACTION", waiting
    action = waiting["next_action"]
    assert action["provider"] == f"{sf.tenant}/razorpay", action
    assert action["kind"] == "redirect_to_url" and action["client_secret"] is None, action
    [payment_id] = peer.payments_of_checkout(checkout_id)
    assert action["redirect_url"] == f"{peer.base_url}/v1/payments/{payment_id}/authenticate"
    assert sf.get(checkout_id, key=sf.other_key).status_code == 404

    # 2. The buyer authenticates on Razorpay's page; Razorpay signs `payment.authorized`.
    done_3ds = httpx.post(
        f"{peer.base_url}/_test/payments/{payment_id}/authenticate?success=true", timeout=10
    )
    assert done_3ds.status_code == 200, done_3ds.text
    [hook] = [w for w in peer.webhooks_for(payment_id) if w.event == "payment.authorized"]

    # 3. A forgery is refused with a reason and produces nothing; the real one is acknowledged.
    forged = deliver(sf, hook.body.replace(b"authorized", b"captured"), hook.signature, "evt_x")
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_signature"
    assert deliver(sf, hook.body, hook.signature, hook.event_id).status_code == 200

    # 4. COMPLETED; Razorpay holds exactly one payment for the checkout, captured in full.
    done = poll(lambda: sf.status(checkout_id), lambda s: s["status"] in TERMINAL)
    assert done["status"] == "COMPLETED", done
    assert done["next_action"] is None
    payment = peer.payments[payment_id]
    assert payment["captured"] is True and payment["status"] == "captured"
    assert payment["amount"] == done["amounts"]["total"]
    assert peer.payments_of_checkout(checkout_id) == [payment_id]

    # 5. Razorpay's redelivery (same event id and body) is acknowledged and changes nothing.
    assert deliver(sf, hook.body, hook.signature, hook.event_id).status_code == 200
    events = json.dumps(sf.status(checkout_id))
    assert sf.status(checkout_id)["status"] == "COMPLETED", events
