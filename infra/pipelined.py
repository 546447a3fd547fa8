"""The processing loop for handlers that wait on the outside world (the adapters).

`Processor` handles a batch and commits it in one transaction: right for the orchestrator,
whose batch is CPU work. An adapter's batch is provider calls, and a batch ends with its slowest
call: under 20 % Stripe faults nearly every batch of 128 held a request that hung to its 20 s
timeout, so every answer waited 20 s and the saga's reply deadlines expired (docs/chaos.md
finding 9). Here each call's reply is committed as soon as the call ends, while the others
are still running:

- calls run on `lanes` threads, one lane per checkout and topic: a checkout's commands to one
  adapter still run one at a time, in log order;
- every pass of the loop commits, in one transaction, the replies (and dead letters) of the
  calls that ended since the last pass, with each partition's offset at its oldest record still
  unanswered. Everything below that offset is answered; records above it whose replies are
  committed are handled again after a crash, which the adapters allow (every call is
  idempotent by the command's key) and the saga absorbs (a duplicate reply holds nothing new);
- a failed transaction, a revoked partition or a schema-registry outage drops the work in
  flight and starts again from the committed offsets: the same rule as a crash.

Everything else (decoding, dead letters, transactions, producer renewal, the watchdog) is
`Processor`'s.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from events.serde import Serde
from infra.logs import bound
from infra.metrics import ProcessorMetrics
from infra.processor import (
    Handler,
    Incoming,
    Output,
    Processor,
    ProcessorConfig,
    _Out,
    _RetryBatch,
    log_fields,
    where,
)

log = logging.getLogger(__name__)

# While calls are in flight the loop alternates a fetch and a wait for an ending call, each
# this long at most: an answer or a new request waits for the loop no longer than this.
_WAKE_S = 0.005


@dataclass(eq=False)
class _Call:
    record: Message
    incoming: Incoming
    attempts: int = 0  # failed tries so far (the runtime's own retries of a handler error)
    result: Sequence[Output] | BaseException | None = None
    dropped: bool = False  # its partition started over: its end is not answered
    started: bool = False  # handed to a thread (not held back by its topic's share)

    @property
    def partition(self) -> tuple[str, int]:
        topic, partition, _ = where(self.record)
        return topic, partition


@dataclass
class _Partition:
    committed: int  # the offset the group has: where this worker started, or last committed
    next_offset: int  # one past the last record fetched
    open: set[int] = field(default_factory=set)  # offsets fetched and not yet answered

    def position(self) -> int:
        """The offset to commit: every record below it is answered."""
        return min(self.open) if self.open else self.next_offset


class PipelinedProcessor(Processor):
    def __init__(
        self,
        config: ProcessorConfig,
        handler: Handler,
        serde: Serde,
        *,
        lanes: int,
        topic_lanes: int | None = None,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
        metrics: ProcessorMetrics | None = None,
    ) -> None:
        super().__init__(config, handler, serde, clock=clock, metrics=metrics)
        self._capacity = lanes
        self._pool = ThreadPoolExecutor(lanes, thread_name_prefix=f"{config.name}-call")
        self._ended: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._lanes: dict[tuple[str, str], deque[_Call]] = {}  # see _lane; the head is running
        self._outstanding = 0  # fetched, not answered: the calls running and queued in lanes
        # With several topics (`--role adapters`), each runs at most `topic_lanes` calls at
        # once: a provider whose calls hang takes its own adapter's share of the threads, and
        # the other adapters' calls still run (docs/chaos.md finding 9). Calls past the share
        # wait here, heads of their lanes, until one of their topic's calls ends.
        self._topic_lanes = topic_lanes
        self._running: Counter[str] = Counter()
        self._held: dict[str, deque[_Call]] = {}
        # Calls answered since the last transaction, with the outputs it is to hold.
        self._answered: list[tuple[Message, list[_Out]]] = []
        self._restarts = 0

    # --- the loop ----------------------------------------------------------------------------

    def step(self) -> int:
        self._background()
        room = self._capacity - self._outstanding
        if self._outstanding == 0:
            records = self._poll()
        else:
            # Full: still fetch one now and then (a soft cap), so the consumer's polls keep its
            # group membership however long the calls take.
            wanted = min(room, self._config.batch_size) if room > 0 else 1
            records = list(self._consumer.consume(wanted, 0))
        inputs = [r for r in records if self._usable(r)]
        self.metrics.polled(inputs)
        self.metrics.sample_lag(self._consumer, self._assigned)
        try:
            for record in inputs:
                self._take(record)
        except _RetryBatch:
            self._start_over()
            return 0
        if not inputs and not self._answered and self._outstanding:
            self._wait_for_an_answer()
        self._collect()
        return self._commit_answered()

    def _take(self, record: Message) -> None:
        topic, partition, offset = where(record)
        part = self._partitions.setdefault((topic, partition), _Partition(offset, offset))
        part.next_offset = max(part.next_offset, offset + 1)
        item = self._decode(record)  # raises _RetryBatch while the registry is away
        if isinstance(item, str):
            self._answered.append((record, [(None, record, item)]))
            return
        part.open.add(offset)
        self._outstanding += 1
        call = _Call(record, item)
        lane = self._lanes.setdefault(_lane(call), deque())
        lane.append(call)
        if len(lane) == 1:
            self._run(call)

    def _run(self, call: _Call) -> None:
        topic = call.incoming.topic
        if self._topic_lanes is not None and self._running[topic] >= self._topic_lanes:
            call.started = False
            self._held.setdefault(topic, deque()).append(call)
            return
        self._running[topic] += 1
        call.started = True
        self._pool.submit(self._call, call)

    def _ended_on(self, topic: str) -> None:
        """A call of `topic` ended: its thread is free for the next one held back."""
        self._running[topic] -= 1
        held = self._held.get(topic)
        if held:
            self._run(held.popleft())

    def _call(self, call: _Call) -> None:
        """On a lane thread: the handler's call, then hand the call back to the loop."""
        if call.attempts:
            # A handler error (a database restart, a network blip): give it a moment.
            time.sleep(min(0.05 * 2**call.attempts, 2.0))
        try:
            with bound(**log_fields(call.incoming)):
                call.result = self._handler.handle(call.incoming)
        except Exception as e:  # counted by the loop, then retried or dead-lettered
            call.result = e
        self._ended.put(call)

    def _wait_for_an_answer(self) -> None:
        with contextlib.suppress(queue.Empty):
            self._ended.put(self._ended.get(timeout=_WAKE_S))  # _collect takes it

    def _collect(self) -> None:
        """Take every call that ended: its outputs join the next transaction, and the next call
        of its checkout starts."""
        while True:
            try:
                call = self._ended.get_nowait()
            except queue.Empty:
                return
            self._ended_on(call.incoming.topic)
            if not call.dropped:
                result = call.result
                if isinstance(result, BaseException):
                    dead = self._failed(call.record, result)
                    if dead is None:
                        call.attempts += 1
                        self._run(call)  # stays at the head of its lane: the checkout waits
                        continue
                    self._answered.append((call.record, [(None, call.record, dead)]))
                else:
                    self._answered.append((call.record, [(o, None, None) for o in result or ()]))
                topic, partition, offset = where(call.record)
                part = self._partitions.get((topic, partition))
                if part is not None:
                    part.open.discard(offset)
                self._outstanding -= 1
            key = _lane(call)
            lane = self._lanes[key]
            assert lane[0] is call, "a lane runs its head only"
            lane.popleft()
            if lane:
                self._run(lane[0])
            else:
                del self._lanes[key]

    def _commit_answered(self) -> int:
        outputs: list[_Out] = [(o, None, None) for o in self._due_ticks()]
        for _, outs in self._answered:
            outputs.extend(outs)
        offsets = [
            TopicPartition(topic, partition, part.position())
            for (topic, partition), part in self._partitions.items()
            if part.position() != part.committed
        ]
        if not outputs and not offsets:
            return 0
        inputs = [record for record, _ in self._answered]
        self._answered = []
        restarts = self._restarts
        started = time.perf_counter()
        self._commit(inputs, outputs, offsets)
        self.metrics.committed(time.perf_counter() - started)
        if self._restarts != restarts:
            return 0  # the transaction failed: everything started over
        for tp in offsets:
            part = self._partitions.get((tp.topic, tp.partition))
            if part is not None:
                part.committed = tp.offset
        return len(inputs)

    # --- starting over -----------------------------------------------------------------------

    def _rewind(self, inputs: list[Message]) -> None:
        """A failed transaction: what it held is lost, so start over from the commit."""
        self._start_over()

    def _start_over(self, only: set[tuple[str, int]] | None = None) -> None:
        """Drop the work of every partition (or of `only`) and seek those still assigned back
        to their committed offsets. Their calls still running end unanswered; a checkout's next
        call waits for them all the same."""
        dropped = set(self._partitions) if only is None else only
        assigned = {(p.topic, p.partition) for p in self._assigned}
        self._restarts += 1
        for key in dropped:
            part = self._partitions.pop(key, None)
            if part is not None and key in assigned and only is None:
                with contextlib.suppress(KafkaException):
                    self._consumer.seek(TopicPartition(key[0], key[1], part.committed))
        for lane_key in list(self._lanes):
            lane = self._lanes[lane_key]
            running, waiting = lane[0], list(lane)[1:]
            if running.partition not in dropped:
                continue  # a lane's records are all in one partition (one checkout, one topic)
            self._outstanding -= len(waiting) + (0 if running.dropped else 1)
            running.dropped = True
            if running.started:
                self._lanes[lane_key] = deque([running])  # until it ends
            else:  # held back, never run: nothing will end it
                self._held[running.incoming.topic].remove(running)
                del self._lanes[lane_key]
        self._answered = [(r, outs) for r, outs in self._answered if _partition(r) not in dropped]

    def _revoked_cb(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        super()._revoked_cb(consumer, partitions)
        self._start_over({(p.topic, p.partition) for p in partitions})

    def close(self) -> None:
        super().close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lane(call: _Call) -> tuple[str, str]:
    """One lane per checkout and topic: a checkout's calls to one adapter run in log order, and
    its calls to two adapters (tax and shipping, in parallel by design) run side by side when
    one worker serves both (`--role adapters`)."""
    return call.incoming.topic, call.incoming.envelope.key


def _partition(record: Message) -> tuple[str, int]:
    topic, partition, _ = where(record)
    return topic, partition
