"""Authentication, RBAC and rate limits."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from api.auth import make_token
from tests.unit.api.fakes import (
    JWT_SECRET,
    OTHER_KEY,
    SHOP_KEY,
    World,
    app_for,
    checkout_body,
    make_world,
)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def token(role: str, exp_in: int = 300, secret: str = JWT_SECRET, **kw: Any) -> str:
    return make_token(secret, sub=f"{role}-1", role=role, exp=int(time.time()) + exp_in, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "reason_part"),
    [
        ({}, "missing credentials"),
        (bearer("sk_unknown_key_000000000000"), "unknown or revoked"),
        ({"X-API-Key": "sk_unknown_key_000000000000"}, "unknown or revoked"),
        ({"X-API-Key": "not-a-key"}, "storefront API key"),
        (bearer("not.a.jwt"), "invalid token"),
        (bearer(token("admin", exp_in=-3600)), "expired"),
        (bearer(token("admin", secret="another-secret-of-sufficient-length-123")), "invalid"),
        ({**bearer(SHOP_KEY), "X-API-Key": SHOP_KEY}, "not both"),
    ],
)
def test_401_with_a_reason(client: TestClient, headers: dict[str, str], reason_part: str) -> None:
    r = client.get("/v1/checkouts/co_x", headers=headers)
    assert r.status_code == 401
    body = r.json()
    assert body["error"] == "unauthorized"
    assert reason_part in body["reason"]
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_tokens_without_exp_or_with_alg_none_are_refused(client: TestClient) -> None:
    no_exp = jwt.encode({"sub": "a", "role": "admin"}, JWT_SECRET, algorithm="HS256")
    r = client.get("/v1/checkouts/co_x", headers=bearer(no_exp))
    assert r.status_code == 401 and "exp" in r.json()["reason"]
    unsigned = jwt.encode(
        {"sub": "a", "role": "admin", "exp": int(time.time()) + 60}, key=None, algorithm="none"
    )
    assert client.get("/v1/checkouts/co_x", headers=bearer(unsigned)).status_code == 401


def test_unknown_role_and_tenantless_storefront_token_are_403(client: TestClient) -> None:
    r = client.get("/v1/checkouts/co_x", headers=bearer(token("root")))
    assert r.status_code == 403 and "role" in r.json()["reason"]
    r = client.get("/v1/checkouts/co_x", headers=bearer(token("storefront")))
    assert r.status_code == 403 and "tenant" in r.json()["reason"]


def test_storefront_token_with_tenant_may_create(client: TestClient, world: World) -> None:
    headers = {**bearer(token("storefront", tenant="shop-9")), "Idempotency-Key": "t-1"}
    r = client.post("/v1/checkouts", json=checkout_body(), headers=headers)
    assert r.status_code == 202
    assert world.bus.sent[0].message.tenant_id == "shop-9"


def test_operators_and_admins_do_not_create_checkouts(client: TestClient) -> None:
    headers = {**bearer(token("admin")), "Idempotency-Key": "t-1"}
    r = client.post("/v1/checkouts", json=checkout_body(), headers=headers)
    assert r.status_code == 403
    assert r.json() == {
        "error": "forbidden",
        "reason": "role 'admin' may not do this; needs one of storefront",
        "request_id": r.headers["x-request-id"],
    }


def test_writes_are_limited_per_credential_with_retry_after() -> None:
    world = make_world()
    world.limiter.limit = 2
    headers = {**bearer(SHOP_KEY), "Idempotency-Key": "k"}
    with TestClient(app_for(world)) as client:
        codes = [
            client.post("/v1/checkouts", json=checkout_body(), headers=headers).status_code
            for _ in range(3)
        ]
        assert codes == [202, 202, 429]
        r = client.post("/v1/checkouts", json=checkout_body(), headers=headers)
        assert r.headers["retry-after"] == "7"
        assert r.json()["error"] == "rate_limited"
        # Another storefront behind the same IP is not slowed by the first one's writes.
        other = {**bearer(OTHER_KEY), "Idempotency-Key": "k"}
        assert client.post("/v1/checkouts", json=checkout_body(), headers=other).status_code == 202
    assert set(world.limiter.hits) == {"key:key_shop1", "key:key_shop2"}


def test_status_reads_by_an_authenticated_storefront_are_not_throttled() -> None:
    world = make_world()
    world.limiter.limit = 1
    world.auth_failures.limit = 1
    with TestClient(app_for(world)) as client:
        codes = {client.get("/v1/checkouts/co_x", headers=bearer(SHOP_KEY)).status_code
                 for _ in range(50)}  # fmt: skip
    assert codes == {404}
    assert world.limiter.hits == {} and world.auth_failures.hits == {}


def test_failed_authentications_are_limited_per_ip_and_then_refused_unchecked() -> None:
    world = make_world()
    world.auth_failures.limit = 2
    with TestClient(app_for(world)) as client:
        wrong = [client.get("/v1/checkouts/x", headers=bearer("sk_wrong")).status_code
                 for _ in range(3)]  # fmt: skip
        assert wrong == [401, 401, 429]
        r = client.get("/v1/checkouts/x", headers=bearer(SHOP_KEY))
        # Over the budget even a valid key waits: the credential is not looked at.
        assert r.status_code == 429 and r.headers["retry-after"] == "7"
        assert "failed authentications" in r.json()["reason"]
    assert set(world.auth_failures.hits) == {"ip:testclient"}
    assert world.auth_failures.hits["ip:testclient"] == 2
