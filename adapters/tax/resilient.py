"""Breaker + per-call timeout + bounded retries around a remote tax calculator (TaxJar).

Uses the shared `adapters.resilience` helper so every adapter fails the same way. Outcomes are
translated back to our types: an open breaker or a timeout is a transient provider failure.
Input errors pass through without counting towards the breaker (they are the customer's fault,
not the provider's).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pybreaker

from adapters.resilience import CallTimeout, CircuitBreakerError, call_with_resilience, make_breaker
from adapters.tax.port import (
    TaxCalculator,
    TaxInputError,
    TaxProviderUnavailable,
    TaxQuote,
    TaxRequest,
)


def tax_breaker(
    name: str = "taxjar", *, fail_max: int = 5, reset_timeout_s: float = 30.0
) -> pybreaker.CircuitBreaker:
    """One per provider per process, shared by every call to it."""
    return make_breaker(
        name, fail_max=fail_max, reset_timeout_s=reset_timeout_s, exclude=(TaxInputError,)
    )


class ResilientTaxCalculator:
    def __init__(
        self,
        inner: TaxCalculator,
        *,
        breaker: pybreaker.CircuitBreaker,
        timeout_s: float = 5.0,
        retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._inner = inner
        self._breaker = breaker
        self._timeout_s = timeout_s
        self._retries = retries
        self._sleep = sleep

    @property
    def provider_id(self) -> str:
        return self._inner.provider_id

    def calculate(self, request: TaxRequest) -> TaxQuote:
        name = self._breaker.name or "tax provider"
        try:
            return call_with_resilience(
                lambda: self._inner.calculate(request),
                breaker=self._breaker,
                timeout_s=self._timeout_s,
                retries=self._retries,
                # Only transient failures are retried: a 401 or a 400 will not change.
                retry_on=(TaxProviderUnavailable, TimeoutError),
                sleep=self._sleep,
            )
        except CircuitBreakerError as e:
            raise TaxProviderUnavailable(f"{name} circuit open: {e}") from e
        except CallTimeout as e:
            raise TaxProviderUnavailable(f"{name} timed out: {e}") from e
