"""`/console` and `/v1/ops/...` against the fake Operations port: who may call them, what the
acts carry (the JWT subject as the actor), and how refusals and outages answer."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from api.auth import make_token
from tests.unit.api.fakes import JWT_SECRET, SHOP_KEY, World


def bearer(role: str, sub: str = "alice") -> dict[str, str]:
    token = make_token(JWT_SECRET, sub=sub, role=role, exp=int(time.time()) + 600)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


def parked(world: World, checkout_id: str = "co-parked") -> None:
    world.ops.checkouts.append(
        {
            "checkout_id": checkout_id,
            "customer_email": "b@example.com",
            "status": "NEEDS_ATTENTION",
            "total": 100,
            "currency": "EUR",
            "started_at": None,
            "step": "refund_payment",
            "why": "provider down",
        }
    )


def test_console_page_and_assets_are_served_with_their_own_policy(client: TestClient) -> None:
    page = client.get("/console")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/console/app.js"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert client.get("/console/app.js").headers["content-type"].startswith("text/javascript")
    assert "sessionStorage" in client.get("/console/app.js").text
    assert client.get("/console/app.css").status_code == 200
    assert client.get("/console/..%2fapp.py").status_code == 404
    assert client.get("/console/secrets.py").status_code == 404


def test_ops_needs_an_operator(client: TestClient) -> None:
    assert client.get("/v1/ops/status").status_code == 401
    assert (
        client.get("/v1/ops/status", headers={"Authorization": f"Bearer {SHOP_KEY}"}).status_code
        == 403
    )
    assert client.get("/v1/ops/status", headers=bearer("storefront")).status_code == 403
    assert client.get("/v1/ops/status", headers=bearer("operator")).json() == {
        "lag": [],
        "dlq": [],
        "breakers": [],
    }
    assert client.get("/v1/ops/status", headers=bearer("admin")).status_code == 200


def test_search_filters_by_text_and_status(client: TestClient, world: World) -> None:
    parked(world)
    ok = client.get("/v1/ops/checkouts", params={"q": "b@example.com"}, headers=bearer("operator"))
    assert [c["checkout_id"] for c in ok.json()["checkouts"]] == ["co-parked"]
    none = client.get(
        "/v1/ops/checkouts", params={"status": "completed"}, headers=bearer("operator")
    )
    assert none.json()["checkouts"] == []
    bad = client.get("/v1/ops/checkouts", params={"status": "NOPE"}, headers=bearer("operator"))
    assert bad.status_code == 422


def test_retry_is_audited_as_the_token_subject(client: TestClient, world: World) -> None:
    parked(world)
    r = client.post(
        "/v1/ops/checkouts/co-parked/retry",
        json={"reason": "PSP back"},
        headers=bearer("operator", "bob"),
    )
    assert r.status_code == 200, r.text
    assert world.ops.acts == [("checkout.retry", "co-parked", "bob", "PSP back")]
    missing = client.post(
        "/v1/ops/checkouts/co-none/retry", json={"reason": "x"}, headers=bearer("operator")
    )
    assert missing.status_code == 404
    no_reason = client.post(
        "/v1/ops/checkouts/co-parked/retry", json={"reason": ""}, headers=bearer("operator")
    )
    assert no_reason.status_code == 422


def test_redrive_once_then_refused(client: TestClient, world: World) -> None:
    world.ops.letters["checkout.commands.dlq:0:5"] = {
        "id": "checkout.commands.dlq:0:5",
        "redriven": [],
    }
    url = "/v1/ops/dlq/checkout.commands.dlq:0:5/redrive"
    first = client.post(url, json={"reason": "fixed"}, headers=bearer("operator", "carol"))
    assert first.status_code == 200, first.text
    again = client.post(url, json={"reason": "fixed"}, headers=bearer("operator", "carol"))
    assert again.status_code == 409 and "re-driven by carol" in again.json()["reason"]
    assert world.ops.acts == [("dlq.redrive", "checkout.commands.dlq:0:5", "carol", "fixed")]


def test_an_outage_is_a_503_with_one_line(client: TestClient, world: World) -> None:
    world.ops.unavailable = "broker at 127.0.0.1:1 unreachable"
    r = client.get("/v1/ops/dlq", headers=bearer("operator"))
    assert r.status_code == 503 and r.json()["reason"] == "broker at 127.0.0.1:1 unreachable"


def test_timeline_unknown_is_404(client: TestClient, world: World) -> None:
    world.ops.timelines["co-1"] = {"checkout_id": "co-1", "lanes": [], "events": []}
    ok: Any = client.get("/v1/ops/checkouts/co-1/timeline", headers=bearer("operator")).json()
    assert ok["checkout_id"] == "co-1"
    assert (
        client.get("/v1/ops/checkouts/co-2/timeline", headers=bearer("operator")).status_code == 404
    )
