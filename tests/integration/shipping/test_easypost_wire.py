"""EasyPost-specific behaviour: the request on the wire and the mapping of documented errors."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest

from adapters.shipping.easypost_client import EasyPostClient
from adapters.shipping.port import (
    EXPRESS,
    STANDARD,
    ShippingAddress,
    ShippingInputError,
    ShippingProviderError,
)
from tests.integration.shipping.easypost_peer import EasyPostPeer
from tests.integration.shipping.test_easypost_contract import WAREHOUSE
from tests.unit.shipping.shipping_contract import AUSTIN, shipment

pytestmark = pytest.mark.integration


@pytest.fixture
def client(easypost_peer: EasyPostPeer) -> Iterator[EasyPostClient]:
    c = EasyPostClient(
        easypost_peer.api_key, from_address=WAREHOUSE, base_url=easypost_peer.url, timeout_s=0.5
    )
    yield c
    c.close()


def test_shipment_request_on_the_wire(
    client: EasyPostClient, easypost_peer: EasyPostPeer, unique_id: str
) -> None:
    client.quote(shipment(AUSTIN, (2, 500), (1, 250), reference=f"co-{unique_id}"))
    ((path, body),) = easypost_peer.requests
    assert path == "/v2/shipments"
    s = body["shipment"]
    assert s["to_address"] == {
        "street1": "1100 Congress Ave",
        "city": "Austin",
        "state": "TX",
        "zip": "78701",
        "country": "US",
    }
    assert (s["from_address"]["zip"], s["from_address"]["state"]) == ("92093", "CA")
    assert s["parcel"]["weight"] == 44.1  # 1250 g = 44.09 oz, rounded up to a tenth
    assert s["reference"] == f"co-{unique_id}"


def test_rates_are_exact_minor_units_and_classified(client: EasyPostClient) -> None:
    rates = {(r.carrier, r.service): r for r in client.quote(shipment(AUSTIN, (1, 500)))}
    # peer: USPS Priority = 8.70 + 0.07 * 17.7 oz = 9.939 -> "9.94"
    assert rates["USPS", "Priority"].amount == 994
    assert rates["USPS", "Priority"].service_level == STANDARD
    assert rates["UPS", "NextDayAir"].service_level == EXPRESS
    assert all(r.quote_ref and r.quote_ref.startswith("shp_") for r in rates.values())


def test_rates_in_another_currency_are_dropped(
    client: EasyPostClient, easypost_peer: EasyPostPeer
) -> None:
    easypost_peer.currency = "CAD"
    with pytest.raises(ShippingProviderError, match="no usable USD rates"):
        client.quote(shipment())


def test_rejected_api_key_is_not_retryable(easypost_peer: EasyPostPeer) -> None:
    bad = EasyPostClient("EZTK_revoked", from_address=WAREHOUSE, base_url=easypost_peer.url)
    with pytest.raises(ShippingProviderError) as err:
        bad.quote(shipment())
    assert err.value.retryable is False
    assert "401 APIKEY.INACTIVE" in err.value.reason


def test_unverifiable_address_is_a_permanent_input_error(client: EasyPostClient) -> None:
    nowhere = ShippingAddress("1 Nowhere", "Nowhere", "TX", "00000", "US")
    with pytest.raises(ShippingInputError) as err:
        client.quote(shipment(nowhere))
    assert "Address not found" in err.value.reason
    assert "address: Address not found" in err.value.reason  # field errors kept


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_server_errors_are_retryable(
    client: EasyPostClient, easypost_peer: EasyPostPeer, status: int
) -> None:
    easypost_peer.script(status)
    with pytest.raises(ShippingProviderError) as err:
        client.quote(shipment())
    assert err.value.retryable is True
    assert str(status) in err.value.reason


def test_hanging_easypost_times_out_on_the_client_budget(
    client: EasyPostClient, easypost_peer: EasyPostPeer
) -> None:
    easypost_peer.script("hang")
    started = time.monotonic()
    with pytest.raises(ShippingProviderError, match="timed out") as err:
        client.quote(shipment())
    assert time.monotonic() - started < 0.5 + 0.5
    assert err.value.retryable is True


def test_buy_records_tracking_and_label(
    client: EasyPostClient, easypost_peer: EasyPostPeer
) -> None:
    request = shipment()
    rate = min(client.quote(request), key=lambda r: r.amount)
    bought = client.create_shipment(request, rate, "co-x:ship:1")
    assert bought.tracking_code and bought.tracking_code.startswith("9400")
    assert bought.label_url and bought.shipment_id in bought.label_url
    assert easypost_peer.requests[-1] == (
        f"/v2/shipments/{bought.shipment_id}/buy",
        {"rate": {"id": rate.quote_ref.split("/")[1]}},
    )


def test_buying_an_unknown_shipment_is_not_retried_blindly(client: EasyPostClient) -> None:
    request = shipment()
    rate = client.quote(request)[0]
    gone = dataclasses.replace(rate, quote_ref="shp_missing/rate_missing")
    with pytest.raises(ShippingProviderError) as err:
        client.create_shipment(request, gone, "co-x:ship:1")
    assert err.value.retryable is False and "404" in err.value.reason


def test_string_field_errors_are_kept_in_the_reason(client: EasyPostClient) -> None:
    request = shipment()
    rate = client.quote(request)[0]
    assert rate.quote_ref is not None
    foreign = dataclasses.replace(rate, quote_ref=rate.quote_ref.split("/")[0] + "/rate_other")
    with pytest.raises(ShippingInputError, match=r"rate\.id is invalid"):
        client.create_shipment(request, foreign, "co-x:ship:1")
