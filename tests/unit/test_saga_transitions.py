"""decide/evolve of the checkout saga, transition by transition (given events, when a message,
then exactly this decision)."""

from __future__ import annotations

from saga_harness import (
    CID,
    MINUTE,
    PAYMENT,
    RESERVATION,
    SHIPPING,
    SUBTOTAL,
    T0,
    TAX,
    TOTAL,
    action_required,
    attempt_failed,
    authorize_cmd,
    authorized,
    cancel,
    capture_cmd,
    capture_failed,
    captured,
    checkout_started,
    commit_cmd,
    commit_failed,
    committed,
    declined,
    failed,
    given,
    h_authorized,
    h_committed,
    h_completed,
    h_priced,
    h_started,
    ok,
    quoted,
    refund_cmd,
    refund_request,
    refunded,
    release_cmd,
    release_failed,
    released,
    reserve_cmd,
    reserve_rejected,
    reserved,
    shipping_cmd,
    signal,
    signal_recorded,
    start,
    step_started,
    succeeded,
    tax_cmd,
    tax_failed,
    taxed,
    tick,
    timed_out,
    void_cmd,
    void_failed,
    voided,
)

from events import messages as m
from events.messages import PaymentSignal, Step
from saga.checkout import decide, fold, next_wakeup
from saga.ids import order_id_for
from saga.policy import DEFAULT_POLICY as P
from saga.policy import backoff_ms
from saga.state import Phase, Status, is_terminal

RESERVE, TAX_STEP, SHIP = Step.RESERVE_INVENTORY, Step.CALCULATE_TAX, Step.QUOTE_SHIPPING
AUTH, COMMIT, CAPTURE = Step.AUTHORIZE_PAYMENT, Step.COMMIT_INVENTORY, Step.CAPTURE_PAYMENT
RELEASE, VOID, REFUND = Step.RELEASE_INVENTORY, Step.VOID_PAYMENT, Step.REFUND_PAYMENT


def retry(step: Step, attempt: int, failed_at: int, reason: str) -> m.StepRetryScheduled:
    at = failed_at + backoff_ms(P, CID, step, attempt - 1)
    return m.StepRetryScheduled(CID, step, attempt, at, reason)


# --- start -----------------------------------------------------------------------------------


def test_start_runs_reserve_tax_and_shipping_in_parallel() -> None:
    given().when(start(), T0).then(
        checkout_started(),
        step_started(RESERVE),
        step_started(TAX_STEP),
        step_started(SHIP),
        commands=(reserve_cmd(), tax_cmd(), shipping_cmd()),
    )


def test_duplicate_start_and_ticks_change_nothing() -> None:
    # Inputs for an unknown checkout are refused, not ignored: tests/unit/test_saga_unknown.py.
    given(*h_started()).when(start()).then_nothing()
    given().when(tick(T0)).then_nothing()


# --- happy path ------------------------------------------------------------------------------


def test_authorizes_the_full_total_only_when_all_three_parallel_steps_are_done() -> None:
    given(*h_started()).when(reserved()).then(*ok(reserved()))
    given(*h_started(), *ok(reserved())).when(taxed()).then(*ok(taxed()))
    given(*h_started(), *ok(reserved()), *ok(taxed())).when(quoted()).then(
        *ok(quoted()), step_started(AUTH), commands=(authorize_cmd(),)
    )


def test_commits_inventory_before_capturing_payment() -> None:
    given(*h_priced()).when(authorized()).then(
        *ok(authorized()), step_started(COMMIT), commands=(commit_cmd(),)
    )
    given(*h_authorized()).when(committed()).then(
        *ok(committed()), step_started(CAPTURE), commands=(capture_cmd(),)
    )


def test_capture_completes_the_checkout_and_places_the_order() -> None:
    at = T0 + 5_000
    order_id = order_id_for(CID)
    outcome = (
        given(*h_committed())
        .when(captured(), at)
        .then(
            *ok(captured()),
            m.CheckoutCompleted(CID, order_id, SUBTOTAL, TAX, SHIPPING, TOTAL, "USD", at),
            public=(
                m.OrderPlaced(
                    order_id,
                    CID,
                    "tenant-1",
                    "cus-1",
                    "a@example.com",
                    checkout_started().items,
                    checkout_started().shipping_address,
                    SUBTOTAL,
                    TAX,
                    SHIPPING,
                    TOTAL,
                    "USD",
                    at,
                ),
            ),
        )
    )
    state = outcome.state
    assert state.status is Status.COMPLETED and is_terminal(state)
    assert state.captured_amount - state.refunded_amount == TOTAL
    assert next_wakeup(state) is None


def test_canned_history_is_exactly_what_decide_records() -> None:
    events: list[m.Message] = []
    state = None
    for message in (start(), reserved(), taxed(), quoted(), authorized(), committed(), captured()):
        decision = decide(state, message, T0)
        events.extend(decision.events)
        state = fold(events)  # type: ignore[arg-type]
    assert tuple(events) == h_completed()


# --- retries and deadlines -------------------------------------------------------------------


def test_retryable_failure_schedules_a_retry_with_backoff() -> None:
    at = T0 + 100
    given(*h_started()).when(tax_failed(), at).then(
        *failed(tax_failed()), retry(TAX_STEP, 2, at, "taxjar unavailable")
    )


def test_retry_is_issued_by_the_first_tick_at_or_after_retry_at() -> None:
    scheduled = retry(TAX_STEP, 2, T0, "taxjar unavailable")
    history = given(*h_started(), *failed(tax_failed()), scheduled)
    history.when(tick(scheduled.retry_at - 1)).then()
    history.when(tick(scheduled.retry_at)).then(
        step_started(TAX_STEP, 2, at=scheduled.retry_at), commands=(tax_cmd(2),)
    )


def test_tick_past_a_deadline_times_the_attempt_out_and_retries_it() -> None:
    at = T0 + P.timeout_for(RESERVE)
    given(*h_started(), *ok(taxed()), *ok(quoted())).when(tick(at)).then(
        *timed_out(RESERVE),
        retry(RESERVE, 2, at, "no reply before the deadline"),
    )


def test_a_superseded_attempt_settles_its_step_only_by_succeeding() -> None:
    history = given(*h_started(), tax_failed(), retry(TAX_STEP, 2, T0, "taxjar unavailable"))
    history.when(tax_failed(1)).then_nothing()  # the retry decides, not a repeated failure
    history.when(taxed(2)).then_nothing()  # attempt 2 was never sent
    # The quote the retry is after: taken, and the scheduled retry is not sent.
    late = history.when(taxed(1))
    late.then(*ok(taxed(1)))
    assert late.state.tax == TAX
    later = given(*late.before_and_after()).when(tick(T0 + 60_000))
    assert not any(isinstance(c, m.CalculateTax) for c in later.decision.commands)
    assert later.state.step(TAX_STEP).phase is Phase.SUCCEEDED
    assert later.state.step(TAX_STEP).attempt == 2  # the retry it had scheduled: never sent


def test_exhausted_retries_fail_the_checkout_after_compensating() -> None:
    last = P.attempts_for(TAX_STEP)
    history = given(*h_started(), *ok(reserved()), step_started(TAX_STEP, last))
    history.when(tax_failed(last)).then(
        *failed(tax_failed(last)),
        m.CompensationStarted(CID, TAX_STEP, f"taxjar unavailable (gave up after {last} attempts)"),
        step_started(RELEASE),
        commands=(release_cmd(),),
    )


def test_duplicated_reply_is_applied_once() -> None:
    given(*h_started(), *ok(reserved())).when(reserved()).then_nothing()


# --- failures and compensation ---------------------------------------------------------------


def test_out_of_stock_fails_without_any_payment_command() -> None:
    outcome = (
        given(*h_started(), *ok(taxed()))
        .when(reserve_rejected())
        .then(
            *failed(reserve_rejected()),
            m.CompensationStarted(CID, RESERVE, "out_of_stock"),
            m.CheckoutFailed(CID, RESERVE, "out_of_stock"),
        )
    )
    assert outcome.state.status is Status.FAILED
    given(*outcome.before_and_after()).when(quoted()).then_nothing()


def test_declined_payment_releases_the_stock_then_fails() -> None:
    outcome = (
        given(*h_priced())
        .when(declined())
        .then(
            *failed(declined()),
            m.CompensationStarted(CID, AUTH, "card_declined"),
            step_started(RELEASE),
            commands=(release_cmd(),),
        )
    )
    given(*outcome.before_and_after()).when(released()).then(
        released(), m.CheckoutFailed(CID, AUTH, "card_declined")
    )


def test_capture_failure_undoes_commit_then_authorization_in_reverse_order() -> None:
    outcome = (
        given(*h_committed())
        .when(capture_failed())
        .then(
            *failed(capture_failed()),
            m.CompensationStarted(CID, CAPTURE, "authorization expired"),
            step_started(RELEASE),
            commands=(release_cmd(),),
        )
    )
    after_release = given(*outcome.before_and_after()).when(released())
    after_release.then(released(), step_started(VOID), commands=(void_cmd(),))
    given(*after_release.before_and_after()).when(voided()).then(
        voided(), m.CheckoutFailed(CID, CAPTURE, "authorization expired")
    )


def test_commit_failure_voids_the_later_authorization_before_releasing_stock() -> None:
    outcome = (
        given(*h_authorized())
        .when(commit_failed())
        .then(
            *failed(commit_failed()),
            m.CompensationStarted(CID, COMMIT, "reservation expired"),
            step_started(VOID),
            commands=(void_cmd(),),
        )
    )
    given(*outcome.before_and_after()).when(voided()).then(
        voided(), step_started(RELEASE), commands=(release_cmd(),)
    )


def test_failed_compensation_is_retried_then_parked_for_an_operator() -> None:
    failing = given(
        *h_priced(),
        *failed(declined()),
        m.CompensationStarted(CID, AUTH, "card_declined"),
        step_started(RELEASE),
    )
    at = T0 + 50
    failing.when(release_failed(), at).then(
        *failed(release_failed()), retry(RELEASE, 2, at, "inventory db down")
    )
    last = P.compensation_attempts(RELEASE, CID)
    assert last > 8  # a window of retries, not the 8 attempts (about a minute) of before
    exhausted = given(
        *h_priced(),
        *failed(declined()),
        m.CompensationStarted(CID, AUTH, "card_declined"),
        *(
            e
            for n in range(1, last)
            for e in (
                step_started(RELEASE, n),
                *failed(release_failed(n)),
                retry(RELEASE, n + 1, T0, "inventory db down"),
            )
        ),
        step_started(RELEASE, last),
    )
    outcome = exhausted.when(release_failed(last)).then(
        *failed(release_failed(last)),
        m.CheckoutNeedsAttention(
            CID,
            RELEASE,
            f"release_inventory of {RESERVATION} failed after {last} attempts: inventory db down",
        ),
    )
    assert outcome.state.status is Status.NEEDS_ATTENTION
    assert next_wakeup(outcome.state) is None


def test_permanent_compensation_failure_parks_at_once() -> None:
    history = given(
        *h_authorized(),
        *failed(commit_failed()),
        m.CompensationStarted(CID, COMMIT, "reservation expired"),
        step_started(VOID),
    )
    history.when(void_failed(retryable=False)).then(
        *failed(void_failed(retryable=False)),
        m.CheckoutNeedsAttention(
            CID, VOID, f"void_payment of {PAYMENT} failed permanently: stripe 503"
        ),
    )


def test_compensation_timeout_is_retried() -> None:
    history = given(
        *h_priced(),
        *failed(declined()),
        m.CompensationStarted(CID, AUTH, "card_declined"),
        step_started(RELEASE),
    )
    at = T0 + P.timeout_for(RELEASE)
    history.when(tick(at)).then(
        *timed_out(RELEASE), retry(RELEASE, 2, at, "no reply before the deadline")
    )


# --- late and superseded successes -----------------------------------------------------------


def test_late_authorization_of_a_superseded_attempt_is_the_saga_s_payment() -> None:
    """Voiding it (the old rule) while the retry reconciles with the provider and adopts that
    very PaymentIntent left the saga capturing a voided authorization — or, when the capture
    won the race, money taken and no order (found by the chaos suite)."""
    for retrying in (
        given(*h_priced(), *timed_out(AUTH), retry(AUTH, 2, T0, "no reply before the deadline")),
        given(
            *h_priced(),
            *timed_out(AUTH),
            retry(AUTH, 2, T0, "no reply before the deadline"),
            step_started(AUTH, 2),
        ),
    ):
        outcome = retrying.when(authorized(1, pid="pi-late"))
        outcome.then(
            *ok(authorized(1, pid="pi-late")),
            step_started(COMMIT),
            commands=(commit_cmd(),),
        )
        assert outcome.state.payment_id == "pi-late"
        after = given(*outcome.before_and_after())
        after.when(authorized(1, pid="pi-late")).then_nothing()
        after.when(authorized(2, pid="pi-late")).then_nothing()  # the retry found the same one
        # A retry that made a second authorization after all: that one is the stray.
        after.when(authorized(2, pid="pi-second")).then(
            authorized(2, pid="pi-second"),
            step_started(VOID),
            commands=(void_cmd(pid="pi-second"),),
        )


def test_a_late_3ds_request_of_a_superseded_attempt_is_not_voided_under_the_retry() -> None:
    """Chaos run, co-chaos-dac462-00102: attempt 1's PaymentActionRequired arrived while
    attempt 2 was out; the saga voided that PaymentIntent, attempt 2 came back with the same
    one, the customer authenticated, and the capture met a voided payment (paid, no order)."""
    retrying = given(
        *h_priced(),
        *timed_out(AUTH),
        retry(AUTH, 2, T0, "no reply before the deadline"),
        step_started(AUTH, 2),
    )
    late = retrying.when(action_required(1, pid="pi-3ds"))
    late.then(action_required(1, pid="pi-3ds"))  # recorded; nothing voided while attempt 2 is out
    adopted = given(*late.before_and_after()).when(action_required(2, pid="pi-3ds"))
    assert adopted.state.payment_id == "pi-3ds"
    assert not any(isinstance(c, m.VoidPayment) for c in adopted.decision.commands)
    # Had attempt 2 come back with another PaymentIntent, the first is a stray: voided now.
    other = given(*late.before_and_after()).when(action_required(2, pid="pi-other"))
    assert other.state.payment_id == "pi-other"
    assert void_cmd(pid="pi-3ds") in other.decision.commands


def test_late_capture_of_a_superseded_attempt_completes_the_order() -> None:
    """Under a slow provider every capture attempt outlived its deadline while each one had
    taken the money: the saga kept retrying, then gave up and refunded (the livelock)."""
    retrying = given(
        *h_committed(),
        *timed_out(CAPTURE),
        retry(CAPTURE, 2, T0, "no reply before the deadline"),
        step_started(CAPTURE, 2),
    )
    outcome = retrying.when(captured(1))
    assert outcome.state.status is Status.COMPLETED
    assert outcome.decision.events[:2] == ok(captured(1))
    assert any(isinstance(e, m.CheckoutCompleted) for e in outcome.decision.events)
    assert not outcome.decision.commands  # nothing refunded, nothing captured again
    given(*outcome.before_and_after()).when(captured(2)).then_nothing()
    # A late capture of some other payment is not this order's money.
    stray = retrying.when(captured(1, pid="pi-other"))
    assert stray.state.status is not Status.COMPLETED


def test_a_late_reservation_is_the_one_the_retry_would_answer_with() -> None:
    """The inventory adapter keeps one active reservation per checkout, so the retry of a
    timed-out reservation answers with the same one: releasing the late reply's reservation
    at once would free the stock the saga is about to commit (found by the restart test)."""
    retrying = given(
        *h_started(),
        *timed_out(RESERVE),
        retry(RESERVE, 2, T0, "no reply before the deadline"),
        step_started(RESERVE, 2),
    )
    late = retrying.when(reserved(1))
    late.then(*ok(reserved(1)))  # the retry's own answer, taken as soon as it comes
    assert late.state.reservation_id == RESERVATION
    after = given(*late.before_and_after())
    after.when(reserved(2)).then_nothing()
    # Had the retry brought another reservation, that one is the stray and goes back.
    after.when(reserved(2, rid="res-2")).then(
        reserved(2, rid="res-2"), step_started(RELEASE), commands=(release_cmd(rid="res-2"),)
    )


def test_late_reservation_of_a_superseded_attempt_is_released() -> None:
    history = given(
        *h_started(),
        *timed_out(RESERVE),
        retry(RESERVE, 2, T0, "no reply before the deadline"),
        step_started(RESERVE, 2),
        *ok(reserved(2, rid="res-2")),
    )
    outcome = history.when(reserved(1, rid="res-old")).then(
        reserved(1, rid="res-old"), step_started(RELEASE), commands=(release_cmd(rid="res-old"),)
    )
    assert outcome.state.reservation_id == "res-2"


def test_reply_after_the_saga_failed_never_reopens_it_but_its_stock_is_released() -> None:
    history = given(
        *h_started(),
        reserve_rejected(),
        m.CompensationStarted(CID, RESERVE, "out_of_stock"),
        m.CheckoutFailed(CID, RESERVE, "out_of_stock"),
    )
    outcome = history.when(taxed()).then_nothing()
    outcome = history.when(reserved(1, rid="res-ghost")).then(
        reserved(1, rid="res-ghost"),
        step_started(RELEASE),
        commands=(release_cmd(rid="res-ghost"),),
    )
    assert outcome.state.status is Status.FAILED


# --- 3-D Secure ------------------------------------------------------------------------------


def test_payment_action_required_waits_for_the_customer() -> None:
    at = T0 + 1_000
    outcome = (
        given(*h_priced())
        .when(action_required(), at)
        .then(
            action_required(),
            m.PaymentActionAwaited(CID, 1, PAYMENT, at + P.payment_action_wait_ms),
        )
    )
    assert outcome.state.status is Status.AWAITING_PAYMENT_ACTION
    assert next_wakeup(outcome.state) == at + P.payment_action_wait_ms


AWAITING = (
    *h_priced(),
    action_required(),
    m.PaymentActionAwaited(CID, 1, PAYMENT, T0 + P.payment_action_wait_ms),
)


def test_completed_action_continues_as_an_authorization() -> None:
    given(*AWAITING).when(signal(PaymentSignal.AUTHORIZED)).then(
        signal_recorded(PaymentSignal.AUTHORIZED),
        succeeded(AUTH, reference=PAYMENT),
        step_started(COMMIT),
        commands=(commit_cmd(),),
    )
    given(
        *AWAITING, signal_recorded(PaymentSignal.AUTHORIZED), succeeded(AUTH, reference=PAYMENT)
    ).when(signal(PaymentSignal.AUTHORIZED)).then_nothing()


def test_failed_action_voids_the_payment_and_fails() -> None:
    reason = "payment action failed (provider event evt-1)"
    given(*AWAITING).when(signal(PaymentSignal.FAILED)).then(
        signal_recorded(PaymentSignal.FAILED),
        attempt_failed(AUTH, reason, reference=PAYMENT),
        m.CompensationStarted(CID, AUTH, reason),
        step_started(VOID),
        commands=(void_cmd(),),
    )


def test_action_not_completed_in_time_voids_the_payment() -> None:
    at = T0 + P.payment_action_wait_ms
    given(*AWAITING).when(tick(at - 1)).then()
    given(*AWAITING).when(tick(at)).then(
        *timed_out(AUTH, retryable=False),
        m.CompensationStarted(CID, AUTH, "payment action not completed in time"),
        step_started(VOID, at=at),
        commands=(void_cmd(),),
    )


def test_webhook_before_the_action_required_reply_counts_as_authorized() -> None:
    history = given(*h_priced(), signal_recorded(PaymentSignal.AUTHORIZED))
    history.when(action_required()).then(
        action_required(),
        succeeded(AUTH, reference=PAYMENT),
        step_started(COMMIT),
        commands=(commit_cmd(),),
    )


# --- reservation TTL -------------------------------------------------------------------------


def test_reservation_expiring_before_capture_fails_the_checkout() -> None:
    short = T0 + 5 * MINUTE
    history = given(
        *h_started(),
        *ok(reserved(expires_at=short)),
        *ok(taxed()),
        *ok(quoted()),
        step_started(AUTH),
        action_required(),
        m.PaymentActionAwaited(CID, 1, PAYMENT, T0 + P.payment_action_wait_ms),
    )
    history.when(tick(short)).then(
        m.CompensationStarted(CID, RESERVE, "reservation expired before capture"),
        step_started(VOID, at=short),
        commands=(void_cmd(),),
    )


def test_authorization_after_the_reservation_expired_is_not_committed() -> None:
    short = T0 + 5 * MINUTE
    history = given(
        *h_started(),
        *ok(reserved(expires_at=short)),
        *ok(taxed()),
        *ok(quoted()),
        step_started(AUTH),
    )
    history.when(authorized(), short).then(
        *ok(authorized()),
        m.CompensationStarted(CID, RESERVE, "reservation expired before capture"),
        step_started(VOID, at=short),
        commands=(void_cmd(),),
    )


# --- cancel ----------------------------------------------------------------------------------


def test_cancel_with_nothing_held_cancels_at_once_and_late_stock_is_released() -> None:
    outcome = (
        given(*h_started())
        .when(cancel())
        .then(
            m.CompensationStarted(CID, None, "changed my mind"),
            m.CheckoutCancelled(CID, "changed my mind"),
        )
    )
    given(*outcome.before_and_after()).when(reserved()).then(
        reserved(), step_started(RELEASE), commands=(release_cmd(),)
    )


def test_cancel_after_authorization_voids_then_releases() -> None:
    outcome = (
        given(*h_authorized())
        .when(cancel())
        .then(
            m.CompensationStarted(CID, None, "changed my mind"),
            step_started(VOID),
            commands=(void_cmd(),),
        )
    )
    after_void = given(*outcome.before_and_after()).when(voided())
    after_void.then(voided(), step_started(RELEASE), commands=(release_cmd(),))
    given(*after_void.before_and_after()).when(released()).then(
        released(), m.CheckoutCancelled(CID, "changed my mind")
    )


def test_cancel_is_rejected_once_capture_started_or_after_completion() -> None:
    given(*h_committed()).when(cancel()).then(
        m.CancellationRejected(CID, "payment capture already in progress; refund the order instead")
    )
    given(*h_completed()).when(cancel()).then(
        m.CancellationRejected(CID, "checkout is already COMPLETED")
    )
    given(*h_started(), m.CompensationStarted(CID, None, "x"), m.CheckoutCancelled(CID, "x")).when(
        cancel()
    ).then(m.CancellationRejected(CID, "checkout is already CANCELLED"))


# --- refunds ---------------------------------------------------------------------------------


def test_refund_of_a_completed_order() -> None:
    outcome = (
        given(*h_completed())
        .when(refund_request(1_000))
        .then(
            m.RefundRequested(CID, "rr-1", 1_000, "USD", "damaged"),
            step_started(REFUND),
            commands=(refund_cmd(amount=1_000, request="rr-1"),),
        )
    )
    at = T0 + 9
    done = (
        given(*outcome.before_and_after())
        .when(refunded(amount=1_000), at)
        .then(
            refunded(amount=1_000),
            public=(m.OrderRefunded(order_id_for(CID), CID, "re-1", 1_000, "USD", at),),
        )
    )
    assert done.state.refundable_amount == TOTAL - 1_000
    given(*done.before_and_after()).when(refunded(amount=1_000), at).then_nothing()


def test_refund_above_what_is_left_is_rejected_counting_pending_refunds() -> None:
    pending = given(
        *h_completed(),
        m.RefundRequested(CID, "rr-1", 2_000, "USD", "damaged"),
        step_started(REFUND),
    )
    pending.when(refund_request(TOTAL - 1_999, rid="rr-2")).then(
        m.RefundRejected(
            CID, "rr-2", f"amount {TOTAL - 1_999} exceeds refundable {TOTAL - 2_000}", TOTAL - 2_000
        )
    )
    pending.when(refund_request(500, rid="rr-1")).then_nothing()  # redelivered request


def test_refund_of_an_order_not_completed_is_rejected() -> None:
    given(*h_committed()).when(refund_request(100)).then(
        m.RefundRejected(
            CID, "rr-1", "checkout is PENDING, only a completed order can be refunded", 0
        )
    )


# --- policy ----------------------------------------------------------------------------------


def test_backoff_is_deterministic_exponential_and_capped() -> None:
    delays = [backoff_ms(P, CID, TAX_STEP, n) for n in range(1, 12)]
    assert delays == [backoff_ms(P, CID, TAX_STEP, n) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(P.backoff_cap_ms, P.backoff_base_ms * 2 ** (n - 1))
        assert ceiling // 2 <= delay <= ceiling


def test_next_wakeup_is_the_earliest_deadline() -> None:
    state = fold(h_started())
    assert next_wakeup(state) == T0 + P.timeout_for(RESERVE)
    assert next_wakeup(None) is None
