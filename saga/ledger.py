"""The resource ledger (stock and money the outside world says we hold) and the compensation plan
derived from it.

Facts are recorded whatever attempt they belong to: a reservation made by an attempt the saga
gave up on is still stock held in a warehouse. Entries only move forward (held -> committed ->
released; action required -> authorized -> captured, or -> voided), so duplicated and reordered
replies cannot resurrect a released reservation or a voided payment.

Compensation is then "drive the ledger to what the saga's status allows": a forward or completed
saga keeps its own reservation and payment, anything else is released, voided or refunded, most
recently completed first (the reverse of completion order).
"""

from __future__ import annotations

from dataclasses import replace

from events.messages import Step
from saga.state import (
    FORWARD_STATUSES,
    CompensationTask,
    Payment,
    PaymentStatus,
    Phase,
    RefundStatus,
    Reservation,
    ReservationStatus,
    SagaState,
    Status,
)

_RESERVATION_RANK = {
    ReservationStatus.HELD: 0,
    ReservationStatus.COMMITTED: 1,
    ReservationStatus.RELEASED: 2,
}
_PAYMENT_RANK = {
    PaymentStatus.ACTION_REQUIRED: 0,
    PaymentStatus.FAILED: 1,
    PaymentStatus.AUTHORIZED: 2,
    PaymentStatus.CAPTURED: 3,
    PaymentStatus.VOIDED: 4,
}
_ADVANCING = frozenset({ReservationStatus.COMMITTED, PaymentStatus.CAPTURED})
"""Reaching these completes a later step, so the resource moves up the compensation order."""

# --- recording facts ----------------------------------------------------------------------


def reservation_made(
    state: SagaState, reservation_id: str, attempt: int, expires_at: int
) -> SagaState:
    if state.reservation(reservation_id) is not None:
        return state
    seq = state.seq + 1
    entry = Reservation(reservation_id, attempt, ReservationStatus.HELD, expires_at, seq)
    return replace(state, reservations=(*state.reservations, entry), seq=seq)


def reservation_moved(
    state: SagaState, reservation_id: str, status: ReservationStatus
) -> SagaState:
    entry = state.reservation(reservation_id)
    if entry is None or _RESERVATION_RANK[status] <= _RESERVATION_RANK[entry.status]:
        return state
    seq = state.seq + 1 if status in _ADVANCING else state.seq
    moved = replace(entry, status=status, seq=seq if status in _ADVANCING else entry.seq)
    return replace(
        state,
        reservations=tuple(moved if r is entry else r for r in state.reservations),
        seq=seq,
    )


def payment_seen(
    state: SagaState,
    payment_id: str,
    status: PaymentStatus,
    *,
    attempt: int | None = None,
    captured: int = 0,
    provider: str | None = None,
) -> SagaState:
    """Record that `payment_id` reached `status` (adding it if new). Voiding a captured payment
    is not a thing providers do, so a late "voided" never hides captured money."""
    entry = state.payment(payment_id)
    if entry is None:
        seq = state.seq + 1
        new = Payment(payment_id, attempt, status, seq, captured=captured, provider=provider)
        return replace(state, payments=(*state.payments, new), seq=seq)
    if entry.provider is None and provider is not None:
        entry = replace(entry, provider=provider)
        state = replace(state, payments=_swapped(state, entry))
    if entry.attempt is None and attempt is not None:
        # The reply that names the attempt arrived after a webhook named the payment.
        entry = replace(entry, attempt=attempt)
        state = replace(state, payments=_swapped(state, entry))
    if _PAYMENT_RANK[status] <= _PAYMENT_RANK[entry.status]:
        return state
    if status is PaymentStatus.VOIDED and entry.status is PaymentStatus.CAPTURED:
        return state
    seq = state.seq + 1 if status in _ADVANCING else state.seq
    moved = replace(
        entry,
        status=status,
        seq=seq if status in _ADVANCING else entry.seq,
        captured=captured if status is PaymentStatus.CAPTURED else entry.captured,
    )
    return replace(state, payments=_swapped(state, moved), seq=seq)


def refund_made(state: SagaState, payment_id: str, refund_id: str, amount: int) -> SagaState:
    entry = state.payment(payment_id)
    if entry is None or refund_id in entry.refund_ids:
        return state
    moved = replace(
        entry, refunded=entry.refunded + amount, refund_ids=(*entry.refund_ids, refund_id)
    )
    return replace(state, payments=_swapped(state, moved))


def _swapped(state: SagaState, moved: Payment) -> tuple[Payment, ...]:
    return tuple(moved if p.payment_id == moved.payment_id else p for p in state.payments)


# --- what still has to be undone ---------------------------------------------------------


def compensation_plan(state: SagaState) -> tuple[CompensationTask, ...]:
    """Every open obligation, in the order the saga should work through them."""
    if state.status is Status.NEEDS_ATTENTION:
        return ()  # parked: an operator decides
    keeps_own = state.status in FORWARD_STATUSES or state.status is Status.COMPLETED
    ranked: list[tuple[int, CompensationTask]] = []
    for r in state.reservations:
        if r.status is ReservationStatus.RELEASED:
            continue
        if keeps_own and r.reservation_id == state.reservation_id:
            continue
        ranked.append((r.seq, CompensationTask(Step.RELEASE_INVENTORY, r.reservation_id)))
    for p in state.payments:
        if keeps_own and p.payment_id == state.payment_id:
            continue
        if _may_still_be_ours(state, p):
            continue
        task = _payment_task(p)
        if task is not None:
            ranked.append((p.seq, task))
    ranked.sort(key=lambda pair: -pair[0])  # stable: equal seqs keep ledger order
    return tuple(task for _, task in ranked) + _admin_refunds(state)


def due_compensations(state: SagaState) -> tuple[CompensationTask, ...]:
    """The plan without what must wait: a reservation an earlier attempt made while a later
    attempt of the same step is still out. The inventory adapter keeps one active reservation
    per checkout, so the retry may well answer with that very reservation; releasing it now
    would free the stock the saga is about to commit. Once the step settles, the ledger says
    whether it is the saga's own or a stray to release."""
    return tuple(
        t
        for t in compensation_plan(state)
        if not _reservation_may_still_be_ours(state, t) and not _payment_may_still_be_ours(state, t)
    )


def _reservation_may_still_be_ours(state: SagaState, task: CompensationTask) -> bool:
    if task.step is not Step.RELEASE_INVENTORY or state.status not in FORWARD_STATUSES:
        return False
    reserve = state.step(Step.RESERVE_INVENTORY)
    return reserve.phase in (Phase.IN_FLIGHT, Phase.RETRY_WAIT)


def _payment_may_still_be_ours(state: SagaState, task: CompensationTask) -> bool:
    """The same for payments: the authorization retry reconciles with the provider and adopts
    a live PaymentIntent of this checkout, so one an earlier attempt left waiting for 3-D
    Secure (a late PaymentActionRequired) may be the very one the retry comes back with.
    Voiding it meanwhile made the saga capture a voided payment (found by the chaos suite)."""
    if task.step is not Step.VOID_PAYMENT or state.status not in FORWARD_STATUSES:
        return False
    auth = state.step(Step.AUTHORIZE_PAYMENT)
    return auth.phase in (Phase.IN_FLIGHT, Phase.RETRY_WAIT)


def _may_still_be_ours(state: SagaState, payment: Payment) -> bool:
    """A webhook can name a payment before the AuthorizePayment reply does; while that reply may
    still come, the payment could become this checkout's own, so do not void it yet. That holds
    while a retry is scheduled too: the next attempt reconciles with the provider and adopts a
    live payment of this checkout instead of creating a second one (0003-payments.md)."""
    auth = state.step(Step.AUTHORIZE_PAYMENT)
    return (
        payment.attempt is None
        and state.status in FORWARD_STATUSES
        and auth.phase in (Phase.IN_FLIGHT, Phase.RETRY_WAIT)
    )


def _payment_task(payment: Payment) -> CompensationTask | None:
    if payment.net_captured > 0:
        return CompensationTask(Step.REFUND_PAYMENT, payment.payment_id, payment.net_captured)
    if payment.status in (
        PaymentStatus.ACTION_REQUIRED,
        PaymentStatus.FAILED,
        PaymentStatus.AUTHORIZED,
    ):
        return CompensationTask(Step.VOID_PAYMENT, payment.payment_id)
    return None


def _admin_refunds(state: SagaState) -> tuple[CompensationTask, ...]:
    if state.status is not Status.COMPLETED or state.payment_id is None:
        return ()
    return tuple(
        CompensationTask(
            Step.REFUND_PAYMENT,
            state.payment_id,
            amount=r.amount,
            refund_request_id=r.refund_request_id,
        )
        for r in state.refund_requests
        if r.status is RefundStatus.PENDING
    )


def is_satisfied(state: SagaState, task: CompensationTask) -> bool:
    """Whether the ledger already shows `task` done (e.g. an earlier attempt's reply arrived late,
    or a void became pointless because the payment turned out to be captured)."""
    if task.step is Step.RELEASE_INVENTORY:
        reservation = state.reservation(task.target)
        return reservation is None or reservation.status is ReservationStatus.RELEASED
    if task.step is Step.VOID_PAYMENT:
        payment = state.payment(task.target)
        return payment is None or payment.status in (
            PaymentStatus.VOIDED,
            PaymentStatus.CAPTURED,  # too late to void: the plan turns this into a refund
        )
    if task.refund_request_id is None:
        payment = state.payment(task.target)
        return payment is None or payment.net_captured <= 0
    request = state.refund_request(task.refund_request_id)
    return request is None or request.status is not RefundStatus.PENDING
