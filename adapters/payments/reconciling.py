"""Reconcile-before-act: the part of every gateway that prevents double charges and refunds.

A provider's idempotency keys are the first line of defence, but not all honour them (Razorpay
has none; a key also expires after 24 h at Stripe, and a saga retry uses a new attempt and so a
new key). So each mutating call first consults the provider's own records:

- authorize: a payment for the checkout that holds or may hold money is reused, never duplicated
  (`_decide_from`). Here the payments come from `find_by_checkout`; a provider that honours
  idempotency keys (Stripe) finds them through our attempt log instead, at a cost that does not
  grow with the account (adapters/payments/keyed.py);
- capture: "already captured" is success;
- void: "already canceled" is success;
- refund: a refund carrying our idempotency key in its metadata is returned, and the provider's
  captured-minus-refunded is checked before refunding.

Subclasses implement the raw provider calls (`_create_authorization`, ...); this class owns the
policy so the fake and every real provider behave identically.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

from adapters.payments.port import (
    LIVE_STATUSES,
    ActionRequired,
    AuthorizationRequest,
    AuthorizationResult,
    Authorized,
    Captured,
    CaptureRequest,
    Declined,
    PaymentError,
    PaymentSnapshot,
    PaymentStatus,
    PermanentPaymentError,
    Refunded,
    RefundExceedsCapturedError,
    RefundRequest,
    RetryablePaymentError,
    UnknownOutcomeError,
    Voided,
    VoidRequest,
)

log = logging.getLogger(__name__)


class ReconcilingGateway(ABC):
    """Implements `PaymentGateway` on top of raw, possibly non-idempotent provider calls."""

    @property
    @abstractmethod
    def provider(self) -> str: ...

    # --- raw provider calls (translate vendor errors; no reconciliation) -------------------

    @abstractmethod
    def _create_authorization(self, request: AuthorizationRequest) -> AuthorizationResult: ...

    @abstractmethod
    def _capture(self, request: CaptureRequest) -> Captured: ...

    @abstractmethod
    def _cancel(self, request: VoidRequest) -> Voided: ...

    @abstractmethod
    def _create_refund(self, request: RefundRequest) -> Refunded: ...

    @abstractmethod
    def retrieve(self, payment_id: str) -> PaymentSnapshot: ...

    @abstractmethod
    def find_by_checkout(self, checkout_id: str) -> list[PaymentSnapshot]: ...

    def _pending_action(self, payment_id: str) -> ActionRequired:
        """The action a reused payment still awaits. Snapshots never carry a client secret, so
        a provider whose storefront library needs one reads it back (Stripe overrides this):
        after an unknown outcome the reused payment's reply is the storefront's only source."""
        return ActionRequired(payment_id=payment_id, action_url=None)

    # --- authorize ------------------------------------------------------------------------

    def authorize(self, request: AuthorizationRequest) -> AuthorizationResult:
        # Always look first: a redelivered command (same attempt) or a saga retry after an
        # unknown outcome (next attempt, new key) must find the payment the first call made.
        existing = self._existing_authorization(request)
        if existing is not None:
            return existing
        try:
            return self._create_authorization(request)
        except UnknownOutcomeError:
            try:
                existing = self._existing_authorization(request)
            except (RetryablePaymentError, UnknownOutcomeError) as e:
                raise UnknownOutcomeError(
                    f"authorize for checkout {request.checkout_id}: outcome unknown and the "
                    "reconciliation lookup failed"
                ) from e
            if existing is not None:
                log.info(
                    "authorize reconciled after unknown outcome",
                    extra={"checkout_id": request.checkout_id},
                )
                return existing
            raise

    def _existing_authorization(self, request: AuthorizationRequest) -> AuthorizationResult | None:
        return self._decide_from(request, self.find_by_checkout(request.checkout_id))

    def _decide_from(
        self, request: AuthorizationRequest, payments: list[PaymentSnapshot]
    ) -> AuthorizationResult | None:
        """What `request` must answer given the checkout's payments at the provider: a live one
        is reused, a decline of this very key replayed; None means a new payment may be made."""
        live = [p for p in payments if p.status in LIVE_STATUSES]
        if len(live) > 1:
            # Should never happen; if it does an operator must void the extras.
            log.error(
                "checkout has several live payments",
                extra={
                    "checkout_id": request.checkout_id,
                    "payment_ids": [p.payment_id for p in live],
                },
            )
        if live:
            return self._result_from_live(request, live[0])
        # A decline recorded for this very key (redelivered command): replay the same answer
        # rather than charging again. Declines from earlier attempts do not block a new one.
        for p in payments:
            if (
                p.idempotency_key == request.idempotency_key
                and p.status == PaymentStatus.REQUIRES_PAYMENT_METHOD
            ):
                return Declined(
                    reason="declined", decline_code=p.decline_code, payment_id=p.payment_id
                )
        return None

    def _result_from_live(
        self, request: AuthorizationRequest, payment: PaymentSnapshot
    ) -> AuthorizationResult:
        if payment.amount != request.amount or payment.currency != request.currency.lower():
            raise PermanentPaymentError(
                f"checkout {request.checkout_id} already has payment {payment.payment_id} for "
                f"{payment.amount} {payment.currency}, not {request.amount} {request.currency}"
            )
        if payment.status == PaymentStatus.REQUIRES_ACTION:
            return self._pending_action(payment.payment_id)
        if payment.status == PaymentStatus.PROCESSING:
            raise RetryablePaymentError(f"payment {payment.payment_id} is still processing")
        return Authorized(
            payment_id=payment.payment_id, amount=payment.amount, currency=payment.currency
        )

    # --- capture / void -------------------------------------------------------------------

    def capture(self, request: CaptureRequest) -> Captured:
        try:
            return self._capture(request)
        except (UnknownOutcomeError, PermanentPaymentError) as e:
            # "Already captured" comes back as an invalid request at Stripe; after a timeout the
            # capture may have happened. Either way the provider's record decides.
            snapshot = self._retrieve_for_reconcile(request.payment_id, e)
            if snapshot.status == PaymentStatus.CAPTURED:
                return Captured(
                    payment_id=snapshot.payment_id,
                    amount=snapshot.amount_captured,
                    currency=snapshot.currency,
                )
            raise

    def void(self, request: VoidRequest) -> Voided:
        try:
            return self._cancel(request)
        except (UnknownOutcomeError, PermanentPaymentError) as e:
            snapshot = self._retrieve_for_reconcile(request.payment_id, e)
            if snapshot.status == PaymentStatus.CANCELED:
                return Voided(payment_id=snapshot.payment_id)
            if snapshot.status == PaymentStatus.CAPTURED:
                raise PermanentPaymentError(
                    f"payment {snapshot.payment_id} is captured: refund it instead"
                ) from e
            raise

    # --- refund ---------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> Refunded:
        snapshot = self.retrieve(request.payment_id)
        done = self._refund_done(snapshot, request)
        if done is not None:
            return done
        if snapshot.currency != request.currency.lower():
            raise PermanentPaymentError(
                f"refund currency {request.currency} != payment currency {snapshot.currency}"
            )
        if snapshot.status != PaymentStatus.CAPTURED:
            raise PermanentPaymentError(
                f"payment {snapshot.payment_id} is {snapshot.status}, nothing to refund"
            )
        if request.amount <= 0:
            raise PermanentPaymentError("refund amount must be positive")
        # The provider's own record, not a cache: some providers (localstripe) accept refunds
        # above the captured amount, real ones reject them; we reject before asking.
        if request.amount > snapshot.refundable:
            raise RefundExceedsCapturedError(request.amount, snapshot.refundable)
        try:
            return self._create_refund(request)
        except UnknownOutcomeError as e:
            snapshot = self._retrieve_for_reconcile(request.payment_id, e)
            done = self._refund_done(snapshot, request)
            if done is not None:
                return done
            raise

    @staticmethod
    def _refund_done(snapshot: PaymentSnapshot, request: RefundRequest) -> Refunded | None:
        record = snapshot.refund_with_key(request.idempotency_key)
        if record is None:
            return None
        return Refunded(
            payment_id=snapshot.payment_id,
            refund_id=record.refund_id,
            amount=record.amount,
            currency=snapshot.currency,
        )

    def _retrieve_for_reconcile(self, payment_id: str, cause: PaymentError) -> PaymentSnapshot:
        try:
            return self.retrieve(payment_id)
        except (RetryablePaymentError, UnknownOutcomeError) as e:
            raise UnknownOutcomeError(
                f"payment {payment_id}: outcome unknown and reconciliation failed"
            ) from e
        except PermanentPaymentError:
            raise cause from None
