"""The transactional processor runtime on the real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from infra.embedded.stack import RunningStack
from infra.processor import Incoming, Output, Processor, ProcessorConfig
from tests.integration.copy_worker import CopyHandler
from tests.integration.kafka_helpers import (
    Seen,
    committed_offsets,
    fresh_topics,
    produce,
    produce_raw,
    read_topic,
)

pytestmark = pytest.mark.integration
SERDE = make_serde(None)


def cancels(n: int, reason: str = "customer") -> list[Envelope[Any]]:
    run = uuid.uuid4().hex[:6]
    return [
        Envelope.new(
            m.CancelCheckout(f"co-{run}-{i}", reason), occurred_at=1_000 + i, producer="test"
        )
        for i in range(n)
    ]


def drive(processor: Processor, done: Callable[[], bool], timeout_s: float = 60) -> None:
    processor.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not done():
            assert time.monotonic() < deadline, "processor did not finish in time"
            processor.step()
    finally:
        processor.close()


def ids(records: list[Seen]) -> Counter[str]:
    return Counter(SERDE.decode(r.value, "").message_id for r in records)


def make(stack: RunningStack, in_topic: str, handler: Any, **cfg: Any) -> Processor:
    bootstrap = stack.settings.kafka_bootstrap_servers
    assert bootstrap
    config = ProcessorConfig(
        name=f"g-{uuid.uuid4().hex[:8]}",
        topics=[in_topic],
        bootstrap_servers=bootstrap,
        batch_size=50,
        isolation_level=stack.settings.kafka_isolation_level,
        **cfg,
    )
    return Processor(config, handler, SERDE)


class FailOnce(CopyHandler):
    """Fails the first time it meets `victim`, then behaves."""

    def __init__(self, out_topic: str, victim: str) -> None:
        super().__init__(out_topic)
        self.victim = victim
        self.calls: Counter[str] = Counter()

    def handle(self, message: Incoming) -> Sequence[Output]:
        checkout = message.envelope.message.checkout_id
        self.calls[checkout] += 1
        if checkout == self.victim and self.calls[checkout] == 1:
            raise ConnectionError("database went away")
        return super().handle(message)


def test_a_failed_batch_is_processed_again_and_its_outputs_appear_once(stack: RunningStack) -> None:
    bootstrap = stack.settings.kafka_bootstrap_servers
    assert bootstrap
    src, out = fresh_topics(bootstrap, "in", "out")
    inputs = cancels(120)
    produce(bootstrap, src, SERDE, inputs)
    victim = inputs[57].message.checkout_id
    handler = FailOnce(out, victim)
    processor = make(stack, src, handler)

    drive(processor, lambda: processor.processed >= len(inputs))

    records = read_topic(bootstrap, out, until=lambda rs: len(rs) >= len(inputs))
    assert handler.calls[victim] == 2  # processed again after the failed attempt
    assert sorted(ids(records).values()) == [1] * len(inputs)  # each output exactly once
    assert {SERDE.decode(r.value, out).message.checkout_id for r in records} == {
        e.message.checkout_id for e in inputs
    }


class _AbortingProducer:
    """Delegates to the real producer but fails the first commit, as a broker hiccup would."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.failed = False

    def commit_transaction(self, *args: Any) -> None:
        if not self.failed:
            self.failed = True
            self.real.flush(10)  # make sure the doomed records really reached the broker
            raise KafkaException(KafkaError(KafkaError._STATE, "injected", fatal=False))
        self.real.commit_transaction(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_an_aborted_transaction_is_replayed_with_the_same_message_ids(stack: RunningStack) -> None:
    bootstrap = stack.settings.kafka_bootstrap_servers
    assert bootstrap
    src, out = fresh_topics(bootstrap, "in", "out")
    inputs = cancels(40)
    produce(bootstrap, src, SERDE, inputs)
    processor = make(stack, src, CopyHandler(out))
    aborting = _AbortingProducer(processor._producer)
    processor._producer = aborting  # type: ignore[assignment]

    drive(processor, lambda: processor.processed >= len(inputs))

    assert aborting.failed
    records = read_topic(bootstrap, out, until=lambda rs: len(ids(rs)) >= len(inputs))
    # Real Kafka hides the aborted copy; Tansu 0.6 does not (docs/decisions/0006). Either way
    # a duplicate is the very same message, so consumers deduplicating by id see it once.
    by_id: dict[str, set[bytes]] = {}
    for r in records:
        by_id.setdefault(SERDE.decode(r.value, out).message_id, set()).add(r.value)
    assert len(by_id) == len(inputs)
    assert all(len(values) == 1 for values in by_id.values())
    assert committed_offsets(bootstrap, processor._config.name, src) == len(inputs)


def test_a_processor_killed_mid_batch_produces_each_output_once(stack: RunningStack) -> None:
    bootstrap = stack.settings.kafka_bootstrap_servers
    assert bootstrap
    src, out = fresh_topics(bootstrap, "in", "out")
    inputs = cancels(3000)
    produce(bootstrap, src, SERDE, inputs)
    group = f"g-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "tests.integration.copy_worker", bootstrap, src, out, group, "25"]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}

    first = subprocess.Popen(argv, env=env)
    try:
        read_topic(bootstrap, out, until=lambda rs: len(rs) >= 300, isolation="read_uncommitted")
    finally:
        first.send_signal(signal.SIGKILL)  # a crash, not a shutdown
        first.wait(10)
    killed_after = committed_offsets(bootstrap, group, src)
    assert killed_after < len(inputs), "the worker finished before it could be killed"

    second = subprocess.Popen(argv, env=env)
    try:
        records = read_topic(
            bootstrap, out, until=lambda rs: len(ids(rs)) >= len(inputs), timeout_s=90
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    counts = ids(records)
    assert len(counts) == len(inputs)
    # Duplicates can only be aborted copies that the broker failed to hide: identical bytes.
    by_id: dict[str, set[bytes]] = {}
    for r in records:
        by_id.setdefault(SERDE.decode(r.value, out).message_id, set()).add(r.value)
    assert all(len(v) == 1 for v in by_id.values())
    assert committed_offsets(bootstrap, group, src) == len(inputs)


def test_poison_and_repeatedly_failing_messages_go_to_the_dlq_and_the_partition_flows(
    stack: RunningStack,
) -> None:
    bootstrap = stack.settings.kafka_bootstrap_servers
    assert bootstrap
    src, out = fresh_topics(bootstrap, "in", "out", partitions=1)
    before, after = cancels(10), cancels(10)
    doomed = cancels(1, reason="always-fails")
    produce(bootstrap, src, SERDE, before)
    produce_raw(bootstrap, src, b"co-poison", b"\x00not avro at all")
    produce(bootstrap, src, SERDE, doomed + after)
    handler = CopyHandler(out, fail_on="always-fails")
    processor = make(stack, src, handler, max_attempts=3)

    drive(processor, lambda: processor.processed >= 22)

    outputs = read_topic(bootstrap, out, until=lambda rs: len(rs) >= 20)
    assert len(outputs) == 20  # everything healthy, on both sides of the poison, got through
    dead = read_topic(bootstrap, f"{src}.dlq", until=lambda rs: len(rs) >= 2)
    assert len(dead) == 2
    poison, failing = sorted(dead, key=lambda r: int(r.headers["dlq.offset"]))
    assert poison.value == b"\x00not avro at all" and poison.key == b"co-poison"
    assert poison.headers["dlq.error"].startswith(b"DecodeError")
    assert poison.headers["dlq.topic"] == src.encode()
    assert b"RuntimeError after 3 attempts" in failing.headers["dlq.error"]
    assert SERDE.decode(failing.value, src).message == doomed[0].message
