"""Breaker + timeout + bounded retries around one call to an outside provider.

Shared by every adapter. Deliberately tiny: tenacity does the retrying and backoff, pybreaker
does the circuit breaking; this module only fixes the order they are composed in and the
defaults, so every adapter fails the same way.

Composition (outermost first)::

    retry (tenacity, jittered exponential backoff, bounded)
      -> breaker (pybreaker; an open breaker fails fast and is never retried)
        -> timeout (per attempt)
          -> fn()

Retrying outside the breaker means every failed attempt counts towards tripping it, and once it
is open the remaining attempts are skipped instead of hammering a provider that is down.

Stable API (other adapters import it): `call_with_resilience`, `call_with_timeout`,
`make_breaker`, `CallTimeout`, `CircuitBreakerError`, `on_new_breaker`.

`on_new_breaker(hook)` lets the composition root observe every breaker (existing and future)
without this module knowing what observes it: infra/breaker_states.py publishes their states to
Redis for `saga status` and the console.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker
from pybreaker import CircuitBreakerError
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

__all__ = [
    "CallTimeout",
    "CircuitBreakerError",
    "call_with_resilience",
    "call_with_timeout",
    "make_breaker",
    "on_new_breaker",
]

T = TypeVar("T")


class CallTimeout(TimeoutError):
    """One attempt took longer than its budget. A TimeoutError, so `retry_on=(TimeoutError,)`
    covers it as well as the client libraries' own timeouts."""


def make_breaker(
    name: str,
    *,
    fail_max: int = 5,
    failure_rate: float = 0.5,
    window_s: float = 10.0,
    reset_timeout_s: float = 30.0,
    exclude: Iterable[type[BaseException]] = (),
) -> pybreaker.CircuitBreaker:
    """A breaker for one provider (one per provider, shared by all calls to it).

    It opens when, among the calls that ended in the last `window_s`, at least `fail_max`
    failed and they are at least `failure_rate` of them; it stays open `reset_timeout_s`.
    A provider that is down fails nearly every call and opens it within a few failures; one
    that fails a fifth of its calls under load (5xx, 429s) does not, because the saga's
    retries serve those checkouts better than failing every call for 30 s. Counting
    consecutive failures instead (pybreaker's rule) opened the Stripe breaker every few
    seconds with 128 calls in flight and 20 % faults (docs/chaos.md finding 9).

    `exclude` lists exceptions that are business outcomes, not provider failures (a 400, an
    out-of-stock): they count as answered calls, not towards opening the breaker.
    """
    if not 0.0 < failure_rate <= 1.0:
        raise ValueError("failure_rate must be in (0, 1]")
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    breaker = ConcurrentBreaker(
        fail_max=fail_max,
        reset_timeout=reset_timeout_s,
        exclude=list(exclude),
        name=name,
        failure_rate=failure_rate,
        window_s=window_s,
    )
    with _hooks_lock:
        _breakers.add(breaker)
        hooks = list(_hooks)
    for hook in hooks:
        hook(breaker)
    return breaker


class ConcurrentBreaker(pybreaker.CircuitBreaker):
    """pybreaker's breaker, with calls through it side by side and a failure-rate rule.

    `pybreaker.CircuitBreaker.call` holds the breaker's lock for the whole guarded call
    (danielfm/pybreaker#55, open): every call to a provider ran one at a time per process, so a
    payment worker's 32 lanes made one Stripe request at a time and one hung request stalled
    them all (the long chaos run's authorizations timed out behind it, docs/chaos.md finding 7).
    Here the lock covers only the decisions: whether a call may go (open: fail fast; half-open:
    exactly one trial call, the others fail fast as if open) and what its outcome does.

    Closed, the outcomes of the last `window_s` decide (see make_breaker). Half-open, only the
    trial's outcome does: a call admitted before the breaker opened may end later (a hung
    request timing out), and its failure says nothing about the provider now."""

    def __init__(
        self,
        *args: Any,
        failure_rate: float = 0.5,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock
        self._trial_in_flight = False
        self._failure_rate = failure_rate
        self._window_s = window_s
        self._outcomes: deque[tuple[float, bool]] = deque()  # (monotonic end, failed)
        self._failures_in_window = 0

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            trial = self._admit()
            for listener in self.listeners:
                listener.before_call(self, func, *args, **kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as e:
            with self._lock:
                opened = self._ended(trial, failure=e)
            if opened:
                raise CircuitBreakerError(opened) from e
            raise
        with self._lock:
            self._ended(trial, failure=None)
        return result

    def _ended(self, trial: bool, failure: BaseException | None) -> str | None:
        """Account for one call's outcome (under the lock); why it opened the breaker, if it
        did."""
        failed = failure is not None and self.is_system_error(failure)
        for listener in self.listeners:
            if failure is not None and failed:
                listener.failure(self, failure)
            else:
                listener.success(self)
        if trial:
            self._trial_in_flight = False
            if failed:
                self.open()
                return "Trial call failed, circuit breaker opened"
            self._reset_window()
            self.close()
            return None
        if self.state.name != pybreaker.STATE_CLOSED:
            return None
        if failed:
            self._inc_counter()  # pybreaker's counter: what `saga status` shows as failures
        else:
            self._state_storage.reset_counter()
        if not self._record(failed):
            return None
        self._reset_window()
        self.open()
        return "Failure rate reached, circuit breaker opened"

    def _record(self, failed: bool) -> bool:
        """Add an outcome to the window; True if the window now says open."""
        now = self._clock()
        self._outcomes.append((now, failed))
        self._failures_in_window += failed
        horizon = now - self._window_s
        while self._outcomes and self._outcomes[0][0] < horizon:
            _, old_failed = self._outcomes.popleft()
            self._failures_in_window -= old_failed
        failures = self._failures_in_window
        return failures >= self.fail_max and failures >= self._failure_rate * len(self._outcomes)

    def _reset_window(self) -> None:
        self._outcomes.clear()
        self._failures_in_window = 0

    def _admit(self) -> bool:
        """Raise CircuitBreakerError if the call may not go; True if it is the trial call."""
        if self.state.name == pybreaker.STATE_OPEN:
            opened_at = self._state_storage.opened_at
            if opened_at is not None:
                ends = opened_at.replace(tzinfo=UTC) + timedelta(seconds=self.reset_timeout)
                if datetime.now(UTC) < ends:
                    raise CircuitBreakerError("Timeout not elapsed yet, circuit breaker still open")
            self.half_open()
        if self.state.name == pybreaker.STATE_HALF_OPEN:
            if self._trial_in_flight:
                raise CircuitBreakerError("circuit breaker half-open: its trial call is in flight")
            self._trial_in_flight = True
            return True
        return False


BreakerHook = Callable[[pybreaker.CircuitBreaker], None]
# Weak: a breaker belongs to its adapter; being observable must not keep it alive.
_breakers: weakref.WeakSet[pybreaker.CircuitBreaker] = weakref.WeakSet()
_hooks: list[BreakerHook] = []
_hooks_lock = threading.Lock()


def on_new_breaker(hook: BreakerHook) -> Callable[[], None]:
    """Call `hook` with every breaker made so far and every one made from now on; returns a
    function that stops calling it for new ones."""
    with _hooks_lock:
        _hooks.append(hook)
        existing = list(_breakers)
    for breaker in existing:
        hook(breaker)

    def remove() -> None:
        with _hooks_lock:
            if hook in _hooks:
                _hooks.remove(hook)

    return remove


def call_with_timeout(fn: Callable[[], T], timeout_s: float | None) -> T:
    """Run `fn` with a wall-clock budget; raise CallTimeout when it is exceeded.

    A blocked thread cannot be killed in Python, so a timed-out call keeps running in a daemon
    thread and its result is dropped. That is why this is a backstop only: clients should also
    pass their own socket timeouts (httpx `timeout=`, smtplib `timeout=`, Postgres
    `statement_timeout`) so the abandoned thread ends soon too. `None` runs `fn` inline, for
    callers whose client already enforces the budget.
    """
    if timeout_s is None:
        return fn()
    outcome: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(fn())
        except BaseException as e:  # handed to the caller's thread below
            error.append(e)

    worker = threading.Thread(target=target, name="resilience-call", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise CallTimeout(f"call exceeded {timeout_s:.3f}s")
    if error:
        raise error[0]
    return outcome[0]


def call_with_resilience(
    fn: Callable[[], T],
    *,
    breaker: pybreaker.CircuitBreaker,
    timeout_s: float | None,
    retries: int,
    retry_on: tuple[type[BaseException], ...],
    backoff_initial_s: float = 0.1,
    backoff_max_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn` through `breaker` with a per-attempt timeout; retry up to `retries` extra times
    on `retry_on` with jittered exponential backoff. The last error is re-raised unchanged (or
    CircuitBreakerError when the breaker is open), so callers map vendor errors themselves.

    Anything not in `retry_on` (a permanent error) is raised after the first attempt.
    `sleep` is injectable so tests do not wait for real backoff.
    """
    if retries < 0:
        raise ValueError("retries must be >= 0")
    retrying = Retrying(
        stop=stop_after_attempt(retries + 1),
        # "Full jitter": random wait in [0, min(max, initial * 2**n)], spreads retry storms.
        wait=wait_random_exponential(multiplier=backoff_initial_s, max=backoff_max_s),
        # An open breaker means "provider known down": retrying it would only burn the budget.
        retry=retry_if_exception(
            lambda e: isinstance(e, retry_on) and not isinstance(e, CircuitBreakerError)
        ),
        reraise=True,
        sleep=sleep,
    )
    return retrying(breaker.call, call_with_timeout, fn, timeout_s)
