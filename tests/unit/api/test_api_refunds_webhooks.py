"""Admin refunds and Stripe webhooks."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from adapters.payments.webhook_ingest import WebhookNotRecorded
from api.auth import make_token
from api.ports import OrderRecord
from events import messages as m
from tests.unit.api.fakes import GOOD_SIGNATURE, JWT_SECRET, SHOP_KEY, World

ORDER = OrderRecord("ord_1", "co_1", "shop-1", "EUR", captured=3800, refunded=1000)


def admin(key: str = "r-1") -> dict[str, str]:
    t = make_token(JWT_SECRET, sub="alice", role="admin", exp=int(time.time()) + 300)
    return {"Authorization": f"Bearer {t}", "Idempotency-Key": key}


def test_refund_within_the_refundable_amount(client: TestClient, world: World) -> None:
    world.reads.orders["ord_1"] = ORDER
    r = client.post("/v1/orders/ord_1/refunds", json={"amount": 2800}, headers=admin())
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "REFUND_REQUESTED" and body["currency"] == "EUR"
    [cmd] = world.bus.messages(m.RequestRefund)
    assert (cmd.checkout_id, cmd.amount, cmd.currency) == ("co_1", 2800, "EUR")
    assert cmd.refund_request_id == body["refund_request_id"]
    [row] = world.audit.rows
    assert (row["actor"], row["action"], row["object"]) == ("alice", "order.refund", "order:ord_1")
    assert row["before"]["refundable"] == 2800 and row["after"]["amount"] == 2800


def test_over_refund_is_422_with_the_refundable_amount(client: TestClient, world: World) -> None:
    world.reads.orders["ord_1"] = ORDER
    r = client.post("/v1/orders/ord_1/refunds", json={"amount": 2801}, headers=admin())
    assert r.status_code == 422
    assert r.json()["error"] == "over_refund"
    assert r.json()["refundable_amount"] == 2800
    assert world.bus.sent == [] and world.audit.rows == []


def test_refund_retries_are_one_request(client: TestClient, world: World) -> None:
    world.reads.orders["ord_1"] = ORDER
    first = client.post("/v1/orders/ord_1/refunds", json={"amount": 100}, headers=admin())
    again = client.post("/v1/orders/ord_1/refunds", json={"amount": 100}, headers=admin())
    assert first.json() == again.json()
    assert len(world.bus.sent) == 1
    other = client.post("/v1/orders/ord_1/refunds", json={"amount": 200}, headers=admin())
    assert other.status_code == 409
    second = client.post("/v1/orders/ord_1/refunds", json={"amount": 100}, headers=admin("r-2"))
    assert second.json()["refund_request_id"] != first.json()["refund_request_id"]


def test_refunds_are_admin_only(client: TestClient, world: World) -> None:
    world.reads.orders["ord_1"] = ORDER
    headers = {"Authorization": f"Bearer {SHOP_KEY}", "Idempotency-Key": "x"}
    assert (
        client.post("/v1/orders/ord_1/refunds", json={"amount": 1}, headers=headers).status_code
        == 403
    )
    op = make_token(JWT_SECRET, sub="bob", role="operator", exp=int(time.time()) + 60)
    headers = {"Authorization": f"Bearer {op}", "Idempotency-Key": "x"}
    assert (
        client.post("/v1/orders/ord_1/refunds", json={"amount": 1}, headers=headers).status_code
        == 403
    )


def test_refund_of_unknown_order_and_bad_amounts(client: TestClient) -> None:
    assert (
        client.post("/v1/orders/nope/refunds", json={"amount": 1}, headers=admin()).status_code
        == 404
    )
    for amount in (0, -5, 1.5, "10"):
        r = client.post("/v1/orders/ord_1/refunds", json={"amount": amount}, headers=admin())
        assert r.status_code == 422 and r.json()["fields"][0]["field"] == "amount"


def test_webhook_bad_signature_is_400(client: TestClient, world: World) -> None:
    r = client.post(
        "/v1/webhooks/stripe", content=b'{"id":"evt_1"}', headers={"Stripe-Signature": "t=1,v1=bad"}
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_signature"
    assert "no v1 signature" in r.json()["reason"]
    r = client.post("/v1/webhooks/stripe", content=b"{}")
    assert r.status_code == 400 and "missing" in r.json()["reason"]


def test_webhook_duplicates_are_2xx(client: TestClient, world: World) -> None:
    for _ in range(2):
        r = client.post(
            "/v1/webhooks/stripe",
            content=b'{"id":"evt_1"}',
            headers={"Stripe-Signature": GOOD_SIGNATURE},
        )
        assert r.status_code == 200 and r.json() == {"received": True}
    assert world.ingest.signals == [b'{"id":"evt_1"}']


def test_webhook_not_recorded_is_503(client: TestClient, world: World) -> None:
    def failing(payload: bytes, signature: str) -> None:
        raise WebhookNotRecorded("broker down")

    world.deps.webhook_ingest = failing
    r = client.post(
        "/v1/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": GOOD_SIGNATURE}
    )
    assert r.status_code == 503


def test_a_recorded_webhook_observes_its_delivery_delay(client: TestClient) -> None:
    created = int(time.time()) - 400  # the provider made the event almost 7 minutes ago
    r = client.post(
        "/v1/webhooks/stripe",
        content=f'{{"id":"evt_late","created":{created}}}'.encode(),
        headers={"Stripe-Signature": GOOD_SIGNATURE},
    )
    assert r.status_code == 200
    registry = client.app.state.metrics.registry  # type: ignore[attr-defined]
    labels = {"provider": "stripe"}
    assert registry.get_sample_value("api_webhook_delay_seconds_count", labels) == 1
    assert registry.get_sample_value("api_webhook_delay_seconds_sum", labels) >= 400
    # over the 5-minute alert threshold: not in the 300 s bucket
    assert (
        registry.get_sample_value("api_webhook_delay_seconds_bucket", {**labels, "le": "300.0"})
        == 0
    )


def test_a_refused_webhook_observes_no_delay(client: TestClient, world: World) -> None:
    def failing(payload: bytes, signature: str) -> None:
        raise WebhookNotRecorded("broker down")

    world.deps.webhook_ingest = failing
    body = f'{{"id":"evt_x","created":{int(time.time())}}}'.encode()
    r = client.post(
        "/v1/webhooks/stripe", content=body, headers={"Stripe-Signature": GOOD_SIGNATURE}
    )
    assert r.status_code == 503
    registry = client.app.state.metrics.registry  # type: ignore[attr-defined]
    assert (
        registry.get_sample_value("api_webhook_delay_seconds_count", {"provider": "stripe"}) is None
    )


def test_provider_created_stamps_are_read() -> None:
    from api.metrics import event_created_s

    assert event_created_s(b'{"created": 1700000000}') == 1700000000.0  # Stripe
    assert event_created_s(b'{"created_at": 1700000001}') == 1700000001.0  # Razorpay
    paypal = b'{"create_time": "2023-11-14T22:13:20Z"}'
    assert event_created_s(paypal) == 1700000000.0
    assert event_created_s(b"not json") is None and event_created_s(b'{"created": true}') is None
