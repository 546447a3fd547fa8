"""Engine benchmarks: real broker, real runtime, real orchestrator, one process per worker role.

Closed loop (saturation): keep `window` checkouts in flight and count completions per second.
Open loop (latency): start checkouts at a fixed rate and time StartCheckout produced ->
CheckoutCompleted consumed, per checkout.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.services import start_command
from events.envelope import Envelope
from events.serde import Serde
from events.topics import (
    CHECKOUT_COMMANDS,
    CHECKOUT_EVENTS,
    CHECKOUT_SNAPSHOTS,
    CHECKOUT_SNAPSHOTS_FINAL,
    MAIN_TOPICS,
)
from infra.processor import producer_config
from infra.settings import child_environ
from infra.topics import ensure_topics

# The engine as one worker per adapter, and as one worker for all four (`--role adapters`).
SPLIT_ROLES = ("orchestrator", "inventory", "tax", "shipping", "payment")
COMBINED_ROLES = ("orchestrator", "adapters")
ENGINE_ROLES = COMBINED_ROLES


@dataclass
class Workers:
    procs: dict[str, list[subprocess.Popen[bytes]]]
    logs: list[Path] = field(default_factory=list)
    broker_pid: int | None = None  # counted as role "broker" when the bench runs the broker

    def tails(self, lines: int = 15) -> str:
        """The end of every worker's stderr: what to read when the engine does not answer."""
        out = []
        for log in self.logs:
            text = [
                x for x in log.read_text(errors="replace").splitlines() if not x.startswith("%")
            ]
            out.append(f"== {log.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(out)

    def cpu_seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for role, procs in self.procs.items():
            total = 0.0
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    t = psutil.Process(p.pid).cpu_times()
                    total += t.user + t.system
            out[role] = total
        if self.broker_pid is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                # Kafka's JVM is the process itself; Tansu may fork, so children count too.
                broker = psutil.Process(self.broker_pid)
                total = 0.0
                for p in (broker, *broker.children(recursive=True)):
                    t = p.cpu_times()
                    total += t.user + t.system
                out["broker"] = total
        return out


@contextlib.contextmanager
def workers(
    bootstrap: str,
    latency_ms: int,
    instances: int = 1,
    *,
    isolation_level: str = "read_committed",
    broker_pid: int | None = None,
    fetch_wait_ms: int = 500,
    roles: Sequence[str] = ENGINE_ROLES,
) -> Iterator[Workers]:
    # SAGA_PARTITIONS and SAGA_BATCH_SIZE pass through from the bench's own environment.
    env = child_environ(
        {
            "PYTHONPATH": os.getcwd(),
            "KAFKA_ISOLATION_LEVEL": isolation_level,
            "KAFKA_FETCH_WAIT_MS": str(fetch_wait_ms),
        }
    )
    procs: dict[str, list[subprocess.Popen[bytes]]] = {}
    logdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    logs: list[Path] = []
    try:
        for role in roles:
            procs[role] = []
            for i in range(instances):
                log = logdir / f"{role}-{i}.log"
                logs.append(log)
                with log.open("wb") as err:
                    procs[role].append(
                        subprocess.Popen(
                            [
                                sys.executable,
                                "-m",
                                "bench.worker",
                                role,
                                bootstrap,
                                str(latency_ms),
                                f"bench-{i}",
                            ],
                            env=env,
                            stderr=err,
                        )
                    )
        yield Workers(procs, logs, broker_pid)
    finally:
        for group in procs.values():
            for p in group:
                p.terminate()
        for group in procs.values():
            for p in group:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()


@dataclass
class Tracker:
    """Watches checkout.events for completions, by header and key (no decoding needed)."""

    bootstrap: str
    isolation_level: str = "read_committed"
    completed: dict[str, float] = field(default_factory=dict)  # checkout -> monotonic time
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Tracker:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"bench-{uuid.uuid4()}",
                "isolation.level": self.isolation_level,  # as the workers read (ADR 0009)
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        meta = consumer.list_topics(CHECKOUT_EVENTS, timeout=10).topics[CHECKOUT_EVENTS]
        ends = [
            TopicPartition(
                CHECKOUT_EVENTS,
                p,
                consumer.get_watermark_offsets(TopicPartition(CHECKOUT_EVENTS, p))[1],
            )
            for p in meta.partitions
        ]
        consumer.assign(ends)
        self._thread = threading.Thread(target=self._run, args=(consumer,), daemon=True)
        self._thread.start()
        return self

    def _run(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                # poll() returns as soon as one record arrives; then drain what is already
                # fetched without waiting. consume(n, t) would hold each read for up to t.
                first = consumer.poll(0.05)
                if first is None:
                    continue
                now = time.monotonic()
                for record in [first, *consumer.consume(1000, 0)]:
                    if record.error():
                        continue
                    headers = dict(record.headers() or [])
                    if headers.get("message_type") == b"CheckoutCompleted":
                        with self._lock:
                            self.completed.setdefault((record.key() or b"").decode(), now)
        finally:
            consumer.close()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def done(self, checkout_id: str) -> float | None:
        with self._lock:
            return self.completed.get(checkout_id)

    def count(self) -> int:
        with self._lock:
            return len(self.completed)


_producers: dict[str, Producer] = {}
WARM_UP_TOPIC = "bench.warm-up"


class Starter:
    """Produces StartCheckout. The producer is shared and warm: a new idempotent producer takes
    ~0.5 s to deliver its first record, which would land on the first checkouts' latency."""

    def __init__(self, bootstrap: str, serde: Serde) -> None:
        if bootstrap not in _producers:
            producer = Producer(producer_config(bootstrap))
            ensure_topics(bootstrap, 1, 1, (WARM_UP_TOPIC,))  # never a topic operators read
            producer.produce(WARM_UP_TOPIC, key=b"warm-up", value=b"")
            producer.flush(30)
            _producers[bootstrap] = producer
        self._producer = _producers[bootstrap]
        self._serde = serde
        self.started: dict[str, float] = {}

    def start(self) -> str:
        checkout_id = f"bench-{uuid.uuid4().hex[:16]}"
        envelope = Envelope.new(
            start_command(checkout_id), occurred_at=int(time.time() * 1000), producer="bench"
        )
        self.started[checkout_id] = time.monotonic()
        self._producer.produce(
            CHECKOUT_COMMANDS,
            key=checkout_id.encode(),
            value=self._serde.encode(envelope, CHECKOUT_COMMANDS),
        )
        self._producer.poll(0)
        return checkout_id

    def flush(self) -> None:
        self._producer.flush(30)


# What the engine writes per checkout, its snapshot caches included (they were left out before
# 2026-12-03, hiding one record per saga per orchestrator transaction: ADR 0021).
COUNTED_TOPICS = (*MAIN_TOPICS, CHECKOUT_SNAPSHOTS, CHECKOUT_SNAPSHOTS_FINAL)


def total_offsets(bootstrap: str) -> int:
    """The end offsets of COUNTED_TOPICS summed: records plus one transaction marker per
    partition a transaction wrote to."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}"})
    try:
        total = 0
        for topic in COUNTED_TOPICS:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            for p in meta.partitions:
                total += consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return total
    finally:
        consumer.close()


def warm_up(
    bootstrap: str,
    serde: Serde,
    timeout_s: float = 180,
    running: Workers | None = None,
    isolation_level: str = "read_committed",
) -> None:
    """Until every worker has joined its group and a checkout goes all the way through."""
    with Tracker(bootstrap, isolation_level) as tracker:
        starter = Starter(bootstrap, serde)
        ids = [starter.start() for _ in range(20)]
        starter.flush()
        deadline = time.monotonic() + timeout_s
        while not all(tracker.done(c) for c in ids):
            if time.monotonic() > deadline:
                done = sum(1 for c in ids if tracker.done(c))
                tails = running.tails() if running else ""
                raise RuntimeError(f"engine completed {done}/20 warm-up checkouts\n{tails}")
            time.sleep(0.05)


@dataclass(frozen=True)
class Saturation:
    completed_per_s: float
    completed: int
    seconds: float
    messages_per_checkout: float
    cpu_seconds_per_checkout: dict[str, float]


def closed_loop(
    bootstrap: str,
    serde: Serde,
    running: Workers,
    *,
    window: int,
    seconds: float,
    isolation_level: str = "read_committed",
) -> Saturation:
    offsets_before = total_offsets(bootstrap)
    cpu_before = running.cpu_seconds()
    with Tracker(bootstrap, isolation_level) as tracker:
        starter = Starter(bootstrap, serde)
        in_flight: set[str] = {starter.start() for _ in range(window)}
        starter.flush()
        began = time.monotonic()
        end = began + seconds
        done_in_window = 0
        last_done = began
        while time.monotonic() < end:
            finished = {c for c in in_flight if tracker.done(c) is not None}
            done_in_window += len(finished)
            last_done = max([last_done, *(tracker.done(c) or began for c in finished)])
            in_flight -= finished
            for _ in range(len(finished)):
                in_flight.add(starter.start())
            time.sleep(0.005)  # the client's own pacing, not a wait for a result
        elapsed = time.monotonic() - began
        # The rate up to the last completion, not to the end of the window. At saturation each
        # hop takes the whole window in one batch, so checkouts complete in waves of `window`
        # (2,400 and 1,600 in 12 s, never between): counted to the window's end, the phase of
        # the last wave added or dropped a whole wave, +-window/seconds (+-33/s at 400 in 12 s).
        rated = last_done - began if done_in_window else elapsed
        # Let the stragglers finish so the message and CPU counts cover whole checkouts.
        deadline = time.monotonic() + 60
        while any(tracker.done(c) is None for c in in_flight) and time.monotonic() < deadline:
            time.sleep(0.05)
        total_completed = sum(1 for c in starter.started if tracker.done(c) is not None)
    cpu_after = running.cpu_seconds()
    messages = total_offsets(bootstrap) - offsets_before
    return Saturation(
        completed_per_s=done_in_window / rated,
        completed=done_in_window,
        seconds=rated,
        messages_per_checkout=messages / max(total_completed, 1),
        cpu_seconds_per_checkout={
            role: (cpu_after[role] - cpu_before[role]) / max(total_completed, 1)
            for role in cpu_after
        },
    )


# Thread names of HotSpot's JIT compilers (/proc/<pid>/task/<tid>/comm, cut to 15 bytes).
_COMPILER_THREAD = ("C1 CompilerThre", "C2 CompilerThre")


def compiler_cpu_seconds(pid: int | None) -> float:
    """CPU the process's JIT compiler threads have used (0 for a broker that is not a JVM)."""
    if pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            if name.startswith(_COMPILER_THREAD):
                fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


@dataclass(frozen=True)
class WarmUp:
    seconds: float
    compiler_cpu_s: float  # the broker's JIT compilers' CPU during the warm-up
    last_compiler_share: float  # of one core, in the last window: below `quiet_share` unless cut


def warm_broker(
    bootstrap: str,
    serde: Serde,
    running: Workers,
    *,
    window: int,
    isolation_level: str = "read_committed",
    quiet_share: float = 0.1,
    window_s: float = 5,
    max_s: float = 150,
) -> WarmUp:
    """Load the engine until the broker's JIT compilers go quiet.

    A fresh Kafka JVM spends minutes compiling the broker's hot paths: in the first minute of
    load its compiler threads used half a core of the two, and the broker's CPU per checkout fell
    from 12.6 ms to 3.4 ms over 80 s (2026-12-03). A section measured on a cold broker measures
    the JIT, not the engine; a broker in production runs warm for weeks."""
    began = time.monotonic()
    compiled_before = compiler_cpu_seconds(running.broker_pid)
    share = 0.0
    while True:
        before, t0 = compiler_cpu_seconds(running.broker_pid), time.monotonic()
        closed_loop(
            bootstrap,
            serde,
            running,
            window=window,
            seconds=window_s,
            isolation_level=isolation_level,
        )
        share = (compiler_cpu_seconds(running.broker_pid) - before) / (time.monotonic() - t0)
        if share < quiet_share or time.monotonic() - began > max_s:
            break
    return WarmUp(
        seconds=time.monotonic() - began,
        compiler_cpu_s=compiler_cpu_seconds(running.broker_pid) - compiled_before,
        last_compiler_share=share,
    )


@dataclass(frozen=True)
class Latency:
    offered_per_s: float
    completed: int
    lost: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


def open_loop(
    bootstrap: str,
    serde: Serde,
    *,
    rate: float,
    seconds: float,
    isolation_level: str = "read_committed",
) -> Latency:
    with Tracker(bootstrap, isolation_level) as tracker:
        starter = Starter(bootstrap, serde)
        began = time.monotonic()
        n = int(rate * seconds)
        for i in range(n):
            target = began + i / rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the arrival schedule itself
            starter.start()
        starter.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(tracker.done(c) is None for c in starter.started):
            time.sleep(0.05)
        latencies = sorted(
            (done - started) * 1000
            for c, started in starter.started.items()
            if (done := tracker.done(c)) is not None
        )
    return Latency(
        offered_per_s=rate,
        completed=len(latencies),
        lost=n - len(latencies),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
    )


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]
