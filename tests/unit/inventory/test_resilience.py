"""adapters/resilience.py: composition of retry, breaker and timeout."""

from __future__ import annotations

import threading

import pytest

from adapters.resilience import (
    CallTimeout,
    CircuitBreakerError,
    call_with_resilience,
    call_with_timeout,
    make_breaker,
)


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


def _flaky(failures: int, exc: type[Exception] = Transient) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise exc("boom")
        return "ok"

    return calls, fn


def test_retries_transient_then_succeeds() -> None:
    calls, fn = _flaky(2)
    waits: list[float] = []
    result = call_with_resilience(
        fn,  # type: ignore[arg-type]
        breaker=make_breaker("t1"),
        timeout_s=None,
        retries=3,
        retry_on=(Transient,),
        sleep=waits.append,
    )
    assert result == "ok"
    assert len(calls) == 3
    assert len(waits) == 2 and all(0 <= w <= 2.0 for w in waits)


def test_bounded_retries_reraise_last_error() -> None:
    calls, fn = _flaky(10)
    with pytest.raises(Transient):
        call_with_resilience(
            fn,  # type: ignore[arg-type]
            breaker=make_breaker("t2", fail_max=100),
            timeout_s=None,
            retries=2,
            retry_on=(Transient,),
            sleep=lambda _: None,
        )
    assert len(calls) == 3


def test_permanent_error_is_not_retried() -> None:
    calls, fn = _flaky(10, Permanent)
    with pytest.raises(Permanent):
        call_with_resilience(
            fn,  # type: ignore[arg-type]
            breaker=make_breaker("t3"),
            timeout_s=None,
            retries=5,
            retry_on=(Transient,),
            sleep=lambda _: None,
        )
    assert len(calls) == 1


def test_open_breaker_fails_fast_without_calling() -> None:
    breaker = make_breaker("t4", fail_max=2)
    calls, fn = _flaky(100)
    with pytest.raises(CircuitBreakerError):
        call_with_resilience(
            fn,  # type: ignore[arg-type]
            breaker=breaker,
            timeout_s=None,
            retries=10,
            retry_on=(Transient,),
            sleep=lambda _: None,
        )
    assert len(calls) == 2  # tripped on the 2nd failure; the remaining retries were skipped
    with pytest.raises(CircuitBreakerError):
        call_with_resilience(
            fn,  # type: ignore[arg-type]
            breaker=breaker,
            timeout_s=None,
            retries=3,
            retry_on=(Transient,),
            sleep=lambda _: None,
        )
    assert len(calls) == 2


def test_excluded_errors_do_not_trip_breaker() -> None:
    breaker = make_breaker("t5", fail_max=1, exclude=[Permanent])
    _, fn = _flaky(10, Permanent)
    for _ in range(3):
        with pytest.raises(Permanent):
            call_with_resilience(
                fn,  # type: ignore[arg-type]
                breaker=breaker,
                timeout_s=None,
                retries=0,
                retry_on=(Transient,),
            )
    assert breaker.current_state == "closed"


def test_timeout_raises_call_timeout_and_is_retryable_as_timeout_error() -> None:
    release = threading.Event()
    calls: list[int] = []

    def hang() -> str:
        calls.append(1)
        release.wait(5)
        return "late"

    try:
        with pytest.raises(CallTimeout):
            call_with_resilience(
                hang,
                breaker=make_breaker("t6", fail_max=100),
                timeout_s=0.05,
                retries=1,
                retry_on=(TimeoutError,),
                sleep=lambda _: None,
            )
        assert len(calls) == 2
    finally:
        release.set()


def test_call_with_timeout_propagates_result_and_error() -> None:
    assert call_with_timeout(lambda: 42, 1.0) == 42

    def bad() -> int:
        raise Permanent("x")

    with pytest.raises(Permanent):
        call_with_timeout(bad, 1.0)
