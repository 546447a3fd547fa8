"""The projector: a Kafka -> PostgreSQL sink loop with exactly-once apply.

Why not infra.processor.Processor: that loop commits its input offsets *in a Kafka transaction*
together with the records it produces. A sink produces nothing to Kafka; its effect is rows in
PostgreSQL, so the offsets must commit in the *PostgreSQL* transaction that writes those rows
(docs/decisions/0007-projections.md). Consequences, all visible below:

* positions come from `projection_offsets`, never from Kafka's committed offsets: on assignment
  every partition is sought to the stored offset;
* each batch is one PostgreSQL transaction: rows + applied message ids + next offsets;
* the stored offsets are row-locked and compared with where the consumer is. If they differ
  (another instance applied more, or a replay swapped in a schema that is behind), the
  transaction is rolled back and the consumer re-seeks to the stored offset. Re-applying is
  harmless (deduplication by message_id); skipping is impossible.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from db import migrate
from events.serde import Serde
from projections import store
from projections.apply import ApplyResult, Record, Topics, apply_records
from projections.metrics import ProjectorMetrics
from projections.model import CheckoutProjection
from projections.store import TopicPartitionKey
from projections.tables import DEFAULT_SCHEMA

log = logging.getLogger(__name__)
PROJECTION = "checkouts"
CACHE_LIMIT = 50_000  # checkout projections kept in memory; a miss costs one fold from Postgres


@dataclass
class ProjectorConfig:
    bootstrap_servers: str
    database_url: str
    projection: str = PROJECTION
    schema: str = DEFAULT_SCHEMA
    group: str = f"projector-{PROJECTION}"
    topics: Topics = field(default_factory=Topics)
    batch_size: int = 500
    poll_timeout_s: float = 0.2
    session_timeout_ms: int = 6000
    # Manual assignment (replay): these partitions, no consumer group rebalancing.
    partitions: Sequence[TopicPartitionKey] | None = None
    lag_interval_s: float = 5.0
    migrate: bool = True
    isolation_level: str = "read_committed"  # Settings.kafka_isolation_level (ADR 0009)
    # librdkafka tuning from the composition root (infra.processor.consumer_config); what the
    # projector's correctness needs (offsets kept in PostgreSQL, never auto-committed) is set
    # by the projector itself and always wins.
    client_config: Mapping[str, Any] = field(default_factory=dict)


class _Reseek(Exception):
    def __init__(self, stored: dict[TopicPartitionKey, int]) -> None:
        super().__init__(stored)
        self.stored = stored


class Projector:
    def __init__(
        self, config: ProjectorConfig, serde: Serde, metrics: ProjectorMetrics | None = None
    ) -> None:
        self.config = config
        self._serde = serde
        self._metrics = metrics
        self._stop = threading.Event()
        self._positions: dict[TopicPartitionKey, int] = {}
        self._cache: dict[str, CheckoutProjection] = {}
        self._last_lag = 0.0
        self._conn: psycopg.Connection[Any] | None = None
        self._consumer: Consumer | None = None
        self.applied = 0  # events applied (not duplicates), for tests and progress bars
        self.last_result = ApplyResult()

    # --- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop())

    def start(self) -> None:
        cfg = self.config
        if cfg.migrate:
            migrate.upgrade(cfg.database_url, schema=cfg.schema)
        # autocommit: every unit of work is an explicit `transaction()` block. No server-side
        # prepared statements: a replay renames schemas under us and plans must re-resolve.
        self._conn = psycopg.connect(cfg.database_url, autocommit=True, prepare_threshold=None)
        self._consumer = Consumer(
            {
                **cfg.client_config,
                "bootstrap.servers": cfg.bootstrap_servers,
                "group.id": cfg.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": cfg.isolation_level,
                "session.timeout.ms": cfg.session_timeout_ms,
            }
        )
        if cfg.partitions is not None:
            self._assign([TopicPartition(t, p) for t, p in cfg.partitions])
        else:
            self._consumer.subscribe(
                [cfg.topics.checkout_events, cfg.topics.orders_events],
                on_assign=lambda c, ps: self._assign(ps),
                on_revoke=lambda c, ps: self._revoke(ps),
                on_lost=lambda c, ps: self._revoke(ps),
            )

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        self.start()
        try:
            while not self._stop.is_set() and not until():
                self.step()
        finally:
            self.close()

    def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()

    @property
    def positions(self) -> dict[TopicPartitionKey, int]:
        return dict(self._positions)

    # --- assignment: positions come from PostgreSQL ---------------------------------------------

    def _assign(self, partitions: Sequence[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        stored = self._stored_positions(keys)
        for tp in partitions:
            offset = stored[(tp.topic, tp.partition)]
            tp.offset = offset if offset > 0 else OFFSET_BEGINNING
            self._positions[(tp.topic, tp.partition)] = offset
        assert self._consumer is not None
        self._consumer.assign(list(partitions))
        log.info("projector %s assigned %s", self.config.projection, sorted(stored.items()))

    def _revoke(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            self._positions.pop((tp.topic, tp.partition), None)
        self._cache.clear()  # another instance may change these checkouts meanwhile

    def _stored_positions(self, keys: Sequence[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        conn = self._db()
        with conn.transaction():
            store.use_schema(conn, self.config.schema)
            store.init_offsets(conn, self.config.projection, dict.fromkeys(keys, 0))
            stored = store.read_offsets(conn, self.config.projection)
        return {k: stored[k] for k in keys}

    # --- one batch ------------------------------------------------------------------------------

    def step(self) -> int:
        """Consume and apply one batch in one PostgreSQL transaction; returns records handled."""
        consumer = self._kafka()
        messages = consumer.consume(self.config.batch_size, self.config.poll_timeout_s)
        batch = self._usable(messages)
        self._report_lag()
        if not batch:
            self._advance_idle()
            return 0
        next_offsets = self._next_offsets(batch)
        try:
            result = self._apply(batch, next_offsets)
        except _Reseek as r:
            self._reseek(r.stored)
            return 0
        self._committed(result, next_offsets)
        return len(batch)

    def _usable(self, messages: Sequence[Message]) -> list[Record]:
        out = []
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", error)
                continue
            key = (msg.topic() or "", msg.partition() or 0)
            position = self._positions.get(key)
            offset = msg.offset() or 0
            if position is None or offset < position:
                continue  # revoked meanwhile, or fetched before a re-seek
            out.append(Record(key[0], key[1], offset, msg.value() or b""))
        return out

    def _next_offsets(self, batch: Sequence[Record]) -> dict[TopicPartitionKey, int]:
        nxt: dict[TopicPartitionKey, int] = {}
        for r in batch:
            nxt[(r.topic, r.partition)] = max(nxt.get((r.topic, r.partition), 0), r.offset + 1)
        return nxt

    def _apply(
        self, batch: Sequence[Record], next_offsets: dict[TopicPartitionKey, int]
    ) -> ApplyResult:
        conn = self._db()
        cfg = self.config
        with conn.transaction():
            store.use_schema(conn, cfg.schema)
            self._check_positions(conn, list(next_offsets))
            result = apply_records(conn, self._serde, batch, topics=cfg.topics, cache=self._cache)
            store.save_offsets(conn, cfg.projection, next_offsets)
        return result

    def _check_positions(self, conn: store.Conn, keys: Sequence[TopicPartitionKey]) -> None:
        stored = store.lock_offsets(conn, self.config.projection, keys)
        moved = {k: stored.get(k, 0) for k in keys if stored.get(k, 0) != self._positions[k]}
        if moved:
            raise _Reseek(moved)  # leaves the transaction block: rolled back

    def _reseek(self, stored: dict[TopicPartitionKey, int]) -> None:
        log.warning(
            "projector %s: stored offsets moved, re-seeking %s", self.config.projection, stored
        )
        self._cache.clear()  # the schema under us may have been swapped: trust only Postgres
        consumer = self._kafka()
        for (topic, partition), offset in stored.items():
            self._positions[(topic, partition)] = offset
            consumer.seek(
                TopicPartition(topic, partition, offset if offset > 0 else OFFSET_BEGINNING)
            )
        if self._metrics:
            self._metrics.reseeks.labels(self.config.projection).inc()

    def _committed(self, result: ApplyResult, next_offsets: dict[TopicPartitionKey, int]) -> None:
        self._positions.update(next_offsets)
        if len(self._cache) > CACHE_LIMIT:
            self._cache.clear()
        self._cache.update(result.touched)
        self.applied += result.applied
        self.last_result = result
        m = self._metrics
        if m is not None:
            name = self.config.projection
            m.batches.labels(name).inc()
            for outcome in ("applied", "duplicates", "parked", "unparked", "undecodable"):
                count = getattr(result, outcome)
                if count:
                    m.events.labels(name, outcome).inc(count)
            for (topic, partition), offset in next_offsets.items():
                m.applied_offset.labels(name, topic, str(partition)).set(offset)

    def _advance_idle(self) -> None:
        """With nothing to apply, move stored offsets past what the consumer skipped on its own
        (transaction markers, aborted records it filtered): otherwise an idle partition would
        show a lag of one marker forever, and a replay would never see itself caught up."""
        moved: dict[TopicPartitionKey, int] = {}
        for tp in self._kafka().position([TopicPartition(t, p) for t, p in self._positions]):
            key = (tp.topic, tp.partition)
            if tp.offset >= 0 and key in self._positions and tp.offset > self._positions[key]:
                moved[key] = tp.offset
        if not moved:
            return
        conn = self._db()
        try:
            with conn.transaction():
                store.use_schema(conn, self.config.schema)
                self._check_positions(conn, list(moved))
                store.save_offsets(conn, self.config.projection, moved)
        except _Reseek as r:
            self._reseek(r.stored)
            return
        self._positions.update(moved)

    # --- lag --------------------------------------------------------------------------------------

    def end_offsets(self, timeout: float = 5.0) -> dict[TopicPartitionKey, int]:
        consumer = self._kafka()
        out = {}
        for topic, partition in list(self._positions):
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            out[(topic, partition)] = high
        return out

    def lag(self) -> dict[TopicPartitionKey, int]:
        ends = self.end_offsets()
        return {k: max(0, ends[k] - self._positions.get(k, 0)) for k in ends}

    def _report_lag(self) -> None:
        if self._metrics is None:
            return
        now = time.monotonic()
        if now - self._last_lag < self.config.lag_interval_s:
            return
        self._last_lag = now
        try:
            lag = self.lag()
        except Exception as e:  # a slow broker must not stop the projection
            log.warning("lag not measured: %s", e)
            return
        for (topic, partition), value in lag.items():
            self._metrics.lag.labels(self.config.projection, topic, str(partition)).set(value)
        conn = self._db()
        with conn.transaction():
            store.use_schema(conn, self.config.schema)
            parked = conn.execute("SELECT count(*) FROM projection_parked_events").fetchone()
        self._metrics.parked.labels(self.config.projection).set(parked[0] if parked else 0)

    # --- plumbing ---------------------------------------------------------------------------------

    def _db(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.config.database_url, autocommit=True, prepare_threshold=None
            )
        return self._conn

    def _kafka(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("projector not started")
        return self._consumer


def partitions_by_topic(keys: Sequence[TopicPartitionKey]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for topic, partition in keys:
        out[topic].append(partition)
    return dict(out)
