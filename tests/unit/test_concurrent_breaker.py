"""adapters/resilience.ConcurrentBreaker: calls through one breaker run side by side, and the
breaker still opens, fails fast, lets one trial call through half-open, and closes."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pybreaker
import pytest

from adapters.resilience import CircuitBreakerError, make_breaker


class Down(Exception):
    pass


def test_calls_through_one_breaker_run_concurrently() -> None:
    """pybreaker's own call holds its lock around the call: the second caller would wait for
    the first, the barrier would never fill and both would fail."""
    breaker = make_breaker("concurrent")
    together = threading.Barrier(4, timeout=5)

    def call() -> int:
        return breaker.call(together.wait)

    with ThreadPoolExecutor(4) as pool:
        arrivals = sorted(pool.map(lambda _: call(), range(4)))
    assert arrivals == [0, 1, 2, 3]
    assert breaker.current_state == pybreaker.STATE_CLOSED


def test_the_plain_pybreaker_serialises_what_this_one_runs_side_by_side() -> None:
    """The premise, stated: with pybreaker's breaker the same barrier cannot fill."""
    plain = pybreaker.CircuitBreaker(fail_max=100)
    together = threading.Barrier(2, timeout=0.5)
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: _outcome(lambda: plain.call(together.wait)), range(2)))
    assert outcomes.count("BrokenBarrierError") >= 1


def _outcome(fn: object) -> str:
    try:
        fn()  # type: ignore[operator]
    except Exception as e:  # the outcome is what is compared
        return type(e).__name__
    return "ok"


def test_concurrent_failures_open_it_and_then_it_fails_fast() -> None:
    breaker = make_breaker("opens", fail_max=3, reset_timeout_s=60)
    together = threading.Barrier(3, timeout=5)

    def failing() -> None:
        together.wait()
        raise Down("503")

    with ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(lambda _: _outcome(lambda: breaker.call(failing)), range(3)))
    # The failure that reached fail_max opened it (CircuitBreakerError); the others re-raised.
    assert sorted(outcomes) == ["CircuitBreakerError", "Down", "Down"]
    assert breaker.current_state == pybreaker.STATE_OPEN
    ran: list[int] = []
    with pytest.raises(CircuitBreakerError):
        breaker.call(lambda: ran.append(1))
    assert ran == []  # never sent: the provider is known down


def test_half_open_lets_exactly_one_trial_through_and_its_success_closes() -> None:
    breaker = make_breaker("trial", fail_max=1, reset_timeout_s=0.05)
    with pytest.raises(CircuitBreakerError):
        breaker.call(_raise_down)
    deadline = time.monotonic() + 5
    trial_started, release = threading.Event(), threading.Event()

    def trial() -> str:
        trial_started.set()
        assert release.wait(5)
        return "trial ok"

    with ThreadPoolExecutor(1) as pool:
        while True:  # the reset timeout passes, then the first call becomes the trial
            first = pool.submit(breaker.call, trial)
            while not trial_started.is_set() and not first.done():
                time.sleep(0.005)
            if trial_started.is_set():
                break
            assert isinstance(first.exception(), CircuitBreakerError)
            assert time.monotonic() < deadline, "the breaker never let a trial call through"
        assert breaker.current_state == pybreaker.STATE_HALF_OPEN
        ran: list[int] = []
        with pytest.raises(CircuitBreakerError, match="trial call is in flight"):
            breaker.call(lambda: ran.append(1))
        assert ran == []
        release.set()
        assert first.result(5) == "trial ok"
    assert breaker.current_state == pybreaker.STATE_CLOSED
    assert breaker.call(lambda: "after") == "after"


def test_a_failed_trial_opens_it_again() -> None:
    breaker = make_breaker("trial-fails", fail_max=1, reset_timeout_s=0.05)
    with pytest.raises(CircuitBreakerError):
        breaker.call(_raise_down)
    deadline = time.monotonic() + 5
    while True:
        try:
            breaker.call(_raise_down)
        except CircuitBreakerError as e:
            if "Trial call failed" in str(e):
                break
        assert time.monotonic() < deadline, "the breaker never let a trial call through"
    assert breaker.current_state == pybreaker.STATE_OPEN


def test_business_outcomes_pass_through_without_counting() -> None:
    class Declined(Exception):
        pass

    breaker = make_breaker("business", fail_max=1, exclude=[Declined])
    for _ in range(3):
        with pytest.raises(Declined):
            breaker.call(_raise(Declined("card declined")))
    assert breaker.current_state == pybreaker.STATE_CLOSED


def _raise_down() -> None:
    raise Down("503")


def _raise(error: Exception) -> object:
    def fn() -> None:
        raise error

    return fn
