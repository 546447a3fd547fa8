"""What the read model knows about one checkout: the saga's own state plus the timestamps the
saga does not keep. Pure (no I/O): `advance(projection, envelope)` is the whole projection logic.

Status, steps, amounts, failure and the payment ledger come from the saga's `evolve`, so the
read model can never disagree with the orchestrator about what a stream of events means. What
`evolve` deliberately ignores — *when* things happened — is tracked here from each envelope's
`occurred_at`, by comparing the state before and after every event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from events import messages as m
from events.envelope import Envelope
from events.messages import Step
from saga.evolve import evolve
from saga.state import (
    COMPENSATION_STEPS,
    FORWARD_STATUSES,
    PaymentStatus,
    Phase,
    SagaState,
    Status,
)
from saga.upcast import replay

FINISHED = frozenset({Phase.SUCCEEDED.value, Phase.FAILED.value, Phase.ABANDONED.value})
_COMPENSATION_SUCCESS: dict[type, Step] = {
    m.InventoryReleased: Step.RELEASE_INVENTORY,
    m.PaymentVoided: Step.VOID_PAYMENT,
    m.PaymentRefunded: Step.REFUND_PAYMENT,
}


class MissingPredecessor(Exception):
    """An event for a checkout whose CheckoutStarted has not been applied (yet)."""


@dataclass(frozen=True, slots=True)
class StepRow:
    status: str
    attempts: int
    started_at: int | None = None
    finished_at: int | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentTimes:
    authorized_at: int | None = None
    captured_at: int | None = None
    voided_at: int | None = None
    updated_at: int = 0


@dataclass(frozen=True, slots=True)
class RefundRow:
    refund_id: str
    payment_id: str
    amount: int
    refunded_at: int


@dataclass(frozen=True, slots=True)
class NextAction:
    """The payment action the customer must finish (3-D Secure), from the adapter's
    `PaymentActionRequired`: what the storefront's client library needs."""

    payment_id: str
    provider: str
    kind: str | None
    redirect_url: str | None
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class CheckoutProjection:
    state: SagaState
    started_at: int
    last_event_id: str
    last_event_type: str
    last_event_at: int
    events_applied: int
    steps: Mapping[Step, StepRow] = field(default_factory=lambda: MappingProxyType({}))
    payment_times: Mapping[str, PaymentTimes] = field(default_factory=lambda: MappingProxyType({}))
    refunds: tuple[RefundRow, ...] = ()
    # compensation steps whose last reply was a success (the saga drops the task silently)
    compensated: frozenset[Step] = frozenset()
    # the last payment action asked for; kept only while the saga may still wait on it
    action: NextAction | None = None

    @property
    def next_action(self) -> NextAction | None:
        """What the read model shows: the action of the payment the saga waits on, and only
        while it waits (the client secret is useless, and not shown, once it stops)."""
        a, s = self.action, self.state
        if a is None or s.status is not Status.AWAITING_PAYMENT_ACTION:
            return None
        return a if a.payment_id == s.payment_id else None


def advance(projection: CheckoutProjection | None, envelope: Envelope[Any]) -> CheckoutProjection:
    event = envelope.message
    at = envelope.occurred_at
    if projection is None:
        if not isinstance(event, m.CheckoutStarted):
            raise MissingPredecessor(envelope.checkout_id)
        state = evolve(None, event)
        return CheckoutProjection(
            state=state,
            started_at=event.started_at,
            last_event_id=envelope.message_id,
            last_event_type=envelope.type,
            last_event_at=at,
            events_applied=1,
        )
    before = projection.state
    after = replay(before, event, envelope.schema_version)
    compensated = _compensated(projection.compensated, event)
    steps = _steps(projection, after, event, at, compensated)
    return replace(
        projection,
        state=after,
        last_event_id=envelope.message_id,
        last_event_type=envelope.type,
        last_event_at=at,
        events_applied=projection.events_applied + 1,
        steps=steps,
        payment_times=_payment_times(projection.payment_times, before, after, at),
        refunds=_refunds(projection.refunds, before, after, event, at),
        compensated=compensated,
        action=_action(projection.action, before, after, event),
    )


def _action(
    action: NextAction | None, before: SagaState, after: SagaState, event: object
) -> NextAction | None:
    if isinstance(event, m.PaymentActionRequired):
        fresh = NextAction(
            payment_id=event.payment_id,
            provider=event.provider,
            kind=event.kind,
            redirect_url=event.action_url,
            client_secret=event.client_secret,
        )
        if action is not None and action.payment_id == event.payment_id:
            # A reused payment's reply may lack what the first one had (Razorpay's redirect
            # comes only with the create answer): the earlier one still finishes it.
            return NextAction(
                payment_id=fresh.payment_id,
                provider=fresh.provider,
                kind=fresh.kind or action.kind,
                redirect_url=fresh.redirect_url or action.redirect_url,
                client_secret=fresh.client_secret or action.client_secret,
            )
        return fresh
    waited = before.status is Status.AWAITING_PAYMENT_ACTION
    if after.status not in FORWARD_STATUSES or (
        waited and after.status is not Status.AWAITING_PAYMENT_ACTION
    ):
        return None  # the wait is over (finished, failed, cancelled): forget the secret
    return action


def _compensated(done: frozenset[Step], event: object) -> frozenset[Step]:
    step = _COMPENSATION_SUCCESS.get(type(event))
    if step is not None:
        return done | {step}
    if isinstance(event, m.StepStarted) and event.step in COMPENSATION_STEPS:
        return done - {event.step}
    return done


def step_status(
    state: SagaState, step: Step, compensated: frozenset[Step]
) -> tuple[str, str | None]:
    """(status, last error) of one step as the read model shows it."""
    if step not in COMPENSATION_STEPS:
        current = state.step(step)
        return current.phase.value, current.error
    task = state.compensation
    if task is not None and task.step is step:
        return task.phase.value, task.error
    if state.attention is not None and state.attention.step is step:
        return Phase.FAILED.value, state.attention.reason
    if step in compensated:
        return Phase.SUCCEEDED.value, None
    return state.step(step).phase.value, state.step(step).error


def _steps(
    projection: CheckoutProjection,
    state: SagaState,
    event: object,
    at: int,
    compensated: frozenset[Step],
) -> Mapping[Step, StepRow]:
    rows = dict(projection.steps)
    for step, current in state.steps.items():
        if current.attempt == 0 and step not in rows:
            continue  # never started: no row
        status, error = step_status(state, step, compensated)
        old = rows.get(step)
        started_at = old.started_at if old is not None else None
        if started_at is None and isinstance(event, m.StepStarted) and event.step is step:
            started_at = at
        finished_at = old.finished_at if old is not None else None
        if status in FINISHED:
            if old is None or old.status not in FINISHED:
                finished_at = at
        else:
            finished_at = None
        rows[step] = StepRow(status, current.attempt, started_at, finished_at, error)
    return MappingProxyType(rows)


def _payment_times(
    times: Mapping[str, PaymentTimes], before: SagaState, after: SagaState, at: int
) -> Mapping[str, PaymentTimes]:
    out = dict(times)
    for payment in after.payments:
        old = before.payment(payment.payment_id)
        if old == payment:
            continue
        t = out.get(payment.payment_id, PaymentTimes())
        changed = old is None or old.status is not payment.status
        if changed and payment.status is PaymentStatus.AUTHORIZED and t.authorized_at is None:
            t = replace(t, authorized_at=at)
        if changed and payment.status is PaymentStatus.CAPTURED and t.captured_at is None:
            t = replace(t, captured_at=at)
        if changed and payment.status is PaymentStatus.VOIDED and t.voided_at is None:
            t = replace(t, voided_at=at)
        out[payment.payment_id] = replace(t, updated_at=at)
    return MappingProxyType(out)


def _refunds(
    refunds: tuple[RefundRow, ...], before: SagaState, after: SagaState, event: object, at: int
) -> tuple[RefundRow, ...]:
    """New refund ids in the saga's ledger become rows; the ledger already ignores a refund id
    it has seen, so a provider's repeated reply for the same refund is counted once."""
    out = list(refunds)
    for payment in after.payments:
        old = before.payment(payment.payment_id)
        known = set(old.refund_ids) if old is not None else set()
        for refund_id in payment.refund_ids:
            if refund_id in known:
                continue
            if isinstance(event, m.PaymentRefunded) and event.refund_id == refund_id:
                amount = event.amount
            else:  # not expected: the ledger only learns refunds from PaymentRefunded
                amount = payment.refunded - (old.refunded if old is not None else 0)
            out.append(RefundRow(refund_id, payment.payment_id, amount, at))
    return tuple(out)
