"""What to do when the tax provider cannot answer: the configurable fallback policy.

- `block`: fail the step with the provider's error (retryable when the outage is transient), so
  the saga retries and never sells with a guessed tax.
- `fallback_rates`: answer from the built-in rate table and record
  source="rate_table_fallback" on the order, so finance can find and true-up these orders.

Either way a provider failure never turns into a zero tax. Input errors are never "fallen back":
the table would reject them too, and hiding them would tax a bogus address.
"""

from __future__ import annotations

import dataclasses
import logging
from enum import StrEnum

from adapters.tax.port import (
    SOURCE_RATE_TABLE_FALLBACK,
    TaxCalculator,
    TaxError,
    TaxProviderError,
    TaxQuote,
    TaxRequest,
)

log = logging.getLogger(__name__)


class FallbackPolicy(StrEnum):
    BLOCK = "block"
    FALLBACK_RATES = "fallback_rates"


class PolicyTaxCalculator:
    def __init__(
        self, primary: TaxCalculator, fallback: TaxCalculator, policy: FallbackPolicy | str
    ) -> None:
        self._primary = primary
        self._fallback = fallback
        self._policy = FallbackPolicy(policy)

    @property
    def provider_id(self) -> str:
        return f"{self._primary.provider_id}|{self._policy}"

    def calculate(self, request: TaxRequest) -> TaxQuote:
        try:
            return self._primary.calculate(request)
        except TaxProviderError as outage:
            if self._policy is FallbackPolicy.BLOCK:
                raise
            log.warning("tax provider failed (%s); using fallback rates", outage.reason)
            try:
                quote = self._fallback.calculate(request)
            except TaxError as gap:
                # The table does not cover this destination (e.g. a country only TaxJar knows):
                # the real cause is the outage, so fail as the outage did (retryable if transient).
                raise TaxProviderError(
                    f"{outage.reason}; fallback rates unavailable: {gap.reason}",
                    retryable=outage.retryable,
                ) from outage
            return dataclasses.replace(quote, source=SOURCE_RATE_TABLE_FALLBACK)
