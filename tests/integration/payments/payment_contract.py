"""One contract suite for every `PaymentGateway`: subclasses provide `gateway` and `harness`.

Where localstripe differs from real Stripe, the assertion follows real Stripe's documented
behaviour and the test says so; our own guards make both pass.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import pytest

from adapters.payments.port import (
    ActionRequired,
    AuthorizationRequest,
    Authorized,
    CaptureRequest,
    Declined,
    PaymentGateway,
    PaymentStatus,
    PermanentPaymentError,
    RefundExceedsCapturedError,
    RefundRequest,
    VoidRequest,
)

VISA = "4242424242424242"
DECLINED_AT_AUTH = "4000000000000341"
THREE_DS = "4000002500003155"


class Harness(Protocol):
    """Test-only access to the provider, beside the gateway under test."""

    def card(self, number: str) -> str:
        """A payment method id for a test card number."""
        ...

    def complete_3ds(self, payment_id: str, *, success: bool) -> None: ...

    def payments_for(self, checkout_id: str) -> list[str]:
        """Payment ids the provider holds for the checkout, read independently of the gateway."""
        ...

    def gateway_losing_first_authorize_response(self) -> PaymentGateway:
        """A gateway on the same provider whose first authorize request reaches the provider
        but whose response is lost (read timeout)."""
        ...

    def responses_lost(self) -> int:
        """How many responses the lossy gateway has dropped so far."""
        ...


def auth(
    checkout_id: str,
    payment_method: str,
    amount: int = 1000,
    attempt: int = 1,
    currency: str = "eur",
) -> AuthorizationRequest:
    return AuthorizationRequest(
        checkout_id=checkout_id,
        attempt=attempt,
        idempotency_key=f"{checkout_id}:authorize_payment:{attempt}",
        payment_method=payment_method,
        customer_id="cust-1",
        amount=amount,
        currency=currency,
    )


def refund(
    checkout_id: str, payment_id: str, amount: int, attempt: int = 1, key: str | None = None
) -> RefundRequest:
    return RefundRequest(
        checkout_id=checkout_id,
        attempt=attempt,
        idempotency_key=key or f"{checkout_id}:refund_payment:{attempt}",
        payment_id=payment_id,
        amount=amount,
        currency="eur",
    )


def capture(checkout_id: str, payment_id: str, amount: int, attempt: int = 1) -> CaptureRequest:
    return CaptureRequest(
        checkout_id=checkout_id,
        attempt=attempt,
        idempotency_key=f"{checkout_id}:capture_payment:{attempt}",
        payment_id=payment_id,
        amount=amount,
        currency="eur",
    )


class PaymentGatewayContract:
    # Stripe captures less than authorized (the rest is released); Razorpay requires the
    # capture amount to equal the authorized amount. The saga always captures the full total.
    partial_capture: bool = True

    @pytest.fixture
    def checkout_id(self) -> str:
        return f"co_{uuid.uuid4().hex[:12]}"

    def _authorized(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str, amount: int = 1000
    ) -> str:
        result = gateway.authorize(auth(checkout_id, harness.card(VISA), amount))
        assert isinstance(result, Authorized), result
        return result.payment_id

    def _captured(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str, amount: int = 1000
    ) -> str:
        payment_id = self._authorized(gateway, harness, checkout_id, amount)
        gateway.capture(capture(checkout_id, payment_id, amount))
        return payment_id

    # --- authorize ------------------------------------------------------------------------

    def test_authorize_with_pm_card_visa(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        result = gateway.authorize(auth(checkout_id, "pm_card_visa", amount=1999))
        assert isinstance(result, Authorized)
        assert (result.amount, result.currency) == (1999, "eur")
        snap = gateway.retrieve(result.payment_id)
        assert snap.status == PaymentStatus.AUTHORIZED
        assert snap.checkout_id == checkout_id
        assert snap.amount_capturable == 1999
        assert harness.payments_for(checkout_id) == [result.payment_id]

    def test_decline_at_authorization(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        result = gateway.authorize(auth(checkout_id, harness.card(DECLINED_AT_AUTH)))
        assert isinstance(result, Declined)
        assert result.decline_code == "card_declined"
        assert result.retryable is False

    def test_redelivered_decline_replays_the_decline(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        request = auth(checkout_id, harness.card(DECLINED_AT_AUTH))
        first = gateway.authorize(request)
        again = gateway.authorize(request)
        assert isinstance(first, Declined) and isinstance(again, Declined)
        assert again.decline_code == "card_declined"
        assert len(harness.payments_for(checkout_id)) == 1

    def test_three_d_secure_then_completed(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        request = auth(checkout_id, harness.card(THREE_DS))
        result = gateway.authorize(request)
        assert isinstance(result, ActionRequired)
        # What the storefront's client library needs: the kind of action, and Stripe.js's
        # client secret or the page to redirect the buyer to (kept out of repr: logs).
        # PayPal's is "payer_action": send the buyer to the order's payer-action link.
        assert result.kind in ("use_stripe_sdk", "redirect_to_url", "payer_action"), result
        assert result.client_secret or result.action_url
        if result.client_secret:
            assert result.client_secret not in repr(result)
        # A redelivered command reuses the payment and still hands the storefront its secret.
        again_action = gateway.authorize(request)
        assert isinstance(again_action, ActionRequired)
        assert again_action.payment_id == result.payment_id
        assert again_action.client_secret == result.client_secret
        assert gateway.retrieve(result.payment_id).status == PaymentStatus.REQUIRES_ACTION
        harness.complete_3ds(result.payment_id, success=True)
        assert gateway.retrieve(result.payment_id).status == PaymentStatus.AUTHORIZED
        # The saga's retry (next attempt) after the customer finished must not charge again.
        again = gateway.authorize(auth(checkout_id, harness.card(THREE_DS), attempt=2))
        assert again == Authorized(result.payment_id, 1000, "eur")
        assert harness.payments_for(checkout_id) == [result.payment_id]

    def test_redelivered_authorize_reuses_the_payment(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        request = auth(checkout_id, harness.card(VISA))
        first = gateway.authorize(request)
        second = gateway.authorize(request)
        third = gateway.authorize(auth(checkout_id, harness.card(VISA), attempt=2))
        assert isinstance(first, Authorized)
        assert first == second == third
        assert harness.payments_for(checkout_id) == [first.payment_id]

    def test_authorize_with_other_amount_while_one_is_live_is_refused(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        self._authorized(gateway, harness, checkout_id, amount=1000)
        with pytest.raises(PermanentPaymentError):
            gateway.authorize(auth(checkout_id, harness.card(VISA), amount=1200, attempt=2))
        assert len(harness.payments_for(checkout_id)) == 1

    def test_lost_authorize_response_ends_with_exactly_one_payment(
        self, harness: Harness, checkout_id: str
    ) -> None:
        flaky = harness.gateway_losing_first_authorize_response()
        result = flaky.authorize(auth(checkout_id, harness.card(VISA)))
        assert harness.responses_lost() == 1
        # The first request reached the provider; the gateway found its payment instead of
        # creating a second one.
        assert isinstance(result, Authorized)
        assert harness.payments_for(checkout_id) == [result.payment_id]
        again = flaky.authorize(auth(checkout_id, harness.card(VISA), attempt=2))
        assert again == result
        assert harness.payments_for(checkout_id) == [result.payment_id]

    # --- void / capture -------------------------------------------------------------------

    def test_void_after_authorize(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        payment_id = self._authorized(gateway, harness, checkout_id)
        void = VoidRequest(checkout_id, 1, f"{checkout_id}:void_payment:1", payment_id)
        assert gateway.void(void).payment_id == payment_id
        assert gateway.retrieve(payment_id).status == PaymentStatus.CANCELED
        # A redelivered void is success, not an error.
        again = VoidRequest(checkout_id, 2, f"{checkout_id}:void_payment:2", payment_id)
        assert gateway.void(again).payment_id == payment_id

    def test_void_of_a_captured_payment_is_permanent(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        payment_id = self._captured(gateway, harness, checkout_id)
        with pytest.raises(PermanentPaymentError):
            gateway.void(VoidRequest(checkout_id, 1, f"{checkout_id}:void:1", payment_id))

    def test_capture_and_recapture(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        payment_id = self._authorized(gateway, harness, checkout_id, amount=2500)
        captured = gateway.capture(capture(checkout_id, payment_id, 2500))
        assert (captured.payment_id, captured.amount, captured.currency) == (
            payment_id,
            2500,
            "eur",
        )
        snap = gateway.retrieve(payment_id)
        assert snap.status == PaymentStatus.CAPTURED
        assert snap.amount_captured == 2500 and snap.refundable == 2500
        # Already captured -> success (Stripe answers 400 to a second capture).
        assert gateway.capture(capture(checkout_id, payment_id, 2500, attempt=2)) == captured

    def test_partial_capture_limits_refunds(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        # localstripe records the released remainder as a refund; real Stripe reports
        # amount_received. Either way only the captured 600 may be refunded.
        payment_id = self._authorized(gateway, harness, checkout_id, amount=1000)
        if not self.partial_capture:
            with pytest.raises(PermanentPaymentError):
                gateway.capture(capture(checkout_id, payment_id, 600))
            snap = gateway.retrieve(payment_id)
            assert snap.status == PaymentStatus.AUTHORIZED and snap.refundable == 0
            return
        gateway.capture(capture(checkout_id, payment_id, 600))
        assert gateway.retrieve(payment_id).refundable == 600
        with pytest.raises(RefundExceedsCapturedError):
            gateway.refund(refund(checkout_id, payment_id, 601))
        assert gateway.refund(refund(checkout_id, payment_id, 600)).amount == 600

    # --- refunds --------------------------------------------------------------------------

    def test_partial_then_full_refund(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        payment_id = self._captured(gateway, harness, checkout_id)
        first = gateway.refund(refund(checkout_id, payment_id, 300, key=f"{checkout_id}:r1"))
        assert (first.amount, first.currency) == (300, "eur")
        assert gateway.retrieve(payment_id).refundable == 700
        rest = gateway.refund(refund(checkout_id, payment_id, 700, key=f"{checkout_id}:r2"))
        assert rest.refund_id != first.refund_id
        snap = gateway.retrieve(payment_id)
        assert snap.amount_refunded == 1000 and snap.refundable == 0
        assert sorted(r.amount for r in snap.refunds) == [300, 700]

    def test_redelivered_refund_refunds_once(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        payment_id = self._captured(gateway, harness, checkout_id)
        request = refund(checkout_id, payment_id, 400)
        assert gateway.refund(request) == gateway.refund(request)
        assert gateway.retrieve(payment_id).amount_refunded == 400

    def test_over_refund_is_rejected(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        # Real Stripe rejects this itself; localstripe accepts it, so our guard (which reads
        # the provider's captured - refunded first) is what rejects it there.
        payment_id = self._captured(gateway, harness, checkout_id)
        with pytest.raises(RefundExceedsCapturedError) as err:
            gateway.refund(refund(checkout_id, payment_id, 1001, key=f"{checkout_id}:big"))
        assert err.value.refundable == 1000
        gateway.refund(refund(checkout_id, payment_id, 600, key=f"{checkout_id}:r1"))
        with pytest.raises(RefundExceedsCapturedError) as err:
            gateway.refund(refund(checkout_id, payment_id, 401, key=f"{checkout_id}:r2"))
        assert err.value.refundable == 400
        assert gateway.retrieve(payment_id).amount_refunded == 600

    def test_refund_of_uncaptured_payment_is_permanent(
        self, gateway: PaymentGateway, harness: Harness, checkout_id: str
    ) -> None:
        payment_id = self._authorized(gateway, harness, checkout_id)
        with pytest.raises(PermanentPaymentError):
            gateway.refund(refund(checkout_id, payment_id, 100))
