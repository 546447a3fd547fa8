"""The notifier on the real broker, real Postgres and the embedded SMTP inbox."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from events.envelope import Envelope
from events.serde import make_serde
from infra.embedded.smtp import ReceivedEmail, SmtpInbox
from infra.processor import Processor, ProcessorConfig
from infra.settings import Settings
from infra.workers.notifier import notifier_handler
from tests.integration.kafka_helpers import Seen, fresh_topics, produce, read_topic
from tests.integration.workers import running
from tests.unit.notifications import notifier_events as ev

pytestmark = pytest.mark.integration
SERDE = make_serde(None)


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[SmtpInbox]:
    server = SmtpInbox(workdir=tmp_path / "smtp")
    server.start()
    yield server
    server.stop()


@dataclasses.dataclass
class Notifier:
    bootstrap: str
    orders: str  # this test's own orders.events
    events: str  # this test's own checkout.events
    processor: Processor
    inbox: SmtpInbox

    def send(self, topic: str, *envelopes: Envelope[Any]) -> None:
        produce(self.bootstrap, topic, SERDE, envelopes)

    def wait_for(
        self, done: Callable[[list[ReceivedEmail]], bool], timeout_s: float = 20
    ) -> list[ReceivedEmail]:
        deadline = time.monotonic() + timeout_s
        while not done(self.inbox.messages()):
            assert time.monotonic() < deadline, f"inbox: {self.inbox.messages()}"
            time.sleep(0.02)
        return self.inbox.messages()

    def settle(self, inputs: int) -> list[ReceivedEmail]:
        """The inbox once every input is committed: then no further email can come."""
        deadline = time.monotonic() + 20
        while self.processor.processed < inputs:
            assert time.monotonic() < deadline, f"processed {self.processor.processed}/{inputs}"
            time.sleep(0.02)
        return self.inbox.messages()


@pytest.fixture
def notifier(settings: Settings, database_url: str, inbox: SmtpInbox) -> Iterator[Notifier]:
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap
    # One partition: the permanent-failure test checks the partition keeps flowing after it.
    orders, events = fresh_topics(bootstrap, "orders.events", "checkout.events", partitions=1)
    wired = dataclasses.replace(settings, database_url=database_url, smtp_url=inbox.url)
    config = ProcessorConfig(
        name=f"notifier-{uuid.uuid4().hex[:8]}",
        topics=[orders, events],
        bootstrap_servers=bootstrap,
        max_attempts=3,
        session_timeout_ms=settings.session_timeout_ms,
        isolation_level=settings.kafka_isolation_level,
    )
    processor = Processor(config, notifier_handler(wired), SERDE)
    with running(processor):
        yield Notifier(bootstrap, orders, events, processor, inbox)


def test_order_placed_sends_exactly_one_confirmation_with_the_total(notifier: Notifier) -> None:
    co, order = ev.new_ids()
    notifier.send(notifier.orders, ev.order_placed(co, order, f"{co}@example.com"))
    (email,) = notifier.settle(1)
    assert (email.to, email.kind) == (f"{co}@example.com", "order_confirmation")
    assert email.subject == f"Order confirmation {order}"
    assert "Total:" in email.body and "66.93 USD" in email.body
    assert "SKU-TSHIRT-BLK-M" in email.body


def test_the_same_event_delivered_twice_sends_one_email(notifier: Notifier) -> None:
    # Tansu shows aborted copies to read_committed consumers: same message_id, same bytes.
    co, order = ev.new_ids()
    placed = ev.order_placed(co, order, f"{co}@example.com")
    notifier.send(notifier.orders, placed, placed)
    assert len(notifier.settle(2)) == 1


def test_checkout_failed_sends_one_failure_email(notifier: Notifier) -> None:
    co, _ = ev.new_ids()
    notifier.send(
        notifier.events,
        ev.checkout_started(co, f"{co}@example.com"),
        ev.checkout_failed(co, "out_of_stock:SKU-MUG-LOGO"),
    )
    (email,) = notifier.settle(2)
    assert (email.to, email.kind) == (f"{co}@example.com", "checkout_failed")
    assert co in email.body and "out of stock" in email.body


def test_a_transient_smtp_failure_is_retried_and_sends_one_email(notifier: Notifier) -> None:
    notifier.inbox.fail_next("451 4.3.0 mailbox temporarily unavailable")
    co, order = ev.new_ids()
    notifier.send(notifier.orders, ev.order_placed(co, order, f"{co}@example.com"))
    (email,) = notifier.settle(1)
    assert email.kind == "order_confirmation"


def test_a_permanent_failure_is_dead_lettered_and_the_partition_keeps_flowing(
    notifier: Notifier,
) -> None:
    refused_co, refused_order = ev.new_ids()
    co, order = ev.new_ids()
    notifier.send(
        notifier.orders,
        ev.order_placed(refused_co, refused_order, f"{refused_co}@nowhere.invalid"),
        ev.order_placed(co, order, f"{co}@example.com"),
    )
    (email,) = notifier.settle(2)
    assert email.to == f"{co}@example.com"

    def one(records: list[Seen]) -> bool:
        return len(records) >= 1

    (dead,) = read_topic(notifier.bootstrap, f"{notifier.orders}.dlq", until=one)
    error = dead.headers["dlq.error"].decode()
    assert error.startswith("PermanentFailure (not retried)")
    assert "550" in error and refused_order in error
    assert SERDE.decode(dead.value, notifier.orders).message.order_id == refused_order


def test_a_server_that_stays_down_dead_letters_after_bounded_retries(notifier: Notifier) -> None:
    # Every try of the service (1 + 3 retries) in each of the runtime's 3 attempts fails.
    notifier.inbox.fail_next(*["421 4.3.2 service not available"] * 12)
    co, order = ev.new_ids()
    notifier.send(notifier.orders, ev.order_placed(co, order, f"{co}@example.com"))
    assert notifier.settle(1) == []

    def one(records: list[Seen]) -> bool:
        return len(records) >= 1

    (dead,) = read_topic(notifier.bootstrap, f"{notifier.orders}.dlq", until=one)
    error = dead.headers["dlq.error"].decode()
    assert error.startswith("NotificationFailed after 3 attempts")
    # After 5 failures in a row the breaker opens and later tries fail fast without a connection.
    assert "421" in error or "circuit breaker" in error
