"""In-memory stand-ins for the API's ports: deterministic, inspectable, thread-safe."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.payments.webhooks import InvalidSignature
from api.app import create_app
from api.deps import ApiDeps
from api.ports import (
    Accepted,
    ApiKey,
    BrokerUnavailable,
    CheckoutRecord,
    OperationRefused,
    OperationsUnavailable,
    OrderRecord,
    RateDecision,
    Reservation,
    UnknownObject,
)
from events.envelope import Envelope

JWT_SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
SHOP_KEY = "sk_test_shop_one_0123456789abcdef"
OTHER_KEY = "sk_test_shop_two_0123456789abcdef"
GOOD_SIGNATURE = "t=1,v1=good"


class FakeBus:
    def __init__(self) -> None:
        self.sent: list[Envelope[Any]] = []
        self.fail = False
        self.lock = threading.Lock()

    def send(self, envelope: Envelope[Any]) -> None:
        if self.fail:
            raise BrokerUnavailable("broker down (fake)")
        with self.lock:
            self.sent.append(envelope)

    def ping(self, timeout_s: float) -> str:
        if self.fail:
            raise ConnectionError("down")
        return "fake broker"

    def messages(self, kind: type) -> list[Any]:
        return [e.message for e in self.sent if isinstance(e.message, kind)]


@dataclass
class FakeReads:
    checkouts: dict[str, CheckoutRecord] = field(default_factory=dict)
    orders: dict[str, OrderRecord] = field(default_factory=dict)

    def checkout(self, checkout_id: str) -> CheckoutRecord | None:
        return self.checkouts.get(checkout_id)

    def order(self, order_id: str) -> OrderRecord | None:
        return self.orders.get(order_id)


class FakeAccepted:
    def __init__(self) -> None:
        self.by_id: dict[str, Accepted] = {}

    def record(self, accepted: Accepted) -> None:
        self.by_id[accepted.checkout_id] = accepted

    def get(self, checkout_id: str) -> Accepted | None:
        return self.by_id.get(checkout_id)


class MemoryIdempotency:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}
        self.lock = threading.Lock()

    def reserve(self, scope: str, key: str, fingerprint: str) -> Reservation:
        with self.lock:
            entry = self.entries.get((scope, key))
            if entry is None:
                self.entries[(scope, key)] = {"fp": fingerprint, "result": None}
                return Reservation("reserved")
            if entry["fp"] != fingerprint:
                return Reservation("conflict")
            if entry["result"] is not None:
                return Reservation("done", entry["result"])
            return Reservation("pending")

    def complete(self, scope: str, key: str, fingerprint: str, result: Mapping[str, Any]) -> None:
        with self.lock:
            self.entries[(scope, key)] = {"fp": fingerprint, "result": dict(result)}

    def release(self, scope: str, key: str, fingerprint: str) -> None:
        with self.lock:
            entry = self.entries.get((scope, key))
            if entry and entry["fp"] == fingerprint and entry["result"] is None:
                del self.entries[(scope, key)]


class CountingLimiter:
    """Allows `limit` hits per bucket, then refuses with a fixed Retry-After."""

    def __init__(self, limit: int = 1_000_000) -> None:
        self.limit = limit
        self.hits: dict[str, int] = {}

    def hit(self, bucket: str, now_ms: int) -> RateDecision:
        self.hits[bucket] = self.hits.get(bucket, 0) + 1
        if self.hits[bucket] > self.limit:
            return RateDecision(False, retry_after_s=7)
        return RateDecision(True)

    def check(self, bucket: str, now_ms: int) -> RateDecision:
        if self.hits.get(bucket, 0) >= self.limit:
            return RateDecision(False, retry_after_s=7)
        return RateDecision(True)


class FakeKeys:
    def __init__(self) -> None:
        self.keys = {
            SHOP_KEY: ApiKey("key_shop1", "shop-1", "main"),
            OTHER_KEY: ApiKey("key_shop2", "shop-2", "main"),
        }

    def lookup(self, plaintext: str) -> ApiKey | None:
        return self.keys.get(plaintext)


class FakeAudit:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def record(self, **row: Any) -> None:
        self.rows.append(row)


class FakeIngest:
    """Accepts GOOD_SIGNATURE; remembers event ids so a redelivery is a quiet no-op."""

    def __init__(self) -> None:
        self.signals: list[bytes] = []
        self.seen: set[bytes] = set()

    def __call__(self, payload: bytes, signature: str) -> None:
        if signature != GOOD_SIGNATURE:
            raise InvalidSignature("no v1 signature matches a configured secret")
        if payload in self.seen:
            return
        self.seen.add(payload)
        self.signals.append(payload)


class FakeOperations:
    """The console's port in memory: checkouts to find, one timeline, dead letters and parked
    sagas whose acts are recorded (with the actor) like the real audit log would."""

    def __init__(self) -> None:
        self.checkouts: list[dict[str, Any]] = []
        self.timelines: dict[str, dict[str, Any]] = {}
        self.letters: dict[str, dict[str, Any]] = {}
        self.acts: list[tuple[str, str, str, str]] = []  # (action, object, actor, reason)
        self.unavailable: str | None = None

    def _up(self) -> None:
        if self.unavailable:
            raise OperationsUnavailable(self.unavailable)

    def find_checkouts(
        self, *, text: str | None, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        self._up()
        found = [
            c
            for c in self.checkouts
            if (text is None or c["checkout_id"].startswith(text) or c["customer_email"] == text)
            and (status is None or c["status"] == status)
        ]
        return found[:limit]

    def timeline(self, checkout_id: str) -> dict[str, Any] | None:
        self._up()
        return self.timelines.get(checkout_id)

    def dead_letters(self) -> list[dict[str, Any]]:
        self._up()
        return list(self.letters.values())

    def redrive(self, dead_letter_id: str, *, actor: str, reason: str) -> dict[str, Any]:
        self._up()
        letter = self.letters.get(dead_letter_id)
        if letter is None:
            raise UnknownObject(f"no dead letter {dead_letter_id}")
        if letter["redriven"]:
            raise OperationRefused(f"{dead_letter_id} was re-driven by {letter['redriven'][-1]}")
        letter["redriven"].append(actor)
        self.acts.append(("dlq.redrive", dead_letter_id, actor, reason))
        return {"id": dead_letter_id, "actor": actor, "reason": reason}

    def retry(self, checkout_id: str, *, actor: str, reason: str) -> dict[str, Any]:
        self._up()
        match = [c for c in self.checkouts if c["checkout_id"] == checkout_id]
        if not match:
            raise UnknownObject(f"unknown checkout {checkout_id}")
        if match[0]["status"] != "NEEDS_ATTENTION":
            raise OperationRefused(f"checkout {checkout_id} is {match[0]['status']}, not parked")
        self.acts.append(("checkout.retry", checkout_id, actor, reason))
        return {"checkout_id": checkout_id, "message_id": "msg-1", "actor": actor}

    def status(self) -> dict[str, Any]:
        self._up()
        return {"lag": [], "dlq": [], "breakers": []}


@dataclass
class World:
    deps: ApiDeps
    bus: FakeBus
    reads: FakeReads
    accepted: FakeAccepted
    idempotency: MemoryIdempotency
    limiter: CountingLimiter
    auth_failures: CountingLimiter
    audit: FakeAudit
    ingest: FakeIngest
    ops: FakeOperations


def make_world(**overrides: Any) -> World:
    bus, reads, accepted = FakeBus(), FakeReads(), FakeAccepted()
    idem, limiter, audit, ingest = MemoryIdempotency(), CountingLimiter(), FakeAudit(), FakeIngest()
    failures = CountingLimiter()
    ops = FakeOperations()
    deps = ApiDeps(
        jwt_secret=JWT_SECRET,
        bus=bus,
        reads=reads,
        accepted=accepted,
        idempotency=idem,
        rate_limiter=limiter,
        auth_failures=failures,
        keys=FakeKeys(),
        audit=audit,
        webhook_ingest=ingest,
        probes={"broker": lambda: bus.ping(1), "redis": lambda: "ok"},
        clock=lambda: 1_700_000_000.0,
        idempotency_wait_s=0.3,
        ops=ops,
    )
    for name, value in overrides.items():
        setattr(deps, name, value)
    return World(deps, bus, reads, accepted, idem, limiter, failures, audit, ingest, ops)


def app_for(world: World) -> Any:
    return create_app(world.deps)


def checkout_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer": {"id": "cus-1", "email": "buyer@example.com"},
        "currency": "EUR",
        "items": [
            {"sku": "SKU-1", "quantity": 2, "unit_amount": 1250},
            {"sku": "SKU-2", "quantity": 1, "unit_amount": 500},
        ],
        "shipping_address": {
            "line1": "1 Main St",
            "city": "Berlin",
            "state": "BE",
            "postal_code": "10115",
            "country": "DE",
        },
        "payment": {"provider": "stripe", "payment_method": "pm_card_visa"},
    }
    body.update(changes)
    return body
