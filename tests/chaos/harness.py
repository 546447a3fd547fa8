"""What the chaos run watches while it drives: every event on `checkout.events` written since
the run began (`EventTail`, deduplicated by message id, with the wall time each was first seen)
and the PostgreSQL stock tables sampled on a cadence (`StockSampler`)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from events import messages as m
from events.serde import Serde
from events.topics import CHECKOUT_EVENTS

TERMINAL = (m.CheckoutCompleted, m.CheckoutFailed, m.CheckoutCancelled, m.CheckoutNeedsAttention)
SAMPLER_APP = "chaos-stock-sampler"  # application_name of the stock sampler's connections


@dataclass
class Seen:
    message: Any
    at: float  # time.monotonic() when the tail first read it


def _from_the_end(bootstrap: str, isolation: str, group: str, topics: tuple[str, ...]) -> Consumer:
    """A consumer assigned to every partition of `topics` at its end as it is now, resolved
    before anything is driven: nothing of the run is missed."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{group}-{uuid.uuid4()}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    starts = []
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        for p in meta.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            starts.append(TopicPartition(topic, p, high if high >= 0 else OFFSET_END))
    consumer.assign(starts)
    return consumer


class EventTail:
    """A read_committed reader of `checkout.events` from its end at start: everything written
    afterwards, per checkout, in log order, one entry per message id."""

    def __init__(self, bootstrap: str, serde: Serde, isolation: str) -> None:
        self._serde = serde
        self._consumer = _from_the_end(bootstrap, isolation, "chaos-tail", (CHECKOUT_EVENTS,))
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self.events: dict[str, list[Seen]] = defaultdict(list)
        self.terminal_at: dict[str, float] = {}
        self.records = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-tail", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for record in self._consumer.consume(500, 0.1):
                if record.error() or record.key() is None:
                    continue
                envelope = self._serde.decode(record.value() or b"", CHECKOUT_EVENTS)
                checkout_id = (record.key() or b"").decode()
                now = time.monotonic()
                with self._lock:
                    self.records += 1
                    if envelope.message_id in self._ids:
                        continue
                    self._ids.add(envelope.message_id)
                    self.events[checkout_id].append(Seen(envelope.message, now))
                    if isinstance(envelope.message, TERMINAL):
                        self.terminal_at.setdefault(checkout_id, now)

    def of(self, checkout_id: str) -> list[Any]:
        with self._lock:
            return [s.message for s in self.events.get(checkout_id, ())]

    def count(self, checkout_id: str) -> int:
        """How many events of the checkout have been read: a driver reacts only when it grew."""
        with self._lock:
            return len(self.events.get(checkout_id, ()))

    def first(self, checkout_id: str, kind: type | tuple[type, ...]) -> Any | None:
        return next((e for e in self.of(checkout_id) if isinstance(e, kind)), None)

    def terminal(self, checkout_id: str) -> Any | None:
        return self.first(checkout_id, TERMINAL)

    def wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Poll `done` until it holds or the deadline passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done():
                return True
            time.sleep(0.2)
        return done()


class LogTail(EventTail):
    """The same reader over other topics (the adapters' requests, their replies), keeping
    every record with its place in the log: the evidence a report's failure is read from."""

    def __init__(
        self, bootstrap: str, serde: Serde, isolation: str, topics: tuple[str, ...]
    ) -> None:
        self._serde = serde
        self._consumer = _from_the_end(bootstrap, isolation, "chaos-log", topics)
        self._lock = threading.Lock()
        self.lines: dict[str, list[tuple[float, str]]] = defaultdict(list)  # (monotonic, what)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-log-tail", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for record in self._consumer.consume(500, 0.1):
                if record.error() or record.key() is None:
                    continue
                topic = record.topic() or ""
                envelope = self._serde.decode(record.value() or b"", topic)
                line = (
                    f"{topic}[{record.partition()}]@{record.offset()}"
                    f" {envelope.message_id[:8]} {envelope.message!r}"
                )
                with self._lock:
                    self.lines[(record.key() or b"").decode()].append((time.monotonic(), line))


@dataclass
class StockSample:
    at: float
    sku: str
    on_hand: int
    reserved: int
    reserved_lines: int  # units in reservation_lines whose reservation is 'reserved'
    committed_lines: int


@dataclass
class StockSampler:
    """Reads stock and reservations in one snapshot (REPEATABLE READ) every `every_s`."""

    database_url: str
    skus: tuple[str, ...]
    every_s: float = 0.25
    samples: list[StockSample] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, error)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> list[StockSample]:
        # Named, so the conductor's connection kills (aimed at the engine) spare the observer.
        with psycopg.connect(self.database_url, application_name=SAMPLER_APP) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            stock = conn.execute(
                "SELECT sku, on_hand, reserved FROM stock WHERE sku = ANY(%s)", (list(self.skus),)
            ).fetchall()
            lines = dict.fromkeys(self.skus, (0, 0))
            for sku, reserved, committed in conn.execute(
                "SELECT l.sku,"
                " coalesce(sum(l.quantity) FILTER (WHERE r.status = 'reserved'), 0),"
                " coalesce(sum(l.quantity) FILTER (WHERE r.status = 'committed'), 0)"
                " FROM reservation_lines l JOIN reservations r ON r.id = l.reservation_id"
                " WHERE l.sku = ANY(%s) GROUP BY l.sku",
                (list(self.skus),),
            ).fetchall():
                lines[sku] = (int(reserved), int(committed))
        now = time.monotonic()
        return [
            StockSample(now, sku, int(on_hand), int(reserved), *lines[sku])
            for sku, on_hand, reserved in stock
        ]

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.samples.extend(self.sample())
            except psycopg.Error as e:  # a sample lost is reported, never silently skipped
                self.errors.append((time.monotonic(), repr(e)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-stock", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
