"""Small, explicit clients for the conformance suite: every knob that matters is set here, so a
test states exactly what it asks of the broker (no engine defaults, no engine workarounds)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from confluent_kafka import Consumer as _Consumer
from confluent_kafka import KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from infra.processor import producer_config

READ_COMMITTED = "read_committed"


def new_topic(bootstrap: str, label: str, partitions: int = 1) -> str:
    """A topic no other test uses. (Clients wait for its metadata themselves.)"""
    name = f"conformance.{label}.{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=30)
    for future in futures.values():
        future.result(timeout=30)
    return name


def idempotent_producer(bootstrap: str, **extra: Any) -> Producer:
    return Producer(producer_config(bootstrap, **extra))


def transactional_producer(bootstrap: str, transactional_id: str | None = None) -> Producer:
    producer = Producer(
        producer_config(
            bootstrap,
            **{
                "transactional.id": transactional_id or f"conformance-{uuid.uuid4().hex}",
                "transaction.timeout.ms": 10_000,
            },
        )
    )
    producer.init_transactions(30)
    return producer


def produce_all(
    producer: Producer, topic: str, values: Iterable[bytes], partition: int = 0
) -> list[int]:
    """Produce to one partition and wait for every acknowledgement; the offsets, in order."""
    acked: list[int] = []
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            acked.append(_offset(msg))

    for value in values:
        while True:
            try:
                producer.produce(topic, value=value, partition=partition, on_delivery=delivered)
                break
            except BufferError:  # local queue full: let deliveries drain it
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    assert remaining == 0, f"{remaining} records still unacknowledged after 60 s"
    assert not errors, f"produce failed: {errors[0]}"
    return sorted(acked)


def write_sentinel(bootstrap: str, topic: str, partition: int = 0) -> bytes:
    """One record from a producer of its own: a reader that reaches it has read everything
    before it. (It also releases an LSO that waits for another producer, so tests that are not
    about the LSO do not fail for that reason.)"""
    value = f"sentinel-{uuid.uuid4().hex}".encode()
    producer = idempotent_producer(bootstrap)
    produce_all(producer, topic, [value], partition)
    return value


def _offset(message: Message) -> int:
    offset = message.offset()
    assert offset is not None, "a record without an offset"
    return offset


@dataclass(frozen=True, slots=True)
class Record:
    partition: int
    offset: int
    value: bytes


class PartitionReader:
    """A consumer assigned to partitions from `start`, polled until a condition holds."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: Iterable[int] = (0,),
        *,
        isolation: str = READ_COMMITTED,
        start: int = 0,
    ) -> None:
        self.topic = topic
        self.isolation = isolation
        self.records: list[Record] = []
        self.errors: list[KafkaError] = []
        self._consumer = _Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"conformance-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": isolation,
                "fetch.wait.max.ms": 50,
            }
        )
        self._consumer.assign([TopicPartition(topic, p, start) for p in partitions])

    def poll(self, timeout_s: float = 0.1) -> None:
        for m in self._consumer.consume(1000, timeout_s):
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.errors.append(err)
                continue
            self.records.append(Record(m.partition() or 0, _offset(m), m.value() or b""))

    def until(
        self, done: Callable[[list[Record]], bool], timeout_s: float, what: str
    ) -> list[Record]:
        deadline = time.monotonic() + timeout_s
        while not done(self.records):
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{what}: not within {timeout_s:g} s ({self.isolation} reader got "
                    f"{len(self.records)} records{self._error_note()})"
                )
            self.poll()
        return self.records

    def _error_note(self) -> str:
        return f", first error {self.errors[0]}" if self.errors else ""

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> PartitionReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
