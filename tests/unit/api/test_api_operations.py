"""Health, readiness, metrics, security headers, body limits, the catch-all."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from tests.unit.api.fakes import SHOP_KEY, World, app_for, checkout_body, make_world


def test_health_needs_nothing(world: World) -> None:
    world.bus.fail = True
    with TestClient(app_for(world)) as client:
        r = client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_ready_reports_each_dependency(client: TestClient, world: World) -> None:
    r = client.get("/ready")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"
    assert set(r.json()["checks"]) == {"broker", "redis"}
    world.bus.fail = True
    r = client.get("/ready")
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["broker"]["ok"] is False and checks["redis"]["ok"] is True
    assert checks["broker"]["detail"] == "unreachable (ConnectionError)"


def test_metrics_count_requests_by_route_template_and_checkout_outcomes(
    client: TestClient,
) -> None:
    headers = {"Authorization": f"Bearer {SHOP_KEY}", "Idempotency-Key": "m-1"}
    client.post("/v1/checkouts", json=checkout_body(), headers=headers)
    client.post("/v1/checkouts", json=checkout_body(), headers=headers)
    client.post("/v1/checkouts", json=checkout_body(currency="X"), headers=headers)
    client.get("/v1/checkouts/co_abc", headers=headers)
    text = client.get("/metrics").text
    assert 'api_checkout_outcomes_total{outcome="accepted"} 1.0' in text
    assert 'api_checkout_outcomes_total{outcome="replayed"} 1.0' in text
    assert 'api_checkout_outcomes_total{outcome="invalid"} 1.0' in text
    assert (
        'api_requests_total{method="GET",route="/v1/checkouts/{checkout_id}",status="404"} 1.0'
        in text
    )
    assert 'api_request_duration_seconds_bucket{le="0.005",method="POST"' in text


def test_two_apps_have_separate_registries() -> None:
    a, b = TestClient(app_for(make_world())), TestClient(app_for(make_world()))
    a.get("/health")
    assert 'route="/health"' in a.get("/metrics").text
    assert 'route="/health"' not in b.get("/metrics").text


def test_security_headers_and_request_id(client: TestClient) -> None:
    r = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["strict-transport-security"].startswith("max-age=")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-request-id"] == "abc-123"
    # A request id that could smuggle something into logs is replaced.
    r = client.get("/health", headers={"X-Request-ID": "a b\tc"})
    assert r.headers["x-request-id"] != "a b\tc"


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {SHOP_KEY}", "Idempotency-Key": "big"}
    big = b'{"x": "' + b"a" * (70 * 1024) + b'"}'
    r = client.post(
        "/v1/checkouts", content=big, headers={**headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"

    def chunks() -> object:  # no Content-Length: the limit counts streamed bytes
        for _ in range(70):
            yield b"a" * 1024

    r = client.post("/v1/webhooks/stripe", content=chunks(), headers={"Stripe-Signature": "x"})
    assert r.status_code == 413


def test_unexpected_errors_are_500_without_details(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(checkout_id: str) -> None:
        raise RuntimeError("postgresql://user:hunter2@db/prod exploded")

    world.reads.checkout = boom  # type: ignore[method-assign]
    with (
        TestClient(app_for(world), raise_server_exceptions=False) as client,
        caplog.at_level(logging.INFO),
    ):
        r = client.get("/v1/checkouts/co_1", headers={"X-API-Key": SHOP_KEY})
    assert r.status_code == 500
    assert r.json() == {
        "error": "internal",
        "reason": "internal error",
        "request_id": r.headers["x-request-id"],
    }
    assert "hunter2" not in r.text
    assert "hunter2" not in caplog.text
    assert "RuntimeError" in caplog.text and r.headers["x-request-id"] in caplog.text
    assert r.headers["x-content-type-options"] == "nosniff"


def test_a_store_that_is_away_is_503_retry_not_500(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A PostgreSQL restart (or Redis failover) mid-request: nothing was decided, the caller
    may send the same request again; the answer says so without the error's text, and the log
    says unavailable at WARNING (an operational condition, not an unhandled error)."""
    import psycopg

    def away(checkout_id: str) -> None:
        raise psycopg.OperationalError("connection to postgresql://u:hunter2@db failed")

    world.reads.checkout = away  # type: ignore[method-assign]
    with TestClient(app_for(world), raise_server_exceptions=False) as client:
        r = client.get("/v1/checkouts/co_1", headers={"X-API-Key": SHOP_KEY})
    assert r.status_code == 503
    assert r.json()["error"] == "unavailable" and "OperationalError" in r.json()["reason"]
    assert "hunter2" not in r.text
    lines = [rec for rec in caplog.records if r.headers["x-request-id"] in rec.getMessage()]
    assert [(rec.levelname, rec.getMessage().split(" request_id")[0]) for rec in lines] == [
        ("WARNING", "backing service unavailable")
    ]
