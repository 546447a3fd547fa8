"""The fulfilment worker on the real broker, real Postgres and the local EasyPost peer."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from adapters.shipping.port import ShippingAddress
from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from infra.embedded.stack import reader_isolation
from infra.processor import Processor, ProcessorConfig
from infra.settings import Settings, load_settings
from infra.workers.fulfilment import LabelCarrier, fulfilment_handler
from tests.integration.kafka_helpers import Seen, fresh_topics, produce, read_topic
from tests.integration.shipping.easypost_peer import EasyPostPeer
from tests.integration.workers import running

pytestmark = pytest.mark.integration
SERDE = make_serde(None)
WAREHOUSE = ShippingAddress("9500 Gilman Dr", "La Jolla", "CA", "92093", "US")
ADDRESS = m.Address("1 Market St", "San Francisco", "CA", "94105", "US")
UNVERIFIABLE = m.Address("1 Nowhere Rd", "Nowhere", "CA", "00000", "US")  # the peer's 422


def order_placed(address: m.Address = ADDRESS) -> Envelope[m.OrderPlaced]:
    run = uuid.uuid4().hex[:10]
    lines = (m.LineItem("SKU-TSHIRT-BLK-M", 2, 1999), m.LineItem("SKU-MUG-LOGO", 1, 1250))
    order = m.OrderPlaced(
        f"ord-{run}", f"co-{run}", "shop", "cus-1", f"{run}@example.com", lines, address,
        5248, 446, 999, 6693, "USD", 1_700_000_000_000,
    )  # fmt: skip
    return Envelope.new(order, occurred_at=int(time.time() * 1000), producer="test")


def quoted(checkout_id: str, level: str) -> Envelope[m.ShippingQuoted]:
    reply = m.ShippingQuoted(checkout_id, 1, 2975, "USD", "USPS", level)
    return Envelope.new(reply, occurred_at=int(time.time() * 1000), producer="test")


@dataclasses.dataclass
class Fulfilment:
    bootstrap: str
    database_url: str
    orders: str  # this test's orders.events (input)
    events: str  # this test's checkout.events (input)
    out: str  # where ShipmentCreated goes (orders.events in production)
    processor: Processor

    def send(self, topic: str, *envelopes: Envelope[Any]) -> None:
        produce(self.bootstrap, topic, SERDE, envelopes)

    def settle(self, inputs: int, timeout_s: float = 20) -> None:
        """Wait until `inputs` records are committed, and with them everything they produced."""
        deadline = time.monotonic() + timeout_s
        while self.processor.processed < inputs:
            assert time.monotonic() < deadline, f"processed {self.processor.processed}/{inputs}"
            time.sleep(0.02)

    def published(self) -> list[tuple[bytes | None, Envelope[m.ShipmentCreated]]]:
        return [
            (r.key, SERDE.decode(r.value, self.out)) for r in read_all(self.bootstrap, self.out)
        ]

    def rows(self, checkout_id: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(
                "SELECT status, carrier, service_level, tracking_code, label_url, amount, currency"
                " FROM shipments WHERE checkout_id = %s",
                (checkout_id,),
            ).fetchall()


def read_all(bootstrap: str, topic: str, timeout_s: float = 10) -> list[Seen]:
    """Every committed record of `topic` up to its end now (a snapshot, not a wait)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "isolation.level": reader_isolation(load_settings()),
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        marks = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10) for p in partitions
        }
        # An empty partition has no position to reach; the others are read to their end now.
        ends = {p: high for p, (low, high) in marks.items() if high > low}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        seen: list[Seen] = []
        deadline = time.monotonic() + timeout_s
        while True:
            for r in consumer.consume(500, 0.1):
                if not r.error():
                    headers = {k: v for k, v in (r.headers() or [])}
                    seen.append(Seen(r.partition(), r.offset(), r.key(), r.value() or b"", headers))
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            if all(tp.offset >= ends[tp.partition] for tp in positions):
                return seen
            assert time.monotonic() < deadline, f"{topic}: end not reached"
    finally:
        consumer.close()


@pytest.fixture
def start(settings: Settings, database_url: str) -> Iterator[Callable[[LabelCarrier], Fulfilment]]:
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap
    wired = dataclasses.replace(settings, database_url=database_url)
    processors: list[Processor] = []
    runs: list[Any] = []

    def starter(carrier: LabelCarrier) -> Fulfilment:
        # One partition: the permanent-failure test checks the partition keeps flowing after it.
        orders, events, out = fresh_topics(
            bootstrap, "orders.events", "checkout.events", "shipments", partitions=1
        )
        config = ProcessorConfig(
            name=f"fulfilment-{uuid.uuid4().hex[:8]}",
            topics=[orders, events],
            bootstrap_servers=bootstrap,
            max_attempts=3,
            session_timeout_ms=settings.session_timeout_ms,
            isolation_level=settings.kafka_isolation_level,
        )
        processor = Processor(config, fulfilment_handler(wired, carrier, output_topic=out), SERDE)
        run = running(processor)
        run.__enter__()
        processors.append(processor)
        runs.append(run)
        return Fulfilment(bootstrap, database_url, orders, events, out, processor)

    yield starter
    for run in runs:
        run.__exit__(None, None, None)


def easypost(peer: EasyPostPeer) -> LabelCarrier:
    return LabelCarrier(
        easypost_api_key=peer.api_key,
        easypost_api_base=peer.url,
        easypost_carrier="USPS",
        ship_from=WAREHOUSE,
    )


def test_an_order_buys_one_label_at_the_quoted_level_and_publishes_it_once(
    start: Callable[[LabelCarrier], Fulfilment], easypost_peer: EasyPostPeer
) -> None:
    f = start(easypost(easypost_peer))
    placed = order_placed()
    order = placed.message
    f.send(f.events, quoted(order.checkout_id, "express"))
    f.settle(1)  # the level is known before the order arrives (another topic: no ordering)
    f.send(f.orders, placed)
    f.settle(2)

    ((key, env),) = f.published()
    assert key == order.order_id.encode()
    assert env.causation_id == placed.message_id
    created = env.message
    assert (created.order_id, created.checkout_id) == (order.order_id, order.checkout_id)
    assert (created.carrier, created.service_level, created.currency) == ("USPS", "express", "USD")
    assert created.label_url and created.tracking_code
    assert isinstance(created.amount, int) and created.amount > 0
    ((status, carrier, level, tracking, label, amount, currency),) = f.rows(order.checkout_id)
    assert (status, carrier, level, label, tracking) == (
        "purchased", "USPS", "express", created.label_url, created.tracking_code,
    )  # fmt: skip
    assert (amount, currency) == (created.amount, "USD")
    assert easypost_peer.purchases == 1


def test_the_built_in_carrier_ships_standard_when_no_level_was_seen(
    start: Callable[[LabelCarrier], Fulfilment],
) -> None:
    f = start(LabelCarrier())
    placed = order_placed()
    f.send(f.orders, placed)
    f.settle(1)
    ((key, env),) = f.published()
    assert key == placed.message.order_id.encode()
    assert env.message.service_level == "standard"
    assert env.message.tracking_code is None  # manual fulfilment: no carrier label
    ((status, carrier, *_),) = f.rows(placed.message.checkout_id)
    assert (status, carrier) == ("purchased", env.message.carrier)


def test_the_same_order_placed_twice_buys_one_label_and_one_event_id(
    start: Callable[[LabelCarrier], Fulfilment], easypost_peer: EasyPostPeer
) -> None:
    f = start(easypost(easypost_peer))
    placed = order_placed()
    f.send(f.orders, placed, placed)  # an aborted copy on Tansu: same message_id, same bytes
    f.settle(2)
    f.send(f.orders, placed)  # and a later redelivery, in a batch of its own
    f.settle(3)

    published = f.published()
    assert {env.message_id for _, env in published} == {published[0][1].message_id}
    assert len({env.message for _, env in published}) == 1  # same content, same created_at
    assert len(f.rows(placed.message.checkout_id)) == 1
    assert easypost_peer.purchases == 1


def test_a_carrier_that_fails_once_is_retried_and_buys_one_label(
    start: Callable[[LabelCarrier], Fulfilment], easypost_peer: EasyPostPeer
) -> None:
    f = start(easypost(easypost_peer))
    easypost_peer.script(503)
    placed = order_placed()
    f.send(f.orders, placed)
    f.settle(1)
    ((_, env),) = f.published()
    assert env.message.label_url
    assert easypost_peer.purchases == 1
    assert read_all(f.bootstrap, f"{f.orders}.dlq") == []


def test_an_address_the_carrier_rejects_is_dead_lettered_and_the_partition_keeps_flowing(
    start: Callable[[LabelCarrier], Fulfilment], easypost_peer: EasyPostPeer
) -> None:
    f = start(easypost(easypost_peer))
    rejected, good = order_placed(UNVERIFIABLE), order_placed()
    f.send(f.orders, rejected, good)
    f.settle(2)

    ((_, env),) = f.published()
    assert env.message.order_id == good.message.order_id
    assert easypost_peer.purchases == 1

    def one(records: list[Seen]) -> bool:
        return len(records) >= 1

    (dead,) = read_topic(f.bootstrap, f"{f.orders}.dlq", until=one)
    error = dead.headers["dlq.error"].decode()
    assert error.startswith("PermanentFailure (not retried)")
    assert rejected.message.order_id in error and "Address not found" in error
    assert SERDE.decode(dead.value, f.orders).message_id == rejected.message_id


def test_the_fulfilment_role_is_wired_from_settings(settings: Settings, database_url: str) -> None:
    from infra.bootstrap import build_processor

    wired = dataclasses.replace(settings, database_url=database_url)
    processor = build_processor("fulfilment", wired, serde=SERDE)
    try:
        with psycopg.connect(database_url) as conn:  # its tables exist before the first order
            conn.execute("SELECT 1 FROM shipments, shipping_quotes LIMIT 1")
    finally:
        processor.close()
