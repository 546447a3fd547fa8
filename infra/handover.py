"""Where a consumer group starts when another group served the same partitions before it.

`saga worker --role adapters` serves the adapters' request topics in one consumer group
(`adapters`); `--role payment` and the others serve one each (`adapter-payment`, ...). An
operator moves between the two by stopping one set and starting the other. Each group's
committed offset says "every record below is answered", so a partition starts at the highest
offset any of these groups committed: nothing below it is unanswered, and nothing the other
group answered is asked of the providers again, as it would be from the start of the log.
Both sets running at once would answer each request twice (idempotent, but twice the provider
calls): the sets are alternatives, not partners.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0


Partition = tuple[str, int]


def committed_by(
    bootstrap: str, group: str, partitions: Sequence[TopicPartition]
) -> dict[Partition, int]:
    """`group`'s committed offsets of `partitions` (absent where it never committed), read
    without joining the group."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = reader.committed(
            [TopicPartition(p.topic, p.partition) for p in partitions], timeout=TIMEOUT_S
        )
    finally:
        with contextlib.suppress(Exception):
            reader.close()
    return {(p.topic, p.partition): p.offset for p in found if p.offset >= 0}


def starts(
    consumer: Consumer, bootstrap: str, others: Sequence[str], partitions: Sequence[TopicPartition]
) -> list[TopicPartition]:
    """`partitions` as they are to be assigned: at the highest offset committed by this
    consumer's group or by `others`. Where this group is furthest the offset is left unset
    (the consumer's own committed offset applies). When an offset cannot be read, the
    partition starts from this group's own: answered requests asked again, which every adapter
    allows (each call is idempotent by its command's key), rather than a worker that cannot
    start while a group coordinator is away."""
    try:
        own = {
            (p.topic, p.partition): p.offset
            for p in consumer.committed(list(partitions), timeout=TIMEOUT_S)
        }
        best: dict[Partition, int] = {}
        for group in others:
            for key, offset in committed_by(bootstrap, group, partitions).items():
                best[key] = max(best.get(key, -1), offset)
    except KafkaException as e:
        log.warning("committed offsets of %s unreadable (%s): starting from our own", others, e)
        return list(partitions)
    out = []
    for p in partitions:
        key = (p.topic, p.partition)
        mine = own.get(key, -1)
        theirs = best.get(key, -1)
        if theirs > mine:
            log.info("%s[%d]: starting at %d, handed over (ours: %d)", *key, theirs, mine)
            out.append(TopicPartition(p.topic, p.partition, theirs))
        else:
            out.append(TopicPartition(p.topic, p.partition))
    return out
