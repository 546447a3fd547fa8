"""`build_api_deps(settings)`: the real pieces behind the API — Kafka, Redis, PostgreSQL, Stripe.
Called at start-up (never at import); `ApiDeps.close` releases everything it opened. Part of the
composition root: the API itself never sees `Settings`, only the values handed in here."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import httpx
import redis
from psycopg_pool import ConnectionPool

from adapters.payments.paypal_webhooks import (
    PAYPAL_CERT_HOSTS,
    PayPalWebhookHandler,
    from_headers,
)
from adapters.payments.razorpay_webhooks import DEDUP_TTL_S as RAZORPAY_DEDUP_TTL_S
from adapters.payments.razorpay_webhooks import RazorpayWebhookHandler
from adapters.payments.webhook_ingest import WebhookIngest
from adapters.payments.webhooks import RedisEventStore, StripeWebhookHandler
from api.bus import DEFAULT_ACK_TIMEOUT_S, KafkaCommandBus
from api.deps import ApiDeps
from api.keys import PostgresAuditLog, PostgresKeyStore
from api.ports import Probe, ProviderWebhook
from api.reads import ProjectionReads
from api.redis_stores import RedisAcceptedCheckouts, RedisIdempotencyStore, RedisTokenBucket
from db.migrate import upgrade as upgrade_schema
from events.serde import Serde, make_serde
from infra.ops_console import InfraOperations
from infra.processor import producer_config
from infra.settings import Settings, require

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
STRIPE_DEFAULT_BASE = "https://api.stripe.com"


class MissingServiceError(ValueError):
    pass


def _require(settings: Settings) -> tuple[str, str, str]:
    missing = [
        var
        for var, value in (
            ("KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers),
            ("DATABASE_URL", settings.database_url),
            ("REDIS_URL", settings.redis_url),
        )
        if not value
    ]
    if missing:
        raise MissingServiceError(f"the API needs {', '.join(missing)} (or run `saga up`)")
    assert settings.kafka_bootstrap_servers and settings.database_url and settings.redis_url
    return settings.kafka_bootstrap_servers, settings.database_url, settings.redis_url


def _probes(
    bus: KafkaCommandBus, pool: ConnectionPool[Any], client: Any, stripe_base: str
) -> dict[str, Probe]:
    def broker() -> str:
        return bus.ping(PROBE_TIMEOUT_S)

    def postgres() -> str:
        with pool.connection(timeout=PROBE_TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
        return "ok"

    def redis_ping() -> str:
        client.ping()
        return "ok"

    def stripe() -> str:
        # Reachability only: any HTTP answer (401 without a key included) means it is there.
        response = httpx.get(stripe_base, timeout=PROBE_TIMEOUT_S)
        return f"HTTP {response.status_code}"

    return {"broker": broker, "postgres": postgres, "redis": redis_ping, "stripe": stripe}


def _provider_webhooks(
    settings: Settings, client: redis.Redis, producer: Any, serde: Serde
) -> dict[str, ProviderWebhook]:
    """Providers besides Stripe whose webhook secret is configured."""
    hooks: dict[str, ProviderWebhook] = {}
    if settings.razorpay_webhook_secrets:
        # Its own dedup namespace: event ids of different providers may collide.
        store = RedisEventStore(client, prefix="webhook:razorpay:", ttl_s=RAZORPAY_DEDUP_TTL_S)
        ingest = WebhookIngest(
            RazorpayWebhookHandler(settings.razorpay_webhook_secrets, store),
            producer,
            serde,
            producer_name="api",
        )

        def razorpay(payload: bytes, headers: Mapping[str, str]) -> None:
            ingest(
                payload,
                headers.get("x-razorpay-signature", ""),
                headers.get("x-razorpay-event-id") or None,
            )

        hooks["razorpay"] = razorpay
    paypal = _paypal_ingest(settings, client, producer, serde)
    if paypal is not None:
        hooks["paypal"] = from_headers(paypal)
    return hooks


def build_api_deps(settings: Settings) -> ApiDeps:
    """Raises ConfigError (one line naming the variable) without JWT_SECRET or a Stripe webhook
    secret: there is no default either could fall back to."""
    require(settings, "jwt_secret", "stripe_webhook_secrets", who="the API")
    assert settings.jwt_secret
    bootstrap, database_url, redis_url = _require(settings)
    # The API reads the projections and writes api_keys/audit_log: bring the schema up first
    # (idempotent, serialised by an advisory lock) so a request never meets a missing table.
    upgrade_schema(database_url)
    with contextlib.ExitStack() as opened:
        pool: ConnectionPool[Any] = ConnectionPool(
            database_url, min_size=1, max_size=20, open=True, name="api"
        )
        opened.callback(pool.close)
        client = redis.Redis.from_url(
            redis_url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S
        )
        opened.callback(client.close)
        serde = make_serde(settings.schema_registry_url)
        bus = KafkaCommandBus(
            producer_config(
                bootstrap,
                # The broker must answer (ack or error) before we give up waiting, so a
                # 503 means "not written" as far as librdkafka can tell.
                **{"message.timeout.ms": int(DEFAULT_ACK_TIMEOUT_S * 1000), "acks": "all"},
            ),
            serde,
            ack_timeout_s=DEFAULT_ACK_TIMEOUT_S,
        )
        opened.callback(bus.close)
        handler = StripeWebhookHandler(settings.stripe_webhook_secrets, RedisEventStore(client))
        deps = ApiDeps(
            jwt_secret=settings.jwt_secret,
            bus=bus,
            reads=ProjectionReads(pool.connection),
            accepted=RedisAcceptedCheckouts(client),
            idempotency=RedisIdempotencyStore(client),
            rate_limiter=RedisTokenBucket(client, per_minute=settings.rate_limit_per_minute),
            auth_failures=RedisTokenBucket(
                client, per_minute=settings.auth_failures_per_minute, prefix="api:authfail:"
            ),
            keys=PostgresKeyStore(pool.connection),
            audit=PostgresAuditLog(pool.connection),
            webhook_ingest=WebhookIngest(handler, bus.producer, serde, producer_name="api"),
            provider_webhooks=_provider_webhooks(settings, client, bus.producer, serde),
            probes=_probes(bus, pool, client, settings.stripe_api_base or STRIPE_DEFAULT_BASE),
            ops=InfraOperations(
                bootstrap=bootstrap,
                database_url=database_url,
                redis_url=redis_url,
                schema_registry_url=settings.schema_registry_url,
                isolation_level=settings.kafka_isolation_level,
            ),
        )
        deps.close = opened.pop_all().close  # from here on, the app owns them
    return deps


def _paypal_ingest(
    settings: Settings, client: Any, producer: Any, serde: Any
) -> WebhookIngest | None:
    """`POST /v1/webhooks/paypal` behind the PayPal handler, when PAYPAL_WEBHOOK_ID is set."""
    if not settings.paypal_webhook_id:
        return None
    handler = PayPalWebhookHandler(
        [settings.paypal_webhook_id],
        RedisEventStore(client, prefix="webhook:paypal:"),
        cert_hosts=settings.paypal_cert_hosts or PAYPAL_CERT_HOSTS,
    )
    return WebhookIngest(handler, producer, serde, producer_name="api")
