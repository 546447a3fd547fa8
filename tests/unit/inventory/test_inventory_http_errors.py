"""HttpInventory failure modes the contract peer does not produce: transient HTTP statuses,
transport errors and off-contract answers (httpx.MockTransport plays the shop's API)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from adapters.inventory.http_provider import HttpInventory
from adapters.inventory.port import (
    InventoryProtocolError,
    InventoryUnavailable,
    Line,
    Rejection,
    RejectionReason,
)


def provider(handler: Callable[[httpx.Request], httpx.Response]) -> HttpInventory:
    client = httpx.Client(base_url="http://inventory.test", transport=httpx.MockTransport(handler))
    return HttpInventory("http://inventory.test", client=client)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_transient_statuses_raise_unavailable(status: int) -> None:
    p = provider(lambda _: httpx.Response(status, json={"error": "busy"}))
    with pytest.raises(InventoryUnavailable, match=str(status)):
        p.reserve("co", "k", [Line("A", 1)], 1)
    with pytest.raises(InventoryUnavailable):
        p.commit("r1")


def test_transport_errors_raise_unavailable() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(InventoryUnavailable, match="ReadTimeout"):
        provider(boom).release("r1")


def test_off_contract_answers_raise_protocol_error() -> None:
    with pytest.raises(InventoryProtocolError, match="400"):
        provider(lambda _: httpx.Response(400, json={})).reserve("co", "k", [Line("A", 1)], 1)
    with pytest.raises(InventoryProtocolError, match="unknown rejection reason"):
        provider(lambda _: httpx.Response(409, json={"reason": "weird"})).commit("r1")
    with pytest.raises(InventoryProtocolError, match="malformed reservation"):
        provider(lambda _: httpx.Response(200, json={"id": "r1"})).commit("r1")
    with pytest.raises(InventoryProtocolError, match="not JSON"):
        provider(lambda _: httpx.Response(201, text="<html>")).reserve("co", "k", [Line("A", 1)], 1)


def test_request_shape_and_local_validation() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(409, json={"reason": "out_of_stock", "sku": "A"})

    p = provider(handler)
    # Bad input never reaches the network.
    assert p.reserve("co", "k", [Line("A", 0)], 1) == Rejection(
        RejectionReason.INVALID_QUANTITY, "A"
    )
    assert seen == []
    assert p.reserve("co", "key-1", [Line("B", 1), Line("A", 2), Line("A", 1)], 99) == Rejection(
        RejectionReason.OUT_OF_STOCK, "A"
    )
    (request,) = seen
    assert request.url.path == "/reservations"
    assert request.headers["Idempotency-Key"] == "key-1"
    assert json.loads(request.content) == {
        "checkout_id": "co",
        "idempotency_key": "key-1",
        "lines": [{"sku": "A", "quantity": 3}, {"sku": "B", "quantity": 1}],
        "expires_at": 99,
    }
