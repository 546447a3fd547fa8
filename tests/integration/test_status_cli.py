"""`saga status` on the real broker, PostgreSQL and Redis: a processor's lag is its committed
offset against the end of the log, dead letters are counted per DLQ with their re-drives, and a
breaker tripped in a worker process shows as open (published through Redis). Mistakes are one
line, never a traceback."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pybreaker
import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from typer.testing import CliRunner

from adapters.resilience import make_breaker
from events.topics import CHECKOUT_COMMANDS, dlq
from infra.breaker_states import KEY_PREFIX, BreakerPublisher, read_breakers
from infra.cli import app
from infra.embedded.stack import RunningStack
from infra.ops import processor_lag
from infra.topics import ensure_topics

pytestmark = pytest.mark.integration


def saga(env: dict[str, str], *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


def test_status_shows_lag_dead_letters_and_an_open_breaker(
    stack: RunningStack, migrated_database_url: str
) -> None:
    settings = stack.settings
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap and settings.redis_url
    ensure_topics(bootstrap, settings.partitions)
    # A group of its own on checkout.commands, two records behind on one partition.
    group = f"status-test-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for _ in range(3):
        producer.produce(CHECKOUT_COMMANDS, value=b"x", key=b"k", partition=0)
    assert producer.flush(15) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    _low, high = consumer.get_watermark_offsets(TopicPartition(CHECKOUT_COMMANDS, 0), timeout=10)
    consumer.commit(offsets=[TopicPartition(CHECKOUT_COMMANDS, 0, high - 2)], asynchronous=False)
    consumer.close()
    lag = processor_lag(bootstrap, {group: (CHECKOUT_COMMANDS,)})
    assert [(t.group, t.topic) for t in lag] == [(group, CHECKOUT_COMMANDS)]
    by_partition = {p.partition: p for p in lag[0].partitions}
    assert by_partition[0].committed == high - 2 and by_partition[0].lag == 2
    assert lag[0].lag == sum(p.lag for p in lag[0].partitions)

    # Alternatives (the combined adapters worker and the per-adapter ones): a partition's
    # progress is the furthest of them; one never deployed is not shown.
    behind, ahead, unused, optional = (f"{group}-{x}" for x in ("behind", "ahead", "unused", "opt"))
    for name, offset in ((behind, high - 3), (ahead, high - 1)):
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": name})
        consumer.commit(offsets=[TopicPartition(CHECKOUT_COMMANDS, 0, offset)], asynchronous=False)
        consumer.close()
    family = (behind, ahead, unused, optional)
    lag = processor_lag(
        bootstrap,
        {name: (CHECKOUT_COMMANDS,) for name in family},
        alternatives={name: tuple(x for x in family if x != name) for name in family},
        opt_in=frozenset({optional}),
    )
    assert [t.group for t in lag] == [behind, ahead]
    for shown_lag in lag:
        zero = {p.partition: p for p in shown_lag.partitions}[0]
        assert zero.committed == high - 1 and zero.lag == 1

    # A breaker in "a worker", tripped: published with its state and since-timestamp.
    client = redis.Redis.from_url(settings.redis_url)
    instance = f"tax@test:{uuid.uuid4().hex[:6]}"
    publisher = BreakerPublisher(client, instance).start()
    name = f"taxjar-{uuid.uuid4().hex[:6]}"
    breaker = make_breaker(name, fail_max=1, reset_timeout_s=600)
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(_boom)
    try:
        mine = [b for b in read_breakers(client) if b.breaker == name]
        assert [(b.state, b.instance) for b in mine] == [("open", instance)]
        assert abs(mine[0].since_ms - time.time() * 1000) < 60_000
        assert 0 < client.ttl(KEY_PREFIX + instance) <= 60

        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "DATABASE_URL": migrated_database_url,
            "REDIS_URL": settings.redis_url,
            "KAFKA_ISOLATION_LEVEL": settings.kafka_isolation_level,
        }
        shown = saga(env, "status", "--partitions")
        assert shown.exit_code == 0, shown.output
        assert "processor lag" in shown.output and "adapter-tax" in shown.output
        assert dlq(CHECKOUT_COMMANDS) in shown.output
        assert name in shown.output and "open" in shown.output
    finally:
        publisher.stop()
    # A stopped worker holds no breaker any more.
    assert [b for b in read_breakers(client) if b.breaker == name] == []

    wrong = saga({**env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "status")
    assert wrong.exit_code == 1 and "127.0.0.1:1" in wrong.output
    assert len(wrong.output.strip().splitlines()) <= 2, wrong.output
    unknown = saga(env, "status", "--bogus")
    assert unknown.exit_code == 2 and "No such option" in unknown.output


def _boom() -> None:
    raise ConnectionError("provider down")
