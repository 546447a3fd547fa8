from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from events.serde import Serde, make_serde
from infra.settings import Settings
from tests.integration.analytics.harness import PARTITIONS, AnalyticsProcess
from tests.integration.kafka_helpers import fresh_topics


@pytest.fixture
def serde(settings: Settings) -> Serde:
    return make_serde(settings.schema_registry_url)


@pytest.fixture
def analytics(
    settings: Settings, migrated_database_url: str, tmp_path: Path
) -> Iterator[AnalyticsProcess]:
    assert settings.kafka_bootstrap_servers
    source, alerts = fresh_topics(
        settings.kafka_bootstrap_servers, "checkout.events", "ops.alerts", partitions=PARTITIONS
    )
    app = AnalyticsProcess(settings, migrated_database_url, source, alerts, tmp_path)
    try:
        yield app
    finally:
        app.stop()
