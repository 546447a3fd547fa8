"""PayPal specifics on the local contract peer (real HTTP): OAuth token caching and renewal, what
goes on the wire (request ids, custom_id, decimal amounts), error mapping, the payer-action path
to capture, and the peer's signed webhooks through the handler with the certificate fetched
over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from adapters.payments.paypal_gateway import PayPalGateway, RedisOrderIndex, order_request_id
from adapters.payments.paypal_webhooks import PayPalWebhookHandler, fetch_cert_https
from adapters.payments.port import (
    ActionRequired,
    Authorized,
    Captured,
    Declined,
    PaymentNotFoundError,
    PaymentStatus,
    PermanentPaymentError,
    RetryablePaymentError,
    UnknownOutcomeError,
    VoidRequest,
)
from adapters.payments.webhooks import InMemoryEventStore
from events.messages import PaymentSignal
from infra.embedded.stack import RunningStack
from tests.integration.payments.payment_contract import auth, capture, refund
from tests.integration.payments.paypal_peer import CERT_NAME, PayPalPeer, vault_for

pytestmark = pytest.mark.integration

VISA = vault_for("4242424242424242")
THREE_DS = vault_for("4000002500003155")


@pytest.fixture
def gateway(paypal_peer: PayPalPeer) -> Iterator[PayPalGateway]:
    gw = PayPalGateway(
        paypal_peer.client_id, paypal_peer.client_secret, api_base=paypal_peer.base_url
    )
    yield gw
    gw.close()


@pytest.fixture
def checkout_id() -> str:
    return f"co_{uuid.uuid4().hex[:12]}"


def _authorized(gateway: PayPalGateway, checkout_id: str, amount: int = 1000) -> str:
    result = gateway.authorize(auth(checkout_id, VISA, amount))
    assert isinstance(result, Authorized), result
    return result.payment_id


def test_one_token_serves_many_calls_and_a_revoked_one_is_renewed_once(
    paypal_peer: PayPalPeer, gateway: PayPalGateway, checkout_id: str
) -> None:
    before = paypal_peer.token_requests
    order_id = _authorized(gateway, checkout_id)
    gateway.retrieve(order_id)
    assert paypal_peer.token_requests == before + 1
    paypal_peer.revoke_tokens()
    assert gateway.retrieve(order_id).status == PaymentStatus.AUTHORIZED
    assert paypal_peer.token_requests == before + 2


def test_wrong_client_secret_is_permanent(paypal_peer: PayPalPeer, checkout_id: str) -> None:
    gw = PayPalGateway(paypal_peer.client_id, "wrong", api_base=paypal_peer.base_url)
    with pytest.raises(PermanentPaymentError) as err:
        gw.authorize(auth(checkout_id, VISA))
    assert (err.value.http_status, err.value.code) == (401, "invalid_client")
    assert paypal_peer.orders_of_checkout(checkout_id) == []


def test_the_wire_one_order_per_checkout_keyed_by_request_ids(
    paypal_peer: PayPalPeer, gateway: PayPalGateway, checkout_id: str
) -> None:
    request = auth(checkout_id, VISA, amount=1999)
    order_id = _authorized(gateway, checkout_id, 1999)
    gateway.authorize(auth(checkout_id, VISA, amount=1999, attempt=2))
    order = paypal_peer.orders[order_id]
    unit = order["purchase_units"][0]
    assert order["intent"] == "AUTHORIZE"
    assert unit["amount"] == {"currency_code": "EUR", "value": "19.99"}
    assert (unit["custom_id"], unit["invoice_id"]) == (checkout_id, checkout_id)
    ids = [(p, rid) for m, p, rid in paypal_peer.request_ids if m == "POST" and order_id in p]
    assert ids == [(f"/v2/checkout/orders/{order_id}/authorize", request.idempotency_key)]
    creates = [
        rid for m, p, rid in paypal_peer.request_ids if (m, p) == ("POST", "/v2/checkout/orders")
    ]
    # The first attempt made the order; the second found it in the index (no create at all).
    assert creates.count(order_request_id(checkout_id)) == 1
    assert paypal_peer.orders_of_checkout(checkout_id) == [order_id]


def test_zero_decimal_currency_is_sent_without_decimals(
    paypal_peer: PayPalPeer, gateway: PayPalGateway, checkout_id: str
) -> None:
    result = gateway.authorize(auth(checkout_id, VISA, amount=1500, currency="JPY"))
    assert result == Authorized(result.payment_id, 1500, "jpy")
    unit = paypal_peer.orders[result.payment_id]["purchase_units"][0]
    assert unit["amount"] == {"currency_code": "JPY", "value": "1500"}


def test_a_process_without_its_index_still_finds_the_authorization(
    paypal_peer: PayPalPeer, gateway: PayPalGateway, checkout_id: str
) -> None:
    order_id = _authorized(gateway, checkout_id)
    assert [s.payment_id for s in gateway.find_by_checkout(checkout_id)] == [order_id]
    fresh = PayPalGateway(
        paypal_peer.client_id, paypal_peer.client_secret, api_base=paypal_peer.base_url
    )
    assert fresh.find_by_checkout(checkout_id) == []  # its own record is empty...
    again = fresh.authorize(auth(checkout_id, VISA, attempt=3))
    assert again == Authorized(order_id, 1000, "eur")  # ...PayPal's replay is not
    assert paypal_peer.orders_of_checkout(checkout_id) == [order_id]
    assert len(paypal_peer.orders[order_id]["purchase_units"][0]["payments"]["authorizations"]) == 1


def test_after_paypal_forgot_the_request_id_the_index_still_finds_the_order(
    paypal_peer: PayPalPeer, gateway: PayPalGateway, checkout_id: str
) -> None:
    order_id = _authorized(gateway, checkout_id)
    paypal_peer.forget_request_ids()  # e.g. a retry 6 hours later
    assert gateway.authorize(auth(checkout_id, VISA, attempt=2)) == Authorized(
        order_id, 1000, "eur"
    )
    assert paypal_peer.orders_of_checkout(checkout_id) == [order_id]


def test_refused_transaction_is_a_decline(gateway: PayPalGateway, checkout_id: str) -> None:
    result = gateway.authorize(auth(checkout_id, vault_for("4000000000000002")))
    assert isinstance(result, Declined)
    assert (result.decline_code, result.retryable) == ("transaction_refused", False)


def test_unknown_vault_id_is_permanent(gateway: PayPalGateway, checkout_id: str) -> None:
    with pytest.raises(PermanentPaymentError) as err:
        gateway.authorize(auth(checkout_id, "card:NOPE"))
    assert err.value.code == "PAYMENT_SOURCE_INFO_CANNOT_BE_VERIFIED"


def test_payer_action_link_then_capture_authorizes_the_approved_order(
    paypal_peer: PayPalPeer, gateway: PayPalGateway, checkout_id: str
) -> None:
    result = gateway.authorize(auth(checkout_id, THREE_DS))
    assert isinstance(result, ActionRequired)
    assert result.kind == "payer_action"
    assert result.action_url == f"{paypal_peer.base_url}/checkoutnow?token={result.payment_id}"
    # The payer finishes; the saga (told AUTHORIZED by CHECKOUT.ORDER.APPROVED) captures.
    paypal_peer.handle(
        "POST", f"/_test/orders/{result.payment_id}/payer-action?success=true", {}, b""
    )
    done = gateway.capture(capture(checkout_id, result.payment_id, 1000))
    assert done == Captured(result.payment_id, 1000, "eur")
    payments = paypal_peer.orders[result.payment_id]["purchase_units"][0]["payments"]
    assert [a["status"] for a in payments["authorizations"]] == ["CAPTURED"]
    assert [c["status"] for c in payments["captures"]] == ["COMPLETED"]


def test_void_of_an_approved_order_leaves_paypal_saying_released(
    paypal_peer: PayPalPeer, gateway: PayPalGateway, checkout_id: str
) -> None:
    result = gateway.authorize(auth(checkout_id, THREE_DS))
    assert isinstance(result, ActionRequired)
    paypal_peer.handle(
        "POST", f"/_test/orders/{result.payment_id}/payer-action?success=true", {}, b""
    )
    gateway.void(VoidRequest(checkout_id, 1, f"{checkout_id}:void_payment:1", result.payment_id))
    assert gateway.retrieve(result.payment_id).status == PaymentStatus.CANCELED
    auths = paypal_peer.orders[result.payment_id]["purchase_units"][0]["payments"]["authorizations"]
    assert [a["status"] for a in auths] == ["VOIDED"]


def test_abandoned_payer_action_is_a_decline_on_redelivery(
    paypal_peer: PayPalPeer, gateway: PayPalGateway, checkout_id: str
) -> None:
    request = auth(checkout_id, THREE_DS)
    result = gateway.authorize(request)
    assert isinstance(result, ActionRequired)
    paypal_peer.handle(
        "POST", f"/_test/orders/{result.payment_id}/payer-action?success=false", {}, b""
    )
    again = gateway.authorize(request)
    assert isinstance(again, Declined) and again.decline_code == "authentication_failed"
    assert gateway.retrieve(result.payment_id).status == PaymentStatus.CANCELED


def test_server_error_on_authorize_reconciles_to_one_authorization(
    paypal_peer: PayPalPeer, gateway: PayPalGateway, checkout_id: str
) -> None:
    paypal_peer.fail_next("POST", "/v2/checkout/orders/", 500)
    result = gateway.authorize(auth(checkout_id, VISA))
    assert isinstance(result, Authorized)
    (order_id,) = paypal_peer.orders_of_checkout(checkout_id)
    payments = paypal_peer.orders[order_id]["purchase_units"][0]["payments"]
    assert len(payments["authorizations"]) == 1


def test_rate_limit_and_missing_order_on_reads(
    paypal_peer: PayPalPeer, gateway: PayPalGateway, checkout_id: str
) -> None:
    order_id = _authorized(gateway, checkout_id)
    paypal_peer.fail_next("GET", f"/v2/checkout/orders/{order_id}", 429, "RATE_LIMIT_REACHED")
    with pytest.raises(RetryablePaymentError) as err:
        gateway.retrieve(order_id)
    assert err.value.http_status == 429
    with pytest.raises(PaymentNotFoundError):
        gateway.retrieve("0" * 17)


def test_capture_whose_answer_is_a_server_error_stays_unknown(
    paypal_peer: PayPalPeer, gateway: PayPalGateway, checkout_id: str
) -> None:
    order_id = _authorized(gateway, checkout_id)
    paypal_peer.fail_next("POST", "/v2/payments/authorizations/", 503, "SERVICE_UNAVAILABLE")
    with pytest.raises(UnknownOutcomeError):
        gateway.capture(capture(checkout_id, order_id, 1000))
    assert gateway.capture(capture(checkout_id, order_id, 1000, attempt=2)).amount == 1000


def test_capture_of_a_voided_authorization_is_paypals_422(
    paypal_peer: PayPalPeer, gateway: PayPalGateway, checkout_id: str
) -> None:
    order_id = _authorized(gateway, checkout_id)
    gateway.void(VoidRequest(checkout_id, 1, f"{checkout_id}:void_payment:1", order_id))
    with pytest.raises(PermanentPaymentError, match="is canceled: no capture"):
        gateway.capture(capture(checkout_id, order_id, 1000))
    (auth_id,) = [
        a["id"]
        for a in paypal_peer.authorizations.values()
        if a["supplementary_data"]["related_ids"]["order_id"] == order_id
    ]
    status, body = paypal_peer.handle(
        "POST",
        f"/v2/payments/authorizations/{auth_id}/capture",
        {"Authorization": _bearer(paypal_peer)},
        b"{}",
    )
    assert status == 422 and isinstance(body, dict)
    assert body["details"][0]["issue"] == "AUTHORIZATION_VOIDED"


def _bearer(peer: PayPalPeer) -> str:
    import base64

    basic = base64.b64encode(f"{peer.client_id}:{peer.client_secret}".encode()).decode()
    _, token = peer.handle(
        "POST",
        "/v1/oauth2/token",
        {"Authorization": f"Basic {basic}"},
        b"grant_type=client_credentials",
    )
    assert isinstance(token, dict)
    return f"Bearer {token['access_token']}"


def test_the_peers_webhooks_verify_and_become_signals(
    paypal_peer: PayPalPeer, gateway: PayPalGateway, checkout_id: str
) -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return fetch_cert_https(url)

    handler = PayPalWebhookHandler(
        [paypal_peer.webhook_id],
        InMemoryEventStore(),
        fetch_cert=fetch,
        cert_hosts=["127.0.0.1"],
        cert_common_names=["messageverificationcerts.paypal.com"],
    )
    result = gateway.authorize(auth(checkout_id, THREE_DS))
    assert isinstance(result, ActionRequired)
    order_id = result.payment_id
    paypal_peer.handle("POST", f"/_test/orders/{order_id}/payer-action?success=true", {}, b"")
    gateway.capture(capture(checkout_id, order_id, 1000))
    gateway.refund(refund(checkout_id, order_id, 300, key=f"{checkout_id}:r1"))
    gateway.refund(refund(checkout_id, order_id, 200, key=f"{checkout_id}:r2"))
    now = int(time.time())
    signals = []
    for hook in paypal_peer.webhooks_of(order_id) + _refund_hooks(paypal_peer, checkout_id):
        signal = handler.handle_webhook(hook.body, json.dumps(hook.headers), now)
        assert signal is not None, hook.event_type
        signals.append((hook.event_type, signal.signal, signal.amount, signal.checkout_id))
        assert signal.provider_event_id == hook.event_id
    assert signals == [
        ("CHECKOUT.ORDER.APPROVED", PaymentSignal.AUTHORIZED, 1000, checkout_id),
        ("PAYMENT.AUTHORIZATION.CREATED", PaymentSignal.AUTHORIZED, 1000, checkout_id),
        ("PAYMENT.CAPTURE.COMPLETED", PaymentSignal.SUCCEEDED, 1000, checkout_id),
        ("PAYMENT.CAPTURE.REFUNDED", PaymentSignal.REFUNDED, 300, checkout_id),
        ("PAYMENT.CAPTURE.REFUNDED", PaymentSignal.REFUNDED, 500, checkout_id),  # running total
    ]
    assert fetched == [paypal_peer.cert_url]  # fetched once, then cached
    assert ("GET", f"/v1/notifications/certs/{CERT_NAME}") in paypal_peer.requests


def _refund_hooks(peer: PayPalPeer, checkout_id: str) -> list:  # type: ignore[type-arg]
    return [
        w
        for w in peer.sent_webhooks
        if w.event_type == "PAYMENT.CAPTURE.REFUNDED" and checkout_id.encode() in w.body
    ]


def test_the_redis_index_lets_another_worker_find_the_checkouts_orders(
    stack: RunningStack, paypal_peer: PayPalPeer, checkout_id: str
) -> None:
    assert stack.settings.redis_url
    client = redis.Redis.from_url(stack.settings.redis_url)
    prefix = f"test:{uuid.uuid4().hex}:"

    def worker() -> PayPalGateway:
        return PayPalGateway(
            paypal_peer.client_id,
            paypal_peer.client_secret,
            api_base=paypal_peer.base_url,
            index=RedisOrderIndex(client, ttl_s=60, prefix=prefix),
        )

    order_id = _authorized(worker(), checkout_id)
    other = worker()
    assert [s.payment_id for s in other.find_by_checkout(checkout_id)] == [order_id]
    assert other.find_by_checkout(f"{checkout_id}-none") == []
    assert 0 < client.ttl(prefix + checkout_id) <= 60
    client.close()
