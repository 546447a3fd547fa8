"""The operator console's status carries the analytics panel: the last minutely windows and
the alerts, read from the tables `saga analytics` writes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from analytics.alerts import Breach
from analytics.metrics import rows
from analytics.store import MetricsStore
from analytics.windows import fold
from infra.ops_console import InfraOperations
from infra.settings import Settings
from tests.analytics_stream import T0, recorded_stream

pytestmark = pytest.mark.integration


def test_the_console_status_shows_minutes_and_alerts(
    settings: Settings, migrated_database_url: str, unique_id: str
) -> None:
    store = MetricsStore(migrated_database_url)
    windows = fold(recorded_stream(unique_id))
    minutely = {
        (start, start + 60_000): rows(state)
        for (name, start), state in windows.items()
        if name == "checkout_metrics_minutely"
    }
    assert store.upsert("checkout_metrics_minutely", minutely) > 0
    assert store.upsert("checkout_metrics_minutely", minutely) == 0  # same values: untouched
    breach = Breach(
        "payment_failure_rate_high", "all", T0, T0 + 300_000, Decimal("0.2"), Decimal("0.05"), 25
    )
    assert store.record_alert(breach) is True
    assert store.record_alert(breach) is False
    store.close()
    assert settings.kafka_bootstrap_servers
    ops = InfraOperations(
        bootstrap=settings.kafka_bootstrap_servers,
        database_url=migrated_database_url,
        redis_url=settings.redis_url,
        schema_registry_url=settings.schema_registry_url,
        isolation_level=settings.kafka_isolation_level,
    )
    panel = ops.status()["analytics"]
    assert [w["window_start_ms"] for w in panel["minutely"]] == [T0 + 120_000, T0 + 60_000, T0]
    assert panel["minutely"][2] == {
        "window_start_ms": T0,
        "checkouts_started": "2",
        "checkouts_completed": "1",
        "checkouts_failed": "1",
        "checkouts_cancelled": "0",
        "conversion_rate": "0.5000",
    }
    assert panel["alerts"] == [
        {
            "alert": "payment_failure_rate_high",
            "dimension": "all",
            "window_start_ms": T0,
            "value": "0.2",  # numeric keeps the scale it was given
            "threshold": "0.05",
        }
    ]
