"""The analytics app as `saga analytics` runs it (a subprocess, so a test can SIGKILL it), on a
test's own topics, consumer group and database; and helpers to write and watch its inputs."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from events.envelope import Envelope
from events.serde import Serde
from infra.embedded.process import free_port
from infra.settings import Settings
from tests.fleet import worker_env
from tests.integration.kafka_helpers import committed_offsets, read_topic

PARTITIONS = 3
_COORDINATOR_MOVING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


def produce_in_transaction(
    bootstrap: str, topic: str, serde: Serde, envelopes: Iterable[Envelope[Any]], *, commit: bool
) -> None:
    """As the orchestrator writes checkout.events: inside a Kafka transaction."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"analytics-test-{uuid.uuid4()}",
            # As the orchestrator partitions (infra/processor.py), so a key lands where
            # infra.partitioner.partition_for says: librdkafka's default (CRC32) does not, and
            # the retention test's "one event per partition" then missed a partition at random.
            "partitioner": "murmur2_random",
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for env in envelopes:
        producer.produce(topic, key=env.key.encode(), value=serde.encode(env, topic))
    producer.flush(30)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


@dataclass
class AnalyticsProcess:
    settings: Settings
    database_url: str
    source: str
    alerts: str
    logdir: Path
    group: str = field(default_factory=lambda: f"analytics-{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def env(self) -> dict[str, str]:
        return {
            **worker_env(self.settings, self.database_url),
            "SAGA_PARTITIONS": str(PARTITIONS),
            "ANALYTICS_APP_ID": self.group,
            "ANALYTICS_WEB_PORT": str(self.port),
            "ANALYTICS_FLUSH_INTERVAL_MS": "200",
            "ANALYTICS_DATA_DIR": str(self.logdir / "faust"),
            "LOG_LEVEL": "INFO",
        }

    def start(self, **env: str) -> None:
        self.starts += 1
        log = (self.logdir / f"analytics-{self.starts}.log").open("wb")
        argv = [sys.executable, "-m", "infra.cli", "analytics"]
        argv += ["--source-topic", self.source, "--alerts-topic", self.alerts]
        self.proc = subprocess.Popen(argv, env={**self.env(), **env}, stdout=log, stderr=log)
        log.close()

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(60)
        self.proc = None
        if sig == signal.SIGKILL:
            # Known issue (issue 17's note): a faust member that joins while a SIGKILLed one is
            # still in the group was seen to get no partitions and never rebalance when the
            # dead member's session ended (2 of about 6 runs, on a loaded machine). The restart
            # tests here are about the rows, so the next start waits for the group to be empty.
            self.wait("the killed member's session to end", self._group_empty, timeout_s=60)

    def _group_empty(self) -> bool:
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap_servers or ""})
        try:
            described = admin.describe_consumer_groups([self.group])[self.group].result(10)
        except KafkaException:
            return False  # the coordinator is moving: ask again
        return not described.members

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill(signal.SIGTERM)

    def log_text(self) -> str:
        path = self.logdir / f"analytics-{self.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self) -> str:
        return self.log_text()[-4000:]

    def view(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/analytics", timeout=2) as r:
                return dict(json.loads(r.read()))
        except OSError:
            return None

    def wait(self, what: str, check: Callable[[], bool], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"analytics exited ({self.proc.returncode}):\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not within {timeout_s}s:\n{self.log_tail()}")
            time.sleep(0.1)  # polling, with the deadline above

    def live(self) -> dict[str, Any]:
        """The live view, polled until it answers: a view that timed out is not an empty one."""
        answers: list[dict[str, Any]] = []

        def answered() -> bool:
            view = self.view()
            if view is not None:
                answers.append(view)
            return view is not None

        self.wait("the live view to answer", answered, timeout_s=30)
        return answers[-1]

    def flushes(self) -> int:
        return int(self.live()["flushes"])

    def committed(self) -> int:
        """The group's committed offsets on the source, summed (-1 while the coordinator moves)."""
        bootstrap = self.settings.kafka_bootstrap_servers or ""
        try:
            return committed_offsets(bootstrap, self.group, self.source, 10)
        except KafkaException as e:
            # A broker just started answers NOT_COORDINATOR while it loads its groups.
            if not (e.args[0].retriable() or e.args[0].code() in _COORDINATOR_MOVING):
                raise
            return -1

    def end_of(self, records: int) -> int:
        """The summed offsets just past the first `records` data records of the source (what
        the group commits once it has consumed them; commit markers sit in between)."""
        bootstrap = self.settings.kafka_bootstrap_servers or ""
        seen = read_topic(bootstrap, self.source, until=lambda s: len(s) >= records)
        ends: dict[int, int] = {}
        for s in seen:
            ends[s.partition] = max(ends.get(s.partition, 0), s.offset + 1)
        return sum(ends.values())

    def settle(self, records: int) -> None:
        """Until the app has consumed all `records` data records of the source (its committed
        offsets reach the last one) and two flushes have run since."""
        target = self.end_of(records)
        self.wait(f"offsets committed up to {target}", lambda: self.committed() >= target)
        first = self.flushes()
        self.wait("two more flushes", lambda: self.flushes() >= first + 2)


def table_rows(database_url: str, table: str) -> dict[tuple[int, str, str], Any]:
    """(window start ms, metric, dimension) -> value."""
    with psycopg.connect(database_url) as conn:
        found = conn.execute(
            f"SELECT window_start, metric, dimension, value FROM {table}"
        ).fetchall()
    return {(round(s.timestamp() * 1000), m, d): v for s, m, d, v in found}


def full_rows(database_url: str, table: str) -> list[tuple[Any, ...]]:
    """Every column, updated_at included: what "PostgreSQL unchanged" means."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1, 3, 4").fetchall()


@contextlib.contextmanager
def running(app: AnalyticsProcess) -> Iterator[AnalyticsProcess]:
    app.start()
    try:
        yield app
    finally:
        app.stop()
