"""`saga inspect`: one checkout's history from checkout.events, as a timeline and step summary.

Reads only the checkout's own partition (of checkout.events and checkout.snapshots)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from typing import Any

from confluent_kafka import Consumer, Message

from events import messages as m
from events.envelope import Envelope
from events.serde import DecodeError, Serde
from events.topics import CHECKOUT_EVENTS, CHECKOUT_SNAPSHOTS, CHECKOUT_SNAPSHOTS_FINAL
from infra.log_reader import read_batches, read_to_end
from infra.partitioner import partition_for
from infra.snapshots import (
    POINTER,
    Snapshot,
    decode_snapshot,
    fingerprint_matches,
    pointer_offset,
)
from saga.evolve import REPLY_STEP, FailureReply  # reply type -> the step it answers
from saga.state import SagaState
from saga.upcast import replay_all


@dataclass(frozen=True, slots=True)
class TimelineRow:
    at_ms: int  # since the first event
    event: str
    step: str
    attempt: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class StepSummary:
    step: str
    outcome: str
    attempts: int
    duration_ms: int | None


@dataclass(frozen=True, slots=True)
class Inspection:
    partition: int
    history: list[Envelope[Any]]  # every event of the checkout, deduplicated, in log order
    snapshot: SagaState | None  # its latest snapshot of today's shape, if any
    snapshot_last_event: str | None
    read: tuple[str, ...]  # the topic partitions read, e.g. "checkout.events[3]"


def inspect_checkout(
    bootstrap: str,
    serde: Serde,
    checkout_id: str,
    isolation_level: str = "read_committed",
) -> Inspection:
    """One checkout, from the one partition its key maps to (murmur2, as every producer
    partitions it): its snapshot there (for a terminal saga, the one final record it points
    to), and its events there. No other partition is read."""
    key = checkout_id.encode()
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"inspect-{uuid.uuid4()}"})
    try:
        partitions = probe.list_topics(CHECKOUT_EVENTS, timeout=10).topics[CHECKOUT_EVENTS]
        count = len(partitions.partitions)
        snapshot_topic = probe.list_topics(CHECKOUT_SNAPSHOTS, timeout=10).topics.get(
            CHECKOUT_SNAPSHOTS
        )
        has_snapshots = snapshot_topic is not None and snapshot_topic.error is None
    finally:
        probe.close()
    partition = partition_for(key, count)
    read = [f"{CHECKOUT_EVENTS}[{partition}]"]
    found: dict[str, Envelope[Any]] = {}

    def keep(record: Message) -> None:
        if record.key() != key:
            return
        try:
            envelope = serde.decode(record.value() or b"", CHECKOUT_EVENTS)
        except DecodeError:
            return
        found.setdefault(envelope.message_id, envelope)

    latest: list[bytes] = []

    def keep_snapshot(record: Message) -> None:
        value = record.value()
        if record.key() == key and value:
            latest[:] = [value]

    # Snapshots are trusted only where aborted records stay hidden (ADR 0009, 0014).
    if has_snapshots and isolation_level == "read_committed":
        read.append(f"{CHECKOUT_SNAPSHOTS}[{partition}]")
        read_to_end(
            bootstrap,
            CHECKOUT_SNAPSHOTS,
            [partition],
            keep_snapshot,
            isolation_level=isolation_level,
        )
    read_to_end(bootstrap, CHECKOUT_EVENTS, [partition], keep, isolation_level=isolation_level)
    snapshot: Snapshot | None = None
    if latest and latest[0][0] == POINTER and fingerprint_matches(latest[0]):
        # Terminal: its final snapshot is one record of the same partition of the final topic.
        read.append(f"{CHECKOUT_SNAPSHOTS_FINAL}[{partition}]")
        start = {partition: pointer_offset(latest[0])}
        for records in read_batches(
            bootstrap,
            CHECKOUT_SNAPSHOTS_FINAL,
            [partition],
            start=start,
            isolation_level=isolation_level,
        ):
            mine = [r for r in records if r.key() == key]
            latest[:] = [mine[0].value() or b""] if mine else []
            break
    if latest:
        try:
            snapshot = decode_snapshot(latest[0])
        except ValueError:
            snapshot = None  # written by code of another shape: the events alone say it
    return Inspection(
        partition,
        list(found.values()),
        snapshot.state if snapshot else None,
        snapshot.last_event_id if snapshot else None,
        tuple(read),
    )


def read_history(
    bootstrap: str,
    serde: Serde,
    checkout_id: str,
    isolation_level: str = "read_committed",
) -> list[Envelope[Any]]:
    """Every event of `checkout_id`, deduplicated by message id, in log order."""
    return inspect_checkout(bootstrap, serde, checkout_id, isolation_level).history


def timeline(history: list[Envelope[Any]]) -> list[TimelineRow]:
    if not history:
        return []
    first = history[0].occurred_at
    return [
        TimelineRow(
            at_ms=e.occurred_at - first,
            event=e.type,
            step=str(_step_of(e.message) or ""),
            attempt=getattr(e.message, "attempt", None),
            detail=_detail(e.message),
        )
        for e in history
    ]


def step_summaries(history: list[Envelope[Any]]) -> list[StepSummary]:
    started: dict[m.Step, int] = {}
    finished: dict[m.Step, tuple[str, int]] = {}
    attempts: dict[m.Step, int] = {}
    for e in history:
        msg = e.message
        if isinstance(msg, m.StepStarted):
            started.setdefault(msg.step, e.occurred_at)
            attempts[msg.step] = max(attempts.get(msg.step, 0), msg.attempt)
        elif isinstance(msg, m.StepSucceeded | m.StepAttemptFailed):
            # The verdict decide recorded overrides what the reply alone suggests.
            outcome = "succeeded" if isinstance(msg, m.StepSucceeded) else "failed"
            finished[msg.step] = (outcome, e.occurred_at)
        elif (step := REPLY_STEP.get(type(msg))) is not None:
            outcome = (
                "failed"
                if isinstance(msg, FailureReply)
                else "action required"
                if isinstance(msg, m.PaymentActionRequired)
                else "succeeded"
            )
            finished[step] = (outcome, e.occurred_at)
    return [
        StepSummary(
            step=str(step),
            outcome=finished.get(step, ("in flight", 0))[0],
            attempts=attempts[step],
            duration_ms=(finished[step][1] - at) if step in finished else None,
        )
        for step, at in started.items()
    ]


def status_of(history: list[Envelope[Any]]) -> str:
    state = replay_all((e.message, e.schema_version) for e in history)
    return "UNKNOWN" if state is None else str(state.status)


def _step_of(msg: Any) -> m.Step | None:
    step = getattr(msg, "step", None)
    if isinstance(step, m.Step):
        return step
    return REPLY_STEP.get(type(msg))


_SKIP = {"checkout_id", "attempt", "step", "items", "shipping_address", "idempotency_key"}


def _detail(msg: Any) -> str:
    # A field kept out of repr (a client secret) is kept off the operator's terminal too.
    parts = [
        f"{f.name}={getattr(msg, f.name)}" for f in fields(msg) if f.name not in _SKIP and f.repr
    ]
    return ", ".join(parts)[:100]
