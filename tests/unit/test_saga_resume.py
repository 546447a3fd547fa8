"""An operator resumes a parked saga (RetryCheckout): it leaves NEEDS_ATTENTION, tries the
compensation that kept failing again with a fresh attempt budget, and ends as it would have
(FAILED for its original reason); a saga that is not parked refuses the retry, on the record."""

from __future__ import annotations

from saga_harness import (
    CID,
    PAYMENT,
    RESERVATION,
    T0,
    declined,
    failed,
    given,
    h_authorized,
    h_completed,
    h_priced,
    release_cmd,
    release_failed,
    released,
    step_started,
    void_cmd,
    void_failed,
    voided,
)
from test_saga_transitions import P, retry

from events import messages as m
from events.messages import Step
from saga.policy import backoff_ms
from saga.state import Status

RELEASE, VOID = Step.RELEASE_INVENTORY, Step.VOID_PAYMENT
LAST = P.compensation_attempts(Step.RELEASE_INVENTORY, CID)
RETRY = m.RetryCheckout(CID, "ops@shop", "inventory database restored")


def parked_on_release() -> tuple[m.Message, ...]:
    """A declined checkout whose stock release failed LAST times: parked."""
    return (
        *h_priced(),
        *failed(declined()),
        m.CompensationStarted(CID, Step.AUTHORIZE_PAYMENT, "card_declined"),
        *(
            e
            for n in range(1, LAST)
            for e in (
                step_started(RELEASE, n),
                *failed(release_failed(n)),
                retry(RELEASE, n + 1, T0, "inventory db down"),
            )
        ),
        step_started(RELEASE, LAST),
        *failed(release_failed(LAST)),
        m.CheckoutNeedsAttention(
            CID,
            RELEASE,
            f"release_inventory of {RESERVATION} failed after {LAST} attempts: inventory db down",
        ),
    )


def test_retry_resumes_the_failing_compensation_with_the_next_attempt() -> None:
    parked = given(*parked_on_release())
    assert parked.state.status is Status.NEEDS_ATTENTION
    resumed = parked.when(RETRY).then(
        m.CheckoutResumed(CID, RELEASE, "ops@shop", "inventory database restored"),
        step_started(RELEASE, LAST + 1),
        commands=(release_cmd(LAST + 1),),
    )
    assert resumed.state.status is Status.COMPENSATING
    assert resumed.state.attention is None
    # It ends as it would have without the outage: FAILED for the decline.
    given(*resumed.before_and_after()).when(released(LAST + 1)).then(
        released(LAST + 1),
        m.CheckoutFailed(CID, Step.AUTHORIZE_PAYMENT, "card_declined"),
    )


def test_a_resumed_compensation_gets_a_fresh_budget_before_parking_again() -> None:
    resumed = given(*parked_on_release(), RETRY_RESUMED, step_started(RELEASE, LAST + 1))
    at = T0 + 50
    # Backoff and attempt count start over: the first retry of the resumed task, not the 9th.
    first_backoff = backoff_ms(P, CID, RELEASE, 1)
    resumed.when(release_failed(LAST + 1), at).then(
        *failed(release_failed(LAST + 1)),
        m.StepRetryScheduled(CID, RELEASE, LAST + 2, at + first_backoff, "inventory db down"),
    )


RETRY_RESUMED = m.CheckoutResumed(CID, RELEASE, "ops@shop", "inventory database restored")


def test_a_parked_void_is_resumed_and_the_payment_voided() -> None:
    parked = given(
        *h_authorized(),
        *failed(m.InventoryCommitFailed(CID, 1, "reservation expired", False)),
        m.CompensationStarted(CID, Step.COMMIT_INVENTORY, "reservation expired"),
        step_started(VOID),
        *failed(void_failed(retryable=False)),
        m.CheckoutNeedsAttention(
            CID, VOID, f"void_payment of {PAYMENT} failed permanently: stripe 503"
        ),
    )
    resumed = parked.when(m.RetryCheckout(CID, "ops", "key rotated")).then(
        m.CheckoutResumed(CID, VOID, "ops", "key rotated"),
        step_started(VOID, 2),
        commands=(void_cmd(2),),
    )
    # Then the rest of the plan, as before parking: the stock is released.
    given(*resumed.before_and_after()).when(voided(2)).then(
        voided(2), step_started(RELEASE), commands=(release_cmd(),)
    )


def test_retry_of_a_saga_that_is_not_parked_is_refused_on_the_record() -> None:
    for history, status in ((h_completed(), "COMPLETED"), (h_priced(), "PENDING")):
        outcome = given(*history).when(RETRY)
        [rejected] = outcome.decision.events
        assert rejected == m.CommandRejected(
            CID, "RetryCheckout", f"checkout is {status}, not parked: nothing to retry"
        ), rejected
        assert outcome.decision.commands == ()
