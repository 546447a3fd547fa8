"""One typed settings object, read from the environment once, at start-up (never at import)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
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


MIN_JWT_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash


def _jwt_secret(raw: str) -> str:
    if len(raw.encode()) < MIN_JWT_SECRET_BYTES:
        raise ValueError(
            f"must be at least {MIN_JWT_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
        )
    return raw


def _secret(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _single(raw: str) -> tuple[str, ...]:
    return (_secret(raw),)


def _optional_port(raw: str) -> int | None:
    return _int(1, 65535)(raw) if raw.strip() else None


def _optional_port_or_zero(raw: str) -> int | None:
    # 0 asks the kernel for a free port: tests run many processes on one machine.
    return _int(0, 65535)(raw) if raw.strip() else None


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
    # No default: the embedded stack generates one for its localstripe; a real Stripe needs its own.
    stripe_api_key: str | None = field(default=None, repr=False)
    schema_registry_url: str | None = None
    taxjar_api_key: str | None = field(default=None, repr=False)
    taxjar_api_url: str = "https://api.taxjar.com"  # a sandbox, or a local peer in tests
    partitions: int = 6
    replication_factor: int = 1
    min_insync_replicas: int = 1  # for real clusters; applied to topics when replication > 1
    session_timeout_ms: int = 6000
    # read_committed everywhere; only the embedded Tansu broker sets read_uncommitted, as its
    # last stable offset can stick below committed records (ADR 0009).
    kafka_isolation_level: str = "read_committed"
    # How long a fetch with nothing to return waits at the broker. Apache Kafka answers a
    # waiting fetch as soon as records (or a commit's markers) land, so the wait costs no
    # latency, and a short one costs broker CPU on every idle consumer (ADR 0019). Only the
    # embedded Tansu broker sets 10: its waits end on the timer.
    kafka_fetch_wait_ms: int = 500
    processor_batch_size: int = 500
    processor_max_attempts: int = 3
    tick_interval_ms: int = 1000
    # How long a payment provider's open breaker refuses calls before a trial call is let
    # through (half-open). Short enough that a blip ends soon after the provider is back.
    payment_breaker_reset_s: int = 30
    tax_fallback_policy: str = "fallback_rates"
    testcontainers: bool = False
    log_level: str = "INFO"
    # json: one JSON object per line (for log shippers); console: human-readable; auto: console
    # when stderr is a terminal, else json (`saga run` children write to a pipe: json).
    log_format: str = "auto"
    # Unset: processors serve no /metrics (the API always serves its own on API_PORT). Set:
    # each worker serves prometheus metrics on METRICS_HOST:METRICS_PORT; `saga run` gives its
    # k-th worker child METRICS_PORT+k. 0: an ephemeral port, logged at start-up.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"  # loopback unless a scraper elsewhere needs it
    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    # Secrets have no usable default: a deployment that forgets them must not start and accept
    # tokens or webhooks anyone could forge. The embedded stack generates them per data dir.
    jwt_secret: str | None = field(default=None, repr=False)  # HS256, >= 32 bytes
    rate_limit_per_minute: int = 600  # writes per API key / token subject
    # Failed authentications per client IP; an IP over it is refused before its credential is
    # checked. Successful requests (a storefront polling status) never count.
    auth_failures_per_minute: int = 30
    # several during rotation, newest first
    stripe_webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    # The secret set on the Razorpay dashboard's webhook (several while rotating); unset: the
    # Razorpay webhook route answers 404, as no Razorpay account can be pointed at it.
    razorpay_webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    # Email: an SMTP URL (smtp://host:port) or unset for the embedded demo inbox
    smtp_url: str | None = None
    email_from: str = "orders@shop.example"
    # PayPal (REST app credentials): registered as provider "paypal" for rules to name as a
    # tenant's primary or fallback when both are set. No default: a real app needs its own.
    paypal_client_id: str | None = None
    paypal_client_secret: str | None = field(default=None, repr=False)
    paypal_api_base: str | None = None  # unset: https://api-m.paypal.com (live)
    # The webhook listener's id in the PayPal app: part of every delivery's signed message.
    paypal_webhook_id: str | None = None
    # Hosts PAYPAL-CERT-URL may name; unset: PayPal's own (api(-m)(.sandbox).paypal.com).
    paypal_cert_hosts: tuple[str, ...] = ()
    # Fernet key that decrypts the payment_providers table's credentials
    payment_providers_key: str | None = field(default=None, repr=False)
    # Only `saga provider register` reads it: a credential never goes on the command line.
    payment_provider_secret: str | None = field(default=None, repr=False)
    projector_metrics_port: int | None = None  # unset: the projector serves no /metrics
    # Fulfilment labels: the built-in rate table unless EASYPOST_API_KEY is set (then the
    # ship-from address is required).
    easypost_api_key: str | None = field(default=None, repr=False)
    easypost_api_base: str = "https://api.easypost.com"
    easypost_carrier: str = "USPS"
    ship_from_line1: str | None = None
    ship_from_city: str | None = None
    ship_from_state: str | None = None
    ship_from_postal_code: str | None = None
    ship_from_country: str | None = None
    java_home: str | None = None  # the embedded Kafka's Java, tried before PATH's
    # Live analytics (faust-streaming, ADR 0018): its consumer group (and changelog prefix), its
    # JSON view on a loopback port, how often windows reach PostgreSQL, the least answers an
    # alert's rate is judged on, and faust's data directory (unset: one under the temp dir).
    analytics_app_id: str = "saga-analytics"
    analytics_web_host: str = "127.0.0.1"
    analytics_web_port: int = 6066
    analytics_flush_interval_ms: int = 5000
    analytics_commit_interval_ms: int = 2800  # faust's default offset commit interval
    analytics_alert_min_samples: int = 20
    # Windows older than this behind the newest event leave memory (their rows stay); events
    # older than that are not counted (ADR 0018).
    analytics_retention_minutes: int = 48 * 60
    analytics_data_dir: str | None = None


# env var -> (field, parser). The parser raises ValueError with a short reason.
_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka_bootstrap_servers", _bootstrap),
    "SAGA_BROKER": ("embedded_broker", _choice("kafka", "tansu")),
    "DATABASE_URL": ("database_url", _optional_str),
    "REDIS_URL": ("redis_url", _optional_str),
    "STRIPE_API_BASE": ("stripe_api_base", _optional_str),
    "STRIPE_API_KEY": ("stripe_api_key", _optional_str),
    "SCHEMA_REGISTRY_URL": ("schema_registry_url", _optional_str),
    "TAXJAR_API_KEY": ("taxjar_api_key", _optional_str),
    "TAXJAR_API_URL": ("taxjar_api_url", lambda raw: raw.strip() or "https://api.taxjar.com"),
    "SAGA_PARTITIONS": ("partitions", _int(1, 1024)),
    "SAGA_REPLICATION_FACTOR": ("replication_factor", _int(1, 16)),
    "SAGA_MIN_INSYNC_REPLICAS": ("min_insync_replicas", _int(1, 16)),
    "SAGA_SESSION_TIMEOUT_MS": ("session_timeout_ms", _int(1000, 300_000)),
    "KAFKA_ISOLATION_LEVEL": (
        "kafka_isolation_level",
        _choice("read_committed", "read_uncommitted"),
    ),
    "KAFKA_FETCH_WAIT_MS": ("kafka_fetch_wait_ms", _int(1, 10_000)),
    "SAGA_BATCH_SIZE": ("processor_batch_size", _int(1, 100_000)),
    "SAGA_MAX_ATTEMPTS": ("processor_max_attempts", _int(1, 100)),
    "SAGA_TICK_INTERVAL_MS": ("tick_interval_ms", _int(10, 3_600_000)),
    "PAYMENT_BREAKER_RESET_S": ("payment_breaker_reset_s", _int(1, 3_600)),
    "TAX_FALLBACK_POLICY": ("tax_fallback_policy", _choice("block", "fallback_rates")),
    "SAGA_TESTCONTAINERS": ("testcontainers", _bool),
    "LOG_LEVEL": ("log_level", _choice("DEBUG", "INFO", "WARNING", "ERROR")),
    "LOG_FORMAT": ("log_format", _choice("auto", "json", "console")),
    "METRICS_PORT": ("metrics_port", _optional_port_or_zero),
    "METRICS_HOST": ("metrics_host", lambda raw: raw.strip() or "127.0.0.1"),
    "API_HOST": ("api_host", str),
    "API_PORT": ("api_port", _int(1, 65535)),
    "JWT_SECRET": ("jwt_secret", _jwt_secret),
    "RATE_LIMIT_PER_MINUTE": ("rate_limit_per_minute", _int(1, 1_000_000)),
    "AUTH_FAILURES_PER_MINUTE": ("auth_failures_per_minute", _int(1, 1_000_000)),
    # One secret, or a comma list while rotating; both set: the single one first.
    "STRIPE_WEBHOOK_SECRET": ("stripe_webhook_secrets", _single),
    "STRIPE_WEBHOOK_SECRETS": ("stripe_webhook_secrets", _csv),
    "RAZORPAY_WEBHOOK_SECRET": ("razorpay_webhook_secrets", _single),
    "RAZORPAY_WEBHOOK_SECRETS": ("razorpay_webhook_secrets", _csv),
    "SMTP_URL": ("smtp_url", _optional_str),
    "EMAIL_FROM": ("email_from", str),
    "PAYPAL_CLIENT_ID": ("paypal_client_id", _optional_str),
    "PAYPAL_CLIENT_SECRET": ("paypal_client_secret", _optional_str),
    "PAYPAL_API_BASE": ("paypal_api_base", _optional_str),
    "PAYPAL_WEBHOOK_ID": ("paypal_webhook_id", _optional_str),
    "PAYPAL_CERT_HOSTS": ("paypal_cert_hosts", _csv),
    "PAYMENT_PROVIDERS_KEY": ("payment_providers_key", _optional_str),
    "PAYMENT_PROVIDER_SECRET": ("payment_provider_secret", _optional_str),
    "SAGA_PROJECTOR_METRICS_PORT": ("projector_metrics_port", _optional_port),
    "EASYPOST_API_KEY": ("easypost_api_key", _optional_str),
    "EASYPOST_API_BASE": (
        "easypost_api_base",
        lambda raw: raw.strip() or "https://api.easypost.com",
    ),
    "EASYPOST_CARRIER": ("easypost_carrier", lambda raw: raw.strip() or "USPS"),
    "SHIP_FROM_LINE1": ("ship_from_line1", _optional_str),
    "SHIP_FROM_CITY": ("ship_from_city", _optional_str),
    "SHIP_FROM_STATE": ("ship_from_state", _optional_str),
    "SHIP_FROM_POSTAL_CODE": ("ship_from_postal_code", _optional_str),
    "SHIP_FROM_COUNTRY": ("ship_from_country", _optional_str),
    "JAVA_HOME": ("java_home", _optional_str),
    "ANALYTICS_APP_ID": ("analytics_app_id", _secret),
    "ANALYTICS_WEB_HOST": ("analytics_web_host", lambda raw: raw.strip() or "127.0.0.1"),
    "ANALYTICS_WEB_PORT": ("analytics_web_port", _int(1, 65535)),
    "ANALYTICS_FLUSH_INTERVAL_MS": ("analytics_flush_interval_ms", _int(50, 3_600_000)),
    "ANALYTICS_COMMIT_INTERVAL_MS": ("analytics_commit_interval_ms", _int(100, 86_400_000)),
    "ANALYTICS_RETENTION_MINUTES": ("analytics_retention_minutes", _int(20, 60 * 24 * 366)),
    "ANALYTICS_ALERT_MIN_SAMPLES": ("analytics_alert_min_samples", _int(1, 1_000_000)),
    "ANALYTICS_DATA_DIR": ("analytics_data_dir", _optional_str),
}

# Fields set by a single-secret and a list variable: both set, the single one first.
_SECRET_LISTS = frozenset({"stripe_webhook_secrets", "razorpay_webhook_secrets"})

# Settings field -> the variable that sets it (the first one listed, for error messages)
VARIABLE: dict[str, str] = {}
for _var, (_field, _) in _ENV.items():
    VARIABLE.setdefault(_field, _var)

assert {f for f, _ in _ENV.values()} == {f.name for f in fields(Settings)}


def load_settings(
    environ: Mapping[str, str] | None = None, *, env_file: str | os.PathLike[str] | None = None
) -> Settings:
    """Settings from `environ` (default: os.environ). Raises ConfigError naming the variable.

    `env_file` (e.g. `saga up`'s D/saga.env), when it exists, supplies what `environ` leaves
    unset."""
    env = os.environ if environ is None else environ
    if env_file is not None and os.path.exists(env_file):
        env = {**parse_env_file(env_file), **env}
    values: dict[str, Any] = {}
    for var, (field_name, parse) in _ENV.items():
        if var not in env:
            continue
        try:
            value = parse(env[var])
        except ValueError as e:
            raise ConfigError(f"{var}={_shown(var, env[var])} is invalid: {e}") from e
        if field_name in _SECRET_LISTS and field_name in values:
            value = tuple(dict.fromkeys((*values[field_name], *value)))
        values[field_name] = value
    return Settings(**values)


def _shown(var: str, raw: str) -> str:
    # A rejected secret is still (part of) a secret: never echo it into logs.
    if "SECRET" in var or var.endswith(("_KEY", "_KEYS")):
        return "<hidden>"
    return repr(raw)


def require(settings: Settings, *fields_: str, who: str) -> None:
    """ConfigError naming the first variable of `fields_` that is unset, for services that must
    not start without it (e.g. the API without JWT_SECRET)."""
    for name in fields_:
        if not getattr(settings, name):
            var = VARIABLE[name]
            hint = " or STRIPE_WEBHOOK_SECRETS" if var == "STRIPE_WEBHOOK_SECRET" else ""
            raise ConfigError(f"{var}{hint} is not set: {who} refuses to start without it")


def to_environ(settings: Settings) -> dict[str, str]:
    """The variables that reproduce `settings` (what differs from the defaults): for env files
    and child processes of the embedded stack."""
    defaults = Settings()
    out: dict[str, str] = {}
    for var, (name, _) in _ENV.items():
        value = getattr(settings, name)
        if value == getattr(defaults, name) or value is None or var in out:
            continue
        if var == "STRIPE_WEBHOOK_SECRET":
            continue  # written as the list, which carries every secret of a rotation
        if isinstance(value, bool):
            out[var] = "1" if value else "0"
        elif isinstance(value, tuple):
            out[var] = ",".join(value)
        else:
            out[var] = str(value)
    return out


def child_environ(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process (workers, benchmarks, embedded services): ours, plus
    `overrides`. The one place outside `load_settings` that copies os.environ."""
    return {**os.environ, **(overrides or {})}


def parse_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """`export NAME=value` lines (as `saga up` writes D/saga.env) as a mapping."""
    import shlex
    from pathlib import Path

    values: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        parts = shlex.split(line, comments=True)
        if parts and parts[0] == "export":
            parts = parts[1:]
        for part in parts:
            name, sep, value = part.partition("=")
            if sep:
                values[name] = value
    return values
