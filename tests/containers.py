"""Opt-in (SAGA_TESTCONTAINERS=1): real Apache Kafka and PostgreSQL in Docker via testcontainers,
with the embedded Redis and localstripe alongside. Without a Docker engine the session's
integration tests are *skipped* with the reason — never counted as passing."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import pytest

from infra.embedded.stack import RunningStack, embedded_stack
from infra.settings import Settings


def docker_available() -> str | None:
    """None when a Docker engine answers; otherwise why not."""
    try:
        import docker

        docker.from_env().ping()
    except Exception as e:  # any failure to reach the engine means "no Docker here"
        return f"no Docker engine reachable ({type(e).__name__}: {e})"
    return None


@contextlib.contextmanager
def containers_stack(settings: Settings) -> Iterator[RunningStack]:
    reason = docker_available()
    if reason is not None:
        pytest.skip(f"SAGA_TESTCONTAINERS=1 but {reason}")
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer

    with (
        KafkaContainer("confluentinc/cp-kafka:7.6.1") as kafka,
        PostgresContainer("postgres:17", driver=None) as postgres,
    ):
        real = dataclasses.replace(
            settings,
            kafka_bootstrap_servers=kafka.get_bootstrap_server(),
            database_url=postgres.get_connection_url(),
        )
        with embedded_stack(real, only=("redis", "stripe")) as running:
            yield running
