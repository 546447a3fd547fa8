"""Composition root of the analytics app: Settings -> the faust app (analytics/runtime.py).

Nothing connects here: faust connects when its worker starts (`saga analytics`).
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from analytics.alerts import Thresholds
from analytics.runtime import AnalyticsConfig, build_app
from analytics.store import MetricsStore
from events.serde import make_serde
from events.topics import CHECKOUT_EVENTS, OPS_ALERTS
from infra.settings import ConfigError, Settings


def analytics_config(
    settings: Settings,
    *,
    source_topic: str = CHECKOUT_EVENTS,
    alerts_topic: str = OPS_ALERTS,
    app_id: str | None = None,
    web_port: int | None = None,
) -> AnalyticsConfig:
    if not settings.kafka_bootstrap_servers:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set: analytics has no broker to read")
    app_id = app_id or settings.analytics_app_id
    data_dir = settings.analytics_data_dir or str(Path(tempfile.gettempdir()) / f"faust-{app_id}")
    return AnalyticsConfig(
        app_id=app_id,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        source_topic=source_topic,
        alerts_topic=alerts_topic,
        partitions=settings.partitions,
        replication_factor=settings.replication_factor,
        data_dir=Path(data_dir),
        web_host=settings.analytics_web_host,
        web_port=settings.analytics_web_port if web_port is None else web_port,
        flush_interval_s=settings.analytics_flush_interval_ms / 1000,
        commit_interval_s=settings.analytics_commit_interval_ms / 1000,
        session_timeout_s=settings.session_timeout_ms / 1000,
        thresholds=Thresholds(
            payment_failure_rate=Decimal("0.05"),
            integration_success_rate=Decimal("0.95"),
            fallback_rate=Decimal("0.10"),
            min_samples=settings.analytics_alert_min_samples,
        ),
        isolation_level=settings.kafka_isolation_level,
        retention_ms=settings.analytics_retention_minutes * 60_000,
    )


def build_analytics_app(settings: Settings, **overrides: Any) -> Any:
    """The faust app for `settings` (overrides: a test's own topics and group)."""
    if not settings.database_url:
        raise ConfigError("DATABASE_URL is not set: analytics flushes its windows to PostgreSQL")
    config = analytics_config(settings, **overrides)
    return build_app(
        config, make_serde(settings.schema_registry_url), MetricsStore(settings.database_url)
    )
