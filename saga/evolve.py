"""evolve(state, event) -> state: how each recorded event changes a checkout's state.

No decisions are made here (no policy, no clock): evolve only replays what `decide` already
decided, so folding `checkout.events` always rebuilds the state the orchestrator had.
An adapter reply in the log is applied in two layers:
  1. the resource ledger records the fact, whatever attempt it answers;
  2. control flow moves only if it answers the outstanding attempt of a forward step, or the
     running compensation task.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from types import MappingProxyType

from events import messages as m
from events.messages import AdapterReply, PaymentSignal, SagaEvent, Step
from saga import ledger
from saga.state import (
    COMPENSATION_STEPS,
    FORWARD_STATUSES,
    OPEN_PHASES,
    CompensationTask,
    Failure,
    PaymentStatus,
    Phase,
    RefundRequest,
    RefundStatus,
    ReservationStatus,
    SagaState,
    Status,
)

CheckoutEvent = SagaEvent | AdapterReply
"""Everything that can be appended to checkout.events."""

REPLY_STEP: dict[type, Step] = {
    m.InventoryReserved: Step.RESERVE_INVENTORY,
    m.InventoryReservationRejected: Step.RESERVE_INVENTORY,
    m.TaxCalculated: Step.CALCULATE_TAX,
    m.TaxCalculationFailed: Step.CALCULATE_TAX,
    m.ShippingQuoted: Step.QUOTE_SHIPPING,
    m.ShippingQuoteFailed: Step.QUOTE_SHIPPING,
    m.PaymentAuthorized: Step.AUTHORIZE_PAYMENT,
    m.PaymentActionRequired: Step.AUTHORIZE_PAYMENT,
    m.PaymentDeclined: Step.AUTHORIZE_PAYMENT,
    m.InventoryCommitted: Step.COMMIT_INVENTORY,
    m.InventoryCommitFailed: Step.COMMIT_INVENTORY,
    m.PaymentCaptured: Step.CAPTURE_PAYMENT,
    m.PaymentCaptureFailed: Step.CAPTURE_PAYMENT,
    m.InventoryReleased: Step.RELEASE_INVENTORY,
    m.InventoryReleaseFailed: Step.RELEASE_INVENTORY,
    m.PaymentVoided: Step.VOID_PAYMENT,
    m.PaymentVoidFailed: Step.VOID_PAYMENT,
    m.PaymentRefunded: Step.REFUND_PAYMENT,
    m.PaymentRefundFailed: Step.REFUND_PAYMENT,
}

FailureReply = (
    m.InventoryReservationRejected
    | m.TaxCalculationFailed
    | m.ShippingQuoteFailed
    | m.PaymentDeclined
    | m.InventoryCommitFailed
    | m.PaymentCaptureFailed
    | m.InventoryReleaseFailed
    | m.PaymentVoidFailed
    | m.PaymentRefundFailed
)

TIMED_OUT = "no reply before the deadline"
ACTION_TIMED_OUT = "payment action not completed in time"


def fold(events: Iterable[CheckoutEvent]) -> SagaState | None:
    state: SagaState | None = None
    for event in events:
        state = evolve(state, event)
    return state


def evolve(state: SagaState | None, event: CheckoutEvent) -> SagaState:
    if isinstance(event, m.CheckoutStarted):
        return state if state is not None else _started(event)
    if state is None:
        raise ValueError(f"{type(event).__name__} before CheckoutStarted: not a checkout stream")
    match event:
        case m.StepStarted():
            return _step_started(state, event)
        case m.StepRetryScheduled():
            return _retry_scheduled(state, event)
        case m.StepTimedOut():
            return _timed_out(state, event)
        case m.PaymentActionAwaited():
            return _with_step(state, Step.AUTHORIZE_PAYMENT, deadline_at=event.deadline_at)
        case m.PaymentSignalRecorded():
            return _signal_recorded(state, event)
        case m.CompensationStarted():
            return _compensation_started(state, event)
        case m.CheckoutCompleted():
            return replace(
                state,
                status=Status.COMPLETED,
                order_id=event.order_id,
                completed_at=event.completed_at,
            )
        case m.CheckoutFailed():
            return replace(state, status=Status.FAILED)
        case m.CheckoutCancelled():
            return replace(state, status=Status.CANCELLED)
        case m.CancellationRejected() | m.CommandRejected():
            return state  # a refusal changes nothing; it is recorded for the operator
        case m.RefundRequested():
            request = RefundRequest(event.refund_request_id, event.amount, RefundStatus.PENDING)
            return replace(state, refund_requests=(*state.refund_requests, request))
        case m.RefundRejected():
            return _refund_rejected(state, event)
        case m.CheckoutNeedsAttention():
            return replace(
                _abandon_open_steps(state, failed=None),
                status=Status.NEEDS_ATTENTION,
                attention=Failure(event.step, event.reason),
                compensation=None,
            )
    if type(event) in REPLY_STEP:
        return _reply(state, event)
    return state  # NotificationSent and anything else the saga does not track


# --- saga events ---------------------------------------------------------------------------


def _started(event: m.CheckoutStarted) -> SagaState:
    return SagaState(checkout_id=event.checkout_id, status=Status.PENDING, order=event)


def _step_started(state: SagaState, event: m.StepStarted) -> SagaState:
    if event.step not in COMPENSATION_STEPS:
        return _with_step(
            state,
            event.step,
            phase=Phase.IN_FLIGHT,
            attempt=event.attempt,
            deadline_at=event.deadline_at,
            retry_at=None,
            error=None,
        )
    counter = max(event.attempt, state.step(event.step).attempt)
    state = _with_step(state, event.step, attempt=counter)
    task = _task_for(state, event.step)
    if task is None:
        return state  # defensive: decide never starts a compensation without a task
    task = replace(
        task,
        phase=Phase.IN_FLIGHT,
        attempt=event.attempt,
        attempts=(*task.attempts, event.attempt),
        deadline_at=event.deadline_at,
        retry_at=None,
    )
    return _with_refund_attempt(replace(state, compensation=task), task, event.attempt)


def _task_for(state: SagaState, step: Step) -> CompensationTask | None:
    """The task a compensation StepStarted belongs to: the running one (a retry), else the head
    of the plan, exactly as decide chose it."""
    if state.compensation is not None:
        return state.compensation if state.compensation.step is step else None
    return next((t for t in ledger.compensation_plan(state) if t.step is step), None)


def _with_refund_attempt(state: SagaState, task: CompensationTask, attempt: int) -> SagaState:
    if task.refund_request_id is None:
        return state
    requests = tuple(
        replace(r, attempts=(*r.attempts, attempt))
        if r.refund_request_id == task.refund_request_id
        else r
        for r in state.refund_requests
    )
    return replace(state, refund_requests=requests)


def _retry_scheduled(state: SagaState, event: m.StepRetryScheduled) -> SagaState:
    if event.step not in COMPENSATION_STEPS:
        return _with_step(
            state,
            event.step,
            phase=Phase.RETRY_WAIT,
            attempt=event.attempt,
            retry_at=event.retry_at,
            deadline_at=None,
        )
    # Reserve the attempt number now: compensation attempts count per step, not per task.
    state = _with_step(state, event.step, attempt=event.attempt)
    task = state.compensation
    if task is None or task.step is not event.step:
        return state
    waiting = replace(
        task,
        phase=Phase.RETRY_WAIT,
        attempt=event.attempt,
        retry_at=event.retry_at,
        deadline_at=None,
    )
    return replace(state, compensation=waiting)


def _timed_out(state: SagaState, event: m.StepTimedOut) -> SagaState:
    task = state.compensation
    if event.step in COMPENSATION_STEPS:
        if task is None or not _task_awaits(task, event.step, event.attempt):
            return state
        failed = replace(task, phase=Phase.ATTEMPT_FAILED, error=TIMED_OUT, retryable=True)
        return replace(state, compensation=failed)
    current = state.step(event.step)
    if current.attempt != event.attempt:
        return state
    if current.phase is Phase.IN_FLIGHT:
        return _attempt_failed(state, event.step, TIMED_OUT, retryable=True)
    if current.phase is Phase.AWAITING_ACTION:
        # The customer walked away from 3-D Secure: asking again will not help.
        return _attempt_failed(state, event.step, ACTION_TIMED_OUT, retryable=False)
    return state


def _compensation_started(state: SagaState, event: m.CompensationStarted) -> SagaState:
    state = _abandon_open_steps(state, failed=event.failed_step)
    return replace(
        state, status=Status.COMPENSATING, failure=Failure(event.failed_step, event.reason)
    )


def _abandon_open_steps(state: SagaState, failed: Step | None) -> SagaState:
    """Stop waiting for every open forward step. Their replies may still come; those are then
    superseded and only the ledger records them (and the plan compensates what they hold)."""
    steps = dict(state.steps)
    for step, current in state.steps.items():
        if step in COMPENSATION_STEPS or current.phase not in OPEN_PHASES:
            continue
        steps[step] = replace(
            current,
            phase=Phase.FAILED if step is failed else Phase.ABANDONED,
            deadline_at=None,
            retry_at=None,
        )
    return replace(state, steps=MappingProxyType(steps))


def _refund_rejected(state: SagaState, event: m.RefundRejected) -> SagaState:
    if state.refund_request(event.refund_request_id) is None:
        # Rejected up front: remember the id so a redelivered request gets no second answer.
        rejected = RefundRequest(event.refund_request_id, 0, RefundStatus.REJECTED)
        return replace(state, refund_requests=(*state.refund_requests, rejected))
    requests = tuple(
        replace(r, status=RefundStatus.REJECTED)
        if r.refund_request_id == event.refund_request_id and r.status is RefundStatus.PENDING
        else r
        for r in state.refund_requests
    )
    task = state.compensation
    if task is not None and task.refund_request_id == event.refund_request_id:
        task = None
    return replace(state, refund_requests=requests, compensation=task)


# --- payment webhooks ----------------------------------------------------------------------

_SIGNAL_STATUS = {
    PaymentSignal.AUTHORIZED: PaymentStatus.AUTHORIZED,
    PaymentSignal.FAILED: PaymentStatus.FAILED,
    PaymentSignal.CANCELED: PaymentStatus.VOIDED,
    PaymentSignal.SUCCEEDED: PaymentStatus.CAPTURED,
}


def _signal_recorded(state: SagaState, event: m.PaymentSignalRecorded) -> SagaState:
    state = replace(
        state,
        seen_provider_event_ids=state.seen_provider_event_ids | {event.provider_event_id},
        payment_signals=(*state.payment_signals, event),
    )
    status = _SIGNAL_STATUS.get(event.signal)
    if status is None:
        return state  # REFUNDED: the PaymentRefunded reply carries the refund itself
    state = ledger.payment_seen(
        state,
        event.payment_id,
        status,
        captured=event.amount if status is PaymentStatus.CAPTURED else 0,
    )
    auth = state.step(Step.AUTHORIZE_PAYMENT)
    if (
        state.status in FORWARD_STATUSES
        and auth.phase is Phase.AWAITING_ACTION
        and event.payment_id == state.payment_id
    ):
        state = _action_resolved(state, event)
    return _drop_satisfied_task(state)


def _action_resolved(state: SagaState, event: m.PaymentSignalRecorded) -> SagaState:
    """The customer's action settled the payment the saga waits for. SUCCEEDED (captured: an
    automatic-capture intent) holds the money as much as AUTHORIZED does; the later capture of a
    captured payment is idempotent at the provider."""
    if event.signal in (PaymentSignal.AUTHORIZED, PaymentSignal.SUCCEEDED):
        if event.amount != state.total:
            return _attempt_failed(
                state,
                Step.AUTHORIZE_PAYMENT,
                f"authorized {event.amount}, expected {state.total}",
                retryable=False,
            )
        return replace(_succeeded(state, Step.AUTHORIZE_PAYMENT), status=Status.PENDING)
    if event.signal in (PaymentSignal.FAILED, PaymentSignal.CANCELED):
        reason = f"payment action {event.signal} (provider event {event.provider_event_id})"
        return _attempt_failed(state, Step.AUTHORIZE_PAYMENT, reason, retryable=False)
    return state


# --- adapter replies -----------------------------------------------------------------------


def _reply(state: SagaState, reply: AdapterReply) -> SagaState:
    step = REPLY_STEP[type(reply)]
    state = _record_fact(state, reply)
    if step in COMPENSATION_STEPS:
        state = _compensation_reply(state, step, reply)
    elif _is_outstanding(state, step, reply.attempt):
        state = _forward_reply(state, step, reply)
    return _drop_satisfied_task(state)


def _record_fact(state: SagaState, reply: AdapterReply) -> SagaState:
    match reply:
        case m.InventoryReserved():
            return ledger.reservation_made(
                state, reply.reservation_id, reply.attempt, reply.expires_at
            )
        case m.InventoryCommitted():
            return ledger.reservation_moved(
                state, reply.reservation_id, ReservationStatus.COMMITTED
            )
        case m.InventoryReleased():
            return ledger.reservation_moved(state, reply.reservation_id, ReservationStatus.RELEASED)
        case m.PaymentAuthorized():
            return ledger.payment_seen(
                state,
                reply.payment_id,
                PaymentStatus.AUTHORIZED,
                attempt=reply.attempt,
                provider=reply.provider,
            )
        case m.PaymentActionRequired():
            return ledger.payment_seen(
                state,
                reply.payment_id,
                PaymentStatus.ACTION_REQUIRED,
                attempt=reply.attempt,
                provider=reply.provider,
            )
        case m.PaymentCaptured():
            return ledger.payment_seen(
                state,
                reply.payment_id,
                PaymentStatus.CAPTURED,
                captured=reply.amount,
                provider=reply.provider,
            )
        case m.PaymentVoided():
            return ledger.payment_seen(state, reply.payment_id, PaymentStatus.VOIDED)
        case m.PaymentRefunded():
            return ledger.refund_made(state, reply.payment_id, reply.refund_id, reply.amount)
    return state


def _is_outstanding(state: SagaState, step: Step, attempt: int) -> bool:
    current = state.step(step)
    return (
        state.status in FORWARD_STATUSES
        and current.phase is Phase.IN_FLIGHT
        and current.attempt == attempt
    )


def _forward_reply(state: SagaState, step: Step, reply: AdapterReply) -> SagaState:
    if isinstance(reply, FailureReply):
        return _attempt_failed(state, step, reply.reason, retryable=reply.retryable)
    problem = _mismatch(state, reply)
    if problem is not None:
        return _attempt_failed(state, step, problem, retryable=False)
    match reply:
        case m.InventoryReserved():
            return _succeeded(replace(state, reservation_id=reply.reservation_id), step)
        case m.TaxCalculated():
            return _succeeded(replace(state, tax=reply.amount), step)
        case m.ShippingQuoted():
            return _succeeded(replace(state, shipping=reply.amount), step)
        case m.PaymentAuthorized():
            return _succeeded(replace(state, payment_id=reply.payment_id), step)
        case m.PaymentActionRequired():
            return _action_required(state, reply)
        case m.InventoryCommitted() | m.PaymentCaptured():
            return _succeeded(state, step)
    return state


def _mismatch(state: SagaState, reply: AdapterReply) -> str | None:
    """A success that does not match what was asked is a permanent failure of that step (and
    whatever it holds is compensated from the ledger)."""
    currency = getattr(reply, "currency", state.currency)
    if currency != state.currency:
        return f"reply in {currency}, checkout in {state.currency}"
    if isinstance(reply, m.PaymentAuthorized | m.PaymentCaptured) and reply.amount != state.total:
        return f"{type(reply).__name__} for {reply.amount}, expected {state.total}"
    if isinstance(reply, m.PaymentCaptured) and reply.payment_id != state.payment_id:
        return f"captured unknown payment {reply.payment_id}"
    if isinstance(reply, m.InventoryCommitted) and reply.reservation_id != state.reservation_id:
        return f"committed unknown reservation {reply.reservation_id}"
    return None


def _action_required(state: SagaState, reply: m.PaymentActionRequired) -> SagaState:
    state = replace(state, payment_id=reply.payment_id)
    waiting = replace(
        _with_step(state, Step.AUTHORIZE_PAYMENT, phase=Phase.AWAITING_ACTION),
        status=Status.AWAITING_PAYMENT_ACTION,
    )
    # The provider's webhooks may have beaten this reply (the customer finished, or failed,
    # 3-D Secure while the adapter's reply was still in flight). Apply them now, in the order
    # they arrived, exactly as if they had come after it: the first decisive one settles it.
    for early in state.signals_for(reply.payment_id):
        if waiting.step(Step.AUTHORIZE_PAYMENT).phase is not Phase.AWAITING_ACTION:
            break
        waiting = _action_resolved(waiting, early)
    if waiting.step(Step.AUTHORIZE_PAYMENT).phase is Phase.AWAITING_ACTION:
        return waiting
    # Settled already: there is nothing for the customer to do, so the saga never enters the
    # wait (no PaymentActionAwaited; a failure is compensated from PENDING).
    return replace(waiting, status=Status.PENDING)


def _compensation_reply(state: SagaState, step: Step, reply: AdapterReply) -> SagaState:
    task = state.compensation
    if isinstance(reply, m.PaymentRefunded):
        return _refund_succeeded(state, reply)
    if (
        task is not None
        and isinstance(reply, FailureReply)
        and _task_awaits(task, step, reply.attempt)
    ):
        failed = replace(
            task, phase=Phase.ATTEMPT_FAILED, error=reply.reason, retryable=reply.retryable
        )
        return replace(state, compensation=failed)
    return state  # successes are settled by the ledger via _drop_satisfied_task


def _refund_succeeded(state: SagaState, reply: m.PaymentRefunded) -> SagaState:
    """Any attempt of an admin refund that succeeded settles that request, even one given up on
    (the money moved all the same)."""
    requests = tuple(
        replace(r, status=RefundStatus.REFUNDED) if reply.attempt in r.attempts else r
        for r in state.refund_requests
    )
    task = state.compensation
    if task is not None and task.step is Step.REFUND_PAYMENT and reply.attempt in task.attempts:
        task = None
    return replace(state, refund_requests=requests, compensation=task)


def _task_awaits(task: CompensationTask, step: Step, attempt: int) -> bool:
    return task.step is step and task.phase is Phase.IN_FLIGHT and task.attempt == attempt


def _drop_satisfied_task(state: SagaState) -> SagaState:
    task = state.compensation
    if task is not None and ledger.is_satisfied(state, task):
        return replace(state, compensation=None)
    return state


# --- step bookkeeping ----------------------------------------------------------------------


def _with_step(state: SagaState, step: Step, **changes: object) -> SagaState:
    updated = replace(state.step(step), **changes)  # type: ignore[arg-type]
    return replace(state, steps=MappingProxyType({**state.steps, step: updated}))


def _succeeded(state: SagaState, step: Step) -> SagaState:
    seq = state.seq + 1
    state = _with_step(
        state,
        step,
        phase=Phase.SUCCEEDED,
        deadline_at=None,
        retry_at=None,
        completed_seq=seq,
    )
    return replace(state, seq=seq)


def _attempt_failed(state: SagaState, step: Step, reason: str, *, retryable: bool) -> SagaState:
    return _with_step(
        state,
        step,
        phase=Phase.ATTEMPT_FAILED,
        error=reason,
        retryable=retryable,
        deadline_at=None,
    )
