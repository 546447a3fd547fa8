"""The orchestrator: the saga's `decide` on Kafka.

Consumes checkout.commands (storefront commands, webhook signals, per-partition ticks) and
checkout.replies; writes saga events, adapter commands and public order events in the same
transaction as the input offsets. State per checkout is the fold of checkout.events, rebuilt for
a partition when it is assigned; the events are the truth, memory is a cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import TopicPartition

from events import messages as m
from events.envelope import Envelope
from events.serde import DecodeError, Serde
from events.topics import CHECKOUT_COMMANDS, CHECKOUT_EVENTS, ORDERS_EVENTS, topic_for
from events.validation import refusal
from infra.log_reader import read_to_end
from infra.processor import BaseHandler, Incoming, Output, PermanentFailure, where
from saga.checkout import UnknownCheckout, decide, next_wakeup
from saga.policy import DEFAULT_POLICY, Policy
from saga.state import SagaState
from saga.upcast import replay

log = logging.getLogger(__name__)
PRODUCER = "orchestrator"


def tick(partition: int, now: int) -> Envelope[m.Tick]:
    return Envelope.new(m.Tick(partition, now), occurred_at=now, producer=PRODUCER)


class OrchestratorHandler(BaseHandler):
    def __init__(
        self,
        bootstrap: str,
        serde: Serde,
        policy: Policy = DEFAULT_POLICY,
        events_topic: str = CHECKOUT_EVENTS,
        isolation_level: str = "read_committed",
    ) -> None:
        self._events_topic = events_topic
        self._isolation_level = isolation_level
        self._bootstrap = bootstrap
        self._serde = serde
        self._policy = policy
        self._states: dict[str, SagaState] = {}
        self._staged: dict[str, SagaState] = {}
        # checkout -> partition, and the sagas each partition must wake up (deadlines, retries)
        self._partition_of: dict[str, int] = {}
        self._wakeups: dict[int, dict[str, int]] = {}

    # --- the processor contract ----------------------------------------------------------

    def handle(self, message: Incoming) -> Sequence[Output]:
        msg = message.envelope.message
        if isinstance(msg, m.Tick):
            return self._on_tick(message, msg)
        refused = refusal(msg, message.size)
        if refused is not None:
            # Anyone with produce rights can skip the API: the same limits hold here (issue 12).
            raise PermanentFailure(f"{refused} (message {message.envelope.message_id})")
        checkout_id = message.envelope.checkout_id
        self._partition_of.setdefault(checkout_id, message.partition)
        return self._decide(message, checkout_id, msg, now=message.envelope.occurred_at)

    def on_commit(self) -> None:
        for checkout_id, state in self._staged.items():
            self._states[checkout_id] = state
            self._track_wakeup(checkout_id, state)
        self._staged.clear()

    def on_abort(self) -> None:
        self._staged.clear()

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        owned = sorted({p.partition for p in partitions if p.topic == CHECKOUT_COMMANDS})
        if owned:
            self._rebuild(owned)

    def on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        lost = {p.partition for p in partitions if p.topic == CHECKOUT_COMMANDS}
        for checkout_id in [c for c, p in self._partition_of.items() if p in lost]:
            self._states.pop(checkout_id, None)
            del self._partition_of[checkout_id]
        for p in lost:
            self._wakeups.pop(p, None)

    # --- deciding ------------------------------------------------------------------------

    def state_of(self, checkout_id: str) -> SagaState | None:
        return self._staged.get(checkout_id, self._states.get(checkout_id))

    def _decide(self, message: Incoming, checkout_id: str, msg: Any, now: int) -> list[Output]:
        try:
            decision = decide(self.state_of(checkout_id), msg, now, self._policy)
        except UnknownCheckout as e:
            # Redelivery cannot create the history it lacks: dead-letter at once for an operator.
            raise PermanentFailure(f"{e} (message {message.envelope.message_id})") from e
        if decision.state is not None:
            self._staged[checkout_id] = decision.state
        # Every decision event goes to checkout.events — accepted replies too, whatever their
        # type — because that log alone is the saga's truth.
        produced: list[tuple[str, Any]] = [
            *((self._events_topic, e) for e in decision.events),
            *((topic_for(c), c) for c in decision.commands),
            *((ORDERS_EVENTS, p) for p in decision.public),
        ]
        # Scoped by checkout: one tick wakes many sagas, and each output needs its own id.
        return [
            Output(
                topic,
                message.envelope.caused(
                    out, i, producer=PRODUCER, occurred_at=now, scope=checkout_id
                ),
            )
            for i, (topic, out) in enumerate(produced)
        ]

    def _on_tick(self, message: Incoming, t: m.Tick) -> list[Output]:
        due = [c for c, at in self._wakeups.get(t.partition, {}).items() if at <= t.now]
        outputs: list[Output] = []
        for checkout_id in sorted(due):
            outputs.extend(self._decide(message, checkout_id, t, now=t.now))
        return outputs

    def _track_wakeup(self, checkout_id: str, state: SagaState) -> None:
        partition = self._partition_of.get(checkout_id)
        if partition is None:
            return
        wake = next_wakeup(state)
        slot = self._wakeups.setdefault(partition, {})
        if wake is None:
            slot.pop(checkout_id, None)
        else:
            slot[checkout_id] = wake

    # --- rebuilding state from checkout.events -------------------------------------------

    def _rebuild(self, partitions: list[int]) -> None:
        started = time.monotonic()
        applied: dict[str, set[str]] = {}
        count = read_to_end(
            self._bootstrap,
            self._events_topic,
            partitions,
            lambda record: self._replay(record.value() or b"", where(record)[1], applied),
            isolation_level=self._isolation_level,
        )
        for checkout_id, state in self._states.items():
            if self._partition_of.get(checkout_id) in partitions:
                self._track_wakeup(checkout_id, state)
        log.info(
            "rebuilt %d sagas from %d events on partitions %s in %.2fs",
            len(applied),
            count,
            partitions,
            time.monotonic() - started,
        )

    def _replay(self, value: bytes, partition: int, applied: dict[str, set[str]]) -> None:
        try:
            envelope = self._serde.decode(value, self._events_topic)
        except DecodeError:
            log.exception(
                "undecodable event in %s[%d]; skipped in rebuild", self._events_topic, partition
            )
            return
        checkout_id = envelope.checkout_id
        seen = applied.setdefault(checkout_id, set())
        if envelope.message_id in seen:  # an aborted copy the broker showed us (decision 0006)
            return
        seen.add(envelope.message_id)
        self._states[checkout_id] = replay(
            self._states.get(checkout_id), envelope.message, envelope.schema_version
        )
        self._partition_of[checkout_id] = partition
