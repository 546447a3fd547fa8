"""Payment webhooks in any order: before the adapter's reply, twice, for a checkout the saga does
not know, after the saga finished. Given events / when a message / then exactly this decision."""

from __future__ import annotations

import pytest
from saga_harness import (
    CID,
    PAYMENT,
    T0,
    TOTAL,
    action_required,
    attempt_failed,
    authorize_cmd,
    authorized,
    captured,
    commit_cmd,
    given,
    h_completed,
    h_priced,
    ok,
    release_cmd,
    signal,
    signal_recorded,
    step_started,
    succeeded,
    tick,
    timed_out,
    void_cmd,
)

from events import messages as m
from events.messages import PaymentSignal, Step
from saga.checkout import UnknownCheckout, decide, next_wakeup
from saga.policy import DEFAULT_POLICY as P
from saga.policy import backoff_ms
from saga.state import PaymentStatus, Phase, Status

AUTH, COMMIT = Step.AUTHORIZE_PAYMENT, Step.COMMIT_INVENTORY
RELEASE, VOID = Step.RELEASE_INVENTORY, Step.VOID_PAYMENT
AUTHORIZED, FAILED = PaymentSignal.AUTHORIZED, PaymentSignal.FAILED
CANCELED, SUCCEEDED = PaymentSignal.CANCELED, PaymentSignal.SUCCEEDED


# --- a signal before the saga reached the payment step's answer ------------------------------


def test_early_signal_is_recorded_and_remembered_while_the_authorization_is_in_flight() -> None:
    outcome = given(*h_priced()).when(signal(AUTHORIZED)).then(signal_recorded(AUTHORIZED))
    state = outcome.state
    assert state.step(AUTH).phase is Phase.IN_FLIGHT  # nothing decided before the reply
    assert state.signals_for(PAYMENT) == (signal_recorded(AUTHORIZED),)


@pytest.mark.parametrize("kind", [AUTHORIZED, SUCCEEDED])
def test_early_success_is_applied_when_the_action_required_reply_arrives(
    kind: PaymentSignal,
) -> None:
    outcome = (
        given(*h_priced(), signal_recorded(kind))
        .when(action_required())
        .then(
            action_required(),
            succeeded(AUTH, reference=PAYMENT),
            step_started(COMMIT),
            commands=(commit_cmd(),),
        )
    )
    # The customer is never asked to wait for an action that already finished.
    assert outcome.state.status is Status.PENDING
    assert not any(isinstance(e, m.PaymentActionAwaited) for e in outcome.decision.events)


def test_early_failure_fails_the_payment_at_once_instead_of_waiting_out_the_action() -> None:
    outcome = (
        given(*h_priced(), signal_recorded(FAILED))
        .when(action_required())
        .then(
            action_required(),
            attempt_failed(AUTH, "payment action failed (provider event evt-1)", reference=PAYMENT),
            m.CompensationStarted(CID, AUTH, "payment action failed (provider event evt-1)"),
            step_started(VOID),
            commands=(void_cmd(),),
        )
    )
    assert outcome.state.status is Status.COMPENSATING


def test_early_cancel_fails_the_payment_and_voids_nothing() -> None:
    given(*h_priced(), signal_recorded(CANCELED)).when(action_required()).then(
        action_required(),
        attempt_failed(AUTH, "payment action canceled (provider event evt-1)", reference=PAYMENT),
        m.CompensationStarted(CID, AUTH, "payment action canceled (provider event evt-1)"),
        step_started(RELEASE),  # the provider already canceled the intent: only stock is left
        commands=(release_cmd(),),
    )


def test_early_authorization_for_another_amount_is_not_accepted() -> None:
    given(*h_priced(), signal_recorded(AUTHORIZED, amount=TOTAL - 1)).when(action_required()).then(
        action_required(),
        attempt_failed(AUTH, f"authorized {TOTAL - 1}, expected {TOTAL}", reference=PAYMENT),
        m.CompensationStarted(CID, AUTH, f"authorized {TOTAL - 1}, expected {TOTAL}"),
        step_started(VOID),
        commands=(void_cmd(),),
    )


def test_early_signal_of_another_payment_is_voided_and_the_customer_still_waits() -> None:
    at = T0 + 1_000
    history = given(*h_priced(), signal_recorded(AUTHORIZED, payment_id="pi-other"))
    outcome = history.when(action_required(), at).then(
        action_required(),
        m.PaymentActionAwaited(CID, 1, PAYMENT, at + P.payment_action_wait_ms),
        # A second authorization of this checkout: money held twice is released at once.
        step_started(VOID, at=at),
        commands=(void_cmd(pid="pi-other"),),
    )
    assert outcome.state.status is Status.AWAITING_PAYMENT_ACTION


@pytest.mark.parametrize(
    ("first", "second", "continues"),
    [(AUTHORIZED, FAILED, True), (FAILED, AUTHORIZED, False)],
)
def test_early_signals_apply_in_arrival_order_as_if_they_came_after_the_reply(
    first: PaymentSignal, second: PaymentSignal, continues: bool
) -> None:
    early = given(
        *h_priced(), signal_recorded(first, event_id="evt-1"), signal_recorded(second, "pi-1", "e2")
    ).when(action_required())
    late = (
        given(*h_priced())
        .when(action_required())
        .then(
            action_required(),
            m.PaymentActionAwaited(CID, 1, PAYMENT, T0 + P.payment_action_wait_ms),
        )
    )
    for kind, event_id in ((first, "evt-1"), (second, "e2")):
        late = given(*late.before_and_after()).when(signal(kind, event_id=event_id))
    assert (early.state.step(COMMIT).phase is Phase.IN_FLIGHT) is continues
    assert (late.state.step(COMMIT).phase is Phase.IN_FLIGHT) is continues
    assert early.state.status is late.state.status
    # Whichever order: the ledger shows the authorization, so a failed checkout voids it.
    assert early.state.payment(PAYMENT).status is PaymentStatus.AUTHORIZED  # type: ignore[union-attr]


def test_early_signal_survives_a_retry_and_is_not_voided_while_the_retry_may_adopt_it() -> None:
    deadline = T0 + P.timeout_for(AUTH)
    expired = given(*h_priced()).when(tick(deadline))
    retry_at = deadline + backoff_ms(P, CID, AUTH, 1)
    expired.then(
        *timed_out(AUTH),
        m.StepRetryScheduled(CID, AUTH, 2, retry_at, "no reply before the deadline"),
    )
    waiting = given(*expired.before_and_after())
    # The payment of the timed-out attempt reports in by webhook only: the next attempt
    # reconciles with the provider and may adopt it, so it is not voided now.
    waiting.when(signal(AUTHORIZED)).then(signal_recorded(AUTHORIZED))
    retried = given(*waiting.and_(signal_recorded(AUTHORIZED)).events).when(tick(retry_at))
    retried.then(step_started(AUTH, 2, at=retry_at), commands=(authorize_cmd(2),))
    given(*retried.before_and_after()).when(action_required(2)).then(
        action_required(2),
        succeeded(AUTH, 2, reference=PAYMENT),
        step_started(COMMIT),
        commands=(commit_cmd(),),
    )


# --- duplicates, strangers, latecomers ------------------------------------------------------


def test_a_redelivered_signal_is_ignored_before_and_after_the_reply() -> None:
    given(*h_priced(), signal_recorded(AUTHORIZED)).when(signal(AUTHORIZED)).then_nothing()
    after = given(
        *h_priced(),
        signal_recorded(AUTHORIZED),
        action_required(),
        succeeded(AUTH, reference=PAYMENT),
        step_started(COMMIT),
    )
    after.when(signal(AUTHORIZED)).then_nothing()
    after.when(action_required()).then_nothing()  # the adapter's reply redelivered


def test_the_same_fact_under_a_new_event_id_changes_nothing_but_the_record() -> None:
    after = given(
        *h_priced(),
        signal_recorded(AUTHORIZED),
        action_required(),
        succeeded(AUTH, reference=PAYMENT),
        step_started(COMMIT),
    )
    outcome = after.when(signal(AUTHORIZED, event_id="evt-2"))
    outcome.then(signal_recorded(AUTHORIZED, event_id="evt-2"))
    assert outcome.state.step(COMMIT).phase is Phase.IN_FLIGHT


def test_a_signal_for_an_unknown_checkout_is_refused_loudly_not_dropped() -> None:
    # The orchestrator's processor dead-letters what decide refuses: an operator can redrive it.
    with pytest.raises(UnknownCheckout, match="evt-1"):
        decide(None, signal(AUTHORIZED), T0)


def test_capture_webhook_after_completion_is_only_recorded() -> None:
    outcome = given(*h_completed()).when(signal(SUCCEEDED)).then(signal_recorded(SUCCEEDED))
    assert outcome.state.status is Status.COMPLETED
    assert outcome.state.captured_amount == TOTAL
    assert next_wakeup(outcome.state) is None


def test_capture_webhook_before_the_capture_reply_does_not_capture_twice() -> None:
    from saga_harness import h_committed

    early = given(*h_committed(), signal_recorded(SUCCEEDED))
    outcome = early.when(captured())
    assert outcome.state.status is Status.COMPLETED
    assert outcome.state.captured_amount == TOTAL
    assert authorized() not in outcome.decision.events


# --- the provider that holds the payment ------------------------------------------------------


def test_capture_and_void_go_to_the_provider_that_authorized() -> None:
    """The payment registry may route an authorization to a fallback provider; a payment exists
    at that provider only, so the saga follows the reply, not the storefront's choice."""
    from saga_harness import PROVIDER, commit_failed, committed, key

    routed = m.PaymentAuthorized(CID, 1, "razorpay", PAYMENT, TOTAL, "USD")
    history = given(*h_priced(), *ok(routed), step_started(COMMIT))
    capture = history.when(committed()).decision.commands
    assert capture == (
        m.CapturePayment(CID, 1, key(Step.CAPTURE_PAYMENT), "razorpay", PAYMENT, TOTAL, "USD"),
    )
    voids = history.when(commit_failed()).decision.commands
    assert voids == (m.VoidPayment(CID, 1, key(VOID), "razorpay", PAYMENT),)
    assert PROVIDER != "razorpay"
