"""Ask every carrier at once, keep whoever answers in time, pick the best rate.

Carriers are queried in parallel on a thread pool; `timeout_s` is the budget for the whole fan-out
(= per carrier, since they run concurrently). Late or failed carriers are dropped — never waited
for: the pool is shut down without joining, and each client's own timeout ends its thread soon
after. When nobody answers, a configured flat rate keeps the checkout going.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from adapters.shipping.port import (
    SERVICE_LEVELS,
    STANDARD,
    Rate,
    ShippingInputError,
    ShippingProvider,
    ShippingProviderError,
    ShippingRequest,
)
from adapters.shipping.validation import validate_request

log = logging.getLogger(__name__)

FLAT_RATE_CARRIER = "flat_rate"  # a quote with this carrier came from the fallback


@dataclass(frozen=True, slots=True)
class FlatRate:
    """The price charged when no carrier answers. `countries=None` means everywhere."""

    amounts: Mapping[str, int]  # currency -> minor units
    service_level: str = STANDARD
    carrier: str = FLAT_RATE_CARRIER
    est_days: int | None = None
    countries: Collection[str] | None = field(default=None)

    def rate_for(self, request: ShippingRequest, country: str) -> Rate | None:
        amount = self.amounts.get(request.currency)
        if amount is None or (self.countries is not None and country not in self.countries):
            return None
        return Rate(
            self.carrier,
            self.service_level,
            amount,
            request.currency,
            self.est_days,
            service="flat",
        )


def quote_best(
    providers: Sequence[ShippingProvider],
    request: ShippingRequest,
    timeout_s: float = 3.0,
    service_level: str | None = None,
    *,
    flat_rate: FlatRate | None = None,
) -> Rate:
    """The cheapest rate (of `service_level`, if given) any carrier offered within `timeout_s`.

    Raises ShippingInputError for bad input (before any carrier is asked) and when every carrier
    rejected the request as unshippable; ShippingProviderError (retryable) when nobody answered
    and no flat rate applies.
    """
    to = validate_request(request)
    if service_level is not None and service_level not in SERVICE_LEVELS:
        raise ShippingInputError(f"shipping: unknown service level {service_level!r}")

    pool = ThreadPoolExecutor(
        max_workers=max(1, len(providers)), thread_name_prefix="shipping-quote"
    )
    try:
        futures: dict[Future[list[Rate]], str] = {
            pool.submit(p.quote, request): p.name for p in providers
        }
        done, late = wait(futures, timeout=timeout_s)
    finally:
        # Do not join: a hung carrier must not hold the checkout beyond the budget.
        pool.shutdown(wait=False, cancel_futures=True)

    offered: list[Rate] = []
    rejections: list[ShippingInputError] = []
    for future in done:
        name = futures[future]
        error = future.exception()
        if error is None:
            offered.extend(future.result())
        elif isinstance(error, ShippingInputError):
            rejections.append(error)
            log.info("carrier %s rejected the request: %s", name, error.reason)
        else:
            log.warning("carrier %s failed, dropped: %r", name, error)
    for future in late:
        log.warning("carrier %s did not answer within %.1fs, dropped", futures[future], timeout_s)

    candidates = [
        r
        for r in offered
        if r.currency == request.currency
        and r.amount >= 0
        and r.service_level in SERVICE_LEVELS
        and (service_level is None or r.service_level == service_level)
    ]
    if candidates:
        return min(
            candidates,
            key=lambda r: (
                r.amount,
                r.est_days if r.est_days is not None else 10**6,
                r.carrier,
                r.service,
            ),
        )
    if providers and len(rejections) == len(providers):
        # Every carrier said "cannot ship this": a flat rate would sell an undeliverable order.
        raise ShippingInputError(rejections[0].reason)
    fallback = flat_rate.rate_for(request, to.country) if flat_rate else None
    if fallback is not None and (service_level is None or fallback.service_level == service_level):
        log.warning(
            "no carrier quoted %s to %s; using the flat rate", request.reference, to.country
        )
        return fallback
    raise ShippingProviderError(
        f"no carrier quoted shipping to {to.country} within "
        f"{timeout_s:.1f}s and no flat rate applies"
    )
