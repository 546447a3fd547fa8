"""Read partitions of a topic from the beginning to their end — without trusting the broker's
high watermark as the end.

Measured on the embedded Tansu broker: ListOffsets under-reports the log end (it answered 48,140
for a partition whose last record had offset 49,999: all 50,000 records were readable). A
reader that stops "at the high watermark" would miss the newest records — for the orchestrator,
the newest events of its sagas. So the watermark is only a lower bound: we read at least that
far, and then until the partitions stay quiet. The partitions read here have no concurrent
writer (the orchestrator owns its partitions), so quiet means done.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, Message, TopicPartition

QUIET_POLLS = 2  # consecutive empty polls, after the lower bound, that mean "the end"


def read_to_end(
    bootstrap: str,
    topic: str,
    partitions: Sequence[int],
    handle: Callable[[Message], None],
    *,
    poll_s: float = 0.25,
    timeout_s: float = 300,
    isolation_level: str = "read_committed",
) -> int:
    """Feed every committed record of `partitions` to `handle`, in order per partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-to-end-{uuid.uuid4()}",
            "isolation.level": isolation_level,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    count = 0
    try:
        lower = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        deadline = time.monotonic() + timeout_s
        quiet = 0
        while quiet < QUIET_POLLS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}{list(partitions)} not read to the end in {timeout_s}s")
            records = [r for r in consumer.consume(1000, poll_s) if not r.error()]
            for record in records:
                handle(record)
            count += len(records)
            reached = _positions(consumer, topic, partitions)
            below = any(reached.get(p, 0) < lower[p] for p in partitions)
            quiet = 0 if records or below else quiet + 1
    finally:
        consumer.close()
    return count


def _positions(consumer: Consumer, topic: str, partitions: Sequence[int]) -> dict[int, int]:
    found = consumer.position([TopicPartition(topic, p) for p in partitions])
    return {tp.partition: tp.offset for tp in found if tp.offset >= 0}
