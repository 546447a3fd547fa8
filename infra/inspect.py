"""`saga inspect`: one checkout's history from checkout.events, as a timeline and step summary."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from typing import Any

from confluent_kafka import Consumer, Message

from events import messages as m
from events.envelope import Envelope
from events.serde import DecodeError, Serde
from events.topics import CHECKOUT_EVENTS
from infra.log_reader import read_to_end
from saga.evolve import REPLY_STEP, FailureReply  # reply type -> the step it answers
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


def read_history(
    bootstrap: str,
    serde: Serde,
    checkout_id: str,
    timeout_s: float = 60,
    isolation_level: str = "read_committed",
) -> list[Envelope[Any]]:
    """Every event of `checkout_id`, deduplicated by message id, in log order."""
    found: dict[str, Envelope[Any]] = {}
    key = checkout_id.encode()

    def keep(record: Message) -> None:
        if record.key() != key:
            return
        try:
            envelope = serde.decode(record.value() or b"", CHECKOUT_EVENTS)
        except DecodeError:
            return
        found.setdefault(envelope.message_id, envelope)

    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"inspect-{uuid.uuid4()}"})
    try:
        partitions = sorted(
            probe.list_topics(CHECKOUT_EVENTS, timeout=10).topics[CHECKOUT_EVENTS].partitions
        )
    finally:
        probe.close()
    read_to_end(
        bootstrap,
        CHECKOUT_EVENTS,
        partitions,
        keep,
        timeout_s=timeout_s,
        isolation_level=isolation_level,
    )
    return list(found.values())


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
    parts = [f"{f.name}={getattr(msg, f.name)}" for f in fields(msg) if f.name not in _SKIP]
    return ", ".join(parts)[:100]
