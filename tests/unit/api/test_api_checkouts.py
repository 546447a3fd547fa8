"""POST /v1/checkouts, GET status, cancel — against fakes."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.auth import make_token
from api.ports import CheckoutRecord, NextActionRecord, StepRecord
from events import messages as m
from tests.unit.api.fakes import (
    JWT_SECRET,
    OTHER_KEY,
    SHOP_KEY,
    World,
    app_for,
    checkout_body,
)

SHOP = {"Authorization": f"Bearer {SHOP_KEY}"}


def post(client: TestClient, body: Any, key: str | None = "k-1", **headers: str) -> Any:
    h = {**SHOP, **headers}
    if key is not None:
        h["Idempotency-Key"] = key
    return client.post("/v1/checkouts", json=body, headers=h)


def token(role: str, **kw: Any) -> dict[str, str]:
    t = make_token(JWT_SECRET, sub=f"{role}-1", role=role, exp=int(time.time()) + 300, **kw)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {t}"}


def test_accepts_a_valid_checkout_and_produces_start_checkout(
    client: TestClient, world: World
) -> None:
    r = post(client, checkout_body())
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "PENDING"
    assert body["status_url"] == f"/v1/checkouts/{body['checkout_id']}"
    assert r.headers["location"] == body["status_url"]
    [cmd] = world.bus.messages(m.StartCheckout)
    assert cmd.checkout_id == body["checkout_id"]
    assert cmd.tenant_id == "shop-1"
    assert cmd.items == (m.LineItem("SKU-1", 2, 1250), m.LineItem("SKU-2", 1, 500))
    assert cmd.shipping_address.country == "DE"
    assert world.accepted.get(cmd.checkout_id) is not None


def test_same_key_same_body_replays_the_same_checkout(client: TestClient, world: World) -> None:
    first = post(client, checkout_body())
    # Key order and whitespace do not make a different request.
    reordered = dict(reversed(list(checkout_body().items())))
    second = post(client, reordered)
    assert second.status_code == 202
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert len(world.bus.sent) == 1


def test_same_key_other_body_is_a_conflict(client: TestClient, world: World) -> None:
    post(client, checkout_body())
    r = post(client, checkout_body(currency="USD"))
    assert r.status_code == 409
    assert r.json()["error"] == "idempotency_key_reused"
    assert len(world.bus.sent) == 1


def test_the_same_key_in_two_tenants_is_two_checkouts(client: TestClient, world: World) -> None:
    a = post(client, checkout_body())
    b = post(client, checkout_body(), Authorization=f"Bearer {OTHER_KEY}")
    assert a.status_code == b.status_code == 202
    assert a.json()["checkout_id"] != b.json()["checkout_id"]


def test_missing_idempotency_key_is_400(client: TestClient, world: World) -> None:
    r = post(client, checkout_body(), key=None)
    assert r.status_code == 400
    assert r.json()["error"] == "idempotency_key_required"
    assert world.bus.sent == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "eur"}, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"items": []}, "items"),
        ({"items": [{"sku": "A", "quantity": 1, "unit_amount": 12.5}]}, "items.0.unit_amount"),
        ({"items": [{"sku": "A", "quantity": 1, "unit_amount": "1250"}]}, "items.0.unit_amount"),
        ({"items": [{"sku": "A", "quantity": 0, "unit_amount": 1}]}, "items.0.quantity"),
        ({"items": [{"sku": "A", "quantity": 10_001, "unit_amount": 1}]}, "items.0.quantity"),
        ({"items": [{"sku": "", "quantity": 1, "unit_amount": 1}]}, "items.0.sku"),
        ({"items": [{"sku": "A" * 65, "quantity": 1, "unit_amount": 1}]}, "items.0.sku"),
        ({"items": [{"sku": "A", "quantity": 1, "unit_amount": -1}]}, "items.0.unit_amount"),
        ({"items": [{"sku": "A", "quantity": True, "unit_amount": 1}]}, "items.0.quantity"),
        ({"customer": {"id": "c", "email": "not-an-email"}}, "customer.email"),
        ({"payment": {"provider": "adyen", "payment_method": "x"}}, "payment.provider"),
        ({"payment": {"provider": "stripe", "payment_method": ""}}, "payment.payment_method"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_bodies_get_field_level_reasons(
    client: TestClient, world: World, change: dict[str, Any], field: str
) -> None:
    r = post(client, checkout_body(**change))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation_failed"
    assert field in [f["field"] for f in body["fields"]], body
    assert world.bus.sent == []


def test_too_many_lines_and_unknown_country(client: TestClient) -> None:
    line = {"sku": "A", "quantity": 1, "unit_amount": 1}
    assert post(client, checkout_body(items=[line] * 101)).status_code == 422
    address = {**checkout_body()["shipping_address"], "country": "ZZ"}
    r = post(client, checkout_body(shipping_address=address), key="k-2")
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "shipping_address.country"


def test_broker_failure_is_503_and_releases_the_key(client: TestClient, world: World) -> None:
    world.bus.fail = True
    r = post(client, checkout_body())
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    world.bus.fail = False
    retry = post(client, checkout_body())
    assert retry.status_code == 202
    # The retry derives the same id, so a write that did land after all is the same checkout.
    assert len(world.bus.sent) == 1


def test_concurrent_twins_produce_once(world: World) -> None:
    gate = threading.Event()
    real_send = world.bus.send

    def slow_send(envelope: Any) -> None:
        gate.wait(5)
        real_send(envelope)

    world.bus.send = slow_send  # type: ignore[method-assign]
    world.deps.idempotency_wait_s = 5
    results: list[Any] = []
    with TestClient(app_for(world)) as client:
        threads = [
            threading.Thread(target=lambda: results.append(post(client, checkout_body())))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while not world.idempotency.entries and time.monotonic() < deadline:
            time.sleep(0.01)
        gate.set()
        for t in threads:
            t.join(10)
    assert [r.status_code for r in results] == [202, 202]
    assert results[0].json() == results[1].json()
    assert len(world.bus.sent) == 1


def test_a_twin_still_in_flight_is_409_in_progress(client: TestClient, world: World) -> None:
    # Another replica reserved the key and has not finished.
    from api.idempotency import fingerprint

    body = checkout_body()
    from api.models import CheckoutRequest

    fp = fingerprint("tenant:shop-1", CheckoutRequest.model_validate(body).model_dump(mode="json"))
    world.idempotency.reserve("checkout:shop-1", "k-1", fp)
    r = post(client, body)
    assert r.status_code == 409
    assert r.json()["error"] == "request_in_progress"
    assert world.bus.sent == []


def test_get_accepted_but_not_projected_is_pending_and_says_so(
    client: TestClient, world: World
) -> None:
    checkout_id = post(client, checkout_body()).json()["checkout_id"]
    r = client.get(f"/v1/checkouts/{checkout_id}", headers=SHOP)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "PENDING"
    assert body["projection"] == {"caught_up": False, "last_event": None, "events_applied": 0}
    assert body["amounts"]["subtotal"] == 3000


def test_get_projected_checkout(client: TestClient, world: World) -> None:
    world.reads.checkouts["co_1"] = CheckoutRecord(
        checkout_id="co_1",
        tenant_id="shop-1",
        status="COMPLETED",
        currency="EUR",
        subtotal=3000,
        tax=300,
        shipping=500,
        total=3800,
        order_id="ord_1",
        steps=(StepRecord("reserve_inventory", "succeeded", 1, "2024-01-01T00:00:00+00:00"),),
        last_event_id="e1",
        last_event_type="CheckoutCompleted",
        last_event_at="2024-01-01T00:00:01+00:00",
        events_applied=14,
    )
    body = client.get("/v1/checkouts/co_1", headers=SHOP).json()
    assert body["status"] == "COMPLETED"
    assert body["amounts"] == {
        "subtotal": 3000,
        "tax": 300,
        "shipping": 500,
        "total": 3800,
        "currency": "EUR",
    }
    assert body["order_id"] == "ord_1"
    assert body["projection"]["caught_up"] is True
    assert body["projection"]["last_event"]["type"] == "CheckoutCompleted"
    assert body["steps"][0]["step"] == "reserve_inventory"
    # Another tenant's storefront does not learn that it exists; an operator sees it.
    other = client.get("/v1/checkouts/co_1", headers={"X-API-Key": OTHER_KEY})
    assert other.status_code == 404
    assert client.get("/v1/checkouts/co_1", headers=token("operator")).status_code == 200


def test_unknown_checkout_is_404(client: TestClient) -> None:
    r = client.get("/v1/checkouts/co_nope", headers=SHOP)
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


def test_cancel_produces_cancel_checkout(client: TestClient, world: World) -> None:
    checkout_id = post(client, checkout_body()).json()["checkout_id"]
    r = client.post(f"/v1/checkouts/{checkout_id}/cancel", headers=SHOP, json={"reason": "oops"})
    assert r.status_code == 202
    assert r.json()["status"] == "CANCEL_REQUESTED"
    [cancel] = world.bus.messages(m.CancelCheckout)
    assert (cancel.checkout_id, cancel.reason) == (checkout_id, "oops")
    assert world.audit.rows == []  # storefronts cancelling their own checkouts are not admin acts


def test_operator_cancel_is_audited(client: TestClient, world: World) -> None:
    checkout_id = post(client, checkout_body()).json()["checkout_id"]
    r = client.post(f"/v1/checkouts/{checkout_id}/cancel", headers=token("operator"))
    assert r.status_code == 202
    [row] = world.audit.rows
    assert row["actor"] == "operator-1"
    assert row["action"] == "checkout.cancel"
    assert row["object"] == f"checkout:{checkout_id}"


def test_cancel_of_another_tenants_checkout_is_404(client: TestClient, world: World) -> None:
    checkout_id = post(client, checkout_body()).json()["checkout_id"]
    r = client.post(f"/v1/checkouts/{checkout_id}/cancel", headers={"X-API-Key": OTHER_KEY})
    assert r.status_code == 404
    assert world.bus.messages(m.CancelCheckout) == []


def _awaiting(status: str = "AWAITING_PAYMENT_ACTION") -> CheckoutRecord:
    return CheckoutRecord(
        checkout_id="co_3ds",
        tenant_id="shop-1",
        status=status,
        currency="EUR",
        subtotal=3000,
        next_action=NextActionRecord(
            provider="stripe", kind="use_stripe_sdk", client_secret="pi_1_secret_x"
        ),
    )


def test_get_gives_the_owning_storefront_the_next_action(client: TestClient, world: World) -> None:
    world.reads.checkouts["co_3ds"] = _awaiting()
    body = client.get("/v1/checkouts/co_3ds", headers=SHOP).json()
    assert body["status"] == "AWAITING_PAYMENT_ACTION"
    assert body["next_action"] == {
        "provider": "stripe",
        "kind": "use_stripe_sdk",
        "client_secret": "pi_1_secret_x",
        "redirect_url": None,
    }


def test_next_action_is_never_shown_to_another_tenant_and_its_secret_not_to_operators(
    client: TestClient, world: World
) -> None:
    world.reads.checkouts["co_3ds"] = _awaiting()
    other = client.get("/v1/checkouts/co_3ds", headers={"X-API-Key": OTHER_KEY})
    assert other.status_code == 404
    assert "secret" not in other.text
    foreign = client.get("/v1/checkouts/co_3ds", headers=token("storefront", tenant="shop-2"))
    assert foreign.status_code == 404
    op = client.get("/v1/checkouts/co_3ds", headers=token("operator")).json()
    assert op["next_action"] == {
        "provider": "stripe",
        "kind": "use_stripe_sdk",
        "client_secret": None,
        "redirect_url": None,
    }


def test_next_action_is_absent_outside_awaiting_payment_action(
    client: TestClient, world: World
) -> None:
    # Even a row that still carried one (a projector mid-upgrade) shows none once it is over.
    world.reads.checkouts["co_3ds"] = _awaiting(status="COMPLETED")
    r = client.get("/v1/checkouts/co_3ds", headers=SHOP)
    assert r.json()["next_action"] is None
    assert "pi_1_secret_x" not in r.text
