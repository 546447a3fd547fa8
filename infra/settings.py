"""One typed settings object, read from the environment once, at start-up (never at import)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any


class ConfigError(ValueError):
    """A malformed setting. The message is one line naming the variable."""


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be one of 1/0, true/false, yes/no, on/off")


def _optional_str(raw: str) -> str | None:
    return raw.strip() or None


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return raw

    return parse


def _csv(raw: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in raw.split(",") if v.strip())
    if not values:
        raise ValueError("expected at least one comma-separated value")
    return values


def _bootstrap(raw: str) -> str | None:
    raw = raw.strip()
    if not raw:
        return None
    for server in raw.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"expected host:port[,host:port...], got {server!r}")
    return raw


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the engine. External services left unset are run by the embedded stack."""

    kafka_bootstrap_servers: str | None = None
    # Which broker the embedded stack runs when KAFKA_BOOTSTRAP_SERVERS is unset: Apache Kafka
    # (KRaft), or Tansu as a JVM-less quick loop with known gaps (docs/broker-conformance.md).
    embedded_broker: str = "kafka"
    database_url: str | None = None
    redis_url: str | None = None
    stripe_api_base: str | None = None
    stripe_api_key: str = "sk_test_embedded"
    schema_registry_url: str | None = None
    taxjar_api_key: str | None = None
    partitions: int = 6
    replication_factor: int = 1
    min_insync_replicas: int = 1  # for real clusters; applied to topics when replication > 1
    session_timeout_ms: int = 6000
    # read_committed everywhere; only the embedded Tansu broker sets read_uncommitted, as its
    # last stable offset can stick below committed records (ADR 0009).
    kafka_isolation_level: str = "read_committed"
    processor_batch_size: int = 500
    processor_max_attempts: int = 3
    tick_interval_ms: int = 1000
    tax_fallback_policy: str = "fallback_rates"
    testcontainers: bool = False
    log_level: str = "INFO"
    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    jwt_secret: str = "embedded-dev-only-secret-change-me-0123456789"  # HS256; set in production
    rate_limit_per_minute: int = 600  # per API key and per IP, on checkout and auth routes
    stripe_webhook_secrets: tuple[str, ...] = ("whsec_embedded",)  # several during rotation
    # Email: an SMTP URL (smtp://host:port) or unset for the embedded demo inbox
    smtp_url: str | None = None
    email_from: str = "orders@shop.example"


# env var -> (field, parser). The parser raises ValueError with a short reason.
_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka_bootstrap_servers", _bootstrap),
    "SAGA_BROKER": ("embedded_broker", _choice("kafka", "tansu")),
    "DATABASE_URL": ("database_url", _optional_str),
    "REDIS_URL": ("redis_url", _optional_str),
    "STRIPE_API_BASE": ("stripe_api_base", _optional_str),
    "STRIPE_API_KEY": ("stripe_api_key", str),
    "SCHEMA_REGISTRY_URL": ("schema_registry_url", _optional_str),
    "TAXJAR_API_KEY": ("taxjar_api_key", _optional_str),
    "SAGA_PARTITIONS": ("partitions", _int(1, 1024)),
    "SAGA_REPLICATION_FACTOR": ("replication_factor", _int(1, 16)),
    "SAGA_MIN_INSYNC_REPLICAS": ("min_insync_replicas", _int(1, 16)),
    "SAGA_SESSION_TIMEOUT_MS": ("session_timeout_ms", _int(1000, 300_000)),
    "KAFKA_ISOLATION_LEVEL": (
        "kafka_isolation_level",
        _choice("read_committed", "read_uncommitted"),
    ),
    "SAGA_BATCH_SIZE": ("processor_batch_size", _int(1, 100_000)),
    "SAGA_MAX_ATTEMPTS": ("processor_max_attempts", _int(1, 100)),
    "SAGA_TICK_INTERVAL_MS": ("tick_interval_ms", _int(10, 3_600_000)),
    "TAX_FALLBACK_POLICY": ("tax_fallback_policy", _choice("block", "fallback_rates")),
    "SAGA_TESTCONTAINERS": ("testcontainers", _bool),
    "LOG_LEVEL": ("log_level", _choice("DEBUG", "INFO", "WARNING", "ERROR")),
    "API_HOST": ("api_host", str),
    "API_PORT": ("api_port", _int(1, 65535)),
    "JWT_SECRET": ("jwt_secret", str),
    "RATE_LIMIT_PER_MINUTE": ("rate_limit_per_minute", _int(1, 1_000_000)),
    "STRIPE_WEBHOOK_SECRETS": ("stripe_webhook_secrets", _csv),
    "SMTP_URL": ("smtp_url", _optional_str),
    "EMAIL_FROM": ("email_from", str),
}

assert {f for f, _ in _ENV.values()} == {f.name for f in fields(Settings)}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `environ` (default: os.environ). Raises ConfigError naming the variable."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for var, (field_name, parse) in _ENV.items():
        if var not in env:
            continue
        try:
            values[field_name] = parse(env[var])
        except ValueError as e:
            raise ConfigError(f"{var}={env[var]!r} is invalid: {e}") from e
    return Settings(**values)
