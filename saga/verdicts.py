"""The saga's judgments of what it hears, returned as events (pure).

An adapter reply, a provider's webhook or a passed deadline is a fact; whether it settles the
step the saga waits for — and whether a failure is worth retrying — is a rule. decide records
the verdicts these functions return next to the fact (StepSucceeded, StepAttemptFailed,
PaymentActionAwaited), so `evolve` only applies what was decided and a later change to a rule
never changes the meaning of history already written (docs/decisions/0012-facts-and-verdicts.md).

History written before verdicts were recorded (history version 1) is read through
`saga.upcast`, which asks these same functions; the recorded v1 histories in
tests/unit/fixtures pin that meaning: change a rule here in a way that would re-judge them and
that test fails, and the old rule must then move into the upcaster.
"""

from __future__ import annotations

from events import messages as m
from events.messages import AdapterReply, PaymentSignal, Step
from saga.state import COMPENSATION_STEPS, FORWARD_STATUSES, Phase, SagaState

Verdict = m.StepSucceeded | m.StepAttemptFailed | m.PaymentActionAwaited

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


def of_reply(
    state: SagaState,
    reply: AdapterReply,
    action_deadline: int | None,
    *,
    late_successes: bool = True,
) -> tuple[Verdict, ...]:
    """What `reply` decides, judged on the state with its fact already recorded. A reply that
    answers nothing outstanding decides nothing (the ledger alone records what it holds).
    `action_deadline` is when a 3-D Secure wait would end; None asks for no wait event (the
    upcaster: version-1 history recorded the wait itself).

    A success from an attempt the saga gave up on settles the step while the step is still
    being retried (`late_successes`): every forward step is idempotent per checkout, so the
    late answer is the very result the retry is after. Ignoring it made a saga void the
    authorization a retry was about to adopt (paid, then no order) and kept capture retrying
    under a slow provider until it gave up on money already taken. Version 1 ignored them;
    the upcaster passes False."""
    step = REPLY_STEP[type(reply)]
    cid, attempt = state.checkout_id, reply.attempt
    if step in COMPENSATION_STEPS:
        task = state.compensation
        awaited = (
            task is not None
            and task.step is step
            and task.phase is Phase.IN_FLIGHT
            and task.attempt == attempt
        )
        if awaited and isinstance(reply, FailureReply):
            return (m.StepAttemptFailed(cid, step, attempt, reply.reason, reply.retryable),)
        return ()  # successes settle the task through the ledger
    if not _is_outstanding(state, step, attempt):
        if late_successes and _is_superseded(state, step, attempt):
            return _late_success(state, reply)
        return ()
    if isinstance(reply, FailureReply):
        return (m.StepAttemptFailed(cid, step, attempt, reply.reason, reply.retryable),)
    problem = _mismatch(state, reply)
    if problem is not None:
        return (m.StepAttemptFailed(cid, step, attempt, problem, retryable=False),)
    return _success(state, reply, action_deadline)


def _success(
    state: SagaState, reply: AdapterReply, action_deadline: int | None
) -> tuple[Verdict, ...]:
    step = REPLY_STEP[type(reply)]
    cid, attempt = state.checkout_id, reply.attempt
    match reply:
        case m.InventoryReserved():
            return (m.StepSucceeded(cid, step, attempt, reference=reply.reservation_id),)
        case m.TaxCalculated() | m.ShippingQuoted():
            return (m.StepSucceeded(cid, step, attempt, amount=reply.amount),)
        case m.PaymentAuthorized():
            return (m.StepSucceeded(cid, step, attempt, reference=reply.payment_id),)
        case m.PaymentActionRequired():
            return _action_required(state, reply, action_deadline)
        case m.InventoryCommitted() | m.PaymentCaptured():
            return (m.StepSucceeded(cid, step, attempt),)
    return ()


def of_signal(state: SagaState, signal: m.PaymentSignalRecorded) -> tuple[Verdict, ...]:
    """A provider's webhook settles the 3-D Secure wait for the payment the saga waits on."""
    auth = state.step(Step.AUTHORIZE_PAYMENT)
    if (
        state.status not in FORWARD_STATUSES
        or auth.phase is not Phase.AWAITING_ACTION
        or signal.payment_id != state.payment_id
    ):
        return ()
    return _action_resolved(state, signal, auth.attempt)


def of_timeout(state: SagaState, timed_out: m.StepTimedOut) -> tuple[Verdict, ...]:
    step, attempt = timed_out.step, timed_out.attempt
    cid = state.checkout_id
    if step in COMPENSATION_STEPS:
        task = state.compensation
        if (
            task is None
            or task.step is not step
            or task.phase is not Phase.IN_FLIGHT
            or task.attempt != attempt
        ):
            return ()
        return (m.StepAttemptFailed(cid, step, attempt, TIMED_OUT, retryable=True),)
    current = state.step(step)
    if current.attempt != attempt:
        return ()
    if current.phase is Phase.IN_FLIGHT:
        return (m.StepAttemptFailed(cid, step, attempt, TIMED_OUT, retryable=True),)
    if current.phase is Phase.AWAITING_ACTION:
        # The customer walked away from 3-D Secure: asking again will not help.
        return (m.StepAttemptFailed(cid, step, attempt, ACTION_TIMED_OUT, retryable=False),)
    return ()


# --- rules -----------------------------------------------------------------------------------


def _late_success(state: SagaState, reply: AdapterReply) -> tuple[Verdict, ...]:
    """Only a plain success counts: a late failure says nothing the current attempt will not,
    a 3-D Secure request belongs to an attempt whose wait is no longer kept, and a late answer
    that does not match what was asked leaves the current attempt to decide."""
    if isinstance(reply, FailureReply | m.PaymentActionRequired):
        return ()
    if _mismatch(state, reply) is not None:
        return ()
    return _success(state, reply, action_deadline=None)


def _is_superseded(state: SagaState, step: Step, attempt: int) -> bool:
    """`attempt` is an earlier attempt of a step that is being retried (in RETRY_WAIT the
    step's `attempt` is the next one, not yet sent)."""
    current = state.step(step)
    return (
        state.status in FORWARD_STATUSES
        and current.phase in (Phase.IN_FLIGHT, Phase.RETRY_WAIT)
        and 1 <= attempt < current.attempt
    )


def _is_outstanding(state: SagaState, step: Step, attempt: int) -> bool:
    current = state.step(step)
    return (
        state.status in FORWARD_STATUSES
        and current.phase is Phase.IN_FLIGHT
        and current.attempt == attempt
    )


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


def _action_required(
    state: SagaState, reply: m.PaymentActionRequired, action_deadline: int | None
) -> tuple[Verdict, ...]:
    # The provider's webhooks may have beaten this reply (the customer finished, or failed,
    # 3-D Secure while the adapter's reply was still in flight): the first decisive one settles
    # the attempt at once and the saga never enters the wait.
    for early in state.signals_for(reply.payment_id):
        settled = _action_resolved(state, early, reply.attempt)
        if settled:
            return settled
    if action_deadline is None:
        return ()
    return (
        m.PaymentActionAwaited(state.checkout_id, reply.attempt, reply.payment_id, action_deadline),
    )


def _action_resolved(
    state: SagaState, signal: m.PaymentSignalRecorded, attempt: int
) -> tuple[Verdict, ...]:
    """SUCCEEDED (captured: an automatic-capture intent) holds the money as much as AUTHORIZED
    does; the later capture of a captured payment is idempotent at the provider."""
    cid, step, pid = state.checkout_id, Step.AUTHORIZE_PAYMENT, signal.payment_id
    if signal.signal in (PaymentSignal.AUTHORIZED, PaymentSignal.SUCCEEDED):
        if signal.amount != state.total:
            reason = f"authorized {signal.amount}, expected {state.total}"
            return (m.StepAttemptFailed(cid, step, attempt, reason, False, reference=pid),)
        return (m.StepSucceeded(cid, step, attempt, reference=pid),)
    if signal.signal in (PaymentSignal.FAILED, PaymentSignal.CANCELED):
        reason = f"payment action {signal.signal} (provider event {signal.provider_event_id})"
        return (m.StepAttemptFailed(cid, step, attempt, reason, False, reference=pid),)
    return ()
