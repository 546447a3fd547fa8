"""`ApiDeps`: everything the app talks to, handed in whole. The app builds nothing itself, so a
unit test swaps any piece for a fake and `api.wiring` is the one place real clients are made."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from api.ports import (
    AcceptedCheckouts,
    AuditLog,
    CheckoutReads,
    CommandBus,
    IdempotencyStore,
    KeyStore,
    Operations,
    Probe,
    ProviderWebhook,
    RateLimiter,
    WebhookIngest,
)
from events.validation import MAX_COMMAND_BYTES


@dataclass
class ApiDeps:
    jwt_secret: str = field(repr=False)  # HS256 key that operator/admin tokens are signed with
    bus: CommandBus  # the Kafka producer wrapper (acknowledged writes)
    reads: CheckoutReads  # projections (PostgreSQL)
    accepted: AcceptedCheckouts  # Redis: checkouts accepted, maybe not projected yet
    idempotency: IdempotencyStore  # Redis
    rate_limiter: RateLimiter  # Redis: writes, per credential
    auth_failures: RateLimiter  # Redis: failed authentications, per client IP
    keys: KeyStore  # PostgreSQL api_keys
    audit: AuditLog  # PostgreSQL audit_log
    webhook_ingest: WebhookIngest
    # Other providers' webhook endpoints by provider ("razorpay", "paypal"); one without an
    # entry is not configured here and answers 404.
    provider_webhooks: Mapping[str, ProviderWebhook] = field(default_factory=dict)
    probes: Mapping[str, Probe] = field(default_factory=dict)  # name -> readiness check
    ops: Operations | None = None  # the console's reads and acts; None: /v1/ops answers 503
    clock: Callable[[], float] = time.time  # epoch seconds
    max_body_bytes: int = MAX_COMMAND_BYTES  # the orchestrator refuses bigger commands too
    # How long a request waits for a concurrent twin (same Idempotency-Key and body) to finish.
    idempotency_wait_s: float = 5.0
    close: Callable[[], None] = lambda: None  # releases what the wiring opened

    def now_ms(self) -> int:
        return int(self.clock() * 1000)
