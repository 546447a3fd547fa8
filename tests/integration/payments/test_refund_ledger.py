"""The refund ledger on embedded Postgres, over the fake, localstripe and the Razorpay and PayPal
peers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import psycopg
import pytest

from adapters.payments.fake import FakeGateway, Fault, Op
from adapters.payments.paypal_gateway import PayPalGateway
from adapters.payments.port import (
    Authorized,
    PaymentError,
    PaymentGateway,
    Refunded,
    RefundExceedsCapturedError,
    RetryablePaymentError,
    UnknownOutcomeError,
)
from adapters.payments.razorpay_gateway import RazorpayGateway
from adapters.payments.refund_ledger import LedgerGuardedGateway, RefundLedger
from adapters.payments.stripe_gateway import StripeGateway
from infra.settings import Settings
from tests.integration.payments.payment_contract import auth, capture, refund
from tests.integration.payments.paypal_peer import PayPalPeer
from tests.integration.payments.razorpay_peer import RazorpayPeer

pytestmark = pytest.mark.integration


@pytest.fixture
def connect(migrated_database_url: str) -> Callable[[], psycopg.Connection]:
    return lambda: psycopg.connect(migrated_database_url)


@pytest.fixture(params=["fake", "localstripe", "razorpay", "paypal"])
def raw_gateway(request: pytest.FixtureRequest) -> PaymentGateway:
    if request.param == "fake":
        return FakeGateway()
    if request.param == "razorpay":
        peer: RazorpayPeer = request.getfixturevalue("razorpay_peer")
        return RazorpayGateway(peer.key_id, peer.key_secret, api_base=peer.base_url)
    if request.param == "paypal":
        paypal: PayPalPeer = request.getfixturevalue("paypal_peer")
        return PayPalGateway(paypal.client_id, paypal.client_secret, api_base=paypal.base_url)
    settings: Settings = request.getfixturevalue("settings")
    return StripeGateway(settings.stripe_api_key, api_base=settings.stripe_api_base)


def captured_payment(gateway: PaymentGateway, checkout_id: str, amount: int = 1000) -> str:
    result = gateway.authorize(auth(checkout_id, "pm_card_visa", amount))
    assert isinstance(result, Authorized)
    gateway.capture(capture(checkout_id, result.payment_id, amount))
    return result.payment_id


def test_concurrent_refunds_never_jointly_exceed_the_capture(
    raw_gateway: PaymentGateway, connect: Callable[[], psycopg.Connection]
) -> None:
    checkout_id = f"co_{uuid.uuid4().hex[:12]}"
    guarded = LedgerGuardedGateway(raw_gateway, RefundLedger(connect))
    payment_id = captured_payment(raw_gateway, checkout_id)
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    outcomes: dict[int, Refunded | PaymentError] = {}

    def run(i: int, together: bool = True) -> None:
        if together:
            barrier.wait()
        try:
            outcomes[i] = guarded.refund(refund(checkout_id, payment_id, 300, key=f"k{i}"))
        except PaymentError as e:
            outcomes[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(outcomes) == threads_n
    assert all(
        isinstance(o, Refunded | RefundExceedsCapturedError | RetryablePaymentError)
        for o in outcomes.values()
    ), outcomes
    # Let the ones told to retry do so, one by one, until each gets a final answer.
    for i in range(threads_n):
        while isinstance(outcomes[i], RetryablePaymentError):
            run(i, together=False)
    succeeded = [o for o in outcomes.values() if isinstance(o, Refunded)]
    assert len(succeeded) == 3
    assert all(
        isinstance(o, RefundExceedsCapturedError)
        for o in outcomes.values()
        if not isinstance(o, Refunded)
    )
    assert raw_gateway.retrieve(payment_id).amount_refunded == 900


def test_unknown_refund_outcome_keeps_the_reservation_until_reconciled(
    connect: Callable[[], psycopg.Connection],
) -> None:
    fake = FakeGateway()
    now = [1_000.0]
    ledger = RefundLedger(connect, reservation_ttl_s=60, clock=lambda: now[0])
    guarded = LedgerGuardedGateway(fake, ledger)
    checkout_id = f"co_{uuid.uuid4().hex[:12]}"
    payment_id = captured_payment(fake, checkout_id)
    fake.inject(Op.REFUND, 1, Fault.UNKNOWN_BEFORE)  # lost on the way: never reached provider
    with pytest.raises(UnknownOutcomeError):
        guarded.refund(refund(checkout_id, payment_id, 1000, attempt=1))
    assert ledger.pending_amount("fake", payment_id) == 1000
    # The saga's next attempt must wait: attempt 1 may still land.
    with pytest.raises(RetryablePaymentError):
        guarded.refund(refund(checkout_id, payment_id, 1000, attempt=2))
    now[0] += 61  # past the TTL the first reservation is released
    done = guarded.refund(refund(checkout_id, payment_id, 1000, attempt=2))
    assert done.amount == 1000
    assert fake.retrieve(payment_id).amount_refunded == 1000
    assert ledger.pending_amount("fake", payment_id) == 0


def test_retry_after_unknown_refund_that_happened_returns_it(
    connect: Callable[[], psycopg.Connection],
) -> None:
    fake = FakeGateway()
    guarded = LedgerGuardedGateway(fake, RefundLedger(connect))
    checkout_id = f"co_{uuid.uuid4().hex[:12]}"
    payment_id = captured_payment(fake, checkout_id)
    fake.inject(Op.REFUND, 1, Fault.UNKNOWN_AFTER)
    # Reads: ledger check, gateway check, then the reconciliation read, which fails too.
    fake.inject(Op.RETRIEVE, 3, Fault.RETRYABLE_BEFORE)
    with pytest.raises(UnknownOutcomeError):
        guarded.refund(refund(checkout_id, payment_id, 1000, attempt=1))
    retried = guarded.refund(refund(checkout_id, payment_id, 1000, attempt=2))
    again = guarded.refund(refund(checkout_id, payment_id, 1000, attempt=2))
    assert retried == again
    snap = fake.retrieve(payment_id)
    assert snap.amount_refunded == 1000 and len(snap.refunds) == 1
    assert retried.refund_id == snap.refunds[0].refund_id


def test_retry_of_a_refund_an_earlier_attempt_settled_returns_it(
    raw_gateway: PaymentGateway, connect: Callable[[], psycopg.Connection]
) -> None:
    """Found by the chaos run (docs/chaos.md): attempt 1 refunded and settled, but its reply
    reached the saga after the step's deadline, so the saga asked again as attempt 2 (new key).
    That retry must answer with attempt 1's refund, not refund the customer a second time."""
    guarded = LedgerGuardedGateway(raw_gateway, RefundLedger(connect))
    checkout_id = f"co_{uuid.uuid4().hex[:12]}"
    payment_id = captured_payment(raw_gateway, checkout_id)
    first = guarded.refund(refund(checkout_id, payment_id, 300, attempt=1))
    retried = guarded.refund(refund(checkout_id, payment_id, 300, attempt=2))
    assert retried.refund_id == first.refund_id and retried.amount == 300
    assert raw_gateway.retrieve(payment_id).amount_refunded == 300
    # Another refund of the same amount is another operation (another request): it is paid.
    other = guarded.refund(refund(checkout_id, payment_id, 300, key=f"{checkout_id}:other:1"))
    assert other.refund_id != first.refund_id
    assert raw_gateway.retrieve(payment_id).amount_refunded == 600
