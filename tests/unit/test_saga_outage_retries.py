"""A PSP outage costs no checkout (issue 13 item 2): authorization is retried for its retry window,
capture until it succeeds; only a definite answer fails either step. An inventory store that is
away for a while (a PostgreSQL restart) costs none either: reserving is retried by time."""

from __future__ import annotations

import dataclasses

import pytest
from saga_harness import (
    CID,
    T0,
    authorize_cmd,
    authorized,
    capture_cmd,
    captured,
    declined,
    h_committed,
    h_priced,
    h_started,
    quoted,
    reserve_cmd,
    reserve_rejected,
    reserved,
    taxed,
    tick,
)

from events import messages as m
from events.messages import Step
from saga.checkout import decide, fold
from saga.policy import DEFAULT_POLICY as P
from saga.policy import MINUTE_MS, Policy, backoff_ms
from saga.state import SagaState, Status

AUTH, CAPTURE = Step.AUTHORIZE_PAYMENT, Step.CAPTURE_PAYMENT
BREAKER_OPEN = "stripe circuit breaker open"


def _run(state: SagaState, message: m.Message, now: int) -> tuple[SagaState, m.Message | None]:
    """Decide one input and fold its events; returns the new state and its only command."""
    decision = decide(state, message, now)
    assert decision.state is not None, message
    assert len(decision.commands) <= 1
    return decision.state, (decision.commands[0] if decision.commands else None)


def _fail_authorize_until(outage_ms: int) -> tuple[SagaState, int, int]:
    """Every authorization attempt answers "breaker open" at once while the outage lasts.
    Returns the state, the attempt now in flight and the time."""
    state, now, attempt = fold(h_priced()), T0, 1
    assert state is not None
    while now < T0 + outage_ms:
        reply = m.PaymentDeclined(CID, attempt, "stripe", BREAKER_OPEN, None, True)
        state, command = _run(state, reply, now)
        assert command is None
        retry = state.step(AUTH)
        assert retry.retry_at is not None, f"gave up at attempt {attempt}: {state.failure}"
        now = retry.retry_at
        state, command = _run(state, tick(now), now)
        attempt += 1
        assert command == authorize_cmd(attempt)  # a new key per attempt, reconciled first
    return state, attempt, now


def test_authorization_outlasts_an_outage_of_a_minute_and_completes_after_it() -> None:
    state, attempt, now = _fail_authorize_until(60_000)
    assert attempt > P.attempts_for(AUTH)  # more than the old count allowed
    assert state.status is Status.PENDING
    state, command = _run(state, authorized(attempt), now)
    assert isinstance(command, m.CommitInventory)


def test_authorization_gives_up_only_after_its_window_of_waits() -> None:
    state, now, attempt = fold(h_priced()), T0, 1
    assert state is not None
    waited = 0
    while True:
        reply = m.PaymentDeclined(CID, attempt, "stripe", BREAKER_OPEN, None, True)
        state, _ = _run(state, reply, now)
        retry_at = state.step(AUTH).retry_at
        if retry_at is None:
            break
        waited += retry_at - now
        now = retry_at
        state, _ = _run(state, tick(now), now)
        attempt += 1
    window = P.retry_window_ms[AUTH]
    # Kept retrying for at least the window minus one capped backoff, never far beyond it.
    assert window - P.backoff_cap_ms <= waited <= window
    assert state.status is Status.COMPENSATING
    assert state.failure is not None
    assert state.failure.reason == f"{BREAKER_OPEN} (gave up after {attempt} attempts)"


def test_a_definite_decline_fails_authorization_at_once() -> None:
    state = fold(h_priced())
    assert state is not None
    state, command = _run(state, declined(1, retryable=False), T0)
    assert state.status is Status.COMPENSATING
    assert isinstance(command, m.ReleaseInventory)


def test_capture_is_retried_until_it_succeeds() -> None:
    state, now = fold(h_committed()), T0
    assert state is not None
    for attempt in range(1, 41):  # 40 failures: ~17 minutes of waits at the 30 s cap
        reply = m.PaymentCaptureFailed(CID, attempt, "stripe capture: APIError (500)", True)
        state, command = _run(state, reply, now)
        retry_at = state.step(CAPTURE).retry_at
        assert retry_at is not None, f"capture gave up at attempt {attempt}"
        assert retry_at - now <= P.backoff_cap_ms
        assert retry_at - now == backoff_ms(P, CID, CAPTURE, attempt)
        now = retry_at
        state, command = _run(state, tick(now), now)
        assert command == capture_cmd(attempt + 1)
    state, _ = _run(state, captured(41), now)
    assert state.status is Status.COMPLETED


def test_a_definite_capture_failure_still_compensates() -> None:
    state = fold(h_committed())
    assert state is not None
    state, command = _run(state, m.PaymentCaptureFailed(CID, 1, "expired", False), T0)
    assert state.status is Status.COMPENSATING
    assert isinstance(command, m.ReleaseInventory)  # most recent first; the void follows


def test_a_window_that_would_outlive_the_reservation_is_refused() -> None:
    windows = {AUTH: P.reservation_ttl_ms - P.payment_action_wait_ms}
    with pytest.raises(ValueError, match="reservation TTL"):
        dataclasses.replace(P, retry_window_ms=windows)
    Policy(retry_window_ms={AUTH: 4 * MINUTE_MS})  # inside it: accepted


def test_a_step_without_a_window_keeps_its_attempt_count() -> None:
    policy = Policy(retry_window_ms={})
    assert policy.may_retry(AUTH, CID, 1)
    assert not policy.may_retry(AUTH, CID, policy.attempts_for(AUTH))


RESERVE = Step.RESERVE_INVENTORY
STORE_AWAY = "inventory_unavailable: circuit open"


def _priced_but_unreserved() -> SagaState:
    state = fold(h_started())
    assert state is not None
    state, _ = _run(state, taxed(), T0)
    state, _ = _run(state, quoted(), T0)
    return state


def test_a_reservation_outlasts_its_store_being_away_for_45_seconds() -> None:
    state, now, attempt = _priced_but_unreserved(), T0, 1
    while now < T0 + 45_000:
        state, command = _run(
            state, reserve_rejected(attempt, retryable=True, reason=STORE_AWAY), now
        )
        retry_at = state.step(RESERVE).retry_at
        assert retry_at is not None, f"gave up at attempt {attempt}: {state.failure}"
        now = retry_at
        state, command = _run(state, tick(now), now)
        attempt += 1
        assert command == reserve_cmd(attempt, at=now)
    assert attempt > P.attempts_for(RESERVE)  # more than the 3 counted attempts of before
    state, command = _run(state, reserved(attempt), now)
    assert isinstance(command, m.AuthorizePayment)


def test_a_reservation_gives_up_after_its_window_and_out_of_stock_at_once() -> None:
    assert not P.may_retry(RESERVE, CID, 20)
    state = _priced_but_unreserved()
    state, _ = _run(state, reserve_rejected(1), T0)  # out of stock: definite
    assert state.status is Status.FAILED
