"""adapters/resilience.ConcurrentBreaker: calls through one breaker run side by side, and the
breaker still opens, fails fast, lets one trial call through half-open, and closes."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pybreaker
import pytest

from adapters.resilience import CircuitBreakerError, ConcurrentBreaker, make_breaker


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


# --- the failure-rate rule -----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _windowed(clock: Clock, *, fail_max: int = 5, window_s: float = 10.0) -> ConcurrentBreaker:
    return ConcurrentBreaker(
        fail_max=fail_max, reset_timeout=60, failure_rate=0.5, window_s=window_s, clock=clock
    )


def test_a_burst_of_failures_among_many_answers_does_not_open_it() -> None:
    """pybreaker's rule opens on fail_max consecutive failures: with 128 calls in flight and a
    fifth of them failing, that happened every few seconds (docs/chaos.md finding 9)."""
    clock = Clock()
    breaker = _windowed(clock)
    for _ in range(20):
        breaker.call(lambda: "ok")
    for _ in range(10):  # twice fail_max in a row, but a third of the window
        with pytest.raises(Down):
            breaker.call(_raise_down)
    assert breaker.current_state == pybreaker.STATE_CLOSED
    # A fifth failing for a long time, the window sliding: it stays closed throughout.
    for i in range(1_000):
        clock.now += 0.05
        if i % 5 == 0:
            with pytest.raises(Down):
                breaker.call(_raise_down)
        else:
            breaker.call(lambda: "ok")
    assert breaker.current_state == pybreaker.STATE_CLOSED


def test_a_provider_that_goes_down_opens_it_once_failures_are_half_the_window() -> None:
    clock = Clock()
    breaker = _windowed(clock)
    for _ in range(20):
        breaker.call(lambda: "ok")
    outcomes = []
    for _ in range(40):
        clock.now += 0.01
        outcomes.append(_outcome(lambda: breaker.call(_raise_down)))
        if outcomes[-1] != "Down":
            break
    # The 20th failure makes failures half of the 40 outcomes: that one opens it.
    assert outcomes == ["Down"] * 19 + ["CircuitBreakerError"]
    assert breaker.current_state == pybreaker.STATE_OPEN


def test_answers_older_than_the_window_do_not_hold_it_closed() -> None:
    clock = Clock()
    breaker = _windowed(clock, window_s=10.0)
    for _ in range(100):
        breaker.call(lambda: "ok")
    clock.now += 10.5  # the hundred successes leave the window
    outcomes = [_outcome(lambda: breaker.call(_raise_down)) for _ in range(5)]
    assert outcomes == ["Down"] * 4 + ["CircuitBreakerError"]


def test_fewer_than_fail_max_failures_never_open_it() -> None:
    clock = Clock()
    breaker = _windowed(clock, fail_max=5)
    for _ in range(4):  # every call in the window failed, but only four
        with pytest.raises(Down):
            breaker.call(_raise_down)
    assert breaker.current_state == pybreaker.STATE_CLOSED


def test_a_late_failure_of_a_call_admitted_before_it_opened_does_not_decide_the_trial() -> None:
    breaker = make_breaker("late", fail_max=1, reset_timeout_s=0.05)
    admitted, end_it = threading.Event(), threading.Event()

    def hung() -> None:
        admitted.set()
        assert end_it.wait(5)
        raise Down("timed out at last")

    with ThreadPoolExecutor(1) as pool:
        late = pool.submit(breaker.call, hung)
        assert admitted.wait(5)
        with pytest.raises(CircuitBreakerError):
            breaker.call(_raise_down)  # opens it while `hung` is in flight
        deadline = time.monotonic() + 5
        trial_started, release = threading.Event(), threading.Event()

        def trial() -> str:
            trial_started.set()
            assert release.wait(5)
            return "recovered"

        with ThreadPoolExecutor(1) as trials:
            while True:
                first = trials.submit(breaker.call, trial)
                while not trial_started.is_set() and not first.done():
                    time.sleep(0.005)
                if trial_started.is_set():
                    break
                assert time.monotonic() < deadline, "the breaker never let a trial through"
            end_it.set()  # the old call fails while the trial is in flight
            assert isinstance(late.exception(5), Down)
            assert breaker.current_state == pybreaker.STATE_HALF_OPEN
            release.set()
            assert first.result(5) == "recovered"
    assert breaker.current_state == pybreaker.STATE_CLOSED
