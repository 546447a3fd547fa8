"""The one Kafka processing loop: consume a batch, decode, handle, produce, commit — atomically.

Every processor (orchestrator, adapters, projectors that write to Kafka) is a `Handler` run by
`Processor`. Guarantees:
- outputs and input offsets are committed in one Kafka transaction (send_offsets_to_transaction);
- the handler sees the whole batch before anything is produced, so a handler failure aborts a
  transaction that holds no records (some brokers — Tansu 0.6 — show aborted records to
  read_committed consumers; see docs/decisions/0006-effectively-once-on-tansu.md);
- a message that cannot be decoded, is of a type its topic does not carry (the registry in
  events/topics.py), or whose handling fails `max_attempts` times, goes to
  `<topic>.dlq` with the error in headers, in the same transaction as the offset that skips it:
  a poison message never blocks its partition and never vanishes; a handler that knows a
  retry cannot help raises `PermanentFailure`, which is dead-lettered without retries;
- outputs carry message ids derived from the input's id, so a replay after a crash produces the
  same ids and consumers can deduplicate.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from events.envelope import Envelope
from events.serde import DecodeError, RegistryUnavailableError, Serde
from events.topics import dlq, refusal_on
from infra.handover import starts
from infra.logs import bound
from infra.metrics import Metrics, ProcessorMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    partition: int
    offset: int
    timestamp: int  # broker/producer timestamp, epoch ms
    envelope: Envelope[Any]
    size: int = 0  # bytes of the record's value, for handlers that bound what they accept


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    envelope: Envelope[Any]
    partition: int | None = None  # None: partition by key (ticks name theirs)


@dataclass(frozen=True, slots=True)
class RawOutput:
    """A record that is not a message (a saga snapshot): bytes as given, on an explicit
    partition, in the same transaction as the batch's other outputs. `on_delivery` learns the
    record's offset before the transaction commits (delivery reports are served by the commit's
    flush); the offset is only real once `on_commit` follows."""

    topic: str
    key: bytes
    value: bytes
    partition: int
    on_delivery: Callable[[Any, Message], None] | None = None


class PermanentFailure(Exception):
    """Raised by a handler when handling this message again can never succeed (an address the
    mail server refused, a fact the log does not hold). The runtime skips the retries and
    dead-letters the message at once with this error, so the partition does not stall on it."""


class Handler(Protocol):
    """What a processor does with its input. Staged state is kept until the runtime says the
    transaction committed (`on_commit`) or was abandoned (`on_abort`)."""

    def handle(self, message: Incoming) -> Sequence[Output]: ...

    def on_commit(self) -> None: ...

    def on_abort(self) -> None: ...

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None: ...

    def on_revoke(self, partitions: Sequence[TopicPartition]) -> None: ...


class BaseHandler:
    """No-op defaults for stateless handlers.

    Optional hooks the runtime looks for (the orchestrator has them):
    - `batch_outputs() -> Sequence[Output | RawOutput]`: records to add to the transaction after
      the whole batch was handled (one snapshot per saga the batch touched);
    - `held() -> Sequence[TopicPartition]`: partitions to keep paused after an assignment until
      the handler is ready for them (its state is still being rebuilt);
    - `background(budget_s) -> Sequence[TopicPartition]`: a slice of that work, run between
      polls so a long rebuild keeps the group membership; returns partitions now ready.
    """

    def handle(self, message: Incoming) -> Sequence[Output]:
        raise NotImplementedError

    def on_commit(self) -> None:
        return None

    def on_abort(self) -> None:
        return None

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        return None

    def on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        return None


@dataclass
class ProcessorConfig:
    name: str  # consumer group; also the prefix of the transactional id
    topics: Sequence[str]
    bootstrap_servers: str
    instance_id: str = "0"  # stable per worker slot, so a restarted worker fences its zombie
    batch_size: int = 500
    poll_timeout_s: float = 0.1
    max_attempts: int = 3
    session_timeout_ms: int = 6000
    # Emits a Tick into each assigned partition of `tick_topic` every `tick_interval_ms`.
    tick_topic: str | None = None
    tick_interval_ms: int = 1000
    tick_factory: Callable[[int, int], Envelope[Any]] | None = None
    extra_consumer_config: dict[str, Any] = field(default_factory=dict)
    isolation_level: str = "read_committed"  # Settings.kafka_isolation_level (ADR 0009)
    fetch_wait_ms: int = 500  # Settings.kafka_fetch_wait_ms (ADR 0019)
    # A transaction that has not ended after this long never will in this process (after a
    # broker restart librdkafka was seen waiting in send_offsets_to_transaction for good, past
    # its own timeout): the worker exits and its supervisor starts a clean one. Transactions
    # here take milliseconds; one that waits on a broker that is away gains nothing by waiting
    # longer than a restart takes.
    stuck_after_s: float = 20.0
    init_timeout_s: float = 30.0  # init_transactions: registering the transactional id
    # Consumer groups that served these topics before (the split and combined adapter
    # workers): a partition starts at the highest offset any of them committed.
    handover_groups: tuple[str, ...] = ()


def consumer_config(
    bootstrap: str,
    group: str,
    session_timeout_ms: int = 6000,
    isolation_level: str = "read_committed",
    fetch_wait_ms: int = 500,
) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": isolation_level,
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(500, session_timeout_ms // 4),
        # Range assignment co-partitions topics: partition p of checkout.commands and of
        # checkout.replies go to the same worker, which owns those checkouts' state.
        "partition.assignment.strategy": "range",
        # Settings.kafka_fetch_wait_ms: no latency on Apache Kafka, which answers a waiting
        # fetch when records land; 10 ms for Tansu, whose waits end on the timer.
        "fetch.wait.max.ms": fetch_wait_ms,
    }


def producer_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        # murmur2 is the Java client's partitioner: a storefront producing StartCheckout with
        # any Kafka client lands on the same partition as our own messages for that checkout.
        "partitioner": "murmur2_random",
        "linger.ms": 2,
        "enable.idempotence": True,
        **extra,
    }


class Processor:
    def __init__(
        self,
        config: ProcessorConfig,
        handler: Handler,
        serde: Serde,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
        metrics: ProcessorMetrics | None = None,
    ) -> None:
        self._config = config
        # Without the process's metrics (tests, tools), a private registry nobody scrapes.
        self.metrics = metrics if metrics is not None else Metrics().processor(config.name)
        self._handler = handler
        self._serde = serde
        self._clock = clock
        self._stop = threading.Event()
        self._failures: dict[tuple[str, int, int], int] = {}
        self._last_tick = 0
        self._commit_began: float | None = None  # monotonic, while a transaction is open
        # Set when the producer saw every broker go away. After a broker restart the first
        # transaction of a producer that lived through it was seen to hang in
        # send_offsets_to_transaction (chaos finding 4); a new producer does not.
        self._brokers_lost = False
        self._closed = threading.Event()
        self._assigned: list[TopicPartition] = []
        self.processed = 0  # inputs committed, for tests and metrics
        self._consumer = Consumer(
            {
                **consumer_config(
                    config.bootstrap_servers,
                    config.name,
                    config.session_timeout_ms,
                    config.isolation_level,
                    config.fetch_wait_ms,
                ),
                **config.extra_consumer_config,
            }
        )
        self._producer = self._new_producer()

    def _new_producer(self) -> Producer:
        config = self._config
        return Producer(
            producer_config(
                config.bootstrap_servers,
                **{
                    "transactional.id": f"{config.name}-{config.instance_id}",
                    # Everything is handled before the transaction begins, so a transaction only
                    # spans produce -> commit. A short timeout bounds how long a crashed
                    # worker's open transaction holds back read_committed consumers.
                    "transaction.timeout.ms": 10_000,
                    # The coordinator answers CONCURRENT_TRANSACTIONS to the first request of a
                    # transaction while it still writes the previous one's markers, and the
                    # client retries after this long: at the default 100 ms a quiet checkout
                    # took 196 ms p50 instead of 113 (ADR 0022). The Java client retries that
                    # answer after 20 ms for the same reason (KAFKA-5477).
                    "retry.backoff.ms": TXN_RETRY_BACKOFF_MS,
                    "error_cb": self._on_producer_error,
                },
            )
        )

    def _on_producer_error(self, error: KafkaError) -> None:
        # Served from the producer's poll(), i.e. on this thread between transactions.
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._brokers_lost = True

    # --- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop())

    def start(self) -> None:
        # Registers our transactional id with the coordinator, aborting whatever a previous
        # incarnation of this worker left open (zombie fencing).
        self._producer.init_transactions(self._config.init_timeout_s)
        threading.Thread(target=self._watch_transactions, name="txn-watchdog", daemon=True).start()
        self._consumer.subscribe(
            list(self._config.topics),
            on_assign=self._assigned_cb,
            on_revoke=self._revoked_cb,
            on_lost=self._revoked_cb,
        )

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        self.start()
        try:
            while not self._stop.is_set() and not until():
                self.step()
        finally:
            self.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(Exception):
            self._consumer.close()
        closing = getattr(self._handler, "close", None)
        if closing is not None:
            with contextlib.suppress(Exception):
                closing()
        with contextlib.suppress(Exception):
            self._producer.flush(5)
        # Closed now, not when garbage-collected: a producer that outlives its processor keeps
        # reconnecting (and logging) after the broker of a one-process stack has stopped.
        with contextlib.suppress(Exception):
            self._producer.close()

    def _assigned_cb(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned = list(partitions)
        self._handler.on_assign(partitions)
        held = getattr(self._handler, "held", None)
        pause = list(held()) if held is not None else []
        handover = self._config.handover_groups
        if pause or handover:
            # Assign here (instead of after the callback) so the partitions can be paused before
            # anything is fetched from them (the handler releases them from `background`), and
            # can start where another group that served them stopped (infra/handover.py).
            consumer.assign(
                starts(consumer, self._config.bootstrap_servers, handover, partitions)
                if handover
                else partitions
            )
            if pause:
                consumer.pause(pause)

    def _revoked_cb(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Called from consume(), between transactions: nothing of ours is in flight.
        revoked = {(p.topic, p.partition) for p in partitions}
        self._assigned = [p for p in self._assigned if (p.topic, p.partition) not in revoked]
        self.metrics.forget(partitions)
        self._handler.on_revoke(partitions)

    # --- one batch ---------------------------------------------------------------------------

    def step(self) -> int:
        """Process one batch; returns how many inputs were committed."""
        self._background()
        inputs = [r for r in self._poll() if self._usable(r)]
        self.metrics.polled(inputs)
        self.metrics.sample_lag(self._consumer, self._assigned)
        outputs: list[_Out] = [(o, None, None) for o in self._due_ticks()]
        started = time.perf_counter()
        try:
            outputs.extend(self._handle_batch(inputs))
        except _RetryBatch:
            self._handler.on_abort()
            self._rewind(inputs)
            return 0
        if inputs:
            self.metrics.handled(time.perf_counter() - started)
        trailer = getattr(self._handler, "batch_outputs", None)
        if trailer is not None:
            outputs.extend((o, None, None) for o in trailer())
        if not inputs and not outputs:
            return 0
        started = time.perf_counter()
        self._commit(inputs, outputs)
        self.metrics.committed(time.perf_counter() - started)
        return len(inputs)

    def _background(self) -> None:
        work = getattr(self._handler, "background", None)
        if work is None:
            return
        ready = list(work(BACKGROUND_SLICE_S))
        if ready:
            self._consumer.resume(ready)

    def _poll(self) -> list[Message]:
        """Whatever is already fetched, at once; only an idle partition set waits (briefly).
        Waiting for a full batch would add the poll timeout to every hop of every saga."""
        batch = self._config.batch_size
        records = self._consumer.consume(batch, 0)
        if records:
            return list(records)
        first = self._consumer.consume(1, self._config.poll_timeout_s)
        if not first:
            return []
        return list(first) + list(self._consumer.consume(batch - 1, 0))

    def _usable(self, record: Message) -> bool:
        error = record.error()
        if error is None:
            return True
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error: %s", error)
        return False

    def _handle_batch(self, records: list[Message]) -> list[_Out]:
        decoded: list[tuple[Message, Incoming | str]] = [(r, self._decode(r)) for r in records]
        incomings = [i for _, i in decoded if isinstance(i, Incoming)]
        results = iter(self._run_handler(incomings))
        outputs: list[_Out] = []
        retry = False
        for record, item in decoded:
            if isinstance(item, str):
                outputs.append((None, record, item))
                continue
            result = next(results)
            if not isinstance(result, BaseException):
                outputs.extend((o, None, None) for o in result)
                continue
            dead = self._failed(record, result)
            if dead is None:
                retry = True
            else:
                outputs.append((None, record, dead))
        if retry:
            # Give a transient fault (database restart, network blip) a moment, then redo the
            # whole batch: nothing of it has been produced yet.
            attempts = max(self._failures.values(), default=1)
            time.sleep(min(0.05 * 2**attempts, 2.0))
            raise _RetryBatch
        return outputs

    def _decode(self, record: Message) -> Incoming | str:
        """The record as an Incoming, or the reason it is poison."""
        topic, partition, offset = where(record)
        try:
            envelope = self._serde.decode(record.value() or b"", topic)
        except DecodeError as e:
            return f"DecodeError: {e}"
        except RegistryUnavailableError as e:
            # An outage, not a bad message: retry the batch, never dead-letter good data.
            log.warning("schema registry unavailable, retrying batch: %s", e)
            time.sleep(1.0)
            raise _RetryBatch from e
        wrong = refusal_on(topic, envelope.message)
        if wrong is not None:
            # Well-formed, but no processor of this topic could apply it: handing it on would
            # have it ignored somewhere (issue 12), so it is dead-lettered before any handler.
            return f"WrongTopic: {wrong}"
        size = len(record.value() or b"")
        return Incoming(topic, partition, offset, record.timestamp()[1], envelope, size)

    def _run_handler(self, incomings: list[Incoming]) -> list[Sequence[Output] | BaseException]:
        # A stateful handler (the orchestrator) stages state message by message; after a failure
        # the rest of the batch is not handled, since it may depend on the failed message.
        results: list[Sequence[Output] | BaseException] = []
        for incoming in incomings:
            try:
                with bound(**log_fields(incoming)):
                    results.append(self._handler.handle(incoming))
            except Exception as e:
                results.append(e)
                if isinstance(e, PermanentFailure):
                    continue  # dead-lettered, not retried: the rest of the batch goes on
                if self._failures.get(where_in(incoming), 0) + 1 < self._config.max_attempts:
                    break
        return results + [_NotRun() for _ in range(len(incomings) - len(results))]

    def _failed(self, record: Message, error: BaseException) -> str | None:
        """Count a failure; the dead-letter reason once attempts are used up, else None."""
        if isinstance(error, _NotRun):
            return None
        if isinstance(error, PermanentFailure):
            with bound(**record_fields(record)):
                log.error("dead-lettering %s[%d]@%d without retries: %s", *where(record), error)
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            return f"{type(error).__name__} (not retried): {detail}"
        key = where(record)
        attempts = self._failures.get(key, 0) + 1
        self._failures[key] = attempts
        with bound(**record_fields(record)):
            log.error(
                "handler failed on %s[%d]@%d (attempt %d)",
                *key,
                attempts,
                exc_info=(type(error), error, error.__traceback__),
            )
        if attempts < self._config.max_attempts:
            return None
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        return f"{type(error).__name__} after {attempts} attempts: {detail}"

    def _due_ticks(self) -> list[Output]:
        cfg = self._config
        if cfg.tick_topic is None or cfg.tick_factory is None:
            return []
        now = self._clock()
        if now - self._last_tick < cfg.tick_interval_ms:
            return []
        self._last_tick = now
        return [
            Output(cfg.tick_topic, cfg.tick_factory(p.partition, now), p.partition)
            for p in self._assigned
            if p.topic == cfg.tick_topic
        ]

    def _watch_transactions(self) -> None:
        limit = self._config.stuck_after_s
        while not self._closed.wait(1.0):
            began = self._commit_began
            if began is not None and time.monotonic() - began > limit:
                log.critical(
                    "TransactionStuck: %s: a transaction has not ended in %.0fs; exiting for a"
                    " clean restart (its inputs are redelivered, its outputs never committed)",
                    self._config.name,
                    limit,
                )
                faulthandler.dump_traceback(all_threads=True)
                os._exit(EXIT_TRANSACTION_STUCK)

    def _commit(
        self,
        inputs: list[Message],
        outputs: list[_Out],
        offsets: list[TopicPartition] | None = None,
    ) -> None:
        """One transaction of `outputs` and the offsets past `inputs` (or `offsets`, when the
        caller knows better: infra/pipelined.py commits up to its oldest unanswered record)."""
        self._producer.poll(0)  # serve error_cb: did the brokers go away since the last one?
        if self._brokers_lost:
            log.warning(
                "%s: every broker was away; starting over with a new producer", self._config.name
            )
            self._renew_producer(KafkaError(KafkaError._ALL_BROKERS_DOWN, "all brokers were down"))
        self._commit_began = time.monotonic()
        try:
            failed = self._transact(inputs, outputs, offsets)
        finally:
            self._commit_began = None
        if failed is not None:
            # Outside the watchdog's window: registering a new producer has its own timeout.
            self._renew_producer(failed)

    def _transact(
        self, inputs: list[Message], outputs: list[_Out], offsets: list[TopicPartition] | None
    ) -> KafkaError | None:
        """One transaction; the broker's error when it failed and was rewound."""
        if offsets is None:
            offsets = _next_offsets(inputs)
        producer = self._producer
        try:
            producer.begin_transaction()
            for output, dead, error in outputs:
                if output is not None:
                    self._produce(output)
                elif dead is not None and error is not None:
                    self._produce_dlq(dead, error)
            if offsets:
                # Records first: sent while their AddPartitionsToTxn is still in flight, the
                # offsets' AddOffsetsToTxn was refused as a concurrent change to the same
                # transaction and retried after the backoff (ADR 0022). The commit flushes
                # anyway, so this waits for nothing the transaction did not wait for.
                # Bounded below the watchdog's limit: a broker that is away ends in a rewind
                # and a new producer, not in the worker's exit.
                unsent = producer.flush(self._config.stuck_after_s / 2)
                if unsent or self._brokers_lost:
                    # The flush waited through a broker loss: this producer then hangs in
                    # send_offsets_to_transaction (chaos finding 4), so it goes, and the batch
                    # is rewound as after any failed transaction.
                    raise KafkaException(
                        KafkaError(
                            KafkaError._ALL_BROKERS_DOWN,
                            f"brokers lost while flushing the transaction ({unsent} unsent)",
                        )
                    )
                producer.send_offsets_to_transaction(
                    offsets, self._consumer.consumer_group_metadata(), 30
                )
            producer.commit_transaction(30)
        except KafkaException as e:
            kerr = e.args[0]
            if kerr.fatal():
                raise  # fenced by a newer instance or broken producer: let the worker restart
            log.warning("transaction failed, rewinding batch: %s", kerr)
            self._handler.on_abort()
            self._rewind(inputs)
            return kerr
        except BaseException:
            # Not the broker (an encode error, an interrupt): never leave the transaction open
            # for consumers to wait on; abort it, then let the worker fail loudly.
            with contextlib.suppress(KafkaException):
                producer.abort_transaction(10)
            self._handler.on_abort()
            raise
        for record in inputs:
            self._failures.pop(where(record), None)
        for _, dead, error in outputs:
            if dead is not None and error is not None:
                # Counted once committed: an aborted transaction dead-lettered nothing.
                self.metrics.dead_lettered(where(dead)[0], error)
        self.processed += len(inputs)
        self._handler.on_commit()
        return None

    def _renew_producer(self, cause: KafkaError) -> None:
        """A new producer after a failed transaction. Seen after a broker restart: the old one's
        abort bumped its epoch, the coordinator answered CONCURRENT_TRANSACTIONS, and its next
        transaction waited for good. init_transactions on a new one fences the old epoch and
        aborts whatever it left open, as a restarted worker's would, without the restart."""
        old = self._producer
        self._brokers_lost = False  # said of the old producer; the new one has seen nothing
        with contextlib.suppress(KafkaException):
            old.abort_transaction(10)  # best effort: the new producer's init aborts it anyway
        with contextlib.suppress(Exception):
            old.close()
        self._producer = self._new_producer()
        try:
            self._producer.init_transactions(self._config.init_timeout_s)
        except KafkaException as e:
            raise TransactionStuck(
                f"{self._config.name}: transaction failed ({cause}) and a new producer could"
                f" not register ({e.args[0]}): exiting for a clean restart"
            ) from e

    def _produce(self, output: Output | RawOutput) -> None:
        if isinstance(output, RawOutput):
            self._producer.produce(
                output.topic,
                value=output.value,
                key=output.key,
                partition=output.partition,
                on_delivery=output.on_delivery,
            )
            self._producer.poll(0)
            return
        envelope = output.envelope
        value = self._serde.encode(envelope, output.topic)
        headers: list[tuple[str, str | bytes | None]] = [("message_type", envelope.type.encode())]
        if output.partition is None:
            self._producer.produce(
                output.topic, value=value, key=envelope.key.encode(), headers=headers
            )
        else:
            self._producer.produce(
                output.topic,
                value=value,
                key=envelope.key.encode(),
                partition=output.partition,
                headers=headers,
            )
        self._producer.poll(0)

    def _produce_dlq(self, record: Message, error: str) -> None:
        topic, partition, offset = where(record)
        headers: list[tuple[str, str | bytes | None]] = [
            *(record.headers() or []),
            ("dlq.error", error[:4000].encode()),
            ("dlq.topic", topic.encode()),
            ("dlq.partition", str(partition).encode()),
            ("dlq.offset", str(offset).encode()),
            ("dlq.processor", self._config.name.encode()),
            ("dlq.failed_at", str(self._clock()).encode()),
        ]
        with bound(**record_fields(record)):
            log.error("dead-lettering %s[%d]@%d: %s", topic, partition, offset, error)
        self._producer.produce(dlq(topic), value=record.value(), key=record.key(), headers=headers)

    def _rewind(self, inputs: list[Message]) -> None:
        """Seek every partition in the batch back to its first uncommitted record."""
        first: dict[tuple[str, int], int] = {}
        for r in inputs:
            topic, partition, offset = where(r)
            first[(topic, partition)] = min(first.get((topic, partition), offset), offset)
        for (topic, partition), offset in first.items():
            with contextlib.suppress(KafkaException):
                self._consumer.seek(TopicPartition(topic, partition, offset))


class TransactionStuck(RuntimeError):
    """The producer can neither commit nor abort: only a new producer (a restart) recovers."""


class _RetryBatch(Exception):
    pass


class _NotRun(Exception):
    """Stands for a message not handled because an earlier one in its batch failed."""


_Out = tuple["Output | RawOutput | None", "Message | None", "str | None"]
# Between two polls, at most this long is spent on a handler's background work (a rebuild), so
# polls stay far apart from max.poll.interval.ms however long the whole rebuild takes.
BACKGROUND_SLICE_S = 0.5
TXN_RETRY_BACKOFF_MS = 20
EXIT_TRANSACTION_STUCK = 70  # EX_SOFTWARE: the supervisor restarts the worker


def log_fields(incoming: Incoming) -> dict[str, str]:
    """What every log line about this input carries (infra/logs.py)."""
    return {
        "checkout_id": incoming.envelope.checkout_id,
        "message_id": incoming.envelope.message_id,
    }


def record_fields(record: Message) -> dict[str, str]:
    """The same for a record that may not decode: its key, and its place in the log (the one
    id a poison record is sure to have)."""
    topic, partition, offset = where(record)
    key = record.key()
    return {
        "checkout_id": key.decode(errors="replace") if key else "",
        "message_id": f"{topic}/{partition}/{offset}",
    }


def where_in(incoming: Incoming) -> tuple[str, int, int]:
    return incoming.topic, incoming.partition, incoming.offset


def _next_offsets(inputs: list[Message]) -> list[TopicPartition]:
    last: dict[tuple[str, int], int] = {}
    for r in inputs:
        topic, partition, offset = where(r)
        last[(topic, partition)] = max(last.get((topic, partition), -1), offset)
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def where(record: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a consumed record; always set on records without error."""
    topic, partition, offset = record.topic(), record.partition(), record.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset
