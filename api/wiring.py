"""`build_api_deps(settings)`: the real pieces behind the API — Kafka, Redis, PostgreSQL, Stripe.
Called at start-up (never at import); `ApiDeps.close` releases everything it opened."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import httpx
import redis
from psycopg_pool import ConnectionPool

from adapters.payments.webhook_ingest import WebhookIngest
from adapters.payments.webhooks import RedisEventStore, StripeWebhookHandler
from api.bus import KafkaCommandBus
from api.deps import ApiDeps
from api.keys import PostgresAuditLog, PostgresKeyStore
from api.ports import Probe
from api.reads import ProjectionReads
from api.redis_stores import RedisAcceptedCheckouts, RedisIdempotencyStore, RedisTokenBucket
from db.migrate import upgrade as upgrade_schema
from events.serde import make_serde
from infra.settings import Settings

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
MIN_JWT_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash
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


def build_api_deps(settings: Settings) -> ApiDeps:
    bootstrap, database_url, redis_url = _require(settings)
    # The API reads the projections and writes api_keys/audit_log: bring the schema up first
    # (idempotent, serialised by an advisory lock) so a request never meets a missing table.
    upgrade_schema(database_url)
    if len(settings.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
        log.warning(
            "JWT_SECRET is shorter than %d bytes; set a long random one", MIN_JWT_SECRET_BYTES
        )
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
        bus = KafkaCommandBus(bootstrap, serde)
        opened.callback(bus.close)
        handler = StripeWebhookHandler(settings.stripe_webhook_secrets, RedisEventStore(client))
        deps = ApiDeps(
            settings=settings,
            bus=bus,
            reads=ProjectionReads(pool.connection),
            accepted=RedisAcceptedCheckouts(client),
            idempotency=RedisIdempotencyStore(client),
            rate_limiter=RedisTokenBucket(client, per_minute=settings.rate_limit_per_minute),
            keys=PostgresKeyStore(pool.connection),
            audit=PostgresAuditLog(pool.connection),
            webhook_ingest=WebhookIngest(handler, bus.producer, serde, producer_name="api"),
            probes=_probes(bus, pool, client, settings.stripe_api_base or STRIPE_DEFAULT_BASE),
        )
        deps.close = opened.pop_all().close  # from here on, the app owns them
    return deps
