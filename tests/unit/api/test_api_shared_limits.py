"""The API refuses over-limit bodies with the reasons of events.validation — the very rules the
orchestrator applies to commands produced straight onto checkout.commands."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import make_token
from api.ports import OrderRecord
from events import validation as v
from tests.unit.api.fakes import JWT_SECRET, SHOP_KEY, World, checkout_body

SHOP = {"Authorization": f"Bearer {SHOP_KEY}", "Idempotency-Key": "k-limits"}
LINE = {"sku": "A", "quantity": 1, "unit_amount": 1}
ADDRESS = checkout_body()["shipping_address"]


def _reasons(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {f["field"]: f["reason"] for f in response.json()["fields"]}


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"items": [LINE] * 101}, "items", v.LINES.check([LINE] * 101)),
        ({"items": [{**LINE, "quantity": 10_001}]}, "items.0.quantity", v.QUANTITY.check(10_001)),
        ({"items": [{**LINE, "unit_amount": -1}]}, "items.0.unit_amount", v.UNIT_AMOUNT.check(-1)),
        ({"items": [{**LINE, "sku": "s" * 65}]}, "items.0.sku", v.SKU.check("s" * 65)),
        ({"currency": "usd"}, "currency", v.CURRENCY.check("usd")),
        ({"customer": {"id": "c", "email": "nobody"}}, "customer.email", v.EMAIL.check("nobody")),
        ({"shipping_address": {**ADDRESS, "country": "ZZ"}}, "shipping_address.country",
         v.COUNTRY.check("ZZ")),
        ({"shipping_address": {**ADDRESS, "postal_code": "1" * 21}},
         "shipping_address.postal_code", v.POSTAL_CODE.check("1" * 21)),
        ({"payment": {"provider": "adyen", "payment_method": "pm"}}, "payment.provider",
         v.PAYMENT_PROVIDER.check("adyen")),
    ],
)  # fmt: skip
def test_checkout_refusals_carry_the_shared_reason(
    client: TestClient, world: World, change: dict[str, Any], field: str, expected: str | None
) -> None:
    assert expected is not None
    reasons = _reasons(client.post("/v1/checkouts", json=checkout_body(**change), headers=SHOP))
    assert reasons[field] == expected
    assert world.bus.sent == []


def test_the_body_limit_is_the_command_size_limit(world: World) -> None:
    assert world.deps.max_body_bytes == v.MAX_COMMAND_BYTES


def test_cancel_reason_over_the_limit_is_refused(client: TestClient, world: World) -> None:
    checkout_id = client.post("/v1/checkouts", json=checkout_body(), headers=SHOP).json()[
        "checkout_id"
    ]
    r = client.post(f"/v1/checkouts/{checkout_id}/cancel", headers=SHOP, json={"reason": "r" * 201})
    assert _reasons(r) == {"reason": v.REASON.check("r" * 201)}


def test_refund_amount_below_the_limit_is_refused(client: TestClient, world: World) -> None:
    world.reads.orders["ord_1"] = OrderRecord("ord_1", "co_1", "shop-1", "EUR", 3800, 0)
    t = make_token(JWT_SECRET, sub="alice", role="admin", exp=int(time.time()) + 300)
    headers = {"Authorization": f"Bearer {t}", "Idempotency-Key": "r-1"}
    r = client.post("/v1/orders/ord_1/refunds", json={"amount": 0}, headers=headers)
    assert _reasons(r) == {"amount": v.REFUND_AMOUNT.check(0)}
