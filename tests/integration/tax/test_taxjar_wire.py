"""TaxJar-specific behaviour: what goes on the wire, and how each documented error maps."""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal

import pytest

from adapters.tax.port import (
    SOURCE_TAXJAR,
    TaxAddress,
    TaxInputError,
    TaxProviderError,
    TaxProviderUnavailable,
)
from adapters.tax.taxjar_calculator import ShopAddress, TaxJarCalculator, shop_address
from tests.integration.tax.taxjar_peer import TaxJarPeer
from tests.unit.tax.tax_contract import AUSTIN, LA, order

pytestmark = pytest.mark.integration

WAREHOUSE = shop_address("9500 Gilman Dr", "La Jolla", "CA", "92093", "US", id="hq")


def calculator(
    peer: TaxJarPeer,
    *,
    api_key: str | None = None,
    timeout_s: float = 2.0,
    from_address: ShopAddress | None = None,
    nexus_addresses: Sequence[ShopAddress] = (),
) -> TaxJarCalculator:
    return TaxJarCalculator(
        api_key or peer.api_key,
        api_url=peer.url,
        timeout_s=timeout_s,
        from_address=from_address,
        nexus_addresses=nexus_addresses,
    )


def test_order_on_the_wire(taxjar_peer: TaxJarPeer) -> None:
    calc = calculator(taxjar_peer, from_address=WAREHOUSE, nexus_addresses=[WAREHOUSE])
    calc.calculate(order(LA, (3, 1999), (1, 500), shipping=750))
    body = taxjar_peer.bodies[-1]
    assert (body["to_country"], body["to_state"], body["to_zip"]) == ("US", "CA", "90012")
    assert (body["from_state"], body["from_zip"]) == ("CA", "92093")
    assert body["nexus_addresses"] == [
        {
            "id": "hq",
            "country": "US",
            "zip": "92093",
            "state": "CA",
            "city": "La Jolla",
            "street": "9500 Gilman Dr",
        }
    ]
    assert body["shipping"] == Decimal("7.50")
    assert body["amount"] == Decimal("64.97")
    assert [(li["id"], li["quantity"], li["unit_price"]) for li in body["line_items"]] == [
        ("1", 3, Decimal("19.99")),
        ("2", 1, Decimal("5.00")),
    ]
    # exact decimal literals, not float reprs
    assert '"unit_price":19.99' in taxjar_peer.raw_bodies[-1]


def test_no_nexus_in_destination_is_a_real_zero(taxjar_peer: TaxJarPeer) -> None:
    calc = calculator(taxjar_peer, from_address=WAREHOUSE, nexus_addresses=[WAREHOUSE])
    quote = calc.calculate(order(AUSTIN, (1, 10000)))
    assert (quote.amount, quote.source) == (0, SOURCE_TAXJAR)
    assert calc.calculate(order(LA, (1, 10000))).amount == 950  # nexus state still taxed


def test_400_is_a_permanent_input_error_with_taxjars_reason(taxjar_peer: TaxJarPeer) -> None:
    wrong_state = TaxAddress("1 Main St", "New York", "NY", "90012", "US")
    with pytest.raises(TaxInputError) as err:
        calculator(taxjar_peer).calculate(order(wrong_state, (1, 1000)))
    assert err.value.retryable is False
    assert "to_zip 90012 is not used within to_state NY" in err.value.reason


def test_rejected_api_key_is_a_provider_failure_not_retryable(taxjar_peer: TaxJarPeer) -> None:
    with pytest.raises(TaxProviderError) as err:
        calculator(taxjar_peer, api_key="wrong").calculate(order(LA, (1, 1000)))
    assert not isinstance(err.value, TaxInputError)
    assert err.value.retryable is False
    assert "401" in err.value.reason


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_retryable(taxjar_peer: TaxJarPeer, status: int) -> None:
    taxjar_peer.script(status)
    with pytest.raises(TaxProviderUnavailable) as err:
        calculator(taxjar_peer).calculate(order(LA, (1, 1000)))
    assert err.value.retryable is True
    assert str(status) in err.value.reason


def test_200_without_amount_is_a_failure_never_zero(taxjar_peer: TaxJarPeer) -> None:
    taxjar_peer.script("garbage")
    with pytest.raises(TaxProviderUnavailable):
        calculator(taxjar_peer).calculate(order(LA, (1, 1000)))


def test_hanging_taxjar_times_out_within_budget(taxjar_peer: TaxJarPeer) -> None:
    taxjar_peer.script("hang")
    started = time.monotonic()
    with pytest.raises(TaxProviderUnavailable) as err:
        calculator(taxjar_peer, timeout_s=0.3).calculate(order(LA, (1, 1000)))
    assert time.monotonic() - started < 0.3 + 0.5
    assert err.value.retryable is True


def test_unreachable_taxjar_is_retryable() -> None:
    calc = TaxJarCalculator("k", api_url="http://127.0.0.1:9", timeout_s=0.5)
    with pytest.raises(TaxProviderUnavailable):
        calc.calculate(order(LA, (1, 1000)))
