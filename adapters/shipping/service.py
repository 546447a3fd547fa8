"""What the shipping adapter processor calls: QuoteShipping in, one reply out.

Business and provider failures become ShippingQuoteFailed (with `retryable`); only bugs raise, so
the processor can dead-letter the request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from adapters.shipping.port import (
    ShippingAddress,
    ShippingError,
    ShippingItem,
    ShippingProvider,
    ShippingRequest,
)
from adapters.shipping.quoting import FlatRate, quote_best
from events.messages import QuoteShipping, ShippingQuoted, ShippingQuoteFailed

log = logging.getLogger(__name__)

DEFAULT_ITEM_WEIGHT_GRAMS = 500


def to_request(cmd: QuoteShipping, weight_of: Callable[[str], int]) -> ShippingRequest:
    a = cmd.shipping_address
    return ShippingRequest(
        currency=cmd.currency,
        items=tuple(
            ShippingItem(i.sku, i.quantity, i.unit_amount, weight_of(i.sku)) for i in cmd.items
        ),
        to_address=ShippingAddress(a.line1, a.city, a.state, a.postal_code, a.country),
        reference=cmd.checkout_id,
    )


class ShippingService:
    def __init__(
        self,
        providers: Sequence[ShippingProvider],
        *,
        flat_rate: FlatRate | None,
        timeout_s: float = 3.0,
        service_level: str | None = None,
        # The message carries no weights; a catalogue lookup plugs in here.
        weight_of: Callable[[str], int] = lambda _sku: DEFAULT_ITEM_WEIGHT_GRAMS,
    ) -> None:
        self._providers = tuple(providers)
        self._flat_rate = flat_rate
        self._timeout_s = timeout_s
        self._service_level = service_level
        self._weight_of = weight_of

    def handle(self, cmd: QuoteShipping) -> ShippingQuoted | ShippingQuoteFailed:
        try:
            rate = quote_best(
                self._providers,
                to_request(cmd, self._weight_of),
                self._timeout_s,
                self._service_level,
                flat_rate=self._flat_rate,
            )
        except ShippingError as e:
            log.info(
                "shipping quote failed for %s attempt %s: %s (retryable=%s)",
                cmd.checkout_id,
                cmd.attempt,
                e.reason,
                e.retryable,
            )
            return ShippingQuoteFailed(cmd.checkout_id, cmd.attempt, e.reason, e.retryable)
        return ShippingQuoted(
            cmd.checkout_id,
            cmd.attempt,
            rate.amount,
            rate.currency,
            rate.carrier,
            rate.service_level,
        )
