"""At most one EasyPost label per checkout (Postgres tracking row), and the EasyPost breaker."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import psycopg
import pytest

from adapters.resilience import make_breaker
from adapters.shipping.easypost_client import EasyPostClient
from adapters.shipping.port import Rate, ShippingInputError, ShippingProviderError
from adapters.shipping.shipments import ShipmentLedger, TrackedShipments
from tests.integration.shipping.easypost_peer import EasyPostPeer
from tests.integration.shipping.test_easypost_contract import WAREHOUSE
from tests.unit.shipping.shipping_contract import shipment

pytestmark = pytest.mark.integration


@pytest.fixture
def client(easypost_peer: EasyPostPeer) -> Iterator[EasyPostClient]:
    c = EasyPostClient(
        easypost_peer.api_key, from_address=WAREHOUSE, base_url=easypost_peer.url, timeout_s=1.0
    )
    yield c
    c.close()


@pytest.fixture
def tracked(client: EasyPostClient, migrated_database_url: str) -> TrackedShipments:
    ledger = ShipmentLedger(lambda: psycopg.connect(migrated_database_url))
    return TrackedShipments(client, ledger)


def cheapest(client: EasyPostClient) -> Rate:
    return min(client.quote(shipment()), key=lambda r: r.amount)


def test_a_second_call_returns_the_label_without_asking_easypost(
    tracked: TrackedShipments, client: EasyPostClient, easypost_peer: EasyPostPeer, unique_id: str
) -> None:
    rate = cheapest(client)
    first = tracked.create_shipment(f"co-{unique_id}", shipment(), rate)
    asked = easypost_peer.request_count
    assert tracked.create_shipment(f"co-{unique_id}", shipment(), rate) == first
    assert easypost_peer.request_count == asked
    assert easypost_peer.purchases == 1


def test_a_lost_purchase_answer_is_adopted_not_bought_again(
    tracked: TrackedShipments, client: EasyPostClient, easypost_peer: EasyPostPeer, unique_id: str
) -> None:
    rate = cheapest(client)
    easypost_peer.script("lost")  # the buy takes effect; its answer never arrives
    with pytest.raises(ShippingProviderError) as err:
        tracked.create_shipment(f"co-{unique_id}", shipment(), rate)
    assert err.value.retryable
    again = tracked.create_shipment(f"co-{unique_id}", shipment(), rate)
    assert easypost_peer.purchases == 1
    assert rate.quote_ref and again.shipment_id == rate.quote_ref.split("/")[0]
    assert again.tracking_code and again.tracking_code.startswith("9400")


def test_a_lost_shipment_creation_is_found_by_reference(
    tracked: TrackedShipments, client: EasyPostClient, easypost_peer: EasyPostPeer, unique_id: str
) -> None:
    # What the saga remembers from ShippingQuoted: carrier and service level, no vendor handle.
    remembered = dataclasses.replace(cheapest(client), quote_ref=None, service="")
    quoted_shipments = len(easypost_peer.shipments)
    easypost_peer.script("lost")  # the labelled shipment is created; the answer is lost
    with pytest.raises(ShippingProviderError):
        tracked.create_shipment(f"co-{unique_id}", shipment(), remembered)
    bought = tracked.create_shipment(f"co-{unique_id}", shipment(), remembered)
    assert len(easypost_peer.shipments) == quoted_shipments + 1  # no second shipment created
    assert easypost_peer.purchases == 1
    assert easypost_peer.shipments[bought.shipment_id]["reference"] == f"co-{unique_id}:label"


def test_buying_a_shipment_that_already_has_postage_returns_that_label(
    client: EasyPostClient, easypost_peer: EasyPostPeer
) -> None:
    rate = cheapest(client)
    first = client.buy(rate)
    assert client.buy(rate) == first
    assert easypost_peer.purchases == 1


def test_the_breaker_opens_on_outages_and_fails_fast(
    easypost_peer: EasyPostPeer,
) -> None:
    client = EasyPostClient(
        easypost_peer.api_key,
        from_address=WAREHOUSE,
        base_url=easypost_peer.url,
        breaker=make_breaker("easypost-test", fail_max=3, reset_timeout_s=60),
    )
    easypost_peer.script(422, 422, 422, 422)  # rejected input: answers, not an outage
    for _ in range(4):
        with pytest.raises(ShippingInputError):
            client.quote(shipment())
    easypost_peer.always = 503
    # The four answers count as calls the provider served: it opens once the 503s are half of
    # the window's calls (adapters/resilience.make_breaker), on the fourth.
    for _ in range(4):
        with pytest.raises(ShippingProviderError):
            client.quote(shipment())
    asked = easypost_peer.request_count
    with pytest.raises(ShippingProviderError, match="circuit open") as err:
        client.quote(shipment())
    assert err.value.retryable
    assert easypost_peer.request_count == asked  # not asked at all
    client.close()
