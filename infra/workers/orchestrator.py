"""The orchestrator: the saga's `decide` on Kafka.

Consumes checkout.commands (storefront commands, webhook signals, per-partition ticks) and
checkout.replies; writes saga events, adapter commands and public order events in the same
transaction as the input offsets. State per checkout is the fold of checkout.events; memory and
checkout.snapshots are caches (docs/decisions/0014):

- a saga's snapshot is written when it becomes terminal, and otherwise with the partition's
  coverage marker every few seconds (the marker's transaction carries the snapshot of every saga
  changed since its last one), so under read_committed a snapshot never runs ahead of its events
  and the events after the marker are all a rebuild folds onto them;
- on assignment a partition is rebuilt from its snapshots when they cover it (a coverage marker
  with today's fingerprint, no snapshot of another shape), else refolded from checkout.events,
  after which snapshots of all its sagas are written;
- terminal sagas are evicted from memory once their snapshot is committed; a late input
  reloads one by reading the one record the index points to;
- the rebuild runs in slices between polls with the partitions paused, so however long it
  takes the consumer keeps its group membership;
- under read_uncommitted (Tansu, ADR 0009) an aborted snapshot could be read: no snapshots are
  written or trusted there, and every partition is refolded as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from events import messages as m
from events.envelope import Envelope
from events.serde import DecodeError, Serde
from events.topics import (
    CHECKOUT_COMMANDS,
    CHECKOUT_EVENTS,
    CHECKOUT_REPLIES,
    CHECKOUT_SNAPSHOTS,
    CHECKOUT_SNAPSHOTS_FINAL,
    ORDERS_EVENTS,
    topic_for,
)
from events.validation import refusal
from infra.log_reader import read_batches
from infra.metrics import Metrics
from infra.processor import BaseHandler, Incoming, Output, PermanentFailure, RawOutput, where
from infra.snapshots import (
    COVERAGE,
    COVERAGE_KEY,
    LIVE,
    POINTER,
    TERMINAL,
    EvictedIndex,
    coverage_end,
    coverage_matches,
    current_fingerprint,
    decode_snapshot,
    encode_coverage,
    encode_pointer,
    encode_snapshot,
)
from infra.workers.outcomes import Outcome, outcome_of, report
from saga.checkout import UnknownCheckout, decide, next_wakeup
from saga.policy import DEFAULT_POLICY, Policy
from saga.state import SagaState, is_terminal
from saga.upcast import replay

log = logging.getLogger(__name__)
PRODUCER = "orchestrator"
PENDING_PER_TRANSACTION = 2000  # snapshots owed after a full refold, written in slices
PROGRESS_EVERY_S = 5.0
MARKER_EVERY_S = 5.0  # also how often a live saga's snapshot is brought up to date


def tick(partition: int, now: int) -> Envelope[m.Tick]:
    return Envelope.new(m.Tick(partition, now), occurred_at=now, producer=PRODUCER)


def evictable(state: SagaState) -> bool:
    """Terminal, nothing due and nothing to compensate: only a new input can change it."""
    return is_terminal(state) and state.compensation is None and next_wakeup(state) is None


class OrchestratorHandler(BaseHandler):
    def __init__(
        self,
        bootstrap: str,
        serde: Serde,
        policy: Policy = DEFAULT_POLICY,
        events_topic: str = CHECKOUT_EVENTS,
        isolation_level: str = "read_committed",
        snapshots_topic: str = CHECKOUT_SNAPSHOTS,
        snapshots: bool | None = None,
        final_topic: str = CHECKOUT_SNAPSHOTS_FINAL,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics if metrics is not None else Metrics()
        # Sagas the open transaction ends: reported once it commits, so a retried batch
        # neither logs nor counts an outcome twice.
        self._outcomes: list[Outcome] = []
        self._events_topic = events_topic
        self._snapshots_topic = snapshots_topic
        self._final_topic = final_topic
        self._isolation_level = isolation_level
        # Trusted only where aborted records stay hidden (see the module docstring).
        self.snapshots = isolation_level == "read_committed" if snapshots is None else snapshots
        self._bootstrap = bootstrap
        self._serde = serde
        self._policy = policy
        self._states: dict[str, SagaState] = {}
        self._staged: dict[str, SagaState] = {}
        # the id of the last event folded into each saga, for its snapshot
        self._last_event: dict[str, str] = {}
        self._staged_last: dict[str, str] = {}
        # checkout -> partition, and the sagas each partition must wake up (deadlines, retries)
        self._partition_of: dict[str, int] = {}
        self._wakeups: dict[int, dict[str, int]] = {}
        self._evicted: dict[int, EvictedIndex] = {}
        # offsets of the final snapshots of the open transaction, from the delivery reports
        self._delivered: dict[bytes, int] = {}
        # pointers owed: checkout -> (partition, final offset), written in the next transaction
        self._pointers: dict[str, tuple[int, int]] = {}
        self._rearchive: set[str] = set()  # terminal sagas rebuilt from a T record
        # Sagas whose committed state is newer than their snapshot: written with the next marker.
        self._stale: set[str] = set()
        self._written: set[str] = set()  # sagas whose snapshot the open transaction carries
        self._pending: dict[int, list[str]] = {}  # partition -> sagas whose snapshot is owed
        self._pending_sent: dict[int, int] = {}
        self._coverage_owed: dict[int, int] = {}  # partition -> events end of its refold
        self._rebuilding: Iterator[None] | None = None
        self._held: list[int] = []
        self._ready: list[int] = []
        self._loader: Consumer | None = None
        self._owned: set[int] = set()  # rebuilt partitions whose marker is kept fresh
        self._marker_at = 0.0
        self.reloads = 0  # evicted sagas read back, for tests and metrics
        self.refolded: list[int] = []  # partitions the last rebuild refolded from the events

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

    def batch_outputs(self) -> list[RawOutput]:
        if not self.snapshots:
            return []
        self._delivered = {}
        self._written = set()
        # Decided first: a transaction that moves a marker must carry every stale snapshot.
        markers = self._refreshed_markers()
        # Pointers first: a saga this batch reopened gets its newer snapshot after them.
        outputs = [
            RawOutput(self._snapshots_topic, c.encode(), encode_pointer(offset), partition)
            for c, (partition, offset) in self._pointers.items()
        ]
        for c, state in self._staged.items():
            # A terminal saga's snapshot is written at once: its final record's offset is what
            # lets it leave memory. A live one waits for the marker (one record per saga per
            # marker instead of one per transaction that touched it: issue 16).
            if c in self._staged_last and (markers or evictable(state)):
                outputs.extend(self._snapshot_outputs(c, state, self._staged_last[c]))
        if markers:
            for c in sorted(self._stale - set(self._staged)):
                committed = self._states.get(c)
                if committed is not None and c in self._last_event:
                    outputs.extend(self._snapshot_outputs(c, committed, self._last_event[c]))
        for c in self._rearchive:
            rebuilt = self._states.get(c)
            if rebuilt is not None and c not in self._staged:
                outputs.extend(self._snapshot_outputs(c, rebuilt, self._last_event[c]))
        for partition, owed in self._pending.items():
            sent = self._pending_sent.get(partition, 0)
            for checkout_id in owed[sent : sent + PENDING_PER_TRANSACTION]:
                folded = self._states.get(checkout_id)
                if folded is not None and checkout_id not in self._staged:
                    last = self._last_event[checkout_id]
                    outputs.extend(self._snapshot_outputs(checkout_id, folded, last))
            self._pending_sent[partition] = sent + PENDING_PER_TRANSACTION
            if sent + PENDING_PER_TRANSACTION >= len(owed):
                # The last slice: with it, every saga of the partition has a snapshot.
                self._owned.add(partition)
                outputs.append(
                    RawOutput(
                        self._snapshots_topic,
                        COVERAGE_KEY,
                        encode_coverage(self._events_topic, self._coverage_owed[partition]),
                        partition,
                    )
                )
        outputs.extend(markers)
        return outputs

    def _refreshed_markers(self) -> list[RawOutput]:
        """Every few seconds, move each partition's marker to the events' current end, so the
        tail a rebuild reads (events after the marker) stays a few seconds long. Sound because
        the same transaction writes the snapshot of every saga changed since its last one
        (`batch_outputs`), and snapshots owed after a rebuild go out in it too."""
        now = time.monotonic()
        ready = sorted(self._owned - set(self._pending))
        if not ready or now - self._marker_at < MARKER_EVERY_S:
            return []
        self._marker_at = now
        markers = []
        for partition in ready:
            try:
                _, end = self._client().get_watermark_offsets(
                    TopicPartition(self._events_topic, partition), timeout=5, cached=False
                )
            except KafkaException:
                continue  # next time
            markers.append(
                RawOutput(
                    self._snapshots_topic,
                    COVERAGE_KEY,
                    encode_coverage(self._events_topic, end),
                    partition,
                )
            )
        return markers

    def on_commit(self) -> None:
        for ended in self._outcomes:
            report(ended, self._metrics)
        self._outcomes.clear()
        for checkout_id, state in self._staged.items():
            self._states[checkout_id] = state
            if checkout_id in self._staged_last:
                self._last_event[checkout_id] = self._staged_last[checkout_id]
            self._track_wakeup(checkout_id, state)
            if self.snapshots and checkout_id not in self._written:
                self._stale.add(checkout_id)
        self._stale -= self._written
        self._written = set()
        touched = [*self._staged, *self._rearchive]
        self._staged.clear()
        self._staged_last.clear()
        self._rearchive.clear()
        self._pointers.clear()  # written by this transaction
        for partition in list(self._pending):
            owed = self._pending[partition]
            sent = self._pending_sent.get(partition, 0)
            touched.extend(owed[max(0, sent - PENDING_PER_TRANSACTION) : sent])
            if sent >= len(owed):
                del self._pending[partition], self._pending_sent[partition]
                del self._coverage_owed[partition]
                log.info("partition %d: snapshots of all its sagas written", partition)
        for checkout_id in touched:
            self._evict_if_done(checkout_id)
        self._delivered = {}

    def on_abort(self) -> None:
        self._outcomes.clear()
        self._staged.clear()
        self._staged_last.clear()
        self._delivered = {}
        self._written = set()
        for partition, sent in self._pending_sent.items():
            self._pending_sent[partition] = max(0, sent - PENDING_PER_TRANSACTION)

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        owned = sorted({p.partition for p in partitions if p.topic == CHECKOUT_COMMANDS})
        if owned:
            self._held = owned
            self._rebuilding = self._rebuild(owned)

    def held(self) -> list[TopicPartition]:
        return [
            TopicPartition(topic, p)
            for p in self._held
            for topic in (CHECKOUT_COMMANDS, CHECKOUT_REPLIES)
        ]

    def background(self, budget_s: float) -> list[TopicPartition]:
        """Rebuild for up to `budget_s`; the partitions whose state is now complete."""
        if self._rebuilding is not None:
            deadline = time.monotonic() + budget_s
            try:
                while time.monotonic() < deadline:
                    next(self._rebuilding)
            except StopIteration:
                self._rebuilding = None
                self._ready, self._held = self._held, []
                self._owned.update(p for p in self._ready if p not in self._pending)
        ready = [
            TopicPartition(topic, p)
            for p in self._ready
            for topic in (CHECKOUT_COMMANDS, CHECKOUT_REPLIES)
        ]
        self._ready = []
        return ready

    def rebuild_now(self, partitions: Sequence[int]) -> None:
        """The whole rebuild at once (tests, the benchmark)."""
        for _ in self._rebuild(sorted(partitions)):
            pass

    def on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        lost = {p.partition for p in partitions if p.topic == CHECKOUT_COMMANDS}
        for checkout_id in [c for c, p in self._partition_of.items() if p in lost]:
            # Its next owner folds the events after the marker; a snapshot written from here
            # could land after that owner's newer one.
            self._stale.discard(checkout_id)
            self._states.pop(checkout_id, None)
            self._last_event.pop(checkout_id, None)
            del self._partition_of[checkout_id]
        # A pointer for a partition another instance now owns could land after that owner's
        # newer snapshot of the saga: never write one.
        self._pointers = {c: v for c, v in self._pointers.items() if v[0] not in lost}
        self._rearchive.clear()
        self._owned -= lost
        for p in lost:
            self._wakeups.pop(p, None)
            self._evicted.pop(p, None)
            self._pending.pop(p, None)
            self._pending_sent.pop(p, None)
            self._coverage_owed.pop(p, None)
        if lost & set(self._held):
            self._rebuilding, self._held = None, []

    def close(self) -> None:
        if self._loader is not None:
            self._loader.close()
            self._loader = None

    # --- deciding ------------------------------------------------------------------------

    def state_of(self, checkout_id: str) -> SagaState | None:
        return self._staged.get(checkout_id, self._states.get(checkout_id))

    def in_memory(self) -> int:
        return len(self._states)

    def lookup(self, checkout_id: str, partition: int) -> SagaState | None:
        """The saga's state, reloading it if it was evicted (and evicting it again after)."""
        state = self.state_of(checkout_id)
        if state is None and self.snapshots:
            state = self._reload(checkout_id, partition)
            self._forget_reloaded(checkout_id)
        return state

    def _forget_reloaded(self, checkout_id: str) -> None:
        for held in (self._states, self._staged_last, self._last_event, self._partition_of):
            held.pop(checkout_id, None)

    def evicted(self) -> int:
        return sum(len(i) for i in self._evicted.values())

    def _decide(self, message: Incoming, checkout_id: str, msg: Any, now: int) -> list[Output]:
        state = self.state_of(checkout_id)
        reloaded = False
        if state is None and self.snapshots:
            state = self._reload(checkout_id, message.partition)
            reloaded = state is not None
        try:
            decision = decide(state, msg, now, self._policy)
        except UnknownCheckout as e:
            # Redelivery cannot create the history it lacks: dead-letter at once for an operator.
            raise PermanentFailure(f"{e} (message {message.envelope.message_id})") from e
        if decision.state is not None:
            self._staged[checkout_id] = decision.state
        elif reloaded:
            self._forget_reloaded(checkout_id)  # nothing changed: it stays evicted
        # Every decision event goes to checkout.events — accepted replies too, whatever their
        # type — because that log alone is the saga's truth.
        produced: list[tuple[str, Any]] = [
            *((self._events_topic, e) for e in decision.events),
            *((topic_for(c), c) for c in decision.commands),
            *((ORDERS_EVENTS, p) for p in decision.public),
        ]
        # Scoped by checkout: one tick wakes many sagas, and each output needs its own id.
        outputs = [
            Output(
                topic,
                message.envelope.caused(
                    out, i, producer=PRODUCER, occurred_at=now, scope=checkout_id
                ),
            )
            for i, (topic, out) in enumerate(produced)
        ]
        events = [o for o in outputs if o.topic == self._events_topic]
        if events:
            self._staged_last[checkout_id] = events[-1].envelope.message_id
        for event in events:
            ended = outcome_of(event.envelope.message, event.envelope.message_id)
            if ended is not None:
                self._outcomes.append(ended)
        return outputs

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

    # --- snapshots and eviction ----------------------------------------------------------

    def _snapshot_outputs(self, checkout_id: str, state: SagaState, last: str) -> list[RawOutput]:
        """The saga's snapshot; a terminal one also goes to the final topic, where its offset
        (learned from the delivery report) is what the eviction index and the pointer keep."""
        key = checkout_id.encode()
        partition = self._partition_of[checkout_id]
        done = evictable(state)
        self._written.add(checkout_id)
        value = encode_snapshot(state, last, terminal=done)
        outputs = [RawOutput(self._snapshots_topic, key, value, partition)]
        if done:
            outputs.append(
                RawOutput(self._final_topic, key, value, partition, on_delivery=self._on_delivery)
            )
        return outputs

    def _on_delivery(self, error: Any, record: Message) -> None:
        offset = record.offset()
        if error is None and offset is not None:
            self._delivered[record.key() or b""] = offset

    def _evict_if_done(self, checkout_id: str) -> None:
        state = self._states.get(checkout_id)
        partition = self._partition_of.get(checkout_id)
        key = checkout_id.encode()
        if state is None or partition is None or not self.snapshots:
            return
        index = self._evicted.setdefault(partition, EvictedIndex())
        offset = self._delivered.get(key)
        if not evictable(state):
            index.discard(key)
            return
        if offset is None:
            return  # its snapshot is not known to be written: keep it in memory
        index.put(key, offset)
        self._pointers[checkout_id] = (partition, offset)
        del self._states[checkout_id]
        self._last_event.pop(checkout_id, None)
        del self._partition_of[checkout_id]
        self._wakeups.get(partition, {}).pop(checkout_id, None)

    def _reload(self, checkout_id: str, partition: int) -> SagaState | None:
        """An evicted saga, from the one snapshot record its index entry names."""
        key = checkout_id.encode()
        index = self._evicted.get(partition)
        offset = index.get(key) if index is not None else None
        if offset is None:
            return None
        record = self._read_one(partition, offset)
        value = record.value() if record is not None else None
        if record is None or record.key() != key or value is None:
            # A hash collision or a record we cannot read: the log still has the answer.
            log.warning("snapshot of %s not at %d; refolding it", checkout_id, offset)
            loaded = self._refold_one(checkout_id, partition)
        else:
            snapshot = decode_snapshot(value)
            loaded = (snapshot.state, snapshot.last_event_id)
        if loaded is None:
            return None
        state, last = loaded
        self.reloads += 1
        self._states[checkout_id] = state
        self._last_event[checkout_id] = last
        self._staged_last.setdefault(checkout_id, last)
        self._partition_of[checkout_id] = partition
        return state

    def _client(self) -> Consumer:
        if self._loader is None:
            self._loader = Consumer(
                {
                    "bootstrap.servers": self._bootstrap,
                    "group.id": f"orchestrator-reload-{uuid.uuid4()}",
                    "isolation.level": self._isolation_level,
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 10,
                }
            )
        return self._loader

    def _read_one(self, partition: int, offset: int) -> Message | None:
        self._client().assign([TopicPartition(self._final_topic, partition, offset)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for record in self._client().consume(1, 0.5):
                if record.error() is None:
                    return record
        return None

    def _refold_one(self, checkout_id: str, partition: int) -> tuple[SagaState, str] | None:
        state: SagaState | None = None
        last = ""
        seen: set[str] = set()
        key = checkout_id.encode()
        for records in read_batches(
            self._bootstrap,
            self._events_topic,
            [partition],
            isolation_level=self._isolation_level,
        ):
            for record in records:
                if record.key() != key:
                    continue
                envelope = self._serde.decode(record.value() or b"", self._events_topic)
                if envelope.message_id not in seen:
                    seen.add(envelope.message_id)
                    state = self._fold_event(state, envelope)
                    last = envelope.message_id
        return None if state is None else (state, last)

    # --- rebuilding ----------------------------------------------------------------------

    def _rebuild(self, partitions: list[int]) -> Iterator[None]:
        """A generator: each step reads one batch, so the caller can poll in between."""
        started = time.monotonic()
        refold = list(partitions)
        if self.snapshots:
            covered = yield from self._from_snapshots(partitions)
            refold = [p for p in partitions if p not in covered]
        self.refolded = refold
        if refold:
            yield from self._refold(refold)
        for checkout_id, state in self._states.items():
            if self._partition_of.get(checkout_id) in partitions:
                self._track_wakeup(checkout_id, state)
        _release_freed_memory()
        log.info(
            "rebuilt partitions %s in %.2fs: %d sagas in memory, %d evicted (refolded: %s)",
            partitions,
            time.monotonic() - started,
            sum(1 for c in self._states if self._partition_of.get(c) in partitions),
            sum(len(self._evicted.get(p, ())) for p in partitions),
            refold,
        )

    def _from_snapshots(self, partitions: list[int]) -> Generator[None, None, set[int]]:
        """Read the partitions' snapshots; returns the partitions they fully cover."""
        live: dict[int, dict[bytes, tuple[int, bytes]]] = {p: {} for p in partitions}
        hashes: dict[int, list[np.ndarray]] = {p: [] for p in partitions}
        offsets: dict[int, list[np.ndarray]] = {p: [] for p in partitions}
        covered: dict[int, int] = {}  # partition -> events end its latest marker vouches for
        # Keys whose latest snapshot has another shape: a superseded one does not count.
        foreign: dict[int, set[bytes]] = {p: set() for p in partitions}
        progress = _Progress(f"{self._snapshots_topic}{partitions}")
        try:
            batches = read_batches(
                self._bootstrap,
                self._snapshots_topic,
                partitions,
                isolation_level=self._isolation_level,
            )
            for records in batches:
                self._index_batch(records, live, hashes, offsets, covered, foreign)
                progress.add(len(records))
                yield
        except KafkaException as e:
            # No snapshots topic (`saga topics ensure` not run since the upgrade): the events
            # still have it all, and writing snapshots would fail every transaction, so this
            # instance runs without them, as before snapshots existed.
            log.error(
                "%s unreadable (%s): running without snapshots; run `saga topics ensure`",
                self._snapshots_topic,
                e,
            )
            self.snapshots = False
            return set()
        trusted = []
        for p in partitions:
            if p not in covered or foreign[p]:
                log.warning(
                    "partition %d: snapshots do not cover it (marker %s, %d of another shape); "
                    "refolding from %s",
                    p,
                    "ok" if p in covered else "missing",
                    len(foreign[p]),
                    self._events_topic,
                )
                continue
            trusted.append(p)
            index = EvictedIndex.build(
                np.concatenate(hashes[p]) if hashes[p] else np.empty(0, dtype=np.uint64),
                np.concatenate(offsets[p]) if offsets[p] else np.empty(0, dtype=np.int64),
            )
            # A live (or not yet pointed-to terminal) record in `live` is newer than any
            # pointer of its key: a later pointer would have removed it.
            for key, (_, value) in live[p].items():
                index.discard(key)
                snapshot = decode_snapshot(value)
                checkout_id = key.decode()
                self._states[checkout_id] = snapshot.state
                self._last_event[checkout_id] = snapshot.last_event_id
                self._partition_of[checkout_id] = p
                if value[0] == TERMINAL:
                    # Its transaction committed but its pointer's did not: write it again.
                    self._rearchive.add(checkout_id)
            self._evicted[p] = index
        broken = yield from self._apply_tail({p: covered[p] for p in trusted})
        return set(trusted) - broken

    def _apply_tail(self, ends: dict[int, int]) -> Generator[None, None, set[int]]:
        """The events after each partition's marker that no snapshot holds yet (each snapshot
        names its last event) are folded onto the snapshot, and a new snapshot is owed: the
        changes of live sagas since the last marker (snapshots follow the marker), and events
        an orchestrator of an older version wrote during a rolling upgrade. Returns the
        partitions whose tail does not fit (a saga with no start): those are refolded."""
        if not ends:
            return set()
        tail: dict[str, list[tuple[int, Envelope[Any]]]] = {}
        for records in read_batches(
            self._bootstrap,
            self._events_topic,
            list(ends),
            start=ends,
            isolation_level=self._isolation_level,
        ):
            for record in records:
                try:
                    envelope = self._serde.decode(record.value() or b"", self._events_topic)
                except DecodeError:
                    log.exception("undecodable event in %s; skipped", self._events_topic)
                    continue
                tail.setdefault(envelope.checkout_id, []).append((where(record)[1], envelope))
            yield
        broken: set[int] = set()
        folded_sagas = folded_events = 0
        for checkout_id, items in tail.items():
            partition = items[0][0]
            if partition in broken:
                continue
            state = self.state_of(checkout_id)
            reloaded = state is None and self._reload(checkout_id, partition) is not None
            state = self.state_of(checkout_id)
            last = self._last_event.get(checkout_id)
            ids = [e.message_id for _, e in items]
            newer = items[ids.index(last) + 1 :] if last in ids else items
            if not newer:
                if reloaded:
                    self._forget_reloaded(checkout_id)
                continue
            try:
                for _, envelope in newer:
                    if state is None and not isinstance(envelope.message, m.CheckoutStarted):
                        raise ValueError("history without its start")
                    state = self._fold_event(state, envelope)
            except Exception:
                log.exception("partition %d: events after the snapshots do not fit", partition)
                broken.add(partition)
                continue
            assert state is not None
            folded_sagas += 1
            folded_events += len(newer)
            self._states[checkout_id] = state
            self._last_event[checkout_id] = newer[-1][1].message_id
            self._partition_of[checkout_id] = partition
            self._evicted.setdefault(partition, EvictedIndex()).discard(checkout_id.encode())
            self._rearchive.add(checkout_id)  # its snapshot is owed
        for partition in broken:
            self._forget_partition(partition)
        log.info(
            "partitions %s: %d events after the snapshots folded into %d sagas",
            sorted(ends),
            folded_events,
            folded_sagas,
        )
        return broken

    def _forget_partition(self, partition: int) -> None:
        for checkout_id in [c for c, p in self._partition_of.items() if p == partition]:
            self._states.pop(checkout_id, None)
            self._last_event.pop(checkout_id, None)
            self._rearchive.discard(checkout_id)
            self._stale.discard(checkout_id)
            del self._partition_of[checkout_id]
        self._evicted.pop(partition, None)

    def _fold_event(self, state: SagaState | None, envelope: Envelope[Any]) -> SagaState:
        # Through the upcasters: the log holds events of every history version (ADR 0012).
        return replay(state, envelope.message, envelope.schema_version)

    def _index_batch(
        self,
        records: list[Message],
        live: dict[int, dict[bytes, tuple[int, bytes]]],
        hashes: dict[int, list[np.ndarray]],
        offsets: dict[int, list[np.ndarray]],
        covered: dict[int, int],
        foreign: dict[int, set[bytes]],
    ) -> None:
        """One batch of snapshot records: live ones kept undecoded (the last of a key wins),
        terminal ones reduced to (key hash, offset), markers noted."""
        terminal: dict[int, tuple[list[int], list[int]]] = {}
        fp = current_fingerprint()
        # The hot loop of a rebuild (one pass per record ever kept): plain byte compares only.
        for record in records:
            value = record.value()
            key = record.key()
            partition = record.partition()
            if not value or key is None or partition is None:
                continue
            kind = value[0]
            if value[1:17] != fp:
                if kind == COVERAGE and key == COVERAGE_KEY:
                    covered.pop(partition, None)
                else:
                    foreign[partition].add(key)
                    live[partition].pop(key, None)
            elif kind == POINTER:
                if foreign[partition]:
                    foreign[partition].discard(key)
                live[partition].pop(key, None)
                hs, os_ = terminal.setdefault(partition, ([], []))
                hs.append(hash(key))
                os_.append(int(value[17:]))
            elif kind in (LIVE, TERMINAL):
                if foreign[partition]:
                    foreign[partition].discard(key)
                live[partition][key] = (record.offset() or 0, value)
            elif kind == COVERAGE and key == COVERAGE_KEY:
                if coverage_matches(value, self._events_topic):
                    covered[partition] = coverage_end(value)
                else:
                    covered.pop(partition, None)
        for partition, (hs, os_) in terminal.items():
            # key_hash(): Python's hash masked to 64 bits, done here on the whole array.
            hashes[partition].append(np.array(hs, dtype=np.int64).view(np.uint64))
            offsets[partition].append(np.array(os_, dtype=np.int64))

    def _refold(self, partitions: list[int]) -> Iterator[None]:
        applied: dict[str, set[str]] = {}
        ends: dict[int, int] = dict.fromkeys(partitions, 0)
        for p in partitions:
            self._evicted.pop(p, None)
        progress = _Progress(f"{self._events_topic}{partitions}")
        for records in read_batches(
            self._bootstrap,
            self._events_topic,
            partitions,
            isolation_level=self._isolation_level,
        ):
            for record in records:
                _, partition, offset = where(record)
                self._replay(record.value() or b"", partition, applied)
                ends[partition] = max(ends[partition], offset + 1)
            progress.add(len(records))
            yield
        if self.snapshots:
            for p in partitions:
                self._pending[p] = sorted(c for c in applied if self._partition_of.get(c) == p)
                self._pending_sent[p] = 0
                self._coverage_owed[p] = ends[p]

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
        self._states[checkout_id] = self._fold_event(self._states.get(checkout_id), envelope)
        self._last_event[checkout_id] = envelope.message_id
        self._partition_of[checkout_id] = partition


def _release_freed_memory() -> None:
    """Give the heap the rebuild's read freed (fetch buffers, record objects, index temporaries)
    back to the OS. glibc keeps freed memory mapped, so without this the process would carry
    the size of the read it did once, not of what it holds. No-op outside glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _Progress:
    """Logs a long read every few seconds, so an operator sees a rebuild move."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._count = 0
        self._started = self._logged = time.monotonic()

    def add(self, n: int) -> None:
        self._count += n
        now = time.monotonic()
        if now - self._logged >= PROGRESS_EVERY_S:
            self._logged = now
            rate = self._count / max(now - self._started, 1e-9)
            log.info("rebuild: %d records of %s read (%.0f/s)", self._count, self._what, rate)
