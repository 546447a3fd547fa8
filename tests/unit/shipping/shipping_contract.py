"""The one contract every ShippingProvider meets. Subclass it and provide `provider`; it runs
against the built-in rate-table carrier and against EasyPost (through its local peer)."""

from __future__ import annotations

import pytest

from adapters.shipping.port import (
    SERVICE_LEVELS,
    STANDARD,
    Rate,
    ShippingAddress,
    ShippingInputError,
    ShippingItem,
    ShippingProvider,
    ShippingRequest,
)

AUSTIN = ShippingAddress("1100 Congress Ave", "Austin", "TX", "78701", "US")
BERLIN = ShippingAddress("Platz der Republik 1", "Berlin", "", "11011", "DE")


def shipment(
    to: ShippingAddress = AUSTIN,
    *items: tuple[int, int],
    currency: str = "USD",
    reference: str = "co-test",
) -> ShippingRequest:
    items = items or ((1, 500),)
    return ShippingRequest(
        currency,
        tuple(ShippingItem(f"SKU-{i}", q, 1000, grams) for i, (q, grams) in enumerate(items)),
        to,
        reference,
    )


class ShippingProviderContract:
    @pytest.fixture
    def provider(self) -> ShippingProvider:
        raise NotImplementedError

    def quote(self, provider: ShippingProvider, request: ShippingRequest) -> list[Rate]:
        rates = provider.quote(request)
        assert rates
        for rate in rates:
            assert rate.carrier
            assert rate.service_level in SERVICE_LEVELS
            assert isinstance(rate.amount, int) and rate.amount > 0
            assert rate.currency == request.currency
            assert rate.est_days is None or rate.est_days > 0
        return rates

    def test_domestic_quote_offers_a_standard_rate(self, provider: ShippingProvider) -> None:
        rates = self.quote(provider, shipment())
        assert any(r.service_level == STANDARD for r in rates)

    def test_international_quote(self, provider: ShippingProvider) -> None:
        self.quote(provider, shipment(BERLIN, currency="USD"))

    def test_heavier_parcels_do_not_cost_less(self, provider: ShippingProvider) -> None:
        light = {(r.carrier, r.service): r.amount for r in self.quote(provider, shipment())}
        heavy = {
            (r.carrier, r.service): r.amount
            for r in self.quote(provider, shipment(AUSTIN, (3, 2500)))
        }
        shared = light.keys() & heavy.keys()
        assert shared
        assert all(heavy[k] >= light[k] for k in shared)
        assert any(heavy[k] > light[k] for k in shared)

    def test_buying_a_quoted_rate(self, provider: ShippingProvider) -> None:
        request = shipment()
        rate = min(self.quote(provider, request), key=lambda r: r.amount)
        bought = provider.create_shipment(request, rate, "co-test:ship:1")
        assert bought.shipment_id
        assert (bought.carrier, bought.service_level, bought.amount, bought.currency) == (
            rate.carrier,
            rate.service_level,
            rate.amount,
            rate.currency,
        )

    def test_buying_from_only_what_the_saga_recorded(self, provider: ShippingProvider) -> None:
        # ShippingQuoted keeps carrier, service level and amount — not the provider's handle.
        request = shipment()
        rate = min(self.quote(provider, request), key=lambda r: r.amount)
        remembered = Rate(rate.carrier, rate.service_level, rate.amount, rate.currency, None)
        bought = provider.create_shipment(request, remembered, "co-test:ship:2")
        assert (bought.carrier, bought.service_level) == (rate.carrier, rate.service_level)

    # --- bad input ---------------------------------------------------------------------------

    def test_no_items_is_permanent(self, provider: ShippingProvider) -> None:
        empty = ShippingRequest("USD", (), AUSTIN)
        with pytest.raises(ShippingInputError, match="no items"):
            provider.quote(empty)

    @pytest.mark.parametrize("quantity", [0, -2])
    def test_non_positive_quantity_is_permanent(
        self, provider: ShippingProvider, quantity: int
    ) -> None:
        with pytest.raises(ShippingInputError, match="quantity"):
            provider.quote(shipment(AUSTIN, (quantity, 500)))

    @pytest.mark.parametrize("country", ["ZZ", "USA"])
    def test_unsupported_country_is_permanent(
        self, provider: ShippingProvider, country: str
    ) -> None:
        to = ShippingAddress("1 Main St", "Somewhere", "", "12345", country)
        with pytest.raises(ShippingInputError) as err:
            provider.quote(shipment(to))
        assert err.value.retryable is False
        assert "country" in err.value.reason.lower()

    @pytest.mark.parametrize(("country", "postal"), [("US", "7870"), ("DE", "1O115")])
    def test_malformed_postal_code_is_permanent(
        self, provider: ShippingProvider, country: str, postal: str
    ) -> None:
        to = ShippingAddress("1 Main St", "Somewhere", "TX", postal, country)
        with pytest.raises(ShippingInputError, match="postal code"):
            provider.quote(shipment(to))
