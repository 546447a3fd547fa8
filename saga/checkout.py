"""THE checkout policy: `decide(state, message, now) -> Decision`.

decide is pure and total. It turns one input (a storefront command, an adapter reply, a payment
webhook or a Tick) into the events to append to checkout.events, the adapter commands to send and
the public order events to publish. It first records the input (if it is news), then applies the
rules below, top to bottom, until none applies:

    forward:       reserve ∥ tax ∥ shipping -> authorize -> commit inventory -> capture -> done
    failures:      retry with backoff while retryable and attempts remain, else compensate
    time (Tick):   reply deadlines, the 3-D Secure wait, reservation expiry, due retries
    compensation:  one task at a time, most recently completed first; then FAILED / CANCELLED

Time only moves on Tick (reply timestamps are used to stamp deadlines, never to fire them), so
replaying the same inputs always gives the same decisions. Why commit comes before capture:
docs/decisions/0002-saga-step-ordering.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from events import messages as m
from events.messages import AdapterCommand, Step
from saga import verdicts
from saga.commands import compensation_command, forward_command
from saga.evolve import CheckoutEvent, evolve, fold
from saga.ids import idempotency_key, order_id_for
from saga.ledger import compensation_plan, due_compensations
from saga.policy import DEFAULT_POLICY, Policy, backoff_ms
from saga.state import (
    FORWARD_STEPS,
    PARALLEL_STEPS,
    PaymentStatus,
    Phase,
    ReservationStatus,
    SagaState,
    Status,
    is_forward,
)

__all__ = [
    "CheckoutEvent",
    "Decision",
    "PublicEvent",
    "UnknownCheckout",
    "decide",
    "evolve",
    "fold",
    "idempotency_key",
    "next_wakeup",
    "order_id_for",
]

PublicEvent = m.OrderPlaced | m.OrderRefunded

RESERVATION_LAPSED = "reservation expired before capture"
PAYMENT_NOT_AUTHORIZED = "payment is no longer authorized"
DEFAULT_CANCEL_REASON = "cancelled by customer"


class UnknownCheckout(LookupError):
    """An input that must not be dropped names a checkout with no history (see `decide`)."""


@dataclass(frozen=True, slots=True)
class Decision:
    events: tuple[CheckoutEvent, ...] = ()
    commands: tuple[AdapterCommand, ...] = ()
    public: tuple[PublicEvent, ...] = ()
    # The state after applying `events` (None when there are none). decide has folded them
    # already; callers take this instead of evolving every event a second time.
    state: SagaState | None = field(default=None, compare=False)


NOTHING = Decision()


def decide(
    state: SagaState | None, message: m.Message, now: int, policy: Policy = DEFAULT_POLICY
) -> Decision:
    if state is None:
        if isinstance(message, m.StartCheckout):
            return _start(message, now, policy)
        if isinstance(message, m.Tick):
            return NOTHING  # a tick is about a partition's clock, not about any checkout
        # A cancel, refund, reply or payment signal for a checkout this partition does not
        # know. It cannot be remembered here (a stream starts with CheckoutStarted), and the
        # API may already have answered 202 for it: the processor dead-letters it with this
        # reason, for an operator to redrive once the history is found.
        raise UnknownCheckout(_unknown_checkout(message))
    draft = _Draft(state, now, policy, tick=isinstance(message, m.Tick))
    match message:
        case m.CancelCheckout():
            _cancel(draft, message)
        case m.RequestRefund():
            _request_refund(draft, message)
        case m.RetryCheckout():
            _resume(draft, message)
        case m.RecordPaymentSignal():
            _payment_signal(draft, message)
        case m.Tick():
            pass
        case _ if isinstance(message, m.AdapterReply):
            _adapter_reply(draft, message)
        case m.StartCheckout():
            _start_again(draft, message)
        case _:
            return NOTHING  # not an input of the saga (the processor refuses it by topic)
    if not draft.events and not draft.tick:
        return NOTHING  # nothing new: duplicates and superseded failures change nothing
    _advance(draft)
    return draft.decision()


# --- inputs --------------------------------------------------------------------------------


def _unknown_checkout(message: m.Message) -> str:
    """The dead-letter reason for an input naming a checkout with no history: the checkout and
    enough of the message to find it (the envelope's message id is added by the processor)."""
    checkout_id = getattr(message, "checkout_id", "?")
    match message:
        case m.RecordPaymentSignal():
            what = (
                f"payment signal {message.provider_event_id} ({message.signal} of "
                f"{message.payment_id})"
            )
        case m.RequestRefund():
            what = (
                f"RequestRefund {message.refund_request_id} of {message.amount} {message.currency}"
            )
        case m.CancelCheckout():
            what = "CancelCheckout"
        case _ if isinstance(message, m.AdapterReply):
            what = f"{type(message).__name__} (attempt {message.attempt})"
        case _:
            what = type(message).__name__
    return f"{what} for unknown checkout {checkout_id}"


# What a StartCheckout says; a second one for the same checkout_id must say the same.
_START_FIELDS = (
    "tenant_id",
    "customer_id",
    "customer_email",
    "currency",
    "items",
    "shipping_address",
    "payment_provider",
    "payment_method",
)


def _start_again(draft: _Draft, command: m.StartCheckout) -> None:
    """A StartCheckout for a checkout that has started. The same body is a redelivery (nothing
    to do); another body is a different checkout reusing the id, which must not be silently
    folded into this one, nor silently dropped."""
    started = draft.state.order
    differ = [f for f in _START_FIELDS if getattr(command, f) != getattr(started, f)]
    if not differ:
        return
    reason = f"checkout already started with another body (differs in {', '.join(differ)})"
    draft.record(m.CommandRejected(command.checkout_id, "StartCheckout", reason))


def _start(command: m.StartCheckout, now: int, policy: Policy) -> Decision:
    started = m.CheckoutStarted(
        checkout_id=command.checkout_id,
        tenant_id=command.tenant_id,
        customer_id=command.customer_id,
        customer_email=command.customer_email,
        currency=command.currency,
        items=command.items,
        shipping_address=command.shipping_address,
        payment_provider=command.payment_provider,
        payment_method=command.payment_method,
        subtotal=sum(item.quantity * item.unit_amount for item in command.items),
        started_at=now,
    )
    draft = _Draft(evolve(None, started), now, policy, tick=False, events=[started])
    _advance(draft)
    return draft.decision()


def _cancel(draft: _Draft, command: m.CancelCheckout) -> None:
    state = draft.state
    refusal = _why_not_cancellable(state)
    if refusal is None:
        reason = command.reason or DEFAULT_CANCEL_REASON
        draft.record(m.CompensationStarted(state.checkout_id, failed_step=None, reason=reason))
    else:
        draft.record(m.CancellationRejected(state.checkout_id, refusal))


def _resume(draft: _Draft, command: m.RetryCheckout) -> None:
    state = draft.state
    if state.status is not Status.NEEDS_ATTENTION or state.attention is None:
        reason = f"checkout is {state.status.value}, not parked: nothing to retry"
        draft.record(m.CommandRejected(state.checkout_id, "RetryCheckout", reason))
        return
    step = state.attention.step
    assert step is not None  # parking always names the compensation that kept failing
    draft.record(m.CheckoutResumed(state.checkout_id, step, command.requested_by, command.reason))


def _why_not_cancellable(state: SagaState) -> str | None:
    if state.status is Status.COMPENSATING:
        return "checkout is already being rolled back"
    if not is_forward(state):
        return f"checkout is already {state.status}"
    if state.step(Step.CAPTURE_PAYMENT).phase is not Phase.IDLE:
        # Capture is the point of no return: voiding while a capture may land would race it.
        return "payment capture already in progress; refund the order instead"
    return None


def _request_refund(draft: _Draft, command: m.RequestRefund) -> None:
    state = draft.state
    if state.refund_request(command.refund_request_id) is not None:
        return  # a redelivered request: it already has its answer
    refusal = _why_not_refundable(state, command)
    if refusal is None:
        draft.record(
            m.RefundRequested(
                state.checkout_id,
                command.refund_request_id,
                command.amount,
                command.currency,
                command.reason,
            )
        )
    else:
        refundable = state.refundable_amount if state.status is Status.COMPLETED else 0
        draft.record(
            m.RefundRejected(state.checkout_id, command.refund_request_id, refusal, refundable)
        )


def _why_not_refundable(state: SagaState, command: m.RequestRefund) -> str | None:
    if state.status is not Status.COMPLETED:
        return f"checkout is {state.status}, only a completed order can be refunded"
    if command.currency != state.currency:
        return f"refund in {command.currency}, order in {state.currency}"
    if command.amount <= 0:
        return "refund amount must be positive"
    if command.amount > state.refundable_amount:
        return f"amount {command.amount} exceeds refundable {state.refundable_amount}"
    return None


def _payment_signal(draft: _Draft, signal: m.RecordPaymentSignal) -> None:
    if signal.provider_event_id in draft.state.seen_provider_event_ids:
        return  # webhook redelivery
    recorded = m.PaymentSignalRecorded(
        signal.checkout_id,
        signal.provider_event_id,
        signal.signal,
        signal.payment_id,
        signal.amount,
    )
    draft.record(recorded)
    for verdict in verdicts.of_signal(draft.state, recorded):
        draft.record(verdict)


def _adapter_reply(draft: _Draft, reply: m.AdapterReply) -> None:
    before = draft.state
    noted = evolve(before, reply)
    action_deadline = draft.now + draft.policy.payment_action_wait_ms
    judged = verdicts.of_reply(noted, reply, action_deadline)
    if not judged and noted == before:
        return  # duplicate, or a superseded reply that holds nothing new
    draft.record(reply)
    for verdict in judged:
        draft.record(verdict)
    if isinstance(reply, m.PaymentRefunded):
        _publish_refund(draft, before, reply)


def _publish_refund(draft: _Draft, before: SagaState, reply: m.PaymentRefunded) -> None:
    """Money going back to the customer of a placed order is public news, whichever request
    (or late attempt) it came from."""
    state = draft.state
    payment = before.payment(reply.payment_id)
    if state.order_id is None or reply.payment_id != state.payment_id or payment is None:
        return
    if reply.refund_id in payment.refund_ids:
        return
    draft.publish(
        m.OrderRefunded(
            state.order_id,
            state.checkout_id,
            reply.refund_id,
            reply.amount,
            reply.currency,
            refunded_at=draft.now,
        )
    )


# --- rules ---------------------------------------------------------------------------------


def _start_parallel_steps(draft: _Draft) -> bool:
    state = draft.state
    if state.status is not Status.PENDING:
        return False
    if any(state.step(step).phase is not Phase.IDLE for step in PARALLEL_STEPS):
        return False
    for step in PARALLEL_STEPS:
        draft.start(step, attempt=1)
    return True


def _settle_failed_steps(draft: _Draft) -> bool:
    """A failed attempt of a forward step: retry it later, or give up and compensate."""
    state, policy = draft.state, draft.policy
    if not is_forward(state):
        return False
    for step in FORWARD_STEPS:
        current = state.step(step)
        if current.phase is not Phase.ATTEMPT_FAILED:
            continue
        error = current.error or "failed"
        if current.retryable and policy.may_retry(step, state.checkout_id, current.attempt):
            delay = backoff_ms(policy, state.checkout_id, step, current.attempt)
            draft.record(
                m.StepRetryScheduled(
                    state.checkout_id, step, current.attempt + 1, draft.now + delay, error
                )
            )
        else:
            if current.retryable:
                error = f"{error} (gave up after {current.attempt} attempts)"
            draft.record(m.CompensationStarted(state.checkout_id, step, error))
        return True
    return False


def _settle_failed_compensation(draft: _Draft) -> bool:
    """A failed compensation attempt: retry it, or park the saga for an operator (an admin
    refund that cannot be made is rejected instead: the order itself is fine)."""
    state, policy = draft.state, draft.policy
    task = state.compensation
    if task is None or task.phase is not Phase.ATTEMPT_FAILED:
        return False
    tries, error = len(task.attempts), task.error or "failed"
    if task.retryable and policy.may_retry_compensation(task.step, state.checkout_id, tries):
        delay = backoff_ms(policy, state.checkout_id, task.step, tries)
        next_attempt = state.step(task.step).attempt + 1
        draft.record(
            m.StepRetryScheduled(
                state.checkout_id, task.step, next_attempt, draft.now + delay, error
            )
        )
        return True
    verdict = f"failed after {tries} attempts" if task.retryable else "failed permanently"
    reason = f"{task.step} of {task.target} {verdict}: {error}"
    if task.refund_request_id is not None:
        request = state.refund_request(task.refund_request_id)
        give_back = request.amount if request is not None else 0
        draft.record(
            m.RefundRejected(
                state.checkout_id,
                task.refund_request_id,
                reason,
                refundable_amount=state.refundable_amount + give_back,
            )
        )
    else:
        draft.record(m.CheckoutNeedsAttention(state.checkout_id, task.step, reason))
    return True


def _fire_deadlines(draft: _Draft) -> bool:
    state, now = draft.state, draft.now
    if not draft.tick or state.status is Status.NEEDS_ATTENTION:
        return False
    if is_forward(state):
        for step in FORWARD_STEPS:
            current = state.step(step)
            waiting = current.phase in (Phase.IN_FLIGHT, Phase.AWAITING_ACTION)
            if waiting and current.deadline_at is not None and now >= current.deadline_at:
                _time_out(draft, m.StepTimedOut(state.checkout_id, step, current.attempt))
                return True
    task = state.compensation
    if (
        task is not None
        and task.phase is Phase.IN_FLIGHT
        and task.deadline_at is not None
        and now >= task.deadline_at
    ):
        _time_out(draft, m.StepTimedOut(state.checkout_id, task.step, task.attempt))
        return True
    return False


def _time_out(draft: _Draft, timed_out: m.StepTimedOut) -> None:
    judged = verdicts.of_timeout(draft.state, timed_out)
    draft.record(timed_out)
    for verdict in judged:
        draft.record(verdict)


def _fail_lapsed_reservation(draft: _Draft) -> bool:
    """Stock must still be held when it is committed; waiting longer cannot bring it back.
    A commit already in flight is given its answer (or its deadline) first."""
    state = draft.state
    if not draft.tick or not is_forward(state) or not _reservation_lapsed(state, draft.now):
        return False
    if state.step(Step.COMMIT_INVENTORY).phase is Phase.IN_FLIGHT:
        return False
    draft.record(
        m.CompensationStarted(state.checkout_id, Step.RESERVE_INVENTORY, RESERVATION_LAPSED)
    )
    return True


def _issue_due_retries(draft: _Draft) -> bool:
    state, now = draft.state, draft.now
    if not draft.tick or state.status is Status.NEEDS_ATTENTION:
        return False
    if is_forward(state):
        for step in FORWARD_STEPS:
            current = state.step(step)
            due = current.retry_at is not None and now >= current.retry_at
            if current.phase is Phase.RETRY_WAIT and due:
                if step is Step.CAPTURE_PAYMENT and _capture_blocker(state) is not None:
                    return _give_up_capture(draft)
                draft.start(step, current.attempt)
                return True
    task = state.compensation
    due = task is not None and task.retry_at is not None and now >= task.retry_at
    if task is not None and task.phase is Phase.RETRY_WAIT and due:
        draft.start_compensation(task.step, task.attempt)
        return True
    return False


def _authorize_when_priced(draft: _Draft) -> bool:
    """Authorize once stock is held and the total is known (reserve, tax and shipping done)."""
    state = draft.state
    if state.status is not Status.PENDING:
        return False
    if state.step(Step.AUTHORIZE_PAYMENT).phase is not Phase.IDLE:
        return False
    if any(state.step(step).phase is not Phase.SUCCEEDED for step in PARALLEL_STEPS):
        return False
    draft.start(Step.AUTHORIZE_PAYMENT, attempt=1)
    return True


def _commit_when_authorized(draft: _Draft) -> bool:
    state = draft.state
    if state.status is not Status.PENDING:
        return False
    if state.step(Step.AUTHORIZE_PAYMENT).phase is not Phase.SUCCEEDED:
        return False
    if state.step(Step.COMMIT_INVENTORY).phase is not Phase.IDLE:
        return False
    if _reservation_lapsed(state, draft.now):
        draft.record(
            m.CompensationStarted(state.checkout_id, Step.RESERVE_INVENTORY, RESERVATION_LAPSED)
        )
    elif not _payment_usable(state):
        draft.record(
            m.CompensationStarted(state.checkout_id, Step.AUTHORIZE_PAYMENT, PAYMENT_NOT_AUTHORIZED)
        )
    else:
        draft.start(Step.COMMIT_INVENTORY, attempt=1)
    return True


def _capture_when_committed(draft: _Draft) -> bool:
    state = draft.state
    if state.status is not Status.PENDING:
        return False
    if state.step(Step.COMMIT_INVENTORY).phase is not Phase.SUCCEEDED:
        return False
    if state.step(Step.CAPTURE_PAYMENT).phase is not Phase.IDLE:
        return False
    if _capture_blocker(state) is not None:
        return _give_up_capture(draft)
    draft.start(Step.CAPTURE_PAYMENT, attempt=1)
    return True


def _complete_when_captured(draft: _Draft) -> bool:
    state = draft.state
    total = state.total
    if not is_forward(state) or total is None:
        return False
    if state.step(Step.CAPTURE_PAYMENT).phase is not Phase.SUCCEEDED:
        return False
    order, order_id = state.order, order_id_for(state.checkout_id)
    tax, shipping = state.tax or 0, state.shipping or 0
    draft.record(
        m.CheckoutCompleted(
            state.checkout_id,
            order_id,
            state.subtotal,
            tax,
            shipping,
            total,
            state.currency,
            completed_at=draft.now,
        )
    )
    draft.publish(
        m.OrderPlaced(
            order_id,
            state.checkout_id,
            order.tenant_id,
            order.customer_id,
            order.customer_email,
            order.items,
            order.shipping_address,
            state.subtotal,
            tax,
            shipping,
            total,
            state.currency,
            placed_at=draft.now,
        )
    )
    return True


def _start_next_compensation(draft: _Draft) -> bool:
    state = draft.state
    if state.status is Status.NEEDS_ATTENTION or state.compensation is not None:
        return False
    plan = due_compensations(state)
    if not plan:
        return False
    step = plan[0].step
    draft.start_compensation(step, state.step(step).attempt + 1)
    return True


def _finish_compensation(draft: _Draft) -> bool:
    state = draft.state
    if state.status is not Status.COMPENSATING or state.compensation is not None:
        return False
    if compensation_plan(state):
        return False
    failure = state.failure
    if failure is None or failure.step is None:
        reason = failure.reason if failure is not None else DEFAULT_CANCEL_REASON
        draft.record(m.CheckoutCancelled(state.checkout_id, reason))
    else:
        draft.record(m.CheckoutFailed(state.checkout_id, failure.step, failure.reason))
    return True


_RULES = (
    _start_parallel_steps,
    _settle_failed_steps,
    _settle_failed_compensation,
    _fire_deadlines,
    _fail_lapsed_reservation,
    _issue_due_retries,
    _authorize_when_priced,
    _commit_when_authorized,
    _capture_when_committed,
    _complete_when_captured,
    _start_next_compensation,
    _finish_compensation,
)
_MAX_ROUNDS = 64  # far above any real chain; reaching it means two rules undo each other


def _advance(draft: _Draft) -> None:
    for _ in range(_MAX_ROUNDS):
        if not any(rule(draft) for rule in _RULES):
            return
    raise RuntimeError(f"saga rules did not settle for {draft.state.checkout_id}")


# --- guards --------------------------------------------------------------------------------


def _reservation_lapsed(state: SagaState, now: int) -> bool:
    reservation = state.reservation(state.reservation_id)
    return (
        reservation is not None
        and reservation.status is ReservationStatus.HELD
        and now >= reservation.expires_at
    )


def _payment_usable(state: SagaState) -> bool:
    """A live authorization (CAPTURED counts: an earlier capture attempt may have landed, and
    capturing the same payment again is idempotent at the provider)."""
    payment = state.payment(state.payment_id)
    return payment is not None and payment.status in (
        PaymentStatus.AUTHORIZED,
        PaymentStatus.CAPTURED,
    )


def _capture_blocker(state: SagaState) -> str | None:
    """Capture only against committed stock and a live authorization."""
    reservation = state.reservation(state.reservation_id)
    if reservation is None or reservation.status is not ReservationStatus.COMMITTED:
        return "inventory is not committed"
    if not _payment_usable(state):
        return PAYMENT_NOT_AUTHORIZED
    return None


def _give_up_capture(draft: _Draft) -> bool:
    state = draft.state
    reason = _capture_blocker(state) or "capture blocked"
    draft.record(m.CompensationStarted(state.checkout_id, Step.CAPTURE_PAYMENT, reason))
    return True


def next_wakeup(state: SagaState | None) -> int | None:
    """The earliest time a Tick can change this saga, or None if only a message can."""
    if state is None or state.status is Status.NEEDS_ATTENTION:
        return None
    times: list[int] = []
    if is_forward(state):
        for step in FORWARD_STEPS:
            times.extend(
                _due_time(
                    state.step(step).phase, state.step(step).deadline_at, state.step(step).retry_at
                )
            )
        reservation = state.reservation(state.reservation_id)
        # A commit in flight is judged by its own deadline, not by the reservation's.
        committing = state.step(Step.COMMIT_INVENTORY).phase is Phase.IN_FLIGHT
        held = reservation is not None and reservation.status is ReservationStatus.HELD
        if reservation is not None and held and not committing:
            times.append(reservation.expires_at)
    task = state.compensation
    if task is not None:
        times.extend(_due_time(task.phase, task.deadline_at, task.retry_at))
    return min(times) if times else None


def _due_time(phase: Phase, deadline_at: int | None, retry_at: int | None) -> list[int]:
    if phase in (Phase.IN_FLIGHT, Phase.AWAITING_ACTION) and deadline_at is not None:
        return [deadline_at]
    if phase is Phase.RETRY_WAIT and retry_at is not None:
        return [retry_at]
    if phase is Phase.ATTEMPT_FAILED:
        return [0]  # never outlives a decision; if it did, any tick must settle it
    return []


# --- the decision being built -------------------------------------------------------------


@dataclass(slots=True)
class _Draft:
    """Accumulates one decision. Every recorded event is applied at once, so each rule sees
    exactly the state the caller will have after applying the decision's events so far."""

    state: SagaState
    now: int
    policy: Policy
    tick: bool
    events: list[CheckoutEvent] = field(default_factory=list)
    commands: list[AdapterCommand] = field(default_factory=list)
    public: list[PublicEvent] = field(default_factory=list)

    def record(self, event: CheckoutEvent) -> None:
        self.state = evolve(self.state, event)
        self.events.append(event)

    def publish(self, event: PublicEvent) -> None:
        self.public.append(event)

    def start(self, step: Step, attempt: int) -> None:
        deadline = self.now + self.policy.timeout_for(step)
        self.record(m.StepStarted(self.state.checkout_id, step, attempt, deadline))
        self.commands.append(forward_command(self.state, step, attempt, self.now, self.policy))

    def start_compensation(self, step: Step, attempt: int) -> None:
        deadline = self.now + self.policy.timeout_for(step)
        self.record(m.StepStarted(self.state.checkout_id, step, attempt, deadline))
        task = self.state.compensation
        if task is None:  # evolve found no task for this step: a bug, never a silent no-op
            raise RuntimeError(f"no compensation task for {step}")
        self.commands.append(compensation_command(self.state, task, attempt))

    def decision(self) -> Decision:
        return Decision(
            tuple(self.events),
            tuple(self.commands),
            tuple(self.public),
            self.state if self.events else None,
        )
