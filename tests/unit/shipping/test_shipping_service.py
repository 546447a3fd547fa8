"""ShippingService: messages in, replies out, never a raise for business/provider failures."""

from __future__ import annotations

from adapters.shipping.port import ShippingProviderError
from adapters.shipping.quoting import FlatRate
from adapters.shipping.rate_table_carrier import RateTableCarrier
from adapters.shipping.service import ShippingService
from events.messages import Address, LineItem, QuoteShipping, ShippingQuoted, ShippingQuoteFailed
from tests.unit.shipping.test_quote_best import Fake


def command(
    country: str = "US",
    postal: str = "78701",
    items: tuple[LineItem, ...] = (LineItem("SKU-A", 2, 1500),),
) -> QuoteShipping:
    return QuoteShipping(
        "co-9",
        3,
        "co-9:ship:3",
        "USD",
        items,
        Address("1100 Congress Ave", "Austin", "TX", postal, country),
    )


def test_quotes_the_cheapest_rate() -> None:
    svc = ShippingService([RateTableCarrier()], flat_rate=None, weight_of=lambda _sku: 400)
    # 2 x 400 g: first kg included, one extra item at 0.50
    assert svc.handle(command()) == ShippingQuoted("co-9", 3, 649, "USD", "builtin", "standard")


def test_service_level_from_configuration() -> None:
    svc = ShippingService([RateTableCarrier()], flat_rate=None, service_level="express")
    reply = svc.handle(command())
    assert isinstance(reply, ShippingQuoted) and reply.service_level == "express"


def test_unsupported_country_and_empty_cart_are_permanent_rejections() -> None:
    svc = ShippingService([RateTableCarrier()], flat_rate=FlatRate({"USD": 999}))
    for cmd in (command(country="ZZ", postal="12345"), command(items=())):
        reply = svc.handle(cmd)
        assert isinstance(reply, ShippingQuoteFailed)
        assert reply.retryable is False and reply.reason


def test_outage_without_flat_rate_is_retryable() -> None:
    svc = ShippingService([Fake("down", error=ShippingProviderError("503"))], flat_rate=None)
    reply = svc.handle(command())
    assert isinstance(reply, ShippingQuoteFailed) and reply.retryable is True


def test_outage_with_flat_rate_quotes_it() -> None:
    svc = ShippingService(
        [Fake("down", error=ShippingProviderError("503"))], flat_rate=FlatRate({"USD": 999})
    )
    assert svc.handle(command()) == ShippingQuoted("co-9", 3, 999, "USD", "flat_rate", "standard")
