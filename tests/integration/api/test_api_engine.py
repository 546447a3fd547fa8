"""The HTTP API on the embedded stack with the engine running: real Kafka, PostgreSQL, Redis,
the orchestrator with scripted adapters, and the projector feeding the read model the API reads.
Every request goes through HTTP (FastAPI's TestClient over the real `build_api_deps`)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import redis
import stripe
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import make_token
from api.deps import ApiDeps
from api.keys import create_api_key
from api.redis_stores import RedisTokenBucket
from events import messages as m
from events.serde import make_serde
from infra.api_wiring import build_api_deps
from infra.bootstrap import build_processor
from infra.embedded.stack import RunningStack
from infra.settings import Settings
from infra.topics import ensure_topics
from projections.projector import Projector, ProjectorConfig
from tests.integration.scripted_adapters import ScriptedWorld
from tests.integration.workers import running
from tests.unit.api.fakes import checkout_body as body

pytestmark = pytest.mark.integration

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"}


class RefundingWorld(ScriptedWorld):
    """The scripted world, plus refunds (the orchestrator tests never needed them)."""

    def payment(self, cmd: Any) -> Any:
        if isinstance(cmd, m.RefundPayment):
            return m.PaymentRefunded(
                cmd.checkout_id,
                cmd.attempt,
                cmd.payment_id,
                f"re_{cmd.idempotency_key[:16]}",
                cmd.amount,
                cmd.currency,
            )
        return super().payment(cmd)


@dataclasses.dataclass
class Env:
    client: TestClient
    deps: ApiDeps
    settings: Settings
    world: RefundingWorld
    shop_key: str
    other_key: str
    database_url: str

    def shop(self, **headers: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.shop_key}", **headers}

    def jwt(self, role: str, **headers: str) -> dict[str, str]:
        token = make_token(
            self.settings.jwt_secret,
            sub=f"{role}-it",
            role=role,
            exp=int(time.time()) + 600,  # type: ignore[arg-type]
        )
        return {"Authorization": f"Bearer {token}", **headers}


@pytest.fixture(scope="module")
def api_database(stack: RunningStack) -> Iterator[str]:
    """One database for the module: the projector and the API share it."""
    admin_url = stack.settings.database_url
    assert admin_url
    name = f"api_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def env(stack: RunningStack, api_database: str) -> Iterator[Env]:
    settings = dataclasses.replace(
        stack.settings, database_url=api_database, jwt_secret="integration-" + "s" * 40
    )
    assert settings.kafka_bootstrap_servers
    ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
    world = RefundingWorld()
    suffix = uuid.uuid4().hex[:6]
    processors = [
        build_processor(role, settings, services=world.services(), instance_id=suffix)
        for role in ("orchestrator", "inventory", "tax", "shipping", "payment", "notification")
    ]
    projector = Projector(
        ProjectorConfig(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            database_url=api_database,
            group=f"projector-api-{suffix}",
            poll_timeout_s=0.05,
            session_timeout_ms=settings.session_timeout_ms,
            isolation_level=settings.kafka_isolation_level,
        ),
        make_serde(None),
    )
    projector_thread = threading.Thread(target=projector.run, name="projector", daemon=True)
    deps = build_api_deps(settings)
    with psycopg.connect(api_database, autocommit=True) as conn:
        shop_key = create_api_key(conn, f"shop-{suffix}", "integration")
        other_key = create_api_key(conn, f"other-{suffix}", "integration")
    with running(*processors):
        projector_thread.start()
        try:
            with TestClient(create_app(deps)) as client:
                yield Env(client, deps, settings, world, shop_key, other_key, api_database)
        finally:
            projector.stop()
            projector_thread.join(30)


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    last = fetch()
    while not done(last):
        if time.monotonic() > deadline:
            raise AssertionError(f"not done before the deadline; last: {last}")
        time.sleep(0.1)
        last = fetch()
    return last


def start(env: Env, **changes: Any) -> str:
    r = env.client.post(
        "/v1/checkouts",
        json=body(**changes),
        headers=env.shop(**{"Idempotency-Key": uuid.uuid4().hex}),
    )
    assert r.status_code == 202, r.text
    return str(r.json()["checkout_id"])


def status(env: Env, checkout_id: str) -> dict[str, Any]:
    r = env.client.get(f"/v1/checkouts/{checkout_id}", headers=env.shop())
    assert r.status_code == 200, r.text
    return dict(r.json())


def finished(env: Env, checkout_id: str) -> dict[str, Any]:
    return dict(poll(lambda: status(env, checkout_id), lambda s: s["status"] in TERMINAL))


def test_a_checkout_through_the_api_completes_with_amounts(env: Env) -> None:
    key = uuid.uuid4().hex
    r = env.client.post("/v1/checkouts", json=body(), headers=env.shop(**{"Idempotency-Key": key}))
    assert r.status_code == 202, r.text
    checkout_id = r.json()["checkout_id"]
    # Read-your-writes: right after the 202 the API knows the checkout, projected or not.
    first = status(env, checkout_id)
    assert first["status"] in {"PENDING", "COMPLETED"}
    done = finished(env, checkout_id)
    assert done["status"] == "COMPLETED"
    assert done["amounts"] == {
        "subtotal": 3000,
        "tax": 300,
        "shipping": 500,
        "total": 3800,
        "currency": "EUR",
    }
    assert done["order_id"]
    assert done["projection"]["caught_up"] is True
    assert {s["step"] for s in done["steps"]} >= {"reserve_inventory", "capture_payment"}
    assert env.world.captured[checkout_id] == 3800
    # The idempotent retry, after the fact: the same checkout, nothing new produced.
    again = env.client.post(
        "/v1/checkouts", json=body(), headers=env.shop(**{"Idempotency-Key": key})
    )
    assert again.status_code == 202 and again.json()["checkout_id"] == checkout_id
    conflict = env.client.post(
        "/v1/checkouts", json=body(currency="USD"), headers=env.shop(**{"Idempotency-Key": key})
    )
    assert conflict.status_code == 409
    # Another tenant cannot see it.
    other = env.client.get(f"/v1/checkouts/{checkout_id}", headers={"X-API-Key": env.other_key})
    assert other.status_code == 404


def test_refund_and_over_refund(env: Env) -> None:
    checkout_id = start(env)
    done = finished(env, checkout_id)
    assert done["status"] == "COMPLETED", done
    order_id = done["order_id"]
    url = f"/v1/orders/{order_id}/refunds"
    # Storefronts may not refund.
    forbidden = env.client.post(
        url, json={"amount": 1}, headers=env.shop(**{"Idempotency-Key": "x"})
    )
    assert forbidden.status_code == 403
    # The order row comes from orders.events: wait until the projection has it.
    poll(
        lambda: env.client.post(
            url, json={"amount": 999_999}, headers=env.jwt("admin", **{"Idempotency-Key": "over"})
        ),
        lambda r: r.status_code == 422,
    )
    over = env.client.post(
        url, json={"amount": 3801}, headers=env.jwt("admin", **{"Idempotency-Key": "over"})
    )
    assert over.status_code == 422
    assert over.json()["refundable_amount"] == 3800
    ok = env.client.post(
        url,
        json={"amount": 800, "reason": "damaged"},
        headers=env.jwt("admin", **{"Idempotency-Key": uuid.uuid4().hex}),
    )
    assert ok.status_code == 202, ok.text
    # The saga refunds, the projection follows: the refundable amount drops to 3000.
    poll(
        lambda: (
            env.client.post(
                url,
                json={"amount": 3801},
                headers=env.jwt("admin", **{"Idempotency-Key": uuid.uuid4().hex}),
            )
            .json()
            .get("refundable_amount")
        ),
        lambda refundable: refundable == 3000,
    )
    with psycopg.connect(env.database_url) as conn:
        rows = conn.execute(
            "SELECT actor, action, before, after FROM audit_log WHERE object = %s",
            (f"order:{order_id}",),
        ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [("admin-it", "order.refund")]
    assert rows[0][2]["refundable"] == 3800 and rows[0][3]["amount"] == 800


def test_cancel_while_payment_is_in_flight(env: Env) -> None:
    world = env.world
    world.authorization_requested.clear()
    world.authorization_gate.clear()
    world.gate_authorizations = True
    try:
        checkout_id = start(env)
        assert world.authorization_requested.wait(60)
        r = env.client.post(
            f"/v1/checkouts/{checkout_id}/cancel",
            json={"reason": "changed my mind"},
            headers=env.shop(),
        )
        assert r.status_code == 202
        assert r.json()["status"] == "CANCEL_REQUESTED"
    finally:
        world.gate_authorizations = False
        world.authorization_gate.set()
    assert finished(env, checkout_id)["status"] == "CANCELLED"


def test_auth_failures(env: Env) -> None:
    r = env.client.get("/v1/checkouts/co_x")
    assert r.status_code == 401 and r.json()["reason"]
    r = env.client.get("/v1/checkouts/co_x", headers={"X-API-Key": "sk_not_a_real_key_at_all"})
    assert r.status_code == 401 and "unknown" in r.json()["reason"]
    r = env.client.post(
        "/v1/checkouts", json=body(), headers=env.jwt("operator", **{"Idempotency-Key": "op"})
    )
    assert r.status_code == 403


def _signed(payload: bytes, secret: str) -> str:
    t = int(time.time())
    sig = stripe.WebhookSignature._compute_signature(f"{t}.{payload.decode()}", secret)
    return f"t={t},v1={sig}"


def test_webhooks_signature_failures_and_duplicates(env: Env) -> None:
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": f"pi_{uuid.uuid4().hex[:12]}",
                "amount": 100,
                "amount_received": 100,
                "currency": "eur",
                "metadata": {"checkout_id": f"co_{uuid.uuid4().hex}"},
            }
        },
    }
    payload = json.dumps(event).encode()
    url = "/v1/webhooks/stripe"
    bad = env.client.post(
        url, content=payload, headers={"Stripe-Signature": _signed(payload, "whsec_wrong")}
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_signature"
    tampered = env.client.post(
        url,
        content=payload + b" ",
        headers={"Stripe-Signature": _signed(payload, env.settings.stripe_webhook_secrets[0])},
    )
    assert tampered.status_code == 400
    header = _signed(payload, env.settings.stripe_webhook_secrets[0])
    first = env.client.post(url, content=payload, headers={"Stripe-Signature": header})
    assert first.status_code == 200, first.text
    duplicate = env.client.post(url, content=payload, headers={"Stripe-Signature": header})
    assert duplicate.status_code == 200


def test_rate_limits_on_real_redis_writes_per_key_failures_per_ip(env: Env) -> None:
    assert env.settings.redis_url
    client = redis.Redis.from_url(env.settings.redis_url)
    prefix = f"t:{uuid.uuid4().hex}:"
    limited = dataclasses.replace(
        env.deps,
        rate_limiter=RedisTokenBucket(client, per_minute=3, prefix=prefix + "w:"),
        auth_failures=RedisTokenBucket(client, per_minute=2, prefix=prefix + "f:"),
        close=lambda: None,
    )
    with TestClient(create_app(limited)) as api:
        # Status reads with a valid key are never throttled, however many.
        reads = {api.get("/v1/checkouts/co_x", headers=env.shop()).status_code for _ in range(12)}
        # Writes: 3 per minute for this key (invalid bodies still cost: they are writes).
        writes = [
            api.post("/v1/checkouts", json={}, headers={**env.shop(), "Idempotency-Key": "x"})
            for _ in range(4)
        ]
        # Failed authentications: 2 per minute for this IP, then even a valid key waits.
        wrong = [
            api.get("/v1/checkouts/co_x", headers={"Authorization": "Bearer sk_nope"}).status_code
            for _ in range(3)
        ]
        after = api.get("/v1/checkouts/co_x", headers=env.shop())
    client.close()
    assert reads == {404}
    assert [w.status_code for w in writes] == [422, 422, 422, 429]
    assert 1 <= int(writes[-1].headers["retry-after"]) <= 20
    assert wrong == [401, 401, 429]
    assert after.status_code == 429 and "failed authentications" in after.json()["reason"]


def test_real_http_server_health_ready_metrics(env: Env) -> None:
    app = create_app(dataclasses.replace(env.deps, close=lambda: None))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        poll(lambda: server.started, bool, timeout_s=10)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        ready = httpx.get(f"{base}/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["checks"]) == {"broker", "postgres", "redis", "stripe"}
        assert "api_requests_total" in httpx.get(f"{base}/metrics").text
    finally:
        server.should_exit = True
        thread.join(10)
