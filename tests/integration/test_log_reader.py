"""Reading a partition to its end does not stop at an under-reported high watermark."""

from __future__ import annotations

import dataclasses
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from infra.embedded.stack import RunningStack
from infra.log_reader import read_to_end
from tests.integration.kafka_helpers import fresh_topics

pytestmark = pytest.mark.integration
SERDE = make_serde(None)


def test_every_record_is_read_even_when_the_broker_under_reports_the_end(
    stack: RunningStack,
) -> None:
    bootstrap = stack.settings.kafka_bootstrap_servers
    assert bootstrap
    (topic,) = fresh_topics(bootstrap, "log", partitions=1)
    # Large batches: Tansu 0.6 then reports the last batch's base offset as the log end.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000})
    for i in range(20_000):
        producer.produce(topic, value=str(i).encode())
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermark-probe"})
    reported = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    consumer.close()

    seen: list[int] = []
    count = read_to_end(bootstrap, topic, [0], lambda r: seen.append(int(r.value() or b"-1")))

    assert count == 20_000 and seen == list(range(20_000))
    # Not an assertion about Kafka, which reports 20000: a record of what this broker does.
    print(f"broker reported end {reported} for a log of 20000 records")


def test_a_rebuilt_saga_includes_its_newest_events(stack: RunningStack) -> None:
    from infra.workers.orchestrator import OrchestratorHandler
    from tests.unit.saga_harness import CID, h_completed

    bootstrap = stack.settings.kafka_bootstrap_servers
    assert bootstrap
    (topic,) = fresh_topics(bootstrap, "events", partitions=1)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000})
    history = h_completed()
    started = history[0]
    assert isinstance(started, m.CheckoutStarted)
    filler = [dataclasses.replace(started, checkout_id=f"other-{i}") for i in range(5_000)]
    for event in [*filler, *history]:
        envelope = Envelope.new(event, occurred_at=int(time.time() * 1000), producer="test")
        producer.produce(topic, key=envelope.key.encode(), value=SERDE.encode(envelope, topic))
    assert producer.flush(30) == 0

    handler = OrchestratorHandler(bootstrap, SERDE, events_topic=topic)
    handler.on_assign([TopicPartition("checkout.commands", 0)])
    # The rebuild runs in slices between polls (the processor's loop); here, to its end.
    while handler.background(0.5) == []:
        pass
    state = handler.state_of(CID)
    assert state is not None and str(state.status) == "COMPLETED"
