"""What an operator asks about the running engine, read once here for `saga status` (the CLI)
and the console (api/routes/ops.py through infra/ops_console.py).

- Lag: each processor's consumer group, committed offset against the partition's high
  watermark. The processors commit inside their Kafka transactions
  (`send_offsets_to_transaction`), so the group's committed offsets are the progress they made.
  The projector tracks its offsets in PostgreSQL instead (in the same transaction as its rows):
  its progress comes from `projection_offsets`. A caught-up partition a transactional producer
  wrote to (ticks on checkout.commands, everything the processors produce) can show a lag of 1:
  the commit marker takes an offset that no consumer is ever handed, and only reading the
  partition could tell it from a record.
- Dead letters: records per `<topic>.dlq` (counted by reading them: transaction markers take
  offsets too, so watermarks would over-count) and how many of them were re-driven (audit_log).
- Breakers: as the workers publish them to Redis (infra/breaker_states.py).

A service that cannot be reached raises `OpsError` with one line naming it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition

from events.topics import (
    ADAPTERS,
    ADAPTERS_GROUP,
    CHECKOUT_COMMANDS,
    CHECKOUT_EVENTS,
    CHECKOUT_REPLIES,
    ORDERS_EVENTS,
    SAGA_ADAPTERS,
    adapter_group,
    adapter_requests,
)
from infra.breaker_states import BreakerState

TIMEOUT_S = 10.0

# Each processor's consumer group and the topics it consumes (as infra/bootstrap.py wires them).
PROCESSORS: Mapping[str, tuple[str, ...]] = {
    "orchestrator": (CHECKOUT_COMMANDS, CHECKOUT_REPLIES),
    **{adapter_group(name): (adapter_requests(name),) for name in ADAPTERS},
    ADAPTERS_GROUP: tuple(adapter_requests(name) for name in SAGA_ADAPTERS),
    "notifier": (ORDERS_EVENTS, CHECKOUT_EVENTS),
    "fulfilment": (ORDERS_EVENTS, CHECKOUT_EVENTS),
}
# Groups that serve the same partitions as alternatives (infra/handover.py): a partition's
# progress is the furthest of them, and a group that never committed while an alternative did
# is not deployed. The combined group is shown only once it has committed.
ALTERNATIVES: Mapping[str, tuple[str, ...]] = {
    ADAPTERS_GROUP: tuple(adapter_group(name) for name in SAGA_ADAPTERS),
    **{adapter_group(name): (ADAPTERS_GROUP,) for name in SAGA_ADAPTERS},
}
OPT_IN = frozenset({ADAPTERS_GROUP})


class OpsError(Exception):
    """A service the view needs is unreachable or missing, said in one line."""


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here
    high: int

    @property
    def lag(self) -> int:
        # A group that never committed will start from the earliest record: all of it is lag.
        return max(0, self.high - (self.committed or 0))


@dataclass(frozen=True, slots=True)
class TopicLag:
    group: str
    topic: str
    lag: int
    partitions: tuple[PartitionLag, ...]


@dataclass(frozen=True, slots=True)
class DlqCount:
    topic: str
    records: int
    redriven: int  # distinct dead letters re-driven at least once

    @property
    def waiting(self) -> int:
        return self.records - self.redriven


@dataclass(frozen=True, slots=True)
class OpsStatus:
    lag: list[TopicLag]
    dlq: list[DlqCount]
    breakers: list[BreakerState]
    projections: list[PartitionLag] = field(default_factory=list)


def processor_lag(
    bootstrap: str,
    processors: Mapping[str, Sequence[str]] = PROCESSORS,
    alternatives: Mapping[str, Sequence[str]] = ALTERNATIVES,
    opt_in: frozenset[str] = OPT_IN,
) -> list[TopicLag]:
    """Per group and topic: the summed lag, with the partitions behind it."""
    probe = _consumer(bootstrap, f"ops-{uuid.uuid4()}")
    try:
        existing = _topics(probe, bootstrap)
        by_group: dict[str, dict[tuple[str, int], int | None]] = {}
        for group, topics in processors.items():
            partitions = [
                TopicPartition(t, p) for t in topics if t in existing for p in existing[t]
            ]
            if partitions:
                by_group[group] = _committed(bootstrap, group, partitions)
        out: list[TopicLag] = []
        for group, committed in by_group.items():
            others = [by_group[g] for g in alternatives.get(group, ()) if g in by_group]
            if not any(v is not None for v in committed.values()) and (
                group in opt_in or any(v is not None for o in others for v in o.values())
            ):
                continue  # not deployed: the alternative serves these partitions
            rows = [
                PartitionLag(
                    group,
                    topic,
                    partition,
                    _furthest([offset, *(o.get((topic, partition)) for o in others)]),
                    _high(probe, bootstrap, topic, partition),
                )
                for (topic, partition), offset in committed.items()
            ]
            topics = processors[group]
            for topic in topics:
                mine = tuple(r for r in rows if r.topic == topic)
                if mine:
                    out.append(TopicLag(group, topic, sum(r.lag for r in mine), mine))
        return out
    finally:
        probe.close()


def _committed(
    bootstrap: str, group: str, partitions: list[TopicPartition]
) -> dict[tuple[str, int], int | None]:
    # A consumer that never subscribes does not join the group: reading its committed offsets
    # disturbs no member.
    reader = _consumer(bootstrap, group)
    try:
        committed = reader.committed(partitions, timeout=TIMEOUT_S)
    except KafkaException as e:
        raise OpsError(f"broker at {bootstrap}: committed offsets of {group}: {e}") from e
    finally:
        reader.close()
    return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in committed}


def _furthest(offsets: list[int | None]) -> int | None:
    known = [o for o in offsets if o is not None]
    return max(known) if known else None


def projection_progress(bootstrap: str, database_url: str) -> list[PartitionLag]:
    """The projector's applied offsets (PostgreSQL) against the high watermarks."""
    import psycopg

    from projections.queries import projection_lag

    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            progress = projection_lag(conn)
    except psycopg.errors.UndefinedTable:
        return []
    except psycopg.OperationalError as e:
        raise OpsError(f"PostgreSQL unreachable: {_first_line(e)}") from e
    probe = _consumer(bootstrap, f"ops-{uuid.uuid4()}")
    try:
        return [
            PartitionLag(
                f"projection:{p.projection}",
                p.topic,
                p.partition,
                p.next_offset,
                _high(probe, bootstrap, p.topic, p.partition),
            )
            for p in progress
        ]
    finally:
        probe.close()


def dlq_counts(bootstrap: str, database_url: str, isolation_level: str) -> list[DlqCount]:
    from infra.dlq import DeadLetterError, dlq_topics, read_dead_letters

    try:
        topics = dlq_topics(bootstrap)
        letters = read_dead_letters(bootstrap, topics, isolation_level=isolation_level)
    except (KafkaException, DeadLetterError) as e:
        raise OpsError(f"broker at {bootstrap}: {e}") from e
    done = _redriven_ids(database_url)
    counts: list[DlqCount] = []
    for topic in topics:
        ids = {d.id for d in letters if d.dlq_topic == topic}
        counts.append(DlqCount(topic, len(ids), len(ids & done)))
    return counts


def breaker_states(redis_url: str | None) -> list[BreakerState]:
    if not redis_url:
        return []
    import redis

    from infra.breaker_states import read_breakers

    client = redis.Redis.from_url(redis_url, socket_timeout=3, socket_connect_timeout=3)
    try:
        return read_breakers(client)
    except redis.RedisError as e:
        raise OpsError(f"Redis unreachable: {_first_line(e)}") from e
    finally:
        client.close()


def ops_status(
    bootstrap: str, database_url: str, redis_url: str | None, isolation_level: str
) -> OpsStatus:
    return OpsStatus(
        lag=processor_lag(bootstrap),
        dlq=dlq_counts(bootstrap, database_url, isolation_level),
        breakers=breaker_states(redis_url),
        projections=projection_progress(bootstrap, database_url),
    )


def _redriven_ids(database_url: str) -> set[str]:
    import psycopg

    from infra.dlq import redrives

    try:
        return set(redrives(database_url))
    except psycopg.errors.UndefinedTable:
        return set()
    except psycopg.OperationalError as e:
        raise OpsError(f"PostgreSQL unreachable: {_first_line(e)}") from e


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            # Fail fast on a wrong address instead of retrying for minutes.
            "socket.connection.setup.timeout.ms": 5000,
        }
    )


def _topics(consumer: Consumer, bootstrap: str) -> dict[str, list[int]]:
    try:
        meta = consumer.list_topics(timeout=TIMEOUT_S)
    except KafkaException as e:
        raise OpsError(f"broker at {bootstrap} unreachable: {e.args[0]}") from e
    return {name: sorted(t.partitions) for name, t in meta.topics.items() if t.error is None}


def _high(consumer: Consumer, bootstrap: str, topic: str, partition: int) -> int:
    try:
        _low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=TIMEOUT_S
        )
    except KafkaException as e:
        raise OpsError(f"broker at {bootstrap}: end of {topic}[{partition}]: {e}") from e
    return int(high)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


RETRY_AUDIT_ACTION = "checkout.retry"


class Refused(OpsError):
    """The act was refused (unknown checkout, not parked, invalid reason): nothing was sent."""


def parked_status(database_url: str, checkout_id: str) -> dict[str, object] | None:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT status, attention_step, attention_reason, last_event_id"
            " FROM projections.checkouts WHERE checkout_id = %s",
            (checkout_id,),
        ).fetchone()
    return dict(row) if row else None


def send_retry(
    bootstrap: str,
    registry: str | None,
    database_url: str,
    checkout_id: str,
    *,
    actor: str,
    reason: str,
) -> str:
    """Send `RetryCheckout` for a parked saga and audit it (action `checkout.retry`); returns the
    command's message id. The command is produced and acknowledged before the audit row is
    written: a row without the command would claim a retry that never happened. Raises Refused
    when the checkout is unknown, not parked or the command invalid; OpsError when the broker
    does not take it."""
    import json
    import time

    import psycopg
    from confluent_kafka import Producer

    from events import messages as m
    from events.envelope import Envelope
    from events.serde import make_serde
    from events.validation import refusal
    from infra.processor import producer_config
    from saga.state import Status

    before = parked_status(database_url, checkout_id)
    if before is None:
        raise Refused(f"unknown checkout {checkout_id} (or not projected yet)")
    if before["status"] != Status.NEEDS_ATTENTION.value:
        raise Refused(f"checkout {checkout_id} is {before['status']}, not parked: nothing to retry")
    command = m.RetryCheckout(checkout_id, actor, reason)
    problem = refusal(command)
    if problem is not None:
        raise Refused(f"refused: {problem}")
    envelope = Envelope.new(command, occurred_at=int(time.time() * 1000), producer="saga-ops")
    value = make_serde(registry).encode(envelope, CHECKOUT_COMMANDS)
    outcome: list[object] = []
    producer = Producer(producer_config(bootstrap, acks="all"))
    producer.produce(
        CHECKOUT_COMMANDS,
        value=value,
        key=envelope.key.encode(),
        headers=[("message_type", envelope.type.encode())],
        on_delivery=lambda err, _msg: outcome.append(err),
    )
    producer.flush(15)
    if not outcome or outcome[0] is not None:
        raise OpsError(f"the broker did not take the command: {outcome or 'no answer'}")
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO audit_log (actor, action, object, after) VALUES (%s, %s, %s, %s::jsonb)",
            (
                actor,
                RETRY_AUDIT_ACTION,
                checkout_id,
                json.dumps({"reason": reason, "message_id": envelope.message_id}),
            ),
        )
    return envelope.message_id
