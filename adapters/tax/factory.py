"""Assemble the tax calculator from configured values (the composition root, infra/, passes them
in from Settings; nothing at import).

With a TaxJar key, the cache sits *inside* the fallback policy, around the resilient TaxJar
call: a cache hit never needs TaxJar (even with its breaker open), and fallback answers are
computed locally and never cached.

    PolicyTaxCalculator(primary=Cached(Resilient(TaxJar)), fallback=RateTable, policy)

Without a key: the built-in rate table alone (the embedded default, source="rate_table").
"""

from __future__ import annotations

from collections.abc import Sequence

import pybreaker
import redis
import taxjar

from adapters.tax.cached import CachedTaxCalculator
from adapters.tax.policy import PolicyTaxCalculator
from adapters.tax.port import TaxCalculator
from adapters.tax.rate_table import RateTableCalculator
from adapters.tax.resilient import ResilientTaxCalculator, tax_breaker
from adapters.tax.taxjar_calculator import ShopAddress, TaxJarCalculator


def build_tax_calculator(
    taxjar_api_key: str | None,
    fallback_policy: str = "fallback_rates",
    *,
    redis_client: redis.Redis | None = None,
    taxjar_api_url: str = taxjar.DEFAULT_API_URL,
    from_address: ShopAddress | None = None,
    nexus_addresses: Sequence[ShopAddress] = (),
    breaker: pybreaker.CircuitBreaker | None = None,
    timeout_s: float = 5.0,
    retries: int = 2,
) -> TaxCalculator:
    table = RateTableCalculator()
    if not taxjar_api_key:
        return table
    remote: TaxCalculator = ResilientTaxCalculator(
        TaxJarCalculator(
            taxjar_api_key,
            api_url=taxjar_api_url,
            from_address=from_address,
            nexus_addresses=nexus_addresses,
            timeout_s=timeout_s,
        ),
        breaker=breaker or tax_breaker(),
        timeout_s=timeout_s + 1.0,  # backstop only: the HTTP client enforces timeout_s itself
        retries=retries,
    )
    if redis_client is not None:
        remote = CachedTaxCalculator(remote, redis_client)
    return PolicyTaxCalculator(remote, table, fallback_policy)
