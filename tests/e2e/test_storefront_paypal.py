"""PayPal end to end, through our API only: a checkout paid with a vaulted PayPal payment source.

A card that needs no payer completes on its own. One that needs the payer (3-D Secure):
POST /v1/checkouts -> GET shows AWAITING_PAYMENT_ACTION with `next_action` (provider "paypal",
kind "payer_action", the order's payer-action link) -> the payer finishes at PayPal (the peer's
test route) -> PayPal's signed CHECKOUT.ORDER.APPROVED to POST /v1/webhooks/paypal -> the saga
counts the approval as the authorization and captures; the gateway authorizes the approved order
in the same capture call -> GET shows COMPLETED, and PayPal's own record shows one order, one
authorization and one capture of the total.

Real parts: Kafka, PostgreSQL, Redis, the PayPal contract peer (HTTP), the real payment adapter,
orchestrator, projector and API with PayPal's offline webhook verification (certificate fetched
from the peer); inventory/tax/shipping are scripted.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import httpx
import pytest

from infra.embedded.stack import RunningStack
from tests.e2e.storefront import TERMINAL, Storefront, own_database, poll, storefront_engine
from tests.integration.payments.paypal_peer import PayPalPeer, running_peer, vault_for
from tests.unit.api.fakes import checkout_body

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def peer() -> Iterator[PayPalPeer]:
    with running_peer() as p:
        yield p


@pytest.fixture(scope="module")
def storefront(stack: RunningStack, peer: PayPalPeer) -> Iterator[Storefront]:
    settings = dataclasses.replace(
        stack.settings,
        paypal_client_id=peer.client_id,
        paypal_client_secret=peer.client_secret,
        paypal_api_base=peer.base_url,
        paypal_webhook_id=peer.webhook_id,
        paypal_cert_hosts=("127.0.0.1",),  # the peer serves its certificate on loopback
    )
    with own_database(stack, "sfpaypal") as database, storefront_engine(settings, database) as sf:
        yield sf


def start(sf: Storefront, card: str) -> str:
    body = checkout_body(
        customer={"id": f"cus-{uuid.uuid4().hex[:8]}", "email": "buyer@example.com"},
        payment={"provider": "paypal", "payment_method": vault_for(card)},
    )
    return sf.start(body)


def assert_captured_once(peer: PayPalPeer, checkout_id: str, total: int) -> None:
    (order_id,) = peer.orders_of_checkout(checkout_id)
    payments = peer.orders[order_id]["purchase_units"][0]["payments"]
    assert [a["status"] for a in payments["authorizations"]] == ["CAPTURED"]
    (capture,) = payments["captures"]
    assert capture["status"] == "COMPLETED"
    value = capture["amount"]["value"]
    assert int(value.replace(".", "")) == total and value[-3] == "."  # EUR, two decimals


def test_a_vaulted_card_completes_without_the_payer(
    storefront: Storefront, peer: PayPalPeer
) -> None:
    checkout_id = start(storefront, "4242424242424242")
    done = poll(lambda: storefront.status(checkout_id), lambda s: s["status"] in TERMINAL)
    assert done["status"] == "COMPLETED", done
    assert_captured_once(peer, checkout_id, done["amounts"]["total"])


def test_payer_action_then_approval_webhook_completes(
    storefront: Storefront, peer: PayPalPeer
) -> None:
    sf = storefront
    checkout_id = start(sf, "4000002500003155")
    waiting = poll(
        lambda: sf.status(checkout_id),
        lambda s: s["status"] == "AWAITING_PAYMENT_ACTION" or s["status"] in TERMINAL,
    )
    assert waiting["status"] == "AWAITING_PAYMENT_ACTION", waiting
    action = waiting["next_action"]
    assert (action["provider"], action["kind"]) == ("paypal", "payer_action"), action
    (order_id,) = peer.orders_of_checkout(checkout_id)
    assert action["redirect_url"] == f"{peer.base_url}/checkoutnow?token={order_id}"

    # The payer finishes at PayPal; PayPal tells us with its signed webhook.
    finished = httpx.post(
        f"{peer.base_url}/_test/orders/{order_id}/payer-action",
        params={"success": "true"},
        timeout=10,
    )
    assert finished.status_code == 200, finished.text
    (approved,) = [
        w for w in peer.webhooks_of(order_id) if w.event_type == "CHECKOUT.ORDER.APPROVED"
    ]
    hook = sf.client.post("/v1/webhooks/paypal", content=approved.body, headers=approved.headers)
    assert hook.status_code == 200, hook.text

    done = poll(lambda: sf.status(checkout_id), lambda s: s["status"] in TERMINAL)
    assert done["status"] == "COMPLETED", done
    assert done["next_action"] is None
    assert_captured_once(peer, checkout_id, done["amounts"]["total"])
