"""TaxService maps messages to the port and every failure to a reply (never a raise)."""

from __future__ import annotations

import pytest

from adapters.tax.port import (
    TaxError,
    TaxInputError,
    TaxProviderError,
    TaxProviderUnavailable,
    TaxQuote,
    TaxRequest,
)
from adapters.tax.service import TaxService
from events.messages import Address, CalculateTax, LineItem, TaxCalculated, TaxCalculationFailed


class Recording:
    provider_id = "fake"

    def __init__(self, result: TaxQuote | TaxError) -> None:
        self.result = result
        self.requests: list[TaxRequest] = []

    def calculate(self, request: TaxRequest) -> TaxQuote:
        self.requests.append(request)
        if isinstance(self.result, TaxError):
            raise self.result
        return self.result


CMD = CalculateTax(
    "co-1",
    2,
    "co-1:tax:2",
    "USD",
    (LineItem("SKU-A", 2, 500), LineItem("SKU-A", 1, 700)),
    Address("1 Main", "Austin", "TX", "78701", "US"),
)


def test_maps_the_command_and_replies_with_amount_and_source() -> None:
    calc = Recording(TaxQuote(137, "USD", "rate_table"))
    assert TaxService(calc).handle(CMD) == TaxCalculated("co-1", 2, 137, "USD", "rate_table")
    (req,) = calc.requests
    assert [(ln.id, ln.sku, ln.quantity, ln.unit_amount) for ln in req.lines] == [
        ("1", "SKU-A", 2, 500),
        ("2", "SKU-A", 1, 700),
    ]  # same SKU twice keeps two lines
    assert (req.to_address.postal_code, req.currency, req.shipping_amount) == ("78701", "USD", 0)


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (TaxInputError("tax: country ZZ is not supported"), False),
        (TaxProviderUnavailable("taxjar 503"), True),
        (TaxProviderError("taxjar 401", retryable=False), False),
    ],
)
def test_failures_become_replies(error: TaxError, retryable: bool) -> None:
    reply = TaxService(Recording(error)).handle(CMD)
    assert reply == TaxCalculationFailed("co-1", 2, error.reason, retryable)


def test_a_quote_in_another_currency_is_not_passed_on() -> None:
    reply = TaxService(Recording(TaxQuote(100, "EUR", "taxjar"))).handle(CMD)
    assert isinstance(reply, TaxCalculationFailed) and reply.retryable is False
