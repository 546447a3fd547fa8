"""What the tax adapter processor calls: one CalculateTax in, one reply out, never a raise for a
business or provider failure (those become TaxCalculationFailed with `retryable`).

A bug (any other exception) does propagate, so the processor sends the request to the DLQ
instead of replying with a made-up answer.
"""

from __future__ import annotations

import logging

from adapters.tax.port import TaxAddress, TaxCalculator, TaxError, TaxLine, TaxRequest
from events.messages import CalculateTax, TaxCalculated, TaxCalculationFailed

log = logging.getLogger(__name__)


def to_request(cmd: CalculateTax) -> TaxRequest:
    a = cmd.shipping_address
    return TaxRequest(
        currency=cmd.currency,
        # Line ids are positions: a SKU may appear on two lines.
        lines=tuple(
            TaxLine(id=str(i), sku=item.sku, quantity=item.quantity, unit_amount=item.unit_amount)
            for i, item in enumerate(cmd.items, start=1)
        ),
        to_address=TaxAddress(a.line1, a.city, a.state, a.postal_code, a.country),
        shipping_amount=0,  # shipping is quoted in parallel; see docs/decisions/0005
    )


class TaxService:
    def __init__(self, calculator: TaxCalculator) -> None:
        self._calculator = calculator

    def handle(self, cmd: CalculateTax) -> TaxCalculated | TaxCalculationFailed:
        try:
            quote = self._calculator.calculate(to_request(cmd))
        except TaxError as e:
            log.info(
                "tax failed for %s attempt %s: %s (retryable=%s)",
                cmd.checkout_id,
                cmd.attempt,
                e.reason,
                e.retryable,
            )
            return TaxCalculationFailed(cmd.checkout_id, cmd.attempt, e.reason, e.retryable)
        if quote.currency != cmd.currency:
            return TaxCalculationFailed(
                cmd.checkout_id,
                cmd.attempt,
                f"tax quoted in {quote.currency}, checkout is in {cmd.currency}",
                False,
            )
        return TaxCalculated(
            cmd.checkout_id, cmd.attempt, quote.amount, quote.currency, quote.source
        )
