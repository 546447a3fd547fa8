"""evolve(state, event) -> state: how each recorded event changes a checkout's state.

No judgments are made here (no policy, no clock, no rules about what a reply means): evolve
applies facts and the verdicts decide recorded for them, so folding `checkout.events` rebuilds
the state the orchestrator had, whatever the rules say today (saga/verdicts.py; history written
before verdicts were recorded is read through saga/upcast.py).
An adapter reply in the log is a fact for the resource ledger (what is reserved, authorized,
captured, refunded), whatever attempt it answers; steps move only on StepSucceeded,
StepAttemptFailed and PaymentActionAwaited.
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
from saga.verdicts import ACTION_TIMED_OUT, REPLY_STEP, TIMED_OUT, FailureReply

CheckoutEvent = SagaEvent | AdapterReply
"""Everything that can be appended to checkout.events."""

__all__ = ["ACTION_TIMED_OUT", "REPLY_STEP", "TIMED_OUT", "CheckoutEvent", "FailureReply"]


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
            return state  # what the deadline means is its StepAttemptFailed
        case m.StepSucceeded():
            return _step_succeeded(state, event)
        case m.StepAttemptFailed():
            return _step_attempt_failed(state, event)
        case m.PaymentActionAwaited():
            return _action_awaited(state, event)
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
        case m.CheckoutResumed():
            return _resumed(state)
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


def _resumed(state: SagaState) -> SagaState:
    """Out of NEEDS_ATTENTION, back to what the saga was doing: a completed order stays
    COMPLETED (it was undoing a stray, late resource); anything else compensates, and ends
    FAILED for the reason it was first failing or, when it was going forward, for the parking."""
    if state.status is not Status.NEEDS_ATTENTION:
        return state
    if state.order_id is not None:
        return replace(state, status=Status.COMPLETED, attention=None)
    failure = state.failure or state.attention
    return replace(state, status=Status.COMPENSATING, failure=failure, attention=None)


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
    return _drop_satisfied_task(state)


# --- adapter replies -----------------------------------------------------------------------


def _reply(state: SagaState, reply: AdapterReply) -> SagaState:
    state = _record_fact(state, reply)
    if isinstance(reply, m.PaymentRefunded):
        state = _refund_succeeded(state, reply)
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


def _step_succeeded(state: SagaState, event: m.StepSucceeded) -> SagaState:
    match event.step:
        case Step.RESERVE_INVENTORY:
            state = replace(state, reservation_id=event.reference)
        case Step.CALCULATE_TAX:
            state = replace(state, tax=event.amount)
        case Step.QUOTE_SHIPPING:
            state = replace(state, shipping=event.amount)
        case Step.AUTHORIZE_PAYMENT:
            state = replace(state, payment_id=event.reference)
            if state.status is Status.AWAITING_PAYMENT_ACTION:
                state = replace(state, status=Status.PENDING)
    return _succeeded(state, event.step)


def _step_attempt_failed(state: SagaState, event: m.StepAttemptFailed) -> SagaState:
    if event.step in COMPENSATION_STEPS:
        task = state.compensation
        if task is None or task.step is not event.step:
            return state
        failed = replace(
            task, phase=Phase.ATTEMPT_FAILED, error=event.reason, retryable=event.retryable
        )
        return replace(state, compensation=failed)
    if event.reference is not None:
        state = replace(state, payment_id=event.reference)
    return _attempt_failed(state, event.step, event.reason, retryable=event.retryable)


def _action_awaited(state: SagaState, event: m.PaymentActionAwaited) -> SagaState:
    state = replace(
        state,
        payment_id=event.payment_id or state.payment_id,
        status=Status.AWAITING_PAYMENT_ACTION,
    )
    return _with_step(
        state, Step.AUTHORIZE_PAYMENT, phase=Phase.AWAITING_ACTION, deadline_at=event.deadline_at
    )


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
