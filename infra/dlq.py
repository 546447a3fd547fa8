"""Dead letters an operator can act on: list them, read one, and re-drive it once its cause is
fixed.

A dead letter is the original record (same key, value and headers) on `<topic>.dlq`, plus the
processor's `dlq.*` headers: why it failed, where it came from, who dead-lettered it, when
(infra/processor.py). Its id is its own coordinate, `<dlq topic>:<partition>:<offset>`, stable
for as long as the DLQ keeps it.

Re-driving produces that original record back onto its topic and partition, with the `dlq.*`
headers replaced by provenance (`redrive.source`, `redrive.error`, `redrive.by`, `redrive.at`,
`redrive.reason`), so the consumer sees the record it refused and anyone reading the log sees
that an operator put it there. Each re-drive is recorded in `audit_log` (action `dlq.redrive`,
object = the dead letter's id) in the same PostgreSQL transaction that holds an advisory lock on
that id while the record is produced and acknowledged: two operators cannot re-drive one dead
letter twice, and a second re-drive is refused unless asked for (`again`). Should the audit
commit fail after the broker acknowledged, the record went out twice at worst; every consumer
deduplicates it by its envelope's message id, which a re-drive keeps.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import Consumer, Message, Producer

from events.topics import dlq
from infra.log_reader import read_to_end
from infra.processor import producer_config

AUDIT_ACTION = "dlq.redrive"
PROVENANCE = ("redrive.source", "redrive.error", "redrive.by", "redrive.at", "redrive.reason")
ACK_TIMEOUT_S = 15.0


class DeadLetterError(Exception):
    """An operator mistake or an unmet precondition, said in one line."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    def header(self, name: str) -> str | None:
        for key, value in reversed(self.headers):
            if key == name:
                return value.decode(errors="replace")
        return None

    @property
    def topic(self) -> str:
        """The topic it was dead-lettered from."""
        return self.header("dlq.topic") or self.dlq_topic.removesuffix(".dlq")

    @property
    def partition(self) -> int | None:
        raw = self.header("dlq.partition")
        return int(raw) if raw is not None and raw.lstrip("-").isdigit() else None

    @property
    def offset(self) -> int | None:
        raw = self.header("dlq.offset")
        return int(raw) if raw is not None and raw.lstrip("-").isdigit() else None

    @property
    def error(self) -> str:
        return self.header("dlq.error") or "(no reason recorded)"

    @property
    def processor(self) -> str:
        return self.header("dlq.processor") or "?"

    @property
    def failed_at_ms(self) -> int | None:
        raw = self.header("dlq.failed_at")
        return int(raw) if raw is not None and raw.isdigit() else None

    @property
    def message_type(self) -> str | None:
        return self.header("message_type")

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The record's own headers: without this dead-lettering's and any earlier re-drive's
        bookkeeping (a re-drive adds its own)."""
        ours = ("dlq.", "redrive.")
        return [(k, v) for k, v in self.headers if not k.startswith(ours)]


@dataclass(frozen=True, slots=True)
class Redrive:
    actor: str
    at_ms: int
    reason: str


def parse_id(dead_letter_id: str) -> tuple[str, int, int]:
    topic, sep, rest = dead_letter_id.rpartition(":")
    topic2, sep2, partition = topic.rpartition(":")
    if not sep or not sep2 or not topic2.endswith(".dlq"):
        raise DeadLetterError(
            f"{dead_letter_id!r} is not a dead letter id (<topic>.dlq:<partition>:<offset>)"
        )
    try:
        return topic2, int(partition), int(rest)
    except ValueError:
        raise DeadLetterError(
            f"{dead_letter_id!r} is not a dead letter id (<topic>.dlq:<partition>:<offset>)"
        ) from None


def dlq_topics(bootstrap: str, only: str | None = None) -> list[str]:
    """The DLQ topics that exist, or the one of `only` (a topic or its DLQ)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-{uuid.uuid4()}"})
    try:
        existing = set(consumer.list_topics(timeout=10).topics)
    finally:
        consumer.close()
    if only is not None:
        wanted = only if only.endswith(".dlq") else dlq(only)
        if wanted not in existing:
            raise DeadLetterError(f"no dead-letter topic {wanted}")
        return [wanted]
    return sorted(t for t in existing if t.endswith(".dlq"))


def read_dead_letters(
    bootstrap: str, topics: Sequence[str], *, isolation_level: str = "read_committed"
) -> list[DeadLetter]:
    """Every dead letter on `topics`, oldest first per partition."""
    found: list[DeadLetter] = []

    def keep(record: Message) -> None:
        topic = record.topic() or ""
        partition, offset = record.partition(), record.offset()
        assert partition is not None and offset is not None
        headers = tuple(
            (str(h[0]), h[1] if isinstance(h[1], bytes) else str(h[1] or "").encode())
            for h in (record.headers() or [])
        )
        found.append(
            DeadLetter(
                f"{topic}:{partition}:{offset}",
                topic,
                partition,
                offset,
                record.key(),
                record.value(),
                headers,
                record.timestamp()[1],
            )
        )

    for topic in topics:
        read_to_end(
            bootstrap,
            topic,
            _partitions(bootstrap, topic),
            keep,
            isolation_level=isolation_level,
            timeout_s=120,
        )
    return found


def find(letters: Iterable[DeadLetter], dead_letter_id: str) -> DeadLetter:
    parse_id(dead_letter_id)
    for letter in letters:
        if letter.id == dead_letter_id:
            return letter
    raise DeadLetterError(f"no dead letter {dead_letter_id} (it may have expired from the DLQ)")


def redrives(database_url: str) -> dict[str, list[Redrive]]:
    """Re-drives recorded so far, by dead letter id, oldest first."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT object, actor, (extract(epoch from at) * 1000)::bigint, after"
            " FROM audit_log WHERE action = %s ORDER BY at, id",
            (AUDIT_ACTION,),
        ).fetchall()
    done: dict[str, list[Redrive]] = {}
    for object_id, actor, at_ms, after in rows:
        reason = (after or {}).get("reason", "")
        done.setdefault(object_id, []).append(Redrive(actor, int(at_ms), reason))
    return done


def redrive(
    bootstrap: str,
    database_url: str,
    letter: DeadLetter,
    *,
    actor: str,
    reason: str,
    again: bool = False,
    clock: Callable[[], float] = time.time,
) -> Redrive:
    """Put `letter` back on its topic (see the module docstring). Raises DeadLetterError when it
    was re-driven before (and not `again`) or the broker did not acknowledge."""
    if not reason.strip():
        raise DeadLetterError("a re-drive needs a --reason (it goes into the audit log)")
    at_ms = int(clock() * 1000)
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (letter.id,))
        earlier = conn.execute(
            "SELECT actor, at FROM audit_log WHERE action = %s AND object = %s ORDER BY at",
            (AUDIT_ACTION, letter.id),
        ).fetchall()
        if earlier and not again:
            who, when = earlier[-1]
            raise DeadLetterError(
                f"{letter.id} was re-driven by {who} at {when:%Y-%m-%d %H:%M:%S}; "
                "pass --again to re-drive it once more"
            )
        _produce(bootstrap, letter, actor=actor, reason=reason, at_ms=at_ms)
        conn.execute(
            "INSERT INTO audit_log (actor, action, object, before, after)"
            " VALUES (%s, %s, %s, %s::jsonb, %s::jsonb)",
            (
                actor,
                AUDIT_ACTION,
                letter.id,
                json.dumps({"error": letter.error, "processor": letter.processor}),
                json.dumps(
                    {
                        "topic": letter.topic,
                        "partition": letter.partition,
                        "reason": reason,
                        "message_type": letter.message_type,
                    }
                ),
            ),
        )
    return Redrive(actor, at_ms, reason)


def _produce(bootstrap: str, letter: DeadLetter, *, actor: str, reason: str, at_ms: int) -> None:
    headers: list[tuple[str, str | bytes]] = [
        *letter.original_headers(),
        ("redrive.source", letter.id.encode()),
        ("redrive.error", letter.error[:1000].encode()),
        ("redrive.by", actor.encode()),
        ("redrive.at", str(at_ms).encode()),
        ("redrive.reason", reason[:1000].encode()),
    ]
    kwargs: dict[str, Any] = {"value": letter.value, "key": letter.key, "headers": headers}
    partition = letter.partition
    if partition is not None and partition < len(_partitions(bootstrap, letter.topic)):
        # Back where it was: the partition its checkout's other records are on.
        kwargs["partition"] = partition
    outcome: list[Any] = []
    producer = Producer(producer_config(bootstrap, acks="all"))
    producer.produce(letter.topic, on_delivery=lambda err, _msg: outcome.append(err), **kwargs)
    producer.flush(ACK_TIMEOUT_S)
    if not outcome:
        raise DeadLetterError(f"{letter.topic}: no broker acknowledgement in {ACK_TIMEOUT_S}s")
    if outcome[0] is not None:
        raise DeadLetterError(f"{letter.topic}: the broker refused the record: {outcome[0]}")


def _partitions(bootstrap: str, topic: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-{uuid.uuid4()}"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
    finally:
        consumer.close()
    if meta is None or meta.error is not None or not meta.partitions:
        raise DeadLetterError(f"topic {topic} does not exist")
    return sorted(meta.partitions)
