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
from collections.abc import Callable, Iterator, Mapping, Sequence

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

QUIET_POLLS = 2  # consecutive empty polls, after the lower bound, that mean "the end"
STALL_S = 60.0  # no record for this long while still below the lower bound: the broker is stuck


def read_batches(
    bootstrap: str,
    topic: str,
    partitions: Sequence[int],
    *,
    start: Mapping[int, int] | None = None,
    # consume() waits this long whenever fewer than `batch` records are left: the tail of
    # every read pays it once, so it is short.
    poll_s: float = 0.05,
    stall_s: float = STALL_S,
    isolation_level: str = "read_committed",
    batch: int = 2000,
    trust_eof: bool | None = None,
    timeout_s: float | None = None,
) -> Iterator[list[Message]]:
    """The committed records of `partitions` from `start` (default: the beginning) to their end,
    a batch at a time, in order per partition. Bounded by work, not by a wall-clock cap: a long
    read goes on as long as it makes progress and fails only when it stalls for `stall_s`.
    The caller decides what to do between batches (yield to a poll loop, log progress).
    `timeout_s` is for callers that want an overall deadline (a test, a CLI); the rebuild sets
    none: its bound is the work.

    Apache Kafka (read_committed) says where the end is: the end-of-partition event arrives at
    the last stable offset, so the read stops there without waiting. Only where the broker
    under-reports the end (Tansu, read uncommitted) does "quiet after the lower bound" decide."""
    eof_is_end = isolation_level == "read_committed" if trust_eof is None else trust_eof
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-to-end-{uuid.uuid4()}",
            "isolation.level": isolation_level,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
            "enable.partition.eof": eof_is_end,
            # librdkafka prefetches up to 64 MB per partition by default; a rebuild reads its
            # partitions once, in order, and 4 MB ahead keeps it as fast without the memory
            # staying with the process after the read.
            "queued.max.messages.kbytes": 4096,
        }
    )
    try:
        lower = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        begin = {p: (start or {}).get(p, 0) for p in partitions}
        consumer.assign([TopicPartition(topic, p, begin[p]) for p in partitions])
        progressed = time.monotonic()
        deadline = None if timeout_s is None else progressed + timeout_s
        quiet = 0
        at_end: set[int] = set()
        while quiet < QUIET_POLLS:
            polled = consumer.consume(batch, poll_s)
            records = [r for r in polled if not r.error()]
            for r in polled:
                error = r.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(r.partition() or 0)
                elif error is None and r.partition() in at_end:
                    at_end.discard(r.partition() or 0)  # more arrived after the end we saw
            if records:
                progressed = time.monotonic()
                yield records
            reached = _positions(consumer, topic, partitions)
            below = any(reached.get(p, begin[p]) < lower[p] for p in partitions)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{topic}{list(partitions)} not read to the end in {timeout_s}s")
            if below and not records and time.monotonic() - progressed > stall_s:
                raise TimeoutError(f"{topic}{list(partitions)}: no progress for {stall_s}s")
            if eof_is_end and at_end >= set(partitions) and not below:
                return
            quiet = 0 if records or below else quiet + 1
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, partitions: Sequence[int]) -> dict[int, int]:
    """The high watermark of each partition (a lower bound of the end; see above)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ends-{uuid.uuid4()}"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def read_to_end(
    bootstrap: str,
    topic: str,
    partitions: Sequence[int],
    handle: Callable[[Message], None],
    *,
    poll_s: float = 0.05,
    stall_s: float = STALL_S,
    isolation_level: str = "read_committed",
    timeout_s: float | None = None,
) -> int:
    """Feed every committed record of `partitions` to `handle`, in order per partition."""
    count = 0
    for records in read_batches(
        bootstrap,
        topic,
        partitions,
        poll_s=poll_s,
        stall_s=stall_s,
        isolation_level=isolation_level,
        timeout_s=timeout_s,
    ):
        for record in records:
            handle(record)
        count += len(records)
    return count


def _positions(consumer: Consumer, topic: str, partitions: Sequence[int]) -> dict[int, int]:
    found = consumer.position([TopicPartition(topic, p) for p in partitions])
    return {tp.partition: tp.offset for tp in found if tp.offset >= 0}
