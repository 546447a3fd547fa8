"""Settings come from the environment; a malformed value is one line naming the variable."""

from __future__ import annotations

import pytest

from infra.settings import ConfigError, load_settings


def test_defaults_leave_every_service_to_the_embedded_stack() -> None:
    s = load_settings({})
    assert s.kafka_bootstrap_servers is None and s.database_url is None
    assert s.partitions == 6 and s.tax_fallback_policy == "fallback_rates"
    assert s.kafka_isolation_level == "read_committed"  # what real Kafka wants (ADR 0009)


def test_values_are_parsed_and_typed() -> None:
    s = load_settings(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9093",
            "SAGA_PARTITIONS": "12",
            "SAGA_TESTCONTAINERS": "yes",
            "TAX_FALLBACK_POLICY": "block",
            "KAFKA_ISOLATION_LEVEL": "read_uncommitted",
        }
    )
    assert s.kafka_isolation_level == "read_uncommitted"
    assert s.kafka_bootstrap_servers == "k1:9092,k2:9093"
    assert s.partitions == 12 and s.testcontainers is True and s.tax_fallback_policy == "block"


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("SAGA_PARTITIONS", "six", "invalid literal"),
        ("SAGA_PARTITIONS", "0", "between 1 and 1024"),
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost", "host:port"),
        ("TAX_FALLBACK_POLICY", "guess", "block, fallback_rates"),
        ("SAGA_TESTCONTAINERS", "maybe", "true/false"),
        ("KAFKA_ISOLATION_LEVEL", "read_mostly", "read_committed, read_uncommitted"),
    ],
)
def test_a_malformed_value_is_one_line_naming_the_variable(var: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({var: value})
    message = str(caught.value)
    assert message.startswith(f"{var}={value!r} is invalid")
    assert says in message and "\n" not in message


def test_the_embedded_broker_is_apache_kafka_unless_tansu_is_chosen() -> None:
    assert load_settings({}).embedded_broker == "kafka"
    assert load_settings({"SAGA_BROKER": "tansu"}).embedded_broker == "tansu"
    with pytest.raises(ConfigError, match="SAGA_BROKER"):
        load_settings({"SAGA_BROKER": "redpanda"})
