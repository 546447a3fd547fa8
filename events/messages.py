"""Every message the checkout saga sends or receives, as frozen dataclasses.

Naming: commands are imperative (`ReserveInventory`), events past tense (`InventoryReserved`).
The Avro record of each class carries the same name (schemas/avro/<Name>.avsc).
Money is always integer minor units plus an ISO-4217 `currency`; time is epoch milliseconds.

Every adapter command carries `attempt` and a deterministic `idempotency_key` built from
(checkout_id, step, attempt); every adapter reply echoes `attempt`, so the saga can ignore a
reply to an attempt it has already given up on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Step(StrEnum):
    """The saga's steps: forward steps first, then compensations."""

    RESERVE_INVENTORY = "reserve_inventory"
    CALCULATE_TAX = "calculate_tax"
    QUOTE_SHIPPING = "quote_shipping"
    AUTHORIZE_PAYMENT = "authorize_payment"
    CAPTURE_PAYMENT = "capture_payment"
    COMMIT_INVENTORY = "commit_inventory"
    RELEASE_INVENTORY = "release_inventory"
    VOID_PAYMENT = "void_payment"
    REFUND_PAYMENT = "refund_payment"


class PaymentSignal(StrEnum):
    """What a payment provider's webhook told us about a payment, normalised."""

    AUTHORIZED = "authorized"  # e.g. 3-D Secure completed, intent now requires_capture
    FAILED = "failed"  # e.g. payment_intent.payment_failed
    CANCELED = "canceled"
    SUCCEEDED = "succeeded"  # captured
    REFUNDED = "refunded"


# --- value objects -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineItem:
    sku: str
    quantity: int
    unit_amount: int  # minor units, per unit


@dataclass(frozen=True, slots=True)
class Address:
    line1: str
    city: str
    state: str
    postal_code: str
    country: str  # ISO-3166 alpha-2


# --- storefront / operator commands (checkout.commands) ------------------------------------


@dataclass(frozen=True, slots=True)
class StartCheckout:
    checkout_id: str
    tenant_id: str
    customer_id: str
    customer_email: str
    currency: str
    items: tuple[LineItem, ...]
    shipping_address: Address
    payment_provider: str
    payment_method: str


@dataclass(frozen=True, slots=True)
class CancelCheckout:
    checkout_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RetryCheckout:
    """An operator resumes a parked (NEEDS_ATTENTION) saga once the cause is fixed: it tries its
    open compensations again with a fresh attempt budget. `requested_by` and `reason` are kept
    in the saga's history (CheckoutResumed) as the audit of that decision."""

    checkout_id: str
    requested_by: str
    reason: str


@dataclass(frozen=True, slots=True)
class RecordPaymentSignal:
    """A provider webhook turned into a saga input; deduplicated by `provider_event_id`."""

    checkout_id: str
    provider: str
    provider_event_id: str
    signal: PaymentSignal
    payment_id: str
    amount: int
    currency: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RequestRefund:
    """Admin refund of a completed order; `refund_request_id` makes retries of the request safe."""

    checkout_id: str
    refund_request_id: str
    amount: int
    currency: str
    reason: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Per-partition clock: the only way time advances for deadlines. Not keyed by a checkout."""

    partition: int
    now: int


# --- adapter commands (adapter.<name>.requests) --------------------------------------------


@dataclass(frozen=True, slots=True)
class ReserveInventory:
    checkout_id: str
    attempt: int
    idempotency_key: str
    items: tuple[LineItem, ...]
    expires_at: int


@dataclass(frozen=True, slots=True)
class CommitInventory:
    checkout_id: str
    attempt: int
    idempotency_key: str
    reservation_id: str


@dataclass(frozen=True, slots=True)
class ReleaseInventory:
    checkout_id: str
    attempt: int
    idempotency_key: str
    reservation_id: str


@dataclass(frozen=True, slots=True)
class CalculateTax:
    checkout_id: str
    attempt: int
    idempotency_key: str
    currency: str
    items: tuple[LineItem, ...]
    shipping_address: Address


@dataclass(frozen=True, slots=True)
class QuoteShipping:
    checkout_id: str
    attempt: int
    idempotency_key: str
    currency: str
    items: tuple[LineItem, ...]
    shipping_address: Address


@dataclass(frozen=True, slots=True)
class AuthorizePayment:
    checkout_id: str
    attempt: int
    idempotency_key: str
    provider: str
    payment_method: str
    customer_id: str
    amount: int
    currency: str
    # Routing inputs for the payment registry (per-tenant and per-country rules). Appended with
    # defaults so the Avro change is compatible: commands written before carry "" (rules of
    # tenant "*" and rules without countries still apply to them).
    tenant_id: str = ""
    country: str = ""


@dataclass(frozen=True, slots=True)
class CapturePayment:
    checkout_id: str
    attempt: int
    idempotency_key: str
    provider: str
    payment_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class VoidPayment:
    checkout_id: str
    attempt: int
    idempotency_key: str
    provider: str
    payment_id: str


@dataclass(frozen=True, slots=True)
class RefundPayment:
    checkout_id: str
    attempt: int
    idempotency_key: str
    provider: str
    payment_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class SendNotification:
    checkout_id: str
    attempt: int
    idempotency_key: str
    kind: str  # "order_confirmation" | "checkout_failed" | ...
    email: str
    order_id: str | None


# --- adapter replies (checkout.replies) ----------------------------------------------------
# Failures say whether retrying the same step can help; the saga owns the retry policy.


@dataclass(frozen=True, slots=True)
class InventoryReserved:
    checkout_id: str
    attempt: int
    reservation_id: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class InventoryReservationRejected:
    checkout_id: str
    attempt: int
    reason: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class InventoryCommitted:
    checkout_id: str
    attempt: int
    reservation_id: str


@dataclass(frozen=True, slots=True)
class InventoryCommitFailed:
    checkout_id: str
    attempt: int
    reason: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class InventoryReleased:
    checkout_id: str
    attempt: int
    reservation_id: str


@dataclass(frozen=True, slots=True)
class InventoryReleaseFailed:
    checkout_id: str
    attempt: int
    reason: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class TaxCalculated:
    checkout_id: str
    attempt: int
    amount: int
    currency: str
    source: str  # which calculator produced it: "taxjar" | "rate_table" | ...


@dataclass(frozen=True, slots=True)
class TaxCalculationFailed:
    checkout_id: str
    attempt: int
    reason: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class ShippingQuoted:
    checkout_id: str
    attempt: int
    amount: int
    currency: str
    carrier: str
    service_level: str


@dataclass(frozen=True, slots=True)
class ShippingQuoteFailed:
    checkout_id: str
    attempt: int
    reason: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class PaymentAuthorized:
    checkout_id: str
    attempt: int
    provider: str
    payment_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class PaymentActionRequired:
    checkout_id: str
    attempt: int
    provider: str
    payment_id: str
    action_url: str | None
    # What the storefront's client library needs to finish the action (Stripe.js
    # handleNextAction): the provider's kind of action ("use_stripe_sdk", "redirect_to_url")
    # and, for Stripe, the PaymentIntent's client secret. Appended with defaults (a compatible
    # Avro change, ADR 0003). The secret is kept out of repr so a logged message never shows it.
    kind: str | None = None
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class PaymentDeclined:
    checkout_id: str
    attempt: int
    provider: str
    reason: str
    decline_code: str | None
    retryable: bool


@dataclass(frozen=True, slots=True)
class PaymentCaptured:
    checkout_id: str
    attempt: int
    provider: str
    payment_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class PaymentCaptureFailed:
    checkout_id: str
    attempt: int
    reason: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class PaymentVoided:
    checkout_id: str
    attempt: int
    payment_id: str


@dataclass(frozen=True, slots=True)
class PaymentVoidFailed:
    checkout_id: str
    attempt: int
    reason: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class PaymentRefunded:
    checkout_id: str
    attempt: int
    payment_id: str
    refund_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class PaymentRefundFailed:
    checkout_id: str
    attempt: int
    reason: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class NotificationSent:
    checkout_id: str
    attempt: int
    kind: str


# --- saga events (checkout.events): the source of truth ------------------------------------
# Accepted replies above are appended here as they are; these record the saga's own decisions.


@dataclass(frozen=True, slots=True)
class CheckoutStarted:
    checkout_id: str
    tenant_id: str
    customer_id: str
    customer_email: str
    currency: str
    items: tuple[LineItem, ...]
    shipping_address: Address
    payment_provider: str
    payment_method: str
    subtotal: int
    started_at: int


@dataclass(frozen=True, slots=True)
class StepStarted:
    """A command for `step` was sent; the saga expects a reply before `deadline_at`."""

    checkout_id: str
    step: Step
    attempt: int
    deadline_at: int


@dataclass(frozen=True, slots=True)
class StepRetryScheduled:
    checkout_id: str
    step: Step
    attempt: int  # the attempt that will run at `retry_at`
    retry_at: int
    reason: str


@dataclass(frozen=True, slots=True)
class StepTimedOut:
    checkout_id: str
    step: Step
    attempt: int


@dataclass(frozen=True, slots=True)
class StepSucceeded:
    """decide accepted the answer to a forward step's outstanding attempt (a reply, or the
    provider's signal after 3-D Secure). `amount` is the tax or shipping quoted, `reference` the
    reservation or payment the saga now uses. Recorded so a rebuild never re-judges the reply."""

    checkout_id: str
    step: Step
    attempt: int
    amount: int | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class StepAttemptFailed:
    """decide judged an attempt of a step failed: the adapter said so, the answer did not match
    what was asked, the customer's payment action failed, or the deadline passed. `retryable`
    is the verdict decide acts on; the retry or compensation that follows is its own event."""

    checkout_id: str
    step: Step
    attempt: int
    reason: str
    retryable: bool
    reference: str | None = None  # the payment the attempt created, when one exists


@dataclass(frozen=True, slots=True)
class PaymentSignalRecorded:
    """A webhook signal the saga accepted (kept so a duplicate is recognised after a rebuild)."""

    checkout_id: str
    provider_event_id: str
    signal: PaymentSignal
    payment_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class PaymentActionAwaited:
    """The customer must finish a payment action (3-D Secure) for `payment_id` before
    `deadline_at`; recorded because the wait comes from the saga's policy, not the reply."""

    checkout_id: str
    attempt: int
    payment_id: str
    deadline_at: int


@dataclass(frozen=True, slots=True)
class CompensationStarted:
    checkout_id: str
    failed_step: Step | None  # None when the customer cancelled
    reason: str


@dataclass(frozen=True, slots=True)
class CheckoutCompleted:
    checkout_id: str
    order_id: str
    subtotal: int
    tax: int
    shipping: int
    total: int
    currency: str
    completed_at: int


@dataclass(frozen=True, slots=True)
class CheckoutFailed:
    checkout_id: str
    step: Step
    reason: str


@dataclass(frozen=True, slots=True)
class CheckoutCancelled:
    checkout_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class CancellationRejected:
    checkout_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RefundRequested:
    checkout_id: str
    refund_request_id: str
    amount: int
    currency: str
    reason: str


@dataclass(frozen=True, slots=True)
class RefundRejected:
    checkout_id: str
    refund_request_id: str
    reason: str
    refundable_amount: int


@dataclass(frozen=True, slots=True)
class CommandRejected:
    """A known checkout refused a command that has no rejection of its own (CancelCheckout has
    CancellationRejected, RequestRefund has RefundRejected): e.g. a second StartCheckout with
    this checkout_id and another body. Recorded so the refusal has a trace an operator can
    read; the envelope's causation_id is the refused command's message id."""

    checkout_id: str
    command: str  # the refused command's type, e.g. "StartCheckout"
    reason: str


@dataclass(frozen=True, slots=True)
class CheckoutNeedsAttention:
    """Parked for an operator: a compensation kept failing. Never a silently dead saga."""

    checkout_id: str
    step: Step
    reason: str


@dataclass(frozen=True, slots=True)
class CheckoutResumed:
    """A parked saga taken up again on an operator's RetryCheckout: it leaves NEEDS_ATTENTION
    and works through what it still has to undo, `step` first (the one that kept failing)."""

    checkout_id: str
    step: Step
    requested_by: str
    reason: str


# --- public order events (orders.events, keyed by order_id) --------------------------------


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    order_id: str
    checkout_id: str
    tenant_id: str
    customer_id: str
    customer_email: str
    items: tuple[LineItem, ...]
    shipping_address: Address
    subtotal: int
    tax: int
    shipping: int
    total: int
    currency: str
    placed_at: int


@dataclass(frozen=True, slots=True)
class OrderRefunded:
    order_id: str
    checkout_id: str
    refund_id: str
    amount: int
    currency: str
    refunded_at: int


@dataclass(frozen=True, slots=True)
class ShipmentCreated:
    """The label for an order was bought (once per order; redeliveries repeat this event with
    the same message_id). `tracking_code`/`label_url` are None for a carrier without labels
    (the built-in rate-table carrier: manual fulfilment). `amount` is what the label cost us,
    not what the customer paid for shipping (that is OrderPlaced.shipping)."""

    order_id: str
    checkout_id: str
    carrier: str
    service_level: str
    tracking_code: str | None
    label_url: str | None
    amount: int
    currency: str
    created_at: int


# --- operations (ops.alerts, keyed by the alert's name) ---------------------------------------


@dataclass(frozen=True, slots=True)
class OpsAlert:
    """A threshold of the integration plans was crossed in one breach window of event time
    (analytics, ADR 0018). Sent once per (alert, dimension, window_start); the envelope's
    message_id is derived from those three, so a resend after a crash is the same alert.
    Rates are decimal text ("0.1250"): exact, and no float in a public contract."""

    alert: str  # e.g. "payment_failure_rate_high"; the Kafka key
    dimension: str  # "all", or the step / kind of fallback the rule was judged for
    window_start: int
    window_end: int
    value: str
    threshold: str
    samples: int  # the answers the rate was computed over


StorefrontCommand = (
    StartCheckout | CancelCheckout | RecordPaymentSignal | RequestRefund | RetryCheckout | Tick
)

AdapterCommand = (
    ReserveInventory
    | CommitInventory
    | ReleaseInventory
    | CalculateTax
    | QuoteShipping
    | AuthorizePayment
    | CapturePayment
    | VoidPayment
    | RefundPayment
    | SendNotification
)

AdapterReply = (
    InventoryReserved
    | InventoryReservationRejected
    | InventoryCommitted
    | InventoryCommitFailed
    | InventoryReleased
    | InventoryReleaseFailed
    | TaxCalculated
    | TaxCalculationFailed
    | ShippingQuoted
    | ShippingQuoteFailed
    | PaymentAuthorized
    | PaymentActionRequired
    | PaymentDeclined
    | PaymentCaptured
    | PaymentCaptureFailed
    | PaymentVoided
    | PaymentVoidFailed
    | PaymentRefunded
    | PaymentRefundFailed
    | NotificationSent
)

SagaEvent = (
    CheckoutStarted
    | StepStarted
    | StepRetryScheduled
    | StepTimedOut
    | StepSucceeded
    | StepAttemptFailed
    | PaymentSignalRecorded
    | PaymentActionAwaited
    | CompensationStarted
    | CheckoutCompleted
    | CheckoutFailed
    | CheckoutCancelled
    | CancellationRejected
    | RefundRequested
    | RefundRejected
    | CommandRejected
    | CheckoutNeedsAttention
    | CheckoutResumed
)

PublicEvent = OrderPlaced | OrderRefunded | ShipmentCreated

OpsEvent = OpsAlert

Message = StorefrontCommand | AdapterCommand | AdapterReply | SagaEvent | PublicEvent | OpsEvent
