"""Razorpay specifics on the local contract peer (real HTTP): error mapping, void without a void
API, lookup by order receipt, and the peer's signed webhooks through the handler."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from adapters.payments.port import (
    ActionRequired,
    Authorized,
    Declined,
    PaymentNotFoundError,
    PaymentStatus,
    PermanentPaymentError,
    RetryablePaymentError,
    UnknownOutcomeError,
    VoidRequest,
)
from adapters.payments.razorpay_gateway import RazorpayGateway, receipt_for
from adapters.payments.razorpay_webhooks import RazorpayWebhookHandler
from adapters.payments.webhooks import InMemoryEventStore
from events.messages import PaymentSignal
from tests.integration.payments.payment_contract import auth, capture, refund
from tests.integration.payments.razorpay_peer import RazorpayPeer, token_for

pytestmark = pytest.mark.integration

VISA = token_for("4242424242424242")


@pytest.fixture
def gateway(razorpay_peer: RazorpayPeer) -> RazorpayGateway:
    return RazorpayGateway(
        razorpay_peer.key_id, razorpay_peer.key_secret, api_base=razorpay_peer.base_url
    )


@pytest.fixture
def checkout_id() -> str:
    return f"co_{uuid.uuid4().hex[:12]}"


def test_amounts_are_minor_units_and_the_order_is_manual_capture(
    gateway: RazorpayGateway, razorpay_peer: RazorpayPeer, checkout_id: str
) -> None:
    result = gateway.authorize(auth(checkout_id, VISA, amount=49_999, currency="INR"))
    assert isinstance(result, Authorized)
    assert result == Authorized(result.payment_id, 49_999, "inr")
    (order,) = [o for o in razorpay_peer.orders.values() if o["receipt"] == checkout_id]
    assert (order["amount"], order["currency"], order["payment_capture"]) == (49_999, "INR", 0)
    assert order["notes"] == {"checkout_id": checkout_id, "attempt": "1"}


def test_generic_payment_failure_is_a_decline(gateway: RazorpayGateway, checkout_id: str) -> None:
    result = gateway.authorize(auth(checkout_id, token_for("4000000000000002")))
    assert isinstance(result, Declined)
    assert (result.decline_code, result.retryable) == ("payment_failed", False)
    assert result.payment_id is not None and result.payment_id.startswith("pay_")


def test_three_d_secure_redirect_is_the_action_url(
    gateway: RazorpayGateway, razorpay_peer: RazorpayPeer, checkout_id: str
) -> None:
    result = gateway.authorize(auth(checkout_id, token_for("4000002500003155")))
    assert isinstance(result, ActionRequired)
    assert result.action_url == (
        f"{razorpay_peer.base_url}/v1/payments/{result.payment_id}/authenticate"
    )


def test_long_checkout_ids_get_a_digest_receipt_and_are_still_found(
    gateway: RazorpayGateway, checkout_id: str
) -> None:
    long_id = checkout_id + "-" + uuid.uuid4().hex  # > 40 characters
    assert len(receipt_for(long_id)) == 40
    first = gateway.authorize(auth(long_id, VISA))
    assert isinstance(first, Authorized)
    assert [s.payment_id for s in gateway.find_by_checkout(long_id)] == [first.payment_id]


def test_void_marks_the_payment_and_blocks_capture(
    gateway: RazorpayGateway, razorpay_peer: RazorpayPeer, checkout_id: str
) -> None:
    # Razorpay has no void: the authorization is released by its auto-refund after the capture
    # timeout. Until then our note keeps anyone from capturing it.
    result = gateway.authorize(auth(checkout_id, VISA))
    assert isinstance(result, Authorized)
    gateway.void(VoidRequest(checkout_id, 1, f"{checkout_id}:void_payment:1", result.payment_id))
    assert razorpay_peer.payments[result.payment_id]["status"] == "authorized"
    assert gateway.retrieve(result.payment_id).status == PaymentStatus.CANCELED
    with pytest.raises(PermanentPaymentError, match="voided"):
        gateway.capture(capture(checkout_id, result.payment_id, 1000))
    # What Razorpay does later: the auto-refund of the uncaptured authorization.
    razorpay_peer.payments[result.payment_id].update(status="refunded", amount_refunded=1000)
    snap = gateway.retrieve(result.payment_id)
    assert (snap.status, snap.refundable) == (PaymentStatus.CANCELED, 0)
    # A new attempt of the checkout may authorize again: the voided one holds nothing.
    again = gateway.authorize(auth(checkout_id, VISA, attempt=2))
    assert isinstance(again, Authorized) and again.payment_id != result.payment_id


def test_server_error_on_create_is_reconciled_not_repeated(
    gateway: RazorpayGateway, razorpay_peer: RazorpayPeer, checkout_id: str
) -> None:
    # The peer answers 500 without creating: unknown outcome, the lookup finds nothing, so the
    # caller is told "unknown" (the saga retries and the next attempt looks again).
    razorpay_peer.fail_next("POST", "/v1/payments/create/json", 500, "SERVER_ERROR")
    with pytest.raises(UnknownOutcomeError):
        gateway.authorize(auth(checkout_id, VISA))
    assert razorpay_peer.payments_of_checkout(checkout_id) == []
    result = gateway.authorize(auth(checkout_id, VISA, attempt=2))
    assert isinstance(result, Authorized)
    assert razorpay_peer.payments_of_checkout(checkout_id) == [result.payment_id]
    # The order made by attempt 1 was reused, not duplicated.
    orders = [o for o in razorpay_peer.orders.values() if o["receipt"] == checkout_id]
    assert len(orders) == 1


def test_read_errors_are_retryable_and_unknown_ids_not_found(
    gateway: RazorpayGateway, razorpay_peer: RazorpayPeer
) -> None:
    razorpay_peer.fail_next("GET", "/v1/payments/", 502, "GATEWAY_ERROR")
    with pytest.raises(RetryablePaymentError):
        gateway.retrieve("pay_doesnotexist00")
    with pytest.raises(PaymentNotFoundError):
        gateway.retrieve("pay_doesnotexist00")


def test_wrong_credentials_are_permanent_and_never_echoed(
    razorpay_peer: RazorpayPeer, checkout_id: str
) -> None:
    wrong = f"wrong_{uuid.uuid4().hex}"
    gateway = RazorpayGateway(razorpay_peer.key_id, wrong, api_base=razorpay_peer.base_url)
    with pytest.raises(PermanentPaymentError) as err:
        gateway.authorize(auth(checkout_id, VISA))
    assert "401" in str(err.value) and wrong not in str(err.value) and wrong not in repr(gateway)


def test_connection_refused_is_retryable(checkout_id: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    gateway = RazorpayGateway("k", "s", api_base=f"http://127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(RetryablePaymentError):
        gateway.authorize(auth(checkout_id, VISA))


def test_peer_webhooks_verify_and_become_signals(
    gateway: RazorpayGateway, razorpay_peer: RazorpayPeer, checkout_id: str
) -> None:
    handler = RazorpayWebhookHandler([razorpay_peer.webhook_secret], InMemoryEventStore())
    result = gateway.authorize(auth(checkout_id, token_for("4000002500003155")))
    assert isinstance(result, ActionRequired)
    razorpay_peer.handle("POST", f"/_test/payments/{result.payment_id}/authenticate?success=true",
                         {}, b"")  # fmt: skip
    gateway.capture(capture(checkout_id, result.payment_id, 1000))
    gateway.refund(refund(checkout_id, result.payment_id, 400))
    sent = razorpay_peer.webhooks_for(result.payment_id)
    assert [w.event for w in sent] == ["payment.authorized", "payment.captured", "refund.processed"]
    now = int(time.time())
    signals = [handler.handle_webhook(w.body, w.signature, now, event_id=w.event_id) for w in sent]
    assert [(s.signal, s.amount) for s in signals if s] == [
        (PaymentSignal.AUTHORIZED, 1000),
        (PaymentSignal.SUCCEEDED, 1000),
        (PaymentSignal.REFUNDED, 400),
    ]
    assert all(s and s.checkout_id == checkout_id for s in signals)
    # Razorpay's retry of a delivery we already took is dropped.
    w = sent[0]
    assert handler.handle_webhook(w.body, w.signature, now, event_id=w.event_id) is None


def test_failed_3ds_sends_payment_failed(
    gateway: RazorpayGateway, razorpay_peer: RazorpayPeer, checkout_id: str
) -> None:
    handler = RazorpayWebhookHandler([razorpay_peer.webhook_secret], InMemoryEventStore())
    result = gateway.authorize(auth(checkout_id, token_for("4000002500003155")))
    assert isinstance(result, ActionRequired)
    razorpay_peer.handle("POST", f"/_test/payments/{result.payment_id}/authenticate?success=false",
                         {}, b"")  # fmt: skip
    (w,) = razorpay_peer.webhooks_for(result.payment_id)
    signal = handler.handle_webhook(w.body, w.signature, int(time.time()))
    assert signal is not None
    assert (signal.signal, signal.reason) == (PaymentSignal.FAILED, "authentication_failed")
    assert gateway.retrieve(result.payment_id).status == PaymentStatus.REQUIRES_PAYMENT_METHOD
