"""Built-in carrier pricing: zone, weight steps, per-item surcharge, limits, currencies."""

from __future__ import annotations

import pytest

from adapters.shipping.port import EXPRESS, STANDARD, Rate, ShippingAddress, ShippingInputError
from adapters.shipping.rate_table_carrier import RateTableCarrier
from tests.unit.shipping.shipping_contract import AUSTIN, BERLIN, shipment

CARRIER = RateTableCarrier()


def prices(
    *items: tuple[int, int], to: ShippingAddress = AUSTIN, currency: str = "USD"
) -> dict[str, int]:
    return {
        r.service_level: r.amount for r in CARRIER.quote(shipment(to, *items, currency=currency))
    }


@pytest.mark.parametrize(
    ("items", "standard"),
    [
        (((1, 1000),), 599),  # first kg included
        (((1, 1001),), 699),  # a started kg above the first
        (((1, 2500),), 799),  # 2 started kg above the first
        (((3, 100),), 699),  # 2 extra items at 0.50
        (((2, 1000),), 749),  # 1 extra kg + 1 extra item
    ],
)
def test_domestic_standard_pricing(items: tuple[tuple[int, int], ...], standard: int) -> None:
    assert prices(*items)[STANDARD] == standard


def test_express_costs_more_and_is_faster() -> None:
    rates = {r.service_level: r for r in CARRIER.quote(shipment())}
    assert rates[EXPRESS].amount > rates[STANDARD].amount
    assert rates[EXPRESS].est_days is not None and rates[STANDARD].est_days is not None
    assert rates[EXPRESS].est_days < rates[STANDARD].est_days


def test_zone_and_currency_select_the_price() -> None:
    assert prices(to=BERLIN, currency="EUR") == {STANDARD: 1899, EXPRESS: 4599}
    assert prices(to=BERLIN, currency="USD") == {STANDARD: 1999, EXPRESS: 4999}


def test_unpriced_currency_is_permanent() -> None:
    with pytest.raises(ShippingInputError, match="no JPY prices"):
        CARRIER.quote(shipment(currency="JPY"))


def test_overweight_parcel_is_permanent() -> None:
    with pytest.raises(ShippingInputError, match="exceeds"):
        CARRIER.quote(shipment(AUSTIN, (31, 1000)))


def test_shipment_ids_are_deterministic_per_idempotency_key() -> None:
    request = shipment()
    rate = Rate("builtin", STANDARD, 599, "USD", None)
    first = CARRIER.create_shipment(request, rate, "co-1:ship:1")
    assert first == CARRIER.create_shipment(request, rate, "co-1:ship:1")
    assert first.shipment_id != CARRIER.create_shipment(request, rate, "co-2:ship:1").shipment_id
