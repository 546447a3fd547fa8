"""The read model's `next_action`: what the storefront needs to finish 3-D Secure, shown only
while the saga waits on it, and forgotten (secret included) once the wait is over."""

from __future__ import annotations

from collections.abc import Iterable

from saga_harness import CID, PAYMENT, T0, given, h_priced, signal, tick

from events import messages as m
from events.envelope import Envelope
from events.messages import PaymentSignal
from projections.model import CheckoutProjection, NextAction, advance
from saga.policy import DEFAULT_POLICY as P
from saga.state import Status

SECRET = "pi_1_secret_abc"


def _fold(
    events: Iterable[m.Message], projection: CheckoutProjection | None = None
) -> CheckoutProjection:
    for i, event in enumerate(events):
        projection = advance(projection, Envelope.new(event, occurred_at=T0 + i, producer="t"))
    assert projection is not None
    return projection


def _required(secret: str | None = SECRET, pid: str = PAYMENT) -> m.PaymentActionRequired:
    return m.PaymentActionRequired(
        CID, 1, "stripe", pid, None, kind="use_stripe_sdk", client_secret=secret
    )


def _awaiting() -> tuple[m.Message, ...]:
    return (*h_priced(), _required(), m.PaymentActionAwaited(CID, 1, PAYMENT, T0 + 600_000))


def test_the_action_is_shown_while_the_checkout_awaits_it() -> None:
    before_wait = _fold((*h_priced(), _required()))
    assert before_wait.state.status is Status.PENDING
    assert before_wait.next_action is None  # the saga has not decided to wait yet
    p = _fold(_awaiting())
    assert p.state.status is Status.AWAITING_PAYMENT_ACTION
    assert p.next_action == NextAction(PAYMENT, "stripe", "use_stripe_sdk", None, SECRET)
    assert p.next_action.client_secret == SECRET
    assert SECRET not in repr(p)  # a logged projection never shows the secret


def test_a_finished_action_forgets_the_secret() -> None:
    history = _awaiting()
    outcome = given(*history).when(signal(PaymentSignal.AUTHORIZED), T0 + 1_000)
    p = _fold((*history, *outcome.decision.events))
    assert p.state.status is Status.PENDING
    assert (p.next_action, p.action) == (None, None)


def test_an_action_that_times_out_forgets_the_secret() -> None:
    history = _awaiting()
    outcome = given(*history).when(tick(T0 + P.payment_action_wait_ms + 10))
    p = _fold((*history, *outcome.decision.events))
    assert p.state.status is not Status.AWAITING_PAYMENT_ACTION
    assert (p.next_action, p.action) == (None, None)


def test_a_redelivered_reply_without_the_secret_keeps_the_first_one() -> None:
    # The adapter reuses the live payment on a redelivered command; its reply has no secret.
    p = _fold((*_awaiting(), _required(secret=None)))
    assert p.next_action is not None and p.next_action.client_secret == SECRET


def test_an_action_of_another_payment_is_not_shown() -> None:
    p = _fold((*_awaiting(), _required(secret="other_secret", pid="pi-other")))
    assert p.next_action is None


def test_the_reply_hides_the_secret_from_repr() -> None:
    assert SECRET not in repr(_required())
    assert "use_stripe_sdk" in repr(_required())
