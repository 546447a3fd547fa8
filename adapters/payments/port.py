"""The payment port: what the saga's payment adapter needs from any card processor.

Everything here is ours, not a vendor's: requests, results, snapshots and errors. Money is always
integer minor units plus an ISO-4217 currency (lower-case, as Stripe reports it). Implementations
translate vendor exceptions into the three error families below at their edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

# --- requests ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    checkout_id: str
    attempt: int
    idempotency_key: str
    payment_method: str
    customer_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    checkout_id: str
    attempt: int
    idempotency_key: str
    payment_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class VoidRequest:
    checkout_id: str
    attempt: int
    idempotency_key: str
    payment_id: str


@dataclass(frozen=True, slots=True)
class RefundRequest:
    checkout_id: str
    attempt: int
    idempotency_key: str
    payment_id: str
    amount: int
    currency: str


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authorized:
    payment_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class ActionRequired:
    """3-D Secure or similar: what the storefront's client library needs to finish it.

    `kind` is the provider's name for the action (Stripe's `next_action.type`:
    "use_stripe_sdk", "redirect_to_url"; PayPal's "payer_action", whose `action_url` is the
    order's payer-action link); `client_secret` is Stripe's PaymentIntent secret,
    which Stripe.js `handleNextAction` takes. It lets its holder confirm this one payment with
    the publishable key, so it travels only to the owning tenant's GET (ADR 0003) and is kept
    out of repr (never in a log line)."""

    payment_id: str
    action_url: str | None
    kind: str | None = None
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Declined:
    reason: str
    decline_code: str | None
    payment_id: str | None
    # A decline is a business outcome; only a few codes (processing_error, try_again_later) make
    # a new attempt with the same card worthwhile.
    retryable: bool = False


AuthorizationResult = Authorized | ActionRequired | Declined


@dataclass(frozen=True, slots=True)
class Captured:
    payment_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class Voided:
    payment_id: str


@dataclass(frozen=True, slots=True)
class Refunded:
    payment_id: str
    refund_id: str
    amount: int
    currency: str


class PaymentStatus(StrEnum):
    """A provider's payment lifecycle, normalised."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"  # new, or declined / auth failed
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    AUTHORIZED = "authorized"  # funds held, capturable
    CAPTURED = "captured"
    CANCELED = "canceled"


# Statuses in which a payment holds (or may be about to hold) the customer's money: a second
# authorization for the same checkout while one of these exists would be a double charge.
LIVE_STATUSES = frozenset(
    {
        PaymentStatus.REQUIRES_ACTION,
        PaymentStatus.PROCESSING,
        PaymentStatus.AUTHORIZED,
        PaymentStatus.CAPTURED,
    }
)


@dataclass(frozen=True, slots=True)
class RefundRecord:
    refund_id: str
    amount: int
    idempotency_key: str | None  # ours, from the refund's metadata; None if made elsewhere
    status: str


@dataclass(frozen=True, slots=True)
class PaymentSnapshot:
    """The provider's own record of one payment, as read just now."""

    payment_id: str
    checkout_id: str | None
    idempotency_key: str | None
    status: PaymentStatus
    amount: int
    currency: str
    amount_capturable: int
    amount_captured: int
    amount_refunded: int
    decline_code: str | None = None
    refunds: tuple[RefundRecord, ...] = ()
    created: int = 0

    @property
    def refundable(self) -> int:
        return max(0, self.amount_captured - self.amount_refunded)

    def refund_with_key(self, idempotency_key: str) -> RefundRecord | None:
        return next((r for r in self.refunds if r.idempotency_key == idempotency_key), None)


# --- errors --------------------------------------------------------------------------------


class PaymentError(Exception):
    """Base of every error a gateway raises. Messages never contain secrets.

    `http_status` and `code` are the provider's answer when there was one (a 500 and
    `api_error`, a 429 and `rate_limit`...), so a failed call can be logged with why it failed
    without logging the vendor's exception, its request or its headers."""

    def __init__(
        self, message: str = "", *, http_status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code


class RetryablePaymentError(PaymentError):
    """The request did not take effect (connect failure, 429, lock timeout): retry freely."""


class UnknownOutcomeError(PaymentError):
    """The request may have reached the provider (read timeout, reset, 5xx): reconcile before
    trying again (re-send under the same idempotency key where the provider honours keys,
    else `find_by_checkout`/`retrieve`)."""


class AttemptLogUnavailable(PaymentError):
    """Our own record of payment attempts (PostgreSQL) could not be read or written: a
    retryable failure of the call. Not an unknown outcome at the provider (the gateway must not
    re-send on it), and the next attempt reconciles from whatever the log holds (an attempt
    left pending is re-sent under its key). It says nothing about the provider's health, so it
    never counts towards the provider's breaker (a PostgreSQL restart opened the Stripe
    breaker: docs/chaos.md finding 8)."""


class ReplayedFailureError(UnknownOutcomeError):
    """The provider answered a re-sent request with the failure it saved for its idempotency key
    (Stripe: a 5xx with `Idempotent-Replayed: true`). The outcome is still unknown, but the
    request that produced it has finished: nothing sent under this key is still executing."""


class PermanentPaymentError(PaymentError):
    """Retrying the same request cannot help (invalid request, wrong state, auth failure)."""


class PaymentNotFoundError(PermanentPaymentError):
    pass


class RefundExceedsCapturedError(PermanentPaymentError):
    def __init__(self, requested: int, refundable: int) -> None:
        super().__init__(f"refund of {requested} exceeds the refundable amount {refundable}")
        self.requested = requested
        self.refundable = refundable


# --- the port ------------------------------------------------------------------------------


@runtime_checkable
class PaymentGateway(Protocol):
    """A card processor. Every mutating call is idempotent per `idempotency_key` even when the
    provider is not (implementations reconcile against the provider's records)."""

    @property
    def provider(self) -> str: ...

    def authorize(self, request: AuthorizationRequest) -> AuthorizationResult: ...

    def capture(self, request: CaptureRequest) -> Captured: ...

    def void(self, request: VoidRequest) -> Voided: ...

    def refund(self, request: RefundRequest) -> Refunded: ...

    def retrieve(self, payment_id: str) -> PaymentSnapshot: ...

    def find_by_checkout(self, checkout_id: str) -> list[PaymentSnapshot]:
        """Every payment the provider holds for `checkout_id`, oldest first."""
        ...
