"""The API's own OpenAPI document, fuzzed with schemathesis against fakes: no 5xx, and every
response matches the declared status codes, content types and schemas."""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.auth import make_token
from api.ports import CheckoutRecord, OrderRecord, StepRecord
from tests.unit.api.fakes import JWT_SECRET, SHOP_KEY, app_for, make_world

WORLD = make_world()
# Something for the reads to find, so GET and refunds do not only ever answer 404.
WORLD.reads.checkouts["co_1"] = CheckoutRecord(
    checkout_id="co_1",
    tenant_id="shop-1",
    status="COMPLETED",
    currency="EUR",
    subtotal=1,
    tax=0,
    shipping=0,
    total=1,
    steps=(StepRecord("reserve_inventory", "succeeded", 1),),
)
WORLD.reads.orders["ord_1"] = OrderRecord("ord_1", "co_1", "shop-1", "EUR", 100, 0)
APP = app_for(WORLD)
ADMIN = make_token(JWT_SECRET, sub="fuzz-admin", role="admin", exp=int(time.time()) + 3600)
CALLS = [0]
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # deterministic: the same examples on every run
)
def test_openapi_is_true(case: Any) -> None:
    headers = dict(case.headers or {})
    # Authenticate as a storefront unless the case tests authentication itself.
    headers.setdefault("Authorization", f"Bearer {SHOP_KEY}")
    # Every other case is steered onto the success paths (fresh Idempotency-Key, ids that
    # exist), so fuzzed bodies reach the produce and the 202 responses get validated too.
    CALLS[0] += 1
    if CALLS[0] % 2 == 0:
        headers["Idempotency-Key"] = f"fuzz-{CALLS[0]}"
        params = case.path_parameters or {}
        if "checkout_id" in params:
            params["checkout_id"] = "co_1"
        if "order_id" in params:
            params["order_id"] = "ord_1"
            headers["Authorization"] = f"Bearer {ADMIN}"
    case.call_and_validate(headers=headers, checks=CHECKS)


def test_the_fuzzer_reached_the_success_paths() -> None:
    produced = {type(e.message).__name__ for e in WORLD.bus.sent}
    assert {"StartCheckout", "CancelCheckout"} <= produced, produced


def test_openapi_declares_what_the_contract_needs() -> None:
    doc = APP.openapi()
    post = doc["paths"]["/v1/checkouts"]["post"]
    assert {"202", "400", "401", "403", "409", "422", "429", "503"} <= set(post["responses"])
    schemes = doc["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schemes)


@pytest.fixture(autouse=True)
def _fresh_limits() -> None:
    WORLD.limiter.hits.clear()
