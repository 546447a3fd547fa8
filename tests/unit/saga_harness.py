"""Given-events / when-message / then-decision helpers and message builders for saga tests.

    given(*events).when(message, now).then(*events, commands=(...), public=(...))

`then` compares the decision exactly (events, commands and public events, in order)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from events import messages as m
from events.messages import PaymentSignal, Step
from saga.checkout import CheckoutEvent, Decision, PublicEvent, decide, evolve, fold
from saga.ids import idempotency_key, refund_key
from saga.policy import DEFAULT_POLICY, Policy
from saga.state import SagaState
from saga.verdicts import ACTION_TIMED_OUT, REPLY_STEP, TIMED_OUT

CID = "chk-1"
T0 = 1_700_000_000_000
ITEMS = (m.LineItem("sku-1", 2, 1000), m.LineItem("sku-2", 1, 500))
ADDRESS = m.Address("1 Main St", "Springfield", "IL", "62701", "US")
SUBTOTAL = 2500
TAX = 200
SHIPPING = 700
TOTAL = SUBTOTAL + TAX + SHIPPING
PROVIDER = "stripe"
METHOD = "pm_card_visa"
RESERVATION = "res-1"
PAYMENT = "pi-1"
P = DEFAULT_POLICY
MINUTE = 60_000
TTL_END = T0 + P.reservation_ttl_ms


# --- given / when / then ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    history: tuple[CheckoutEvent, ...]
    before: SagaState | None
    decision: Decision

    def before_and_after(self) -> tuple[CheckoutEvent, ...]:
        """The given events plus this decision's: the next test step's history."""
        return (*self.history, *self.decision.events)

    @property
    def state(self) -> SagaState:
        """The state after the caller applies the decision's events."""
        state = self.before
        for event in self.decision.events:
            state = evolve(state, event)
        assert state is not None
        return state

    def then(
        self,
        *events: CheckoutEvent,
        commands: Iterable[m.AdapterCommand] = (),
        public: Iterable[PublicEvent] = (),
    ) -> Outcome:
        _same("events", self.decision.events, events)
        _same("commands", self.decision.commands, tuple(commands))
        _same("public", self.decision.public, tuple(public))
        return self

    def then_nothing(self) -> Outcome:
        assert self.decision == Decision(), self.decision
        return self


def _same(what: str, got: tuple[object, ...], want: tuple[object, ...]) -> None:
    # The harness is not a test module, so pytest does not rewrite these asserts: say it all.
    if got != want:
        lines = [
            f"decision {what} differ",
            "  got:",
            *(f"    {g}" for g in got),
            "  want:",
            *(f"    {w}" for w in want),
        ]
        raise AssertionError("\n".join(lines))


@dataclass(frozen=True)
class Given:
    events: tuple[CheckoutEvent, ...]
    policy: Policy = DEFAULT_POLICY

    @property
    def state(self) -> SagaState | None:
        return fold(self.events)

    def when(self, message: m.Message, now: int | None = None) -> Outcome:
        """`now` defaults to the Tick's own time, else T0 (what the orchestrator passes)."""
        if now is None:
            now = message.now if isinstance(message, m.Tick) else T0
        state = self.state
        decision = decide(state, message, now, self.policy)
        assert decide(state, message, now, self.policy) == decision  # deterministic
        if decision.events:  # what the orchestrator keeps must be the fold of the events
            folded = state
            for event in decision.events:
                folded = evolve(folded, event)
            assert decision.state == folded
        return Outcome(self.events, state, decision)

    def and_(self, *events: CheckoutEvent) -> Given:
        return Given((*self.events, *events), self.policy)


def given(*events: CheckoutEvent, policy: Policy = DEFAULT_POLICY) -> Given:
    return Given(tuple(events), policy)


# --- storefront inputs -----------------------------------------------------------------------


def start(cid: str = CID) -> m.StartCheckout:
    return m.StartCheckout(
        cid, "tenant-1", "cus-1", "a@example.com", "USD", ITEMS, ADDRESS, PROVIDER, METHOD
    )


def cancel(reason: str = "changed my mind") -> m.CancelCheckout:
    return m.CancelCheckout(CID, reason)


def tick(now: int) -> m.Tick:
    return m.Tick(partition=0, now=now)


def refund_request(amount: int, rid: str = "rr-1", currency: str = "USD") -> m.RequestRefund:
    return m.RequestRefund(CID, rid, amount, currency, "damaged")


def signal(
    kind: PaymentSignal, payment_id: str = PAYMENT, event_id: str = "evt-1", amount: int = TOTAL
) -> m.RecordPaymentSignal:
    return m.RecordPaymentSignal(CID, PROVIDER, event_id, kind, payment_id, amount, "USD")


def signal_recorded(
    kind: PaymentSignal, payment_id: str = PAYMENT, event_id: str = "evt-1", amount: int = TOTAL
) -> m.PaymentSignalRecorded:
    return m.PaymentSignalRecorded(CID, event_id, kind, payment_id, amount)


# --- adapter replies -------------------------------------------------------------------------


def reserved(
    attempt: int = 1, rid: str = RESERVATION, expires_at: int = TTL_END
) -> m.InventoryReserved:
    return m.InventoryReserved(CID, attempt, rid, expires_at)


def reserve_rejected(
    attempt: int = 1, *, retryable: bool = False, reason: str = "out_of_stock"
) -> m.InventoryReservationRejected:
    return m.InventoryReservationRejected(CID, attempt, reason, retryable)


def taxed(attempt: int = 1, amount: int = TAX) -> m.TaxCalculated:
    return m.TaxCalculated(CID, attempt, amount, "USD", "rate_table")


def tax_failed(attempt: int = 1, *, retryable: bool = True) -> m.TaxCalculationFailed:
    return m.TaxCalculationFailed(CID, attempt, "taxjar unavailable", retryable)


def quoted(attempt: int = 1, amount: int = SHIPPING) -> m.ShippingQuoted:
    return m.ShippingQuoted(CID, attempt, amount, "USD", "ups", "ground")


def authorized(attempt: int = 1, pid: str = PAYMENT, amount: int = TOTAL) -> m.PaymentAuthorized:
    return m.PaymentAuthorized(CID, attempt, PROVIDER, pid, amount, "USD")


def action_required(attempt: int = 1, pid: str = PAYMENT) -> m.PaymentActionRequired:
    return m.PaymentActionRequired(CID, attempt, PROVIDER, pid, "https://3ds.example/x")


def declined(attempt: int = 1, *, retryable: bool = False) -> m.PaymentDeclined:
    return m.PaymentDeclined(CID, attempt, PROVIDER, "card_declined", "generic_decline", retryable)


def committed(attempt: int = 1, rid: str = RESERVATION) -> m.InventoryCommitted:
    return m.InventoryCommitted(CID, attempt, rid)


def commit_failed(attempt: int = 1, *, retryable: bool = False) -> m.InventoryCommitFailed:
    return m.InventoryCommitFailed(CID, attempt, "reservation expired", retryable)


def captured(attempt: int = 1, pid: str = PAYMENT, amount: int = TOTAL) -> m.PaymentCaptured:
    return m.PaymentCaptured(CID, attempt, PROVIDER, pid, amount, "USD")


def capture_failed(attempt: int = 1, *, retryable: bool = False) -> m.PaymentCaptureFailed:
    return m.PaymentCaptureFailed(CID, attempt, "authorization expired", retryable)


def released(attempt: int = 1, rid: str = RESERVATION) -> m.InventoryReleased:
    return m.InventoryReleased(CID, attempt, rid)


def release_failed(attempt: int = 1, *, retryable: bool = True) -> m.InventoryReleaseFailed:
    return m.InventoryReleaseFailed(CID, attempt, "inventory db down", retryable)


def voided(attempt: int = 1, pid: str = PAYMENT) -> m.PaymentVoided:
    return m.PaymentVoided(CID, attempt, pid)


def void_failed(attempt: int = 1, *, retryable: bool = True) -> m.PaymentVoidFailed:
    return m.PaymentVoidFailed(CID, attempt, "stripe 503", retryable)


def refunded(
    attempt: int = 1, amount: int = TOTAL, refund_id: str = "re-1", pid: str = PAYMENT
) -> m.PaymentRefunded:
    return m.PaymentRefunded(CID, attempt, pid, refund_id, amount, "USD")


def refund_failed(attempt: int = 1, *, retryable: bool = True) -> m.PaymentRefundFailed:
    return m.PaymentRefundFailed(CID, attempt, "stripe 503", retryable)


# --- saga events and commands ----------------------------------------------------------------


def checkout_started(at: int = T0) -> m.CheckoutStarted:
    return m.CheckoutStarted(
        CID,
        "tenant-1",
        "cus-1",
        "a@example.com",
        "USD",
        ITEMS,
        ADDRESS,
        PROVIDER,
        METHOD,
        SUBTOTAL,
        at,
    )


def step_started(step: Step, attempt: int = 1, at: int = T0) -> m.StepStarted:
    return m.StepStarted(CID, step, attempt, at + P.timeout_for(step))


def key(step: Step, attempt: int = 1) -> str:
    return idempotency_key(CID, step, attempt)


def reserve_cmd(attempt: int = 1, at: int = T0) -> m.ReserveInventory:
    return m.ReserveInventory(
        CID, attempt, key(Step.RESERVE_INVENTORY, attempt), ITEMS, at + P.reservation_ttl_ms
    )


def tax_cmd(attempt: int = 1) -> m.CalculateTax:
    return m.CalculateTax(CID, attempt, key(Step.CALCULATE_TAX, attempt), "USD", ITEMS, ADDRESS)


def shipping_cmd(attempt: int = 1) -> m.QuoteShipping:
    return m.QuoteShipping(CID, attempt, key(Step.QUOTE_SHIPPING, attempt), "USD", ITEMS, ADDRESS)


def authorize_cmd(attempt: int = 1) -> m.AuthorizePayment:
    return m.AuthorizePayment(
        CID,
        attempt,
        key(Step.AUTHORIZE_PAYMENT, attempt),
        PROVIDER,
        METHOD,
        "cus-1",
        TOTAL,
        "USD",
        tenant_id="tenant-1",
        country=ADDRESS.country,
    )


def commit_cmd(attempt: int = 1, rid: str = RESERVATION) -> m.CommitInventory:
    return m.CommitInventory(CID, attempt, key(Step.COMMIT_INVENTORY, attempt), rid)


def capture_cmd(attempt: int = 1, pid: str = PAYMENT) -> m.CapturePayment:
    return m.CapturePayment(
        CID, attempt, key(Step.CAPTURE_PAYMENT, attempt), PROVIDER, pid, TOTAL, "USD"
    )


def release_cmd(attempt: int = 1, rid: str = RESERVATION) -> m.ReleaseInventory:
    return m.ReleaseInventory(CID, attempt, key(Step.RELEASE_INVENTORY, attempt), rid)


def void_cmd(attempt: int = 1, pid: str = PAYMENT) -> m.VoidPayment:
    return m.VoidPayment(CID, attempt, key(Step.VOID_PAYMENT, attempt), PROVIDER, pid)


def refund_cmd(
    attempt: int = 1, amount: int = TOTAL, pid: str = PAYMENT, request: str | None = None
) -> m.RefundPayment:
    idem = (
        key(Step.REFUND_PAYMENT, attempt) if request is None else refund_key(CID, request, attempt)
    )
    return m.RefundPayment(CID, attempt, idem, PROVIDER, pid, amount, "USD")


# --- verdicts: what decide records next to the fact it judged --------------------------------


def succeeded(
    step: Step, attempt: int = 1, *, amount: int | None = None, reference: str | None = None
) -> m.StepSucceeded:
    return m.StepSucceeded(CID, step, attempt, amount, reference)


def attempt_failed(
    step: Step,
    reason: str,
    *,
    attempt: int = 1,
    retryable: bool = False,
    reference: str | None = None,
) -> m.StepAttemptFailed:
    return m.StepAttemptFailed(CID, step, attempt, reason, retryable, reference)


def ok(reply: m.AdapterReply) -> tuple[CheckoutEvent, ...]:
    """A successful reply to the outstanding attempt, and the verdict decide records for it."""
    step = REPLY_STEP[type(reply)]
    match reply:
        case m.InventoryReserved():
            return (reply, succeeded(step, reply.attempt, reference=reply.reservation_id))
        case m.TaxCalculated() | m.ShippingQuoted():
            return (reply, succeeded(step, reply.attempt, amount=reply.amount))
        case m.PaymentAuthorized():
            return (reply, succeeded(step, reply.attempt, reference=reply.payment_id))
    return (reply, succeeded(step, reply.attempt))


def failed(reply: m.AdapterReply) -> tuple[CheckoutEvent, ...]:
    """A failure reply to the outstanding attempt (or running compensation), and its verdict."""
    step = REPLY_STEP[type(reply)]
    reason, retryable = reply.reason, reply.retryable  # type: ignore[union-attr]
    return (reply, attempt_failed(step, reason, attempt=reply.attempt, retryable=retryable))


def timed_out(step: Step, attempt: int = 1, *, retryable: bool = True) -> tuple[CheckoutEvent, ...]:
    reason = TIMED_OUT if retryable else ACTION_TIMED_OUT
    return (
        m.StepTimedOut(CID, step, attempt),
        attempt_failed(step, reason, attempt=attempt, retryable=retryable),
    )


# --- canned histories (what decide records on the happy path, written out by hand) -----------


def h_started(at: int = T0) -> tuple[CheckoutEvent, ...]:
    return (
        checkout_started(at),
        step_started(Step.RESERVE_INVENTORY, at=at),
        step_started(Step.CALCULATE_TAX, at=at),
        step_started(Step.QUOTE_SHIPPING, at=at),
    )


def h_priced(at: int = T0) -> tuple[CheckoutEvent, ...]:
    """Stock held, total known, authorization requested."""
    return (
        *h_started(at),
        *ok(reserved()),
        *ok(taxed()),
        *ok(quoted()),
        step_started(Step.AUTHORIZE_PAYMENT, at=at),
    )


def h_authorized(at: int = T0) -> tuple[CheckoutEvent, ...]:
    return (*h_priced(at), *ok(authorized()), step_started(Step.COMMIT_INVENTORY, at=at))


def h_committed(at: int = T0) -> tuple[CheckoutEvent, ...]:
    return (*h_authorized(at), *ok(committed()), step_started(Step.CAPTURE_PAYMENT, at=at))


def h_completed(at: int = T0) -> tuple[CheckoutEvent, ...]:
    from saga.ids import order_id_for

    return (
        *h_committed(at),
        *ok(captured()),
        m.CheckoutCompleted(CID, order_id_for(CID), SUBTOTAL, TAX, SHIPPING, TOTAL, "USD", at),
    )
