from __future__ import annotations

import pytest

from infra.settings import Settings


@pytest.fixture
def bootstrap(settings: Settings) -> str:
    """The session stack's broker: Apache Kafka, or Tansu with SAGA_BROKER=tansu."""
    assert settings.kafka_bootstrap_servers
    return settings.kafka_bootstrap_servers
