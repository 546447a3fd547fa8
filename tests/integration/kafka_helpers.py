"""Test helpers for talking to the real broker: produce envelopes, read a topic to a count."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from events.envelope import Envelope
from events.serde import Serde
from infra.embedded.stack import reader_isolation
from infra.processor import producer_config
from infra.settings import load_settings
from infra.topics import ensure_topics


def fresh_topics(bootstrap: str, *names: str, partitions: int = 3) -> list[str]:
    """Unique topic names (with their .dlq) so tests never share data."""
    suffix = uuid.uuid4().hex[:8]
    topics = [f"{n}.{suffix}" for n in names]
    ensure_topics(bootstrap, partitions, 1, tuple(topics) + tuple(f"{t}.dlq" for t in topics))
    return topics


_producers: dict[str, Producer] = {}


def _producer(bootstrap: str) -> Producer:
    """One warm producer per broker: a new idempotent producer takes ~0.5 s to its first ack."""
    if bootstrap not in _producers:
        _producers[bootstrap] = Producer(producer_config(bootstrap))
    return _producers[bootstrap]


def close_producers() -> None:
    for producer in _producers.values():
        producer.flush(5)
    _producers.clear()


def produce(bootstrap: str, topic: str, serde: Serde, envelopes: Iterable[Envelope[Any]]) -> None:
    producer = _producer(bootstrap)
    for env in envelopes:
        producer.produce(topic, key=env.key.encode(), value=serde.encode(env, topic))
    assert producer.flush(30) == 0


def produce_raw(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = _producer(bootstrap)
    producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


@dataclass(frozen=True)
class Seen:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Seen]], bool],
    timeout_s: float = 30,
    isolation: str | None = None,  # default: as the suite's workers read (ADR 0009)
) -> list[Seen]:
    """Read `topic` from the beginning until `until(records)` holds; fail at the deadline."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "isolation.level": isolation or reader_isolation(load_settings()),
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        seen: list[Seen] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in consumer.consume(500, 0.2):
                if m.error():
                    continue
                headers = {k: v for k, v in (m.headers() or [])}
                seen.append(Seen(m.partition(), m.offset(), m.key(), m.value() or b"", headers))
            if until(seen):
                return seen
        raise AssertionError(
            f"{topic}: condition not met within {timeout_s}s ({len(seen)} records read)"
        )
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str, timeout_s: float = 60) -> int:
    """The group's committed offsets on `topic`, summed. The coordinator may be busy (a group
    rebalancing after a kill): a timed-out ask is asked again until the deadline."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    deadline = time.monotonic() + timeout_s
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = [TopicPartition(topic, p) for p in meta.partitions]
        while True:
            try:
                tps = consumer.committed(partitions, timeout=10)
                return sum(max(tp.offset, 0) for tp in tps)
            except KafkaException as e:
                timed_out = e.args and e.args[0].code() == KafkaError._TIMED_OUT
                if not timed_out or time.monotonic() > deadline:
                    raise
    finally:
        consumer.close()
