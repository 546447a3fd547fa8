"""Rebuild from snapshots, eviction and reload, and `saga inspect`, on the real broker."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer, TopicPartition

from bench.histories import Kind, build
from events import messages as m
from events.envelope import Envelope
from events.topics import (
    CHECKOUT_COMMANDS,
    CHECKOUT_EVENTS,
    CHECKOUT_REPLIES,
    CHECKOUT_SNAPSHOTS,
    CHECKOUT_SNAPSHOTS_FINAL,
)
from infra.bootstrap import build_processor
from infra.inspect import inspect_checkout
from infra.partitioner import partition_for
from infra.processor import producer_config
from infra.settings import Settings
from infra.snapshots import COVERAGE_KEY, encode_coverage, encode_snapshot
from infra.workers.orchestrator import OrchestratorHandler
from saga.state import Status, is_terminal
from tests.integration.kafka_helpers import Seen, fresh_topics, produce, read_topic
from tests.integration.scripted_adapters import DECLINED_METHOD, OUT_OF_STOCK_SKU, ScriptedWorld
from tests.integration.test_orchestrator import (  # the same helpers, the same engine
    SERDE,
    engine_settings,  # noqa: F401  (module fixture)
    history,
    orchestrator,
    start_checkout,
)
from tests.integration.workers import running

pytestmark = pytest.mark.integration


def adapters(settings: Settings, world: ScriptedWorld) -> list[Any]:
    return [
        build_processor(role, settings, services=world.services(), instance_id=uuid.uuid4().hex[:6])
        for role in ("inventory", "tax", "shipping", "payment", "notification")
    ]


def wait_for_events(settings: Settings, wanted: dict[str, type]) -> None:
    """Until each checkout has an event of the given type on checkout.events."""
    assert settings.kafka_bootstrap_servers

    def arrived(records: list[Seen]) -> bool:
        got = set()
        for r in records:
            key = (r.key or b"").decode()
            if key in wanted and isinstance(
                SERDE.decode(r.value, CHECKOUT_EVENTS).message, wanted[key]
            ):
                got.add(key)
        return got == set(wanted)

    read_topic(settings.kafka_bootstrap_servers, CHECKOUT_EVENTS, until=arrived, timeout_s=90)


def events_until(settings: Settings, checkout_id: str, wanted: type) -> list[Any]:
    """The checkout's events (deduplicated by id), read until one of type `wanted` is among
    them: `history` stops at the first terminal event, which precedes a late refund."""
    assert settings.kafka_bootstrap_servers
    mine: dict[str, Any] = {}

    def arrived(records: list[Seen]) -> bool:
        mine.clear()
        for r in records:
            if r.key == checkout_id.encode():
                envelope = SERDE.decode(r.value, CHECKOUT_EVENTS)
                mine.setdefault(envelope.message_id, envelope.message)
        return any(isinstance(e, wanted) for e in mine.values())

    read_topic(settings.kafka_bootstrap_servers, CHECKOUT_EVENTS, until=arrived, timeout_s=90)
    return list(mine.values())


def command(settings: Settings, msg: Any) -> None:
    assert settings.kafka_bootstrap_servers
    produce(
        settings.kafka_bootstrap_servers,
        CHECKOUT_COMMANDS,
        SERDE,
        [Envelope.new(msg, occurred_at=int(time.time() * 1000), producer="test")],
    )


@pytest.fixture(scope="module")
def sagas(engine_settings: Settings) -> dict[str, list[str]]:  # noqa: F811
    """Terminal sagas of every kind (completed, declined, out of stock), then live ones waiting
    for replies that never come (no adapters running), all written by the real orchestrator."""
    world = ScriptedWorld()
    with running(*adapters(engine_settings, world)), running(orchestrator(engine_settings)):
        terminal = [
            start_checkout(engine_settings),
            start_checkout(engine_settings),
            start_checkout(engine_settings, payment_method=DECLINED_METHOD),
            start_checkout(engine_settings, sku=OUT_OF_STOCK_SKU),
        ]
        for checkout_id in terminal:
            history(engine_settings, checkout_id)
    with running(orchestrator(engine_settings)):
        live = [start_checkout(engine_settings) for _ in range(3)]
        wait_for_events(engine_settings, dict.fromkeys(live, m.StepStarted))
    return {"terminal": terminal, "live": live}


def rebuilt(settings: Settings, *, snapshots: bool) -> OrchestratorHandler:
    assert settings.kafka_bootstrap_servers
    handler = OrchestratorHandler(settings.kafka_bootstrap_servers, SERDE, snapshots=snapshots)
    handler.rebuild_now(range(settings.partitions))
    return handler


def test_a_restart_rebuilds_from_snapshots_the_state_a_full_refold_gives(
    engine_settings: Settings,  # noqa: F811
    sagas: dict[str, list[str]],
) -> None:
    full = rebuilt(engine_settings, snapshots=False)
    fast = rebuilt(engine_settings, snapshots=True)
    assert fast.refolded == []  # every partition was covered by snapshots
    n = engine_settings.partitions
    for checkout_id in sagas["live"]:
        state = fast.state_of(checkout_id)  # live: in memory, with its wakeup
        assert state is not None and not is_terminal(state)
        assert state == full.state_of(checkout_id)
    for checkout_id in sagas["terminal"]:
        assert fast.state_of(checkout_id) is None  # evicted: not in memory
        state = fast.lookup(checkout_id, partition_for(checkout_id.encode(), n))
        assert state is not None and is_terminal(state)
        assert state == full.state_of(checkout_id)
        assert fast.state_of(checkout_id) is None  # and evicted again after the look
    assert fast.reloads == len(sagas["terminal"])
    assert fast.in_memory() < full.in_memory()
    assert fast.evicted() >= len(sagas["terminal"])


def test_a_snapshot_of_another_shape_is_ignored_and_its_partition_refolded(
    engine_settings: Settings,  # noqa: F811
    sagas: dict[str, list[str]],
) -> None:
    assert engine_settings.kafka_bootstrap_servers
    target = sagas["live"][0]
    partition = partition_for(target.encode(), engine_settings.partitions)
    good = rebuilt(engine_settings, snapshots=True).state_of(target)
    assert good is not None
    # The same saga, claimed to be COMPLETED, by code of another shape.
    producer = Producer(producer_config(engine_settings.kafka_bootstrap_servers))
    wrong = b"L" + b"0" * 16 + b"evt\n" + b'["' + target.encode() + b'","COMPLETED"]'
    producer.produce(CHECKOUT_SNAPSHOTS, key=target.encode(), value=wrong, partition=partition)
    assert producer.flush(30) == 0

    after = rebuilt(engine_settings, snapshots=True)
    assert after.refolded == [partition]
    assert after.state_of(target) == good
    assert after.state_of(target) == rebuilt(engine_settings, snapshots=False).state_of(target)


def test_an_evicted_saga_reloads_on_demand_and_late_inputs_are_decided_on_it(
    engine_settings: Settings,  # noqa: F811
    sagas: dict[str, list[str]],
) -> None:
    completed, other = sagas["terminal"][0], sagas["terminal"][1]
    world = ScriptedWorld()
    processor = orchestrator(engine_settings)
    handler = processor._handler
    assert isinstance(handler, OrchestratorHandler)
    with running(*adapters(engine_settings, world)), running(processor):
        command(engine_settings, m.RequestRefund(completed, f"rr-{completed}", 800, "EUR", "late"))
        command(engine_settings, m.CancelCheckout(other, "too late to cancel"))
        wait_for_events(
            engine_settings, {completed: m.PaymentRefunded, other: m.CancellationRejected}
        )
        # Terminal again once the refund is applied: evicted again, at the offset the
        # transaction's delivery report gave its snapshot.
        deadline = time.monotonic() + 30
        while handler.state_of(completed) is not None and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the processor thread's state, with the deadline above
        assert handler.state_of(completed) is None
    assert handler.reloads >= 2
    events = events_until(engine_settings, completed, m.PaymentRefunded)
    refunded = [e for e in events if isinstance(e, m.PaymentRefunded)]
    assert len(refunded) == 1 and refunded[0].amount == 800
    assert rebuilt(engine_settings, snapshots=False).state_of(completed) == rebuilt(
        engine_settings, snapshots=True
    ).lookup(completed, partition_for(completed.encode(), engine_settings.partitions))


def test_inspect_reads_only_the_partition_of_the_key(
    engine_settings: Settings,  # noqa: F811
    sagas: dict[str, list[str]],
) -> None:
    assert engine_settings.kafka_bootstrap_servers
    checkout_id = sagas["terminal"][0]
    p = partition_for(checkout_id.encode(), engine_settings.partitions)
    found = inspect_checkout(engine_settings.kafka_bootstrap_servers, SERDE, checkout_id)
    assert found.partition == p
    assert found.read == (
        f"{CHECKOUT_EVENTS}[{p}]",
        f"{CHECKOUT_SNAPSHOTS}[{p}]",
        f"{CHECKOUT_SNAPSHOTS_FINAL}[{p}]",  # a terminal saga: the one record its pointer names
    )
    assert any(isinstance(e.message, m.CheckoutCompleted) for e in found.history)
    assert found.snapshot is not None and found.snapshot.status is Status.COMPLETED
    assert found.snapshot_last_event == found.history[-1].message_id


def test_librdkafka_murmur2_random_puts_keys_where_partition_for_says(
    engine_settings: Settings,  # noqa: F811
) -> None:
    bootstrap = engine_settings.kafka_bootstrap_servers
    assert bootstrap
    (topic,) = fresh_topics(bootstrap, "partitioner", partitions=7)
    landed: dict[bytes, int] = {}

    def delivered(error: Any, record: Any) -> None:
        assert error is None
        landed[record.key()] = record.partition()

    producer = Producer(producer_config(bootstrap))
    keys = [f"co-{uuid.uuid4().hex}".encode() for _ in range(200)]
    for key in keys:
        producer.produce(topic, key=key, value=b"x", on_delivery=delivered)
    assert producer.flush(30) == 0
    assert {k: partition_for(k, 7) for k in keys} == landed
    assert len(set(landed.values())) == 7


def _fresh_handler(settings: Settings, n_events: int = 0) -> tuple[OrchestratorHandler, Any]:
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap
    events, snaps, final = fresh_topics(bootstrap, "events", "snapshots", "final", partitions=1)
    handler = OrchestratorHandler(
        bootstrap, SERDE, events_topic=events, snapshots_topic=snaps, final_topic=final
    )
    return handler, (bootstrap, events, snaps, final)


def test_the_rebuild_runs_in_slices_so_the_consumer_keeps_polling(
    engine_settings: Settings,  # noqa: F811
) -> None:
    handler, (bootstrap, events, _, _) = _fresh_handler(engine_settings)
    producer = Producer(producer_config(bootstrap, **{"linger.ms": 20}))
    for i in range(1500):
        for event in build(f"slice-{i:05d}", Kind.COMPLETED).events:
            envelope = Envelope.new(event, occurred_at=1, producer="test")
            producer.produce(
                events, key=envelope.key.encode(), value=SERDE.encode(envelope, events)
            )
    assert producer.flush(60) == 0
    handler.on_assign([TopicPartition(CHECKOUT_COMMANDS, 0)])
    assert [tp.partition for tp in handler.held()] == [0, 0]  # commands and replies paused
    slices = 0
    while True:
        started = time.monotonic()
        ready = handler.background(0.05)
        assert time.monotonic() - started < 1.0  # a slice, never the whole rebuild
        slices += 1
        if ready:
            break
    assert slices > 3  # ~21k events: the rebuild really was spread over many polls
    assert {(tp.topic, tp.partition) for tp in ready} == {
        (CHECKOUT_COMMANDS, 0),
        (CHECKOUT_REPLIES, 0),
    }
    assert handler.refolded == [0]  # nothing covered these topics: refolded
    assert handler.in_memory() == 1500  # until their snapshots are written
    outputs = handler.batch_outputs()
    finals = [o for o in outputs if o.topic.startswith("final")]
    assert len(finals) == 1500 and outputs[-1].key == COVERAGE_KEY


def test_a_terminal_snapshot_without_its_pointer_is_rebuilt_and_written_again(
    engine_settings: Settings,  # noqa: F811
) -> None:
    """A crash between the final snapshot's transaction and its pointer's."""
    handler, (bootstrap, events, snaps, final) = _fresh_handler(engine_settings)
    built = build("crash-window", Kind.COMPLETED)
    producer = Producer(producer_config(bootstrap))
    envelopes = [Envelope.new(e, occurred_at=1, producer="test") for e in built.events]
    for envelope in envelopes:
        producer.produce(events, key=b"crash-window", value=SERDE.encode(envelope, events))
    value = encode_snapshot(built.state, envelopes[-1].message_id, terminal=True)
    producer.produce(snaps, key=b"crash-window", value=value, partition=0)
    producer.produce(snaps, key=COVERAGE_KEY, value=encode_coverage(events, 0), partition=0)
    assert producer.flush(30) == 0

    handler.rebuild_now([0])
    assert handler.refolded == []
    assert handler.state_of("crash-window") == built.state  # from the T record, in memory
    outputs = handler.batch_outputs()
    assert {o.topic for o in outputs} == {snaps, final}  # final snapshot again, pointer to follow


def test_on_tansu_snapshots_are_neither_written_nor_trusted(
    engine_settings: Settings,  # noqa: F811
) -> None:
    assert engine_settings.kafka_bootstrap_servers
    handler = OrchestratorHandler(
        engine_settings.kafka_bootstrap_servers, SERDE, isolation_level="read_uncommitted"
    )
    assert handler.snapshots is False
    handler.rebuild_now([0])
    assert handler.refolded == [0]
    assert handler.evicted() == 0 and handler.batch_outputs() == []


def test_events_written_without_snapshots_after_the_marker_are_folded_in(
    engine_settings: Settings,  # noqa: F811
) -> None:
    """An orchestrator of an older version wrote events (no snapshots) during a rolling
    upgrade: the rebuild reads the events after the marker and owes those sagas a snapshot."""
    handler, (bootstrap, events, snaps, _) = _fresh_handler(engine_settings)
    producer = Producer(producer_config(bootstrap))
    producer.produce(snaps, key=COVERAGE_KEY, value=encode_coverage(events, 0), partition=0)
    done, live = build("old-done", Kind.COMPLETED), build("old-live", Kind.LIVE)
    for built in (done, live):
        for event in built.events:
            envelope = Envelope.new(event, occurred_at=1, producer="orchestrator@old")
            producer.produce(
                events, key=envelope.key.encode(), value=SERDE.encode(envelope, events)
            )
    assert producer.flush(30) == 0

    handler.rebuild_now([0])
    assert handler.refolded == []  # the marker covered the partition; its tail was read
    assert handler.state_of("old-done") == done.state
    assert handler.state_of("old-live") == live.state
    written = {o.key for o in handler.batch_outputs() if o.topic == snaps}
    assert {b"old-done", b"old-live"} <= written


def test_a_saga_that_ends_between_two_markers_writes_only_its_terminal_snapshot(
    engine_settings: Settings,  # noqa: F811
    sagas: dict[str, list[str]],
) -> None:
    """A live saga's snapshot waits for the partition's next marker (issue 16: one record per
    transaction that touched a saga was 7.3 of a checkout's 42.5 records, ADR 0021). The terminal
    sagas ran well inside one marker period: at most one live snapshot each (a marker that
    caught it mid-saga) before its terminal one. The live sagas' changes since the last marker
    are in the tail the first test folds."""
    assert engine_settings.kafka_bootstrap_servers
    keys = {checkout_id.encode() for checkout_id in sagas["terminal"]}
    live: dict[bytes, int] = {}

    def ended(records: list[Seen]) -> bool:
        live.clear()
        done = set()
        for r in records:
            if r.key in keys and r.value[:1] == b"L":
                live[r.key] = live.get(r.key, 0) + 1
            elif r.key in keys and r.value[:1] in (b"T", b"P"):
                done.add(r.key)
        return done == keys

    read_topic(engine_settings.kafka_bootstrap_servers, CHECKOUT_SNAPSHOTS, until=ended)
    assert all(n <= 1 for n in live.values()), live
