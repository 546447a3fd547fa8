"""The checkout saga's state: what `fold(evolve, checkout.events)` knows about one checkout.

Two views live side by side and are kept apart on purpose:

* **control flow** (`steps`, `compensation`, `status`): which attempt of which step the saga is
  waiting for. Only a reply to the outstanding attempt moves it.
* **the resource ledger** (`reservations`, `payments`): facts about stock and money that the
  outside world reported, whatever attempt they belong to. A late or superseded success still
  holds stock or money, so the ledger records it and the saga compensates it.

Everything is immutable; collections are tuples or read-only mappings replaced on change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from events.messages import CheckoutStarted, PaymentSignalRecorded, Step


class Status(StrEnum):
    PENDING = "PENDING"
    AWAITING_PAYMENT_ACTION = "AWAITING_PAYMENT_ACTION"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"


FORWARD_STATUSES = frozenset({Status.PENDING, Status.AWAITING_PAYMENT_ACTION})
"""The saga is still trying to place the order."""

TERMINAL_STATUSES = frozenset(
    {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.NEEDS_ATTENTION}
)
"""No further forward progress on its own. FAILED/CANCELLED/COMPLETED sagas still compensate
resources reported late; NEEDS_ATTENTION is parked and waits for an operator."""

FORWARD_STEPS: tuple[Step, ...] = (
    Step.RESERVE_INVENTORY,
    Step.CALCULATE_TAX,
    Step.QUOTE_SHIPPING,
    Step.AUTHORIZE_PAYMENT,
    Step.COMMIT_INVENTORY,
    Step.CAPTURE_PAYMENT,
)
PARALLEL_STEPS: tuple[Step, ...] = FORWARD_STEPS[:3]
COMPENSATION_STEPS: tuple[Step, ...] = (
    Step.RELEASE_INVENTORY,
    Step.VOID_PAYMENT,
    Step.REFUND_PAYMENT,
)


class Phase(StrEnum):
    """Where one step (or the running compensation task) is."""

    IDLE = "idle"  # never started
    IN_FLIGHT = "in_flight"  # command sent; reply expected before deadline_at
    AWAITING_ACTION = "awaiting_action"  # authorize only: customer must finish 3-D Secure
    ATTEMPT_FAILED = "attempt_failed"  # an attempt failed; the same decision retries or gives up
    RETRY_WAIT = "retry_wait"  # attempt `attempt` is issued at retry_at
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # given up on: permanent failure or attempts exhausted
    ABANDONED = "abandoned"  # the saga stopped waiting for it (compensating or cancelled)


OPEN_PHASES = frozenset(
    {Phase.IN_FLIGHT, Phase.AWAITING_ACTION, Phase.ATTEMPT_FAILED, Phase.RETRY_WAIT}
)


@dataclass(frozen=True, slots=True)
class StepState:
    phase: Phase = Phase.IDLE
    attempt: int = 0  # the outstanding (or, in RETRY_WAIT, the next) attempt; 0 = never
    deadline_at: int | None = None
    retry_at: int | None = None
    error: str | None = None
    retryable: bool = False
    completed_seq: int | None = None  # position in the completion order, for compensation


class ReservationStatus(StrEnum):
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: str
    attempt: int  # the ReserveInventory attempt that produced it
    status: ReservationStatus
    expires_at: int
    seq: int  # completion order of the last step that touched it (reserve, then commit)


class PaymentStatus(StrEnum):
    """Ordered by how far a payment got; a ledger entry only moves forward."""

    ACTION_REQUIRED = "action_required"
    FAILED = "failed"  # 3-D Secure failed: nothing held, but the intent is still open
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"


@dataclass(frozen=True, slots=True)
class Payment:
    payment_id: str
    attempt: int | None  # AuthorizePayment attempt; None while only a webhook has named it
    status: PaymentStatus
    seq: int
    captured: int = 0
    refunded: int = 0
    refund_ids: tuple[str, ...] = ()
    provider: str | None = None  # the provider account a reply named; None: webhook only

    @property
    def net_captured(self) -> int:
        return self.captured - self.refunded


@dataclass(frozen=True, slots=True)
class CompensationTask:
    """The one compensation command the saga runs at a time (release, void or refund).

    One at a time keeps compensations in strict reverse completion order and makes every
    compensation StepStarted unambiguous: it always belongs to the running task."""

    step: Step
    target: str  # reservation_id or payment_id
    amount: int = 0  # refunds only
    refund_request_id: str | None = None  # admin refunds only
    phase: Phase = Phase.IN_FLIGHT
    attempt: int = 0
    attempts: tuple[int, ...] = ()  # every attempt number used, to match late replies
    deadline_at: int | None = None
    retry_at: int | None = None
    error: str | None = None
    retryable: bool = False


class RefundStatus(StrEnum):
    PENDING = "pending"
    REFUNDED = "refunded"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class RefundRequest:
    refund_request_id: str
    amount: int
    status: RefundStatus
    attempts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Failure:
    step: Step | None  # None when the customer cancelled
    reason: str


def _no_steps() -> Mapping[Step, StepState]:
    return MappingProxyType({s: StepState() for s in (*FORWARD_STEPS, *COMPENSATION_STEPS)})


@dataclass(frozen=True, slots=True)
class SagaState:
    checkout_id: str
    status: Status
    order: CheckoutStarted  # customer, items, address, currency, payment method, subtotal
    steps: Mapping[Step, StepState] = field(default_factory=_no_steps)
    tax: int | None = None
    shipping: int | None = None
    reservation_id: str | None = None  # the reservation this checkout goes forward with
    payment_id: str | None = None  # the payment this checkout goes forward with
    reservations: tuple[Reservation, ...] = ()
    payments: tuple[Payment, ...] = ()
    compensation: CompensationTask | None = None
    failure: Failure | None = None
    attention: Failure | None = None
    order_id: str | None = None
    completed_at: int | None = None
    refund_requests: tuple[RefundRequest, ...] = ()
    seen_provider_event_ids: frozenset[str] = frozenset()
    # Every webhook signal accepted, in arrival order. Webhooks race the adapter's replies (the
    # customer can finish 3-D Secure before PaymentActionRequired is consumed), so a signal is
    # remembered and applied when the saga reaches the payment it names.
    payment_signals: tuple[PaymentSignalRecorded, ...] = ()
    seq: int = 0  # counter behind completed_seq / Reservation.seq / Payment.seq

    # --- derived views ---------------------------------------------------------------

    def step(self, step: Step) -> StepState:
        return self.steps[step]

    @property
    def currency(self) -> str:
        return self.order.currency

    @property
    def subtotal(self) -> int:
        return self.order.subtotal

    @property
    def total(self) -> int | None:
        """subtotal + tax + shipping, once both quotes are in."""
        if self.tax is None or self.shipping is None:
            return None
        return self.subtotal + self.tax + self.shipping

    @property
    def captured_amount(self) -> int:
        return sum(p.captured for p in self.payments)

    @property
    def refunded_amount(self) -> int:
        return sum(p.refunded for p in self.payments)

    @property
    def pending_refund_amount(self) -> int:
        return sum(r.amount for r in self.refund_requests if r.status is RefundStatus.PENDING)

    @property
    def refundable_amount(self) -> int:
        return max(0, self.captured_amount - self.refunded_amount - self.pending_refund_amount)

    def reservation(self, reservation_id: str | None) -> Reservation | None:
        return next((r for r in self.reservations if r.reservation_id == reservation_id), None)

    def payment(self, payment_id: str | None) -> Payment | None:
        return next((p for p in self.payments if p.payment_id == payment_id), None)

    def signals_for(self, payment_id: str) -> tuple[PaymentSignalRecorded, ...]:
        return tuple(s for s in self.payment_signals if s.payment_id == payment_id)

    def refund_request(self, refund_request_id: str) -> RefundRequest | None:
        return next(
            (r for r in self.refund_requests if r.refund_request_id == refund_request_id), None
        )


def is_terminal(state: SagaState | None) -> bool:
    """True once the saga makes no further forward progress by itself (see TERMINAL_STATUSES)."""
    return state is not None and state.status in TERMINAL_STATUSES


def is_forward(state: SagaState) -> bool:
    return state.status in FORWARD_STATUSES
