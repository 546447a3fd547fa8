"""quote_best over real HTTP: carriers that hang, fail or answer, all asked in parallel.

Includes the issue's "done when": every carrier times out, and the flat rate is still quoted
within the timeout budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from adapters.shipping.easypost_client import EasyPostClient
from adapters.shipping.port import EXPRESS, ShippingAddress, ShippingInputError, ShippingProvider
from adapters.shipping.quoting import FlatRate, quote_best
from adapters.shipping.rate_table_carrier import RateTableCarrier
from adapters.shipping.service import ShippingService
from events.messages import Address, LineItem, QuoteShipping, ShippingQuoted
from tests.integration.shipping.easypost_peer import EasyPostPeer, running_peer
from tests.integration.shipping.test_easypost_contract import WAREHOUSE
from tests.unit.shipping.shipping_contract import shipment

pytestmark = pytest.mark.integration

FLAT = FlatRate({"USD": 1250})
BUDGET_S = 0.5
MARGIN_S = 0.25  # thread start-up and result handling; far below one more carrier's budget


@pytest.fixture
def peers() -> Iterator[list[EasyPostPeer]]:
    with ExitStack() as stack:
        yield [stack.enter_context(running_peer(price_offset=str(i))) for i in range(3)]


def clients(peers: list[EasyPostPeer], timeout_s: float = 10.0) -> list[ShippingProvider]:
    # A generous client timeout: only quote_best's budget may bound the wait here.
    return [
        EasyPostClient(p.api_key, from_address=WAREHOUSE, base_url=p.url, timeout_s=timeout_s)
        for p in peers
    ]


def test_every_carrier_hanging_still_quotes_the_flat_rate_in_budget(
    peers: list[EasyPostPeer],
) -> None:
    for peer in peers:
        peer.always = "hang"
    carriers = clients(peers)
    started = time.monotonic()
    rate = quote_best(carriers, shipment(), timeout_s=BUDGET_S, flat_rate=FLAT)
    elapsed = time.monotonic() - started
    assert (rate.carrier, rate.amount, rate.currency) == ("flat_rate", 1250, "USD")
    assert elapsed < BUDGET_S + MARGIN_S
    assert all(p.request_count == 1 for p in peers)  # every carrier was really asked


def test_cheapest_answer_wins_while_others_hang(peers: list[EasyPostPeer]) -> None:
    peers[0].always = "hang"
    peers[2].always = "hang"
    carriers = clients(peers)
    started = time.monotonic()
    rate = quote_best(carriers, shipment(), timeout_s=BUDGET_S, flat_rate=FLAT)
    assert time.monotonic() - started < BUDGET_S + MARGIN_S
    # peer 1 (offset +1.00): USPS GroundAdvantage 5.40 + 0.05 * 17.7 + 1.00 = 7.285 -> 7.29
    assert (rate.carrier, rate.service, rate.amount) == ("USPS", "GroundAdvantage", 729)


def test_failing_carriers_are_dropped_and_the_cheapest_is_chosen(peers: list[EasyPostPeer]) -> None:
    peers[0].always = 503
    peers[1].always = 401
    rate = quote_best(
        [*clients(peers), RateTableCarrier()], shipment(), timeout_s=BUDGET_S, flat_rate=FLAT
    )
    # builtin standard 5.99 beats peer 2's 5.40 + 0.885 + 2.00 = 8.29
    assert (rate.carrier, rate.amount) == ("builtin", 599)


def test_requested_service_level_across_carriers(peers: list[EasyPostPeer]) -> None:
    rate = quote_best(
        [*clients(peers), RateTableCarrier()],
        shipment(),
        timeout_s=BUDGET_S,
        service_level=EXPRESS,
        flat_rate=FLAT,
    )
    # builtin express 19.99 beats every peer's USPS Express (29.75 + ...)
    assert (rate.carrier, rate.service_level, rate.amount) == ("builtin", EXPRESS, 1999)


def test_all_carriers_rejecting_the_address_is_permanent(peers: list[EasyPostPeer]) -> None:
    nowhere = ShippingAddress("1 Nowhere", "Nowhere", "TX", "00000", "US")
    with pytest.raises(ShippingInputError, match="Address not found"):
        quote_best(clients(peers), shipment(nowhere), timeout_s=BUDGET_S, flat_rate=FLAT)


def test_shipping_service_end_to_end(peers: list[EasyPostPeer], unique_id: str) -> None:
    peers[0].always = "hang"
    svc = ShippingService(
        [*clients(peers), RateTableCarrier()],
        flat_rate=FLAT,
        timeout_s=BUDGET_S,
        weight_of=lambda _sku: 250,
    )
    cmd = QuoteShipping(
        f"co-{unique_id}",
        1,
        f"co-{unique_id}:ship:1",
        "USD",
        (LineItem("SKU-A", 1, 2000),),
        Address("1100 Congress Ave", "Austin", "TX", "78701", "US"),
    )
    started = time.monotonic()
    reply = svc.handle(cmd)
    assert time.monotonic() - started < BUDGET_S + MARGIN_S
    # peer 0 hangs; peer 1's cheapest is 5.40 + 0.05 * 8.9 oz + 1.00 = 6.85; builtin is 5.99
    assert reply == ShippingQuoted(f"co-{unique_id}", 1, 599, "USD", "builtin", "standard")
    reference = peers[1].requests[0][1]["shipment"]["reference"]
    assert reference == f"co-{unique_id}"
