"""Broker ceiling: raw produce and consume rates and produce->consume round trip, on the same
broker and with the engine's average message size, so engine figures have a yardstick."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.engine import percentile
from bench.services import start_command
from events import messages as m
from events.envelope import Envelope
from events.serde import Serde
from infra.processor import producer_config
from infra.topics import ensure_topics


@dataclass(frozen=True)
class Ceiling:
    message_bytes: int
    produce_per_s: float
    consume_per_s: float
    round_trip_p50_ms: float
    round_trip_p99_ms: float


def engine_message_size(serde: Serde) -> int:
    """Mean encoded size of one checkout's typical messages."""
    c = "bench-0123456789abcdef"
    sample = [
        start_command(c),
        m.StepStarted(c, m.Step.RESERVE_INVENTORY, 1, 1_800_000_000_000),
        m.InventoryReserved(c, 1, "res-" + c, 1_800_000_000_000),
        m.TaxCalculated(c, 1, 525, "USD", "bench"),
        m.AuthorizePayment(
            c, 1, f"{c}:authorize_payment:1", "stripe", "pm_card_visa", "cus", 5748, "USD"
        ),
        m.PaymentCaptured(c, 1, "stripe", "pi-" + c, 5748, "USD"),
    ]
    sizes = [
        len(serde.encode(Envelope.new(msg, occurred_at=1, producer="bench"), "t")) for msg in sample
    ]
    return sum(sizes) // len(sizes)


def measure(bootstrap: str, serde: Serde, n: int = 50_000, round_trips: int = 300) -> Ceiling:
    size = engine_message_size(serde)
    topic = f"bench.ceiling.{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, 6, 1, (topic,))
    payload = b"x" * size
    producer = Producer(producer_config(bootstrap))
    began = time.perf_counter()
    for i in range(n):
        while True:
            try:
                producer.produce(topic, key=str(i % 1000).encode(), value=payload)
                break
            except BufferError:
                producer.poll(0.01)  # local queue full: let it drain
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    produce_rate = n / (time.perf_counter() - began)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 10,
        }
    )
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    got, began = 0, time.perf_counter()
    while got < n:
        got += sum(1 for r in consumer.consume(5000, 1.0) if not r.error())
    consume_rate = n / (time.perf_counter() - began)

    latencies = []
    for _ in range(round_trips):
        t0 = time.perf_counter()
        producer.produce(topic, key=b"rt", value=payload)
        producer.flush(10)
        while not any(not r.error() for r in consumer.consume(1, 1.0)):
            pass
        latencies.append((time.perf_counter() - t0) * 1000)
    consumer.close()
    latencies.sort()
    return Ceiling(
        size, produce_rate, consume_rate, percentile(latencies, 50), percentile(latencies, 99)
    )
