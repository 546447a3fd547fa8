"""An in-memory payment provider with Stripe's test-card semantics, for unit and contract tests.

It ignores idempotency keys (as bare localstripe does and Razorpay must be treated), so the
shared list-based reconciliation in `ReconcilingGateway` is what keeps it from double charging,
as it does for Razorpay in production. Faults can be injected per raw
operation and call number: `unknown_after` applies the call and then loses the response (a read
timeout after the provider acted), `unknown_before` and `retryable_before` fail without applying.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field, replace
from enum import StrEnum

from adapters.payments.port import (
    ActionRequired,
    AuthorizationRequest,
    AuthorizationResult,
    Authorized,
    Captured,
    CaptureRequest,
    Declined,
    PaymentNotFoundError,
    PaymentSnapshot,
    PaymentStatus,
    PermanentPaymentError,
    Refunded,
    RefundRecord,
    RefundRequest,
    RetryablePaymentError,
    UnknownOutcomeError,
    Voided,
    VoidRequest,
)
from adapters.payments.reconciling import ReconcilingGateway

_DECLINES = {
    "pm_card_chargeDeclined": "card_declined",
    "pm_card_visa_chargeDeclined": "card_declined",
    "pm_card_chargeCustomerFail": "card_declined",
    "4000000000000341": "card_declined",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "4000000000009995": "insufficient_funds",
}
_THREE_DS = frozenset(
    {"4000002500003155", "pm_card_threeDSecure2Required", "pm_card_authenticationRequired"}
)


class Fault(StrEnum):
    UNKNOWN_AFTER = "unknown_after"
    UNKNOWN_BEFORE = "unknown_before"
    RETRYABLE_BEFORE = "retryable_before"


class Op(StrEnum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    CANCEL = "cancel"
    REFUND = "refund"
    RETRIEVE = "retrieve"
    FIND = "find"


@dataclass
class _Payment:
    snapshot: PaymentSnapshot
    refunds: list[RefundRecord] = field(default_factory=list)


class FakeGateway(ReconcilingGateway):
    def __init__(self, provider_name: str = "fake") -> None:
        self._provider = provider_name
        self._lock = threading.RLock()
        self._payments: dict[str, _Payment] = {}
        self._ids = itertools.count(1)
        self._calls: dict[Op, int] = dict.fromkeys(Op, 0)
        self._faults: dict[tuple[Op, int], Fault] = {}

    @property
    def provider(self) -> str:
        return self._provider

    # --- test controls ---------------------------------------------------------------------

    def inject(self, op: Op, call_number: int, fault: Fault) -> None:
        """Make the `call_number`-th (1-based, counted from now on) raw `op` call fail."""
        with self._lock:
            self._faults[(op, self._calls[op] + call_number)] = fault

    def calls(self, op: Op) -> int:
        return self._calls[op]

    def authenticate(self, payment_id: str, *, success: bool) -> None:
        """The customer completes (or fails) 3-D Secure."""
        with self._lock:
            p = self._get(payment_id)
            if p.snapshot.status != PaymentStatus.REQUIRES_ACTION:
                raise PermanentPaymentError(f"{payment_id} is {p.snapshot.status}")
            if success:
                self._set(p, status=PaymentStatus.AUTHORIZED, amount_capturable=p.snapshot.amount)
            else:
                self._set(
                    p,
                    status=PaymentStatus.REQUIRES_PAYMENT_METHOD,
                    decline_code="payment_intent_authentication_failure",
                )

    def payment_count(self, checkout_id: str) -> int:
        with self._lock:
            return sum(1 for p in self._payments.values() if p.snapshot.checkout_id == checkout_id)

    # --- raw operations --------------------------------------------------------------------

    def _fault(self, op: Op) -> Fault | None:
        self._calls[op] += 1
        fault = self._faults.pop((op, self._calls[op]), None)
        if fault == Fault.RETRYABLE_BEFORE:
            raise RetryablePaymentError(f"fake {op}: injected connect failure")
        if fault == Fault.UNKNOWN_BEFORE:
            raise UnknownOutcomeError(f"fake {op}: injected timeout before the provider")
        return fault

    @staticmethod
    def _lost(op: Op, fault: Fault | None) -> None:
        if fault == Fault.UNKNOWN_AFTER:
            raise UnknownOutcomeError(f"fake {op}: injected timeout after the provider acted")

    def _create_authorization(self, request: AuthorizationRequest) -> AuthorizationResult:
        with self._lock:
            fault = self._fault(Op.AUTHORIZE)
            pm = request.payment_method
            if not (pm.startswith("pm_") or (pm.isdigit() and len(pm) == 16)):
                raise PermanentPaymentError(f"no such payment method: {pm}")
            if request.amount <= 0:
                raise PermanentPaymentError("amount must be positive")
            payment_id = f"fakepi_{next(self._ids)}"
            decline = _DECLINES.get(pm)
            status = (
                PaymentStatus.REQUIRES_PAYMENT_METHOD
                if decline
                else PaymentStatus.REQUIRES_ACTION
                if pm in _THREE_DS
                else PaymentStatus.AUTHORIZED
            )
            snap = PaymentSnapshot(
                payment_id=payment_id,
                checkout_id=request.checkout_id,
                idempotency_key=request.idempotency_key,
                status=status,
                amount=request.amount,
                currency=request.currency.lower(),
                amount_capturable=request.amount if status == PaymentStatus.AUTHORIZED else 0,
                amount_captured=0,
                amount_refunded=0,
                decline_code=decline,
                created=next(self._ids),
            )
            self._payments[payment_id] = _Payment(snap)
            self._lost(Op.AUTHORIZE, fault)
            if decline:
                return Declined(
                    reason="Your card was declined.", decline_code=decline, payment_id=payment_id
                )
            if status == PaymentStatus.REQUIRES_ACTION:
                # Shaped like Stripe's: the secret is "<intent id>_secret_<random>".
                return ActionRequired(
                    payment_id=payment_id,
                    action_url=None,
                    kind="use_stripe_sdk",
                    client_secret=f"{payment_id}_secret_fake",
                )
            return Authorized(payment_id=payment_id, amount=request.amount, currency=snap.currency)

    def _capture(self, request: CaptureRequest) -> Captured:
        with self._lock:
            fault = self._fault(Op.CAPTURE)
            p = self._get(request.payment_id)
            s = p.snapshot
            if s.status != PaymentStatus.AUTHORIZED:
                raise PermanentPaymentError(f"cannot capture a payment that is {s.status}")
            if not 0 < request.amount <= s.amount_capturable:
                raise PermanentPaymentError(
                    f"amount_to_capture {request.amount} exceeds {s.amount_capturable}"
                )
            self._set(
                p,
                status=PaymentStatus.CAPTURED,
                amount_capturable=0,
                amount_captured=request.amount,
            )
            self._lost(Op.CAPTURE, fault)
            return Captured(payment_id=s.payment_id, amount=request.amount, currency=s.currency)

    def _cancel(self, request: VoidRequest) -> Voided:
        with self._lock:
            fault = self._fault(Op.CANCEL)
            p = self._get(request.payment_id)
            if p.snapshot.status in (
                PaymentStatus.CAPTURED,
                PaymentStatus.CANCELED,
                PaymentStatus.PROCESSING,
            ):
                raise PermanentPaymentError(f"cannot cancel a payment that is {p.snapshot.status}")
            self._set(p, status=PaymentStatus.CANCELED, amount_capturable=0)
            self._lost(Op.CANCEL, fault)
            return Voided(payment_id=request.payment_id)

    def _create_refund(self, request: RefundRequest) -> Refunded:
        with self._lock:
            fault = self._fault(Op.REFUND)
            p = self._get(request.payment_id)
            # Real Stripe's own rule (localstripe lacks it): never above what is left.
            if request.amount > p.snapshot.refundable:
                raise PermanentPaymentError("refund amount exceeds the charge's remaining amount")
            record = RefundRecord(
                refund_id=f"fakere_{next(self._ids)}",
                amount=request.amount,
                idempotency_key=request.idempotency_key,
                status="succeeded",
            )
            p.refunds.append(record)
            self._set(p, amount_refunded=p.snapshot.amount_refunded + request.amount)
            self._lost(Op.REFUND, fault)
            return Refunded(
                payment_id=request.payment_id,
                refund_id=record.refund_id,
                amount=request.amount,
                currency=p.snapshot.currency,
            )

    def _pending_action(self, payment_id: str) -> ActionRequired:
        # As Stripe: the intent's secret can be read back (authorize's first answer had it).
        return ActionRequired(
            payment_id=payment_id,
            action_url=None,
            kind="use_stripe_sdk",
            client_secret=f"{payment_id}_secret_fake",
        )

    def retrieve(self, payment_id: str) -> PaymentSnapshot:
        with self._lock:
            self._fault(Op.RETRIEVE)
            p = self._get(payment_id)
            return replace(p.snapshot, refunds=tuple(p.refunds))

    def find_by_checkout(self, checkout_id: str) -> list[PaymentSnapshot]:
        with self._lock:
            self._fault(Op.FIND)
            found = [
                p.snapshot for p in self._payments.values() if p.snapshot.checkout_id == checkout_id
            ]
            return sorted(found, key=lambda s: s.created)

    def _get(self, payment_id: str) -> _Payment:
        p = self._payments.get(payment_id)
        if p is None:
            raise PaymentNotFoundError(f"no such payment: {payment_id}")
        return p

    @staticmethod
    def _set(p: _Payment, **changes: object) -> None:
        p.snapshot = replace(p.snapshot, **changes)  # type: ignore[arg-type]
