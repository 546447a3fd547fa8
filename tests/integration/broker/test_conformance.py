"""The broker guarantees the engine relies on (ARCHITECTURE.md §3, §5), one test each.

These test the broker, not the engine: readers are read_committed wherever the guarantee is about
read_committed, whichever isolation the engine would choose for this broker. A test whose
guarantee is not about the last stable offset ends its reads on a sentinel record from a producer
of its own, so it fails only for its own guarantee (see `support.write_sentinel`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from confluent_kafka import Consumer as _Consumer
from confluent_kafka import IsolationLevel, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from infra.embedded.stack import _BROKERS, reader_isolation
from infra.settings import Settings
from tests.integration.broker.support import (
    READ_COMMITTED,
    PartitionReader,
    Record,
    idempotent_producer,
    new_topic,
    produce_all,
    transactional_producer,
    write_sentinel,
)

pytestmark = pytest.mark.integration

GROUP_MEMBER = Path(__file__).with_name("group_member.py")


def values_of(records: list[Record]) -> list[bytes]:
    return [r.value for r in records]


def ends_with(value: bytes) -> Callable[[list[Record]], bool]:
    return lambda records: bool(records) and records[-1].value == value


def at_least(count: int) -> Callable[[list[Record]], bool]:
    return lambda records: len(records) >= count


# 1 ------------------------------------------------------------------------------------------


def test_aborted_transactions_are_invisible_to_read_committed(bootstrap: str) -> None:
    topic = new_topic(bootstrap, "aborted")
    producer = transactional_producer(bootstrap)
    aborted = [f"aborted-{i}".encode() for i in range(10)]
    committed = [f"committed-{i}".encode() for i in range(10)]

    producer.begin_transaction()
    produce_all(producer, topic, aborted)  # acknowledged: they are in the log
    producer.abort_transaction(30)
    producer.begin_transaction()
    produce_all(producer, topic, committed)
    producer.commit_transaction(30)
    sentinel = write_sentinel(bootstrap, topic)

    with PartitionReader(bootstrap, topic, isolation=READ_COMMITTED) as reader:
        records = reader.until(ends_with(sentinel), 30, "reading up to the sentinel")
    seen = values_of(records)
    leaked = [v for v in seen if v in aborted]
    assert not leaked, f"read_committed reader saw {len(leaked)} of {len(aborted)} aborted records"
    assert seen == [*committed, sentinel], f"unexpected records: {seen}"


# 2 ------------------------------------------------------------------------------------------


def test_the_last_stable_offset_advances_when_a_transaction_commits(bootstrap: str) -> None:
    """Each round one of three transactional producers (as adapters replying into one partition)
    commits a transaction; read_committed must see it promptly with nobody writing after it."""
    topic = new_topic(bootstrap, "lso")
    producers = [transactional_producer(bootstrap) for _ in range(3)]
    rounds, per_round, prompt_s = 60, 2, 5.0
    written: list[bytes] = []
    slowest = 0.0
    with PartitionReader(bootstrap, topic, isolation=READ_COMMITTED) as reader:
        for n in range(rounds):
            producer = producers[n % len(producers)]
            values = [f"round-{n}-{i}".encode() for i in range(per_round)]
            producer.begin_transaction()
            produce_all(producer, topic, values)
            producer.commit_transaction(30)
            committed_at = time.monotonic()
            written += values
            try:
                reader.until(
                    at_least(len(written)),
                    prompt_s,
                    f"round {n + 1}/{rounds}: records of a committed transaction visible",
                )
            except AssertionError as e:
                raise AssertionError(
                    f"{e}; last stable offset held below committed records"
                ) from None
            slowest = max(slowest, time.monotonic() - committed_at)
        assert values_of(reader.records) == written, "read_committed reader got other records"
    assert slowest < prompt_s


# 3 ------------------------------------------------------------------------------------------


def _log_ends(bootstrap: str, topic: str, partition: int) -> dict[str, int]:
    """The partition's end as every ListOffsets path reports it."""
    tp = TopicPartition(topic, partition)
    consumer = _Consumer({"bootstrap.servers": bootstrap, "group.id": f"c-{uuid.uuid4().hex}"})
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        _, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
        ends = {"high watermark": high}
        for label, level in (
            ("ListOffsets latest", IsolationLevel.READ_UNCOMMITTED),
            ("ListOffsets latest read_committed", IsolationLevel.READ_COMMITTED),
        ):
            futures = admin.list_offsets({tp: OffsetSpec.latest()}, isolation_level=level)
            ends[label] = futures[tp].result(timeout=10).offset
        return ends
    finally:
        consumer.close()


def _assert_log_end(bootstrap: str, topic: str, partition: int, end: int, what: str) -> None:
    deadline = time.monotonic() + 5  # a single node acknowledges after the append: no lag
    ends = _log_ends(bootstrap, topic, partition)
    while any(v != end for v in ends.values()) and time.monotonic() < deadline:
        ends = _log_ends(bootstrap, topic, partition)
    wrong = ", ".join(f"{k} {v}" for k, v in ends.items() if v != end)
    assert not wrong, f"{what}: log end is {end}, broker reports {wrong}"


def test_list_offsets_reports_the_true_log_end(bootstrap: str) -> None:
    topic = new_topic(bootstrap, "log-end", partitions=2)
    pad = b"x" * 100
    # Partition 0: 20,000 records from an idempotent producer, in large batches: end == count.
    count = 20_000
    plain = idempotent_producer(
        bootstrap, **{"linger.ms": 100, "batch.size": 1_000_000, "batch.num.messages": 10_000}
    )
    produce_all(plain, topic, (b"plain-%05d-" % i + pad for i in range(count)), partition=0)
    _assert_log_end(bootstrap, topic, 0, count, f"{count} idempotent records")
    # Partition 1: 3 committed transactions of 1,000: each commit marker takes one offset, so
    # the data is at 0-999, 1001-2000, 2002-3001 and the end is 3,003.
    txns, per_txn = 3, 1_000
    producer = transactional_producer(bootstrap)
    for t in range(txns):
        producer.begin_transaction()
        batch = (b"txn-%05d-" % (t * per_txn + i) + pad for i in range(per_txn))
        produce_all(producer, topic, batch, partition=1)
        producer.commit_transaction(30)
    _assert_log_end(
        bootstrap, topic, 1, txns * per_txn + txns, f"{txns} transactions of {per_txn} records"
    )
    # The end is true: the record just before it is the last one written.
    with PartitionReader(bootstrap, topic, (0,), start=count - 1) as reader:
        last = reader.until(at_least(1), 10, f"reading offset {count - 1}")[0]
    assert (last.offset, last.value) == (count - 1, b"plain-%05d-" % (count - 1) + pad)
    last_data = txns * per_txn + txns - 2  # the final marker is at end - 1
    with PartitionReader(bootstrap, topic, (1,), start=last_data) as reader:
        last = reader.until(at_least(1), 10, f"reading offset {last_data}")[0]
    assert (last.offset, last.value) == (last_data, b"txn-%05d-" % (txns * per_txn - 1) + pad)


# 4 ------------------------------------------------------------------------------------------


def test_concurrent_producers_into_one_partition_lose_nothing_to_a_concurrent_reader(
    bootstrap: str,
) -> None:
    topic = new_topic(bootstrap, "fan-in")
    writers, per_writer, per_txn = 4, 2_500, 100
    expected = {b"w%d-%05d" % (w, i) for w in range(writers) for i in range(per_writer)}
    failures: list[BaseException] = []

    def write(w: int) -> None:
        try:
            producer = transactional_producer(bootstrap)
            for start in range(0, per_writer, per_txn):
                producer.begin_transaction()
                values = (b"w%d-%05d" % (w, i) for i in range(start, start + per_txn))
                produce_all(producer, topic, values)
                producer.commit_transaction(30)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(writers)]
    with PartitionReader(bootstrap, topic, isolation=READ_COMMITTED) as reader:
        reader.poll()
        for t in threads:
            t.start()
        reader.until(lambda _: not any(t.is_alive() for t in threads), 120, "producers finishing")
        assert not failures, f"a producer failed: {failures[0]!r}"
        sentinel = write_sentinel(bootstrap, topic)
        records = reader.until(ends_with(sentinel), 30, "reading up to the sentinel")

    data = records[:-1]
    counts = Counter(r.value for r in data)
    missing = expected - counts.keys()
    assert not missing, (
        f"{len(missing)} of {len(expected)} records never delivered, e.g. {sorted(missing)[:3]}"
    )
    duplicated = sorted(v for v, c in counts.items() if c > 1)
    assert not duplicated, f"{len(duplicated)} records delivered twice, e.g. {duplicated[:3]}"
    assert counts.keys() == expected, "records nobody wrote were delivered"
    offsets = [r.offset for r in records]
    backwards = [(a, b) for a, b in itertools.pairwise(offsets) if b <= a]
    assert not backwards, f"offsets not strictly increasing, e.g. {backwards[:3]}"
    # Every offset in the log is a delivered record or a commit marker (one per transaction).
    holes = offsets[-1] + 1 - len(offsets)
    markers = writers * (per_writer // per_txn)
    assert offsets[0] == 0, f"the first record is at offset {offsets[0]}"
    assert holes <= markers, f"{holes} offsets skipped, only {markers} commit markers written"


# 5 ------------------------------------------------------------------------------------------

_FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


def test_a_zombie_producer_is_fenced(bootstrap: str) -> None:
    topic = new_topic(bootstrap, "zombie")
    transactional_id = f"conformance-zombie-{uuid.uuid4().hex}"
    zombie = transactional_producer(bootstrap, transactional_id)
    zombie.begin_transaction()
    from_zombie = [f"zombie-{i}".encode() for i in range(5)]
    produce_all(zombie, topic, from_zombie)  # acknowledged: in the log, uncommitted

    successor = transactional_producer(bootstrap, transactional_id)  # bumps the epoch
    problems: list[str] = []
    try:
        zombie.commit_transaction(10)
        problems.append("the zombie's commit succeeded after its transactional.id was taken over")
    except KafkaException as e:
        error: KafkaError = e.args[0]
        if not (error.fatal() or error.code() in _FENCED):
            problems.append(f"the zombie's commit was not fenced but failed with {error.name()}")

    from_successor = [f"successor-{i}".encode() for i in range(5)]
    successor.begin_transaction()
    produce_all(successor, topic, from_successor)
    successor.commit_transaction(30)
    sentinel = write_sentinel(bootstrap, topic)
    with PartitionReader(bootstrap, topic, isolation=READ_COMMITTED) as reader:
        seen = values_of(reader.until(ends_with(sentinel), 30, "reading up to the sentinel"))
    leaked = [v for v in seen if v in from_zombie]
    if leaked:
        problems.append(f"read_committed reader saw {len(leaked)} records of the fenced zombie")
    assert not problems, "; ".join(problems)
    assert seen == [*from_successor, sentinel], f"unexpected records: {seen}"


# 6 ------------------------------------------------------------------------------------------


class Member:
    """A group_member.py process; its JSON lines update this object under `cond`."""

    def __init__(self, cond: threading.Condition, argv: list[str], stderr: IO[bytes]) -> None:
        self.cond = cond
        self.assignment: set[int] = set()
        self.values: set[str] = set()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            with self.cond:
                if event["event"] == "assigned":
                    self.assignment = set(event["partitions"])
                elif event["event"] == "revoked":
                    self.assignment -= set(event["partitions"])
                elif event["event"] == "record":
                    self.values.add(event["value"])
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_a_group_rebalances_when_a_member_is_killed(
    bootstrap: str, settings: Settings, tmp_path: Path
) -> None:
    partitions = 4
    everything = set(range(partitions))
    topic = new_topic(bootstrap, "group", partitions=partitions)
    group = f"conformance-group-{uuid.uuid4().hex}"
    argv = [
        sys.executable,
        str(GROUP_MEMBER),
        bootstrap,
        topic,
        group,
        "--session-timeout-ms",
        "6000",
        "--isolation",
        reader_isolation(settings),  # not about isolation: as the engine reads this broker
    ]
    cond = threading.Condition()
    logs = [(tmp_path / f"member-{n}.log").open("wb") for n in (1, 2)]
    survivor, victim = (Member(cond, argv, log) for log in logs)
    producer = idempotent_producer(bootstrap)
    try:
        with cond:
            shared = cond.wait_for(
                lambda: (
                    bool(survivor.assignment)
                    and bool(victim.assignment)
                    and survivor.assignment | victim.assignment == everything
                ),
                timeout=30,
            )
        assert shared, (
            f"two members did not share the partitions within 30 s: {survivor.assignment} "
            f"and {victim.assignment}"
        )
        before = {f"before-{p}-{uuid.uuid4().hex}": p for p in everything}
        for value, p in before.items():
            produce_all(producer, topic, [value.encode()], partition=p)
        with cond:
            live = cond.wait_for(
                lambda: before.keys() <= survivor.values | victim.values, timeout=30
            )
        assert live, "the group did not deliver a record from each partition before the kill"

        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        killed_at = time.monotonic()
        after = {f"after-{p}-{i}-{uuid.uuid4().hex}": p for p in everything for i in range(5)}
        for p in everything:
            produce_all(producer, topic, [v.encode() for v, q in after.items() if q == p], p)
        with cond:
            took_over = cond.wait_for(
                lambda: survivor.assignment == everything and after.keys() <= survivor.values,
                timeout=30,
            )
        missing = sorted({p for v, p in after.items() if v not in survivor.values})
        assert took_over, (
            f"30 s after SIGKILL the survivor holds partitions {sorted(survivor.assignment)} "
            f"and lacks records on partitions {missing} (survivor alive: {survivor.alive()})"
        )
        assert time.monotonic() - killed_at < 30
    finally:
        producer.flush(10)
        for member in (victim, survivor):
            member.stop()
        for log in logs:
            log.close()


# 7 ------------------------------------------------------------------------------------------


def _same_broker_again(broker: Any) -> Any:
    """A new broker process on the same workdir and ports, as after a machine restart."""
    keep = {"workdir", "port", "controller_port"}
    fields = dataclasses.fields(broker)
    return type(broker)(**{f.name: getattr(broker, f.name) for f in fields if f.name in keep})


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = _Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                tps = consumer.committed(
                    [TopicPartition(topic, p) for p in range(partitions)], timeout=10
                )
                return {tp.partition: tp.offset for tp in tps}
            except KafkaException:  # e.g. the coordinator is still loading after a restart
                if time.monotonic() >= deadline:
                    raise
    finally:
        consumer.close()


def test_committed_offsets_survive_a_broker_restart(settings: Settings, tmp_path: Path) -> None:
    """Its own broker, of the kind the session runs (SAGA_BROKER), stopped and started again
    on the same data directory and ports."""
    factory, _ = _BROKERS[settings.embedded_broker]
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = factory(workdir=workdir)
    broker.start()
    try:
        url = broker.url
        topic = new_topic(url, "restart", partitions=2)
        written = {p: [b"r%d-%03d" % (p, i) for i in range(50)] for p in (0, 1)}
        producer: Producer | None = idempotent_producer(url)
        assert producer is not None
        for p, values in written.items():
            produce_all(producer, topic, values, partition=p)
        producer = None  # closed before the broker goes away
        group = f"conformance-group-{uuid.uuid4().hex}"
        wanted = {0: 30, 1: 20}
        committer = _Consumer({"bootstrap.servers": url, "group.id": group})
        try:
            committer.commit(
                offsets=[TopicPartition(topic, p, o) for p, o in wanted.items()],
                asynchronous=False,
            )
        finally:
            committer.close()
        assert _committed(url, group, topic, 2) == wanted, "offsets not committed at all"

        broker.stop()
        broker = _same_broker_again(broker)
        broker.start()
        assert broker.url == url

        after = _committed(url, group, topic, 2)
        assert after == wanted, f"committed offsets after the restart: {after}, not {wanted}"
        with PartitionReader(url, topic, (0, 1), isolation=READ_COMMITTED) as reader:
            records = reader.until(at_least(100), 30, "records after the restart")
        by_partition = {p: [r.value for r in records if r.partition == p] for p in (0, 1)}
        assert by_partition == written, "records changed across the restart"
    finally:
        broker.stop()


# 8 ------------------------------------------------------------------------------------------


def test_a_waiting_fetch_is_answered_when_a_transaction_commits(bootstrap: str) -> None:
    """A read_committed fetch that found nothing waits at the broker (fetch.wait.max.ms); when a
    transaction commits meanwhile, the broker must answer it then, not when the wait runs out.
    The engine's idle consumers wait 500 ms (Settings.kafka_fetch_wait_ms, ADR 0019): a
    broker that answers on the timer would add that to every hop of a saga."""
    topic = new_topic(bootstrap, "fetch-wait")
    producer = transactional_producer(bootstrap)
    wait_ms, rounds = 5000, 8
    consumer = _Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"conformance-wait-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": READ_COMMITTED,
            "fetch.wait.max.ms": wait_ms,
        }
    )
    seen: dict[bytes, float] = {}
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for m in consumer.consume(100, 0.2):
                if m.error() is None and m.value():
                    seen.setdefault(m.value() or b"", time.monotonic())

    consumer.assign([TopicPartition(topic, 0, 0)])
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    slowest = 0.0
    try:
        for n in range(rounds):
            value = f"round-{n}".encode()
            producer.begin_transaction()
            produce_all(producer, topic, [value])
            producer.commit_transaction(30)
            committed_at = time.monotonic()
            # Waiting for it bounds the round; what is judged is when it arrived, below.
            deadline = committed_at + 2 * wait_ms / 1000
            while value not in seen and time.monotonic() < deadline:
                time.sleep(0.005)
            assert value in seen, f"round {n + 1}: a committed record not read in {2 * wait_ms} ms"
            slowest = max(slowest, seen[value] - committed_at)
    finally:
        stop.set()
        reader.join(10)
        consumer.close()
    # Well under the wait, whatever the machine's load: answered by the commit, not the timer.
    assert slowest < wait_ms / 1000 / 4, (
        f"a committed record took {slowest:.2f} s to reach a fetch waiting up to {wait_ms} ms"
    )
