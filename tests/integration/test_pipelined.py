"""infra/pipelined.PipelinedProcessor on the real broker: each call's reply is committed as the
call ends, a hung call holds only its own checkout and its partition's committed offset, and a
worker that dies with a call in flight leaves it to the next one."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from infra.embedded.stack import RunningStack
from infra.pipelined import PipelinedProcessor
from infra.processor import Incoming, Output, ProcessorConfig
from tests.integration.copy_worker import CopyHandler
from tests.integration.kafka_helpers import Seen, fresh_topics, produce, read_topic

pytestmark = pytest.mark.integration
SERDE = make_serde(None)


class Hanging(CopyHandler):
    """Copies every cancel; the victim's call waits until `release` is set. Records the order
    in which calls of one checkout start and end."""

    def __init__(self, out_topic: str, victim: str) -> None:
        super().__init__(out_topic)
        self.victim = victim
        self.release = threading.Event()
        self.victim_started = threading.Event()
        self.trace: list[tuple[str, str, str]] = []  # (checkout, reason, "start" | "end")
        self._lock = threading.Lock()

    def handle(self, message: Incoming) -> Sequence[Output]:
        cancel = message.envelope.message
        with self._lock:
            self.trace.append((cancel.checkout_id, cancel.reason, "start"))
        if cancel.checkout_id == self.victim and cancel.reason == "first":
            self.victim_started.set()
            assert self.release.wait(60), "the test never released the hung call"
        outputs = super().handle(message)
        with self._lock:
            self.trace.append((cancel.checkout_id, cancel.reason, "end"))
        return outputs


class Loop:
    """Runs a processor's loop on a thread until stopped."""

    def __init__(self, processor: PipelinedProcessor) -> None:
        self.processor = processor
        self._stop = threading.Event()
        self.error: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.processor.run(until=self._stop.is_set)
        except BaseException as e:  # surfaced by stop()
            self.error.append(e)

    def __enter__(self) -> Loop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the processor loop did not stop"
        assert not self.error, self.error


def processor(stack: RunningStack, group: str, src: str, handler: Any) -> PipelinedProcessor:
    bootstrap = stack.settings.kafka_bootstrap_servers
    assert bootstrap
    config = ProcessorConfig(
        name=group,
        topics=[src],
        bootstrap_servers=bootstrap,
        batch_size=64,
        isolation_level=stack.settings.kafka_isolation_level,
    )
    return PipelinedProcessor(config, handler, SERDE, lanes=16)


def cancels(run: str, n: int) -> list[Envelope[Any]]:
    return [
        Envelope.new(
            m.CancelCheckout(f"co-{run}-{i}", "first"), occurred_at=1_000 + i, producer="t"
        )
        for i in range(n)
    ]


def checkouts(records: list[Seen]) -> Counter[str]:
    return Counter(SERDE.decode(r.value, "").message.checkout_id for r in records)


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        tps = consumer.committed([TopicPartition(topic, p) for p in meta.partitions], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def wait_for(what: str, condition: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_hung_call_holds_only_its_checkout_and_its_partitions_offset(
    stack: RunningStack,
) -> None:
    bootstrap = stack.settings.kafka_bootstrap_servers
    assert bootstrap
    src, out = fresh_topics(bootstrap, "in", "out")
    run = uuid.uuid4().hex[:6]
    inputs = cancels(run, 60)
    victim = inputs[7].message.checkout_id
    # The victim's second command, behind its hung first one in the same lane.
    inputs.append(Envelope.new(m.CancelCheckout(victim, "second"), occurred_at=2_000, producer="t"))
    handler = Hanging(out, victim)
    group = f"g-{uuid.uuid4().hex[:8]}"
    produce(bootstrap, src, SERDE, inputs)

    with Loop(processor(stack, group, src, handler)):
        assert handler.victim_started.wait(30)
        # Every other checkout's reply is committed while the victim's call hangs.
        others = read_topic(bootstrap, out, until=lambda rs: len(rs) >= len(inputs) - 2)
        assert victim not in checkouts(others)
        assert sorted(checkouts(others).values()) == [1] * (len(inputs) - 2)
        # The victim's partition commits up to the victim and no further; its second command
        # has not started (one lane per checkout).
        offsets = committed(bootstrap, group, src)
        victim_partition, victim_offset = _where(bootstrap, src, victim)
        # Nothing below a victim at offset 0: its partition has nothing to commit (-1001).
        assert max(offsets[victim_partition], 0) == victim_offset
        assert (victim, "second", "start") not in handler.trace

        handler.release.set()
        everything = read_topic(bootstrap, out, until=lambda rs: len(rs) >= len(inputs))
        wait_for(
            "the offsets past every input",
            lambda: sum(committed(bootstrap, group, src).values()) == len(inputs),
        )
    assert checkouts(everything)[victim] == 2
    mine = [(reason, edge) for who, reason, edge in handler.trace if who == victim]
    assert mine == [("first", "start"), ("first", "end"), ("second", "start"), ("second", "end")]


def test_a_call_in_flight_when_its_worker_stops_is_answered_by_the_next(
    stack: RunningStack,
) -> None:
    bootstrap = stack.settings.kafka_bootstrap_servers
    assert bootstrap
    src, out = fresh_topics(bootstrap, "in", "out")
    run = uuid.uuid4().hex[:6]
    inputs = cancels(run, 40)
    victim = inputs[3].message.checkout_id
    hanging = Hanging(out, victim)
    group = f"g-{uuid.uuid4().hex[:8]}"
    produce(bootstrap, src, SERDE, inputs)
    try:
        with Loop(processor(stack, group, src, hanging)):
            assert hanging.victim_started.wait(30)
            read_topic(bootstrap, out, until=lambda rs: len(rs) >= len(inputs) - 1)
        # The first worker is gone with the victim's call unanswered.
        with Loop(processor(stack, group, src, CopyHandler(out))):
            everything = read_topic(
                bootstrap, out, until=lambda rs: victim in checkouts(rs), timeout_s=60
            )
            wait_for(
                "the offsets past every input",
                lambda: sum(committed(bootstrap, group, src).values()) == len(inputs),
                timeout_s=60,
            )
    finally:
        hanging.release.set()  # lets the abandoned call's thread end
    seen = checkouts(everything)
    assert set(seen) == {e.message.checkout_id for e in inputs}
    # Only records above the victim's offset in its partition may be answered twice.
    victim_partition, victim_offset = _where(bootstrap, src, victim)
    twice = {c for c, n in seen.items() if n > 1}
    for checkout in twice:
        partition, offset = _where(bootstrap, src, checkout)
        assert partition == victim_partition and offset > victim_offset, checkout


def _where(bootstrap: str, topic: str, checkout: str) -> tuple[int, int]:
    records = read_topic(bootstrap, topic, until=lambda rs: checkout in checkouts(rs))
    found = next(r for r in records if SERDE.decode(r.value, "").message.checkout_id == checkout)
    return found.partition, found.offset


class HangingTopic(CopyHandler):
    """Copies every cancel; the calls from `hung_topic` wait until `release` is set."""

    def __init__(self, out_topic: str, hung_topic: str) -> None:
        super().__init__(out_topic)
        self.hung_topic = hung_topic
        self.release = threading.Event()
        self.hung = 0
        self._lock = threading.Lock()

    def handle(self, message: Incoming) -> Sequence[Output]:
        if message.topic == self.hung_topic:
            with self._lock:
                self.hung += 1
            assert self.release.wait(60), "the test never released the hung calls"
        return super().handle(message)


def test_calls_hung_on_one_topic_leave_the_other_topics_their_share_of_threads(
    stack: RunningStack,
) -> None:
    """`--role adapters`: a provider whose calls all hang (Stripe at its timeout) takes only
    its own adapter's share of the worker's threads; without the share it took them all and
    the other adapters' requests waited behind it."""
    bootstrap = stack.settings.kafka_bootstrap_servers
    assert bootstrap
    slow, fast, out = fresh_topics(bootstrap, "slow", "fast", "out")
    run = uuid.uuid4().hex[:6]
    handler = HangingTopic(out, slow)
    config = ProcessorConfig(
        name=f"g-{uuid.uuid4().hex[:8]}",
        topics=[slow, fast],
        bootstrap_servers=bootstrap,
        batch_size=64,
        isolation_level=stack.settings.kafka_isolation_level,
    )
    produce(bootstrap, slow, SERDE, cancels(f"{run}-slow", 12))
    with Loop(PipelinedProcessor(config, handler, SERDE, lanes=8, topic_lanes=4)):
        wait_for("the slow topic's share of calls", lambda: handler.hung >= 4)
        quick = cancels(f"{run}-fast", 5)
        produce(bootstrap, fast, SERDE, quick)
        answered = read_topic(bootstrap, out, until=lambda rs: len(rs) >= len(quick))
        assert checkouts(answered) == Counter(e.message.checkout_id for e in quick)
        assert handler.hung == 4  # its share and no more, though 8 more of its calls wait
        handler.release.set()
        everything = read_topic(bootstrap, out, until=lambda rs: len(rs) >= 17)
    assert sorted(checkouts(everything).values()) == [1] * 17
