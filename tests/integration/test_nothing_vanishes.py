"""Nothing vanishes without a trace (issue 12), on the real broker: every input produced straight
onto Kafka that the engine does not apply leaves a DLQ record with its reason, or — for a known
checkout refusing a command — a rejection event on checkout.events; and the bad input changes
neither its own checkout nor any other."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from events.topics import (
    CHECKOUT_COMMANDS,
    CHECKOUT_EVENTS,
    CHECKOUT_REPLIES,
    adapter_requests,
    dlq,
)
from infra.bootstrap import build_processor
from infra.embedded.stack import RunningStack, reader_isolation
from infra.log_reader import read_to_end
from infra.settings import Settings
from infra.topics import ensure_topics
from saga.checkout import fold
from saga.state import Status
from tests.integration.kafka_helpers import Seen, produce, read_topic
from tests.integration.scripted_adapters import ScriptedWorld
from tests.integration.workers import running

pytestmark = pytest.mark.integration
SERDE = make_serde(None)
TIMEOUT_S = 90
TOTAL = 3800  # what the scripted adapters make of start(): 3000 + 10% tax + 500 shipping


@pytest.fixture(scope="module")
def engine(stack: RunningStack) -> Iterator[tuple[Settings, ScriptedWorld]]:
    """One orchestrator and the scripted adapters for the whole module."""
    settings = stack.settings
    assert settings.kafka_bootstrap_servers
    ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
    world = ScriptedWorld()
    instance = uuid.uuid4().hex[:6]
    processors = [
        build_processor(role, settings, services=world.services(), instance_id=instance)
        for role in ("orchestrator", "inventory", "tax", "shipping", "payment", "notification")
    ]
    with running(*processors):
        yield settings, world


def _bootstrap(settings: Settings) -> str:
    assert settings.kafka_bootstrap_servers
    return settings.kafka_bootstrap_servers


def new_id() -> str:
    return f"co-vanish-{uuid.uuid4().hex[:10]}"


def start(checkout_id: str, **changes: Any) -> m.StartCheckout:
    command = m.StartCheckout(
        checkout_id=checkout_id,
        tenant_id="shop-1",
        customer_id="cus-1",
        customer_email="buyer@example.com",
        currency="EUR",
        items=(m.LineItem("SKU-1", 2, 1250), m.LineItem("SKU-2", 1, 500)),
        shipping_address=m.Address("1 Main St", "Berlin", "BE", "10115", "DE"),
        payment_provider="stripe",
        payment_method="pm_card_visa",
    )
    return dataclasses.replace(command, **changes)


def send(settings: Settings, topic: str, *messages: Any) -> list[Envelope[Any]]:
    now = int(time.time() * 1000)
    envelopes = [Envelope.new(msg, occurred_at=now, producer="rogue-producer") for msg in messages]
    produce(_bootstrap(settings), topic, SERDE, envelopes)
    return envelopes


def dead_letters(settings: Settings, topic: str, key: str, count: int) -> list[Seen]:
    """The DLQ records of `topic` with this key, once `count` of them are there."""

    def mine(records: list[Seen]) -> list[Seen]:
        return [r for r in records if r.key == key.encode()]

    found = read_topic(
        _bootstrap(settings),
        dlq(topic),
        timeout_s=TIMEOUT_S,
        until=lambda records: len(mine(records)) >= count,
    )
    return mine(found)


def reasons(records: list[Seen]) -> list[str]:
    return [r.headers["dlq.error"].decode() for r in records]


def events_until(
    settings: Settings, checkout_id: str, done: Callable[[list[Any]], bool]
) -> list[Any]:
    found: list[Any] = []

    def mine(records: list[Seen]) -> list[Any]:
        unique: dict[str, Any] = {}
        for r in records:
            if r.key == checkout_id.encode():
                envelope = SERDE.decode(r.value, CHECKOUT_EVENTS)
                unique.setdefault(envelope.message_id, envelope.message)
        return list(unique.values())

    def check(records: list[Seen]) -> bool:
        found[:] = mine(records)
        return done(found)

    try:
        read_topic(_bootstrap(settings), CHECKOUT_EVENTS, timeout_s=TIMEOUT_S, until=check)
    except AssertionError as e:
        names = [type(x).__name__ for x in found]
        raise AssertionError(f"{checkout_id}: condition not met; its events: {names}") from e
    return found


def completed(events: list[Any]) -> bool:
    return any(isinstance(e, m.CheckoutCompleted) for e in events)


def recorded_events(settings: Settings, checkout_id: str) -> list[Any]:
    """Every event of the checkout in the log now. Called after its DLQ record is visible: the
    orchestrator writes a dead letter in the same transaction as whatever else that input
    caused, so anything it had decided would be readable by now too."""
    found: dict[str, Any] = {}

    def keep(record: Any) -> None:
        if record.key() == checkout_id.encode():
            envelope = SERDE.decode(record.value(), CHECKOUT_EVENTS)
            found.setdefault(envelope.message_id, envelope.message)

    bootstrap = _bootstrap(settings)
    read_to_end(
        bootstrap,
        CHECKOUT_EVENTS,
        list(range(settings.partitions)),
        keep,
        timeout_s=TIMEOUT_S,
        isolation_level=reader_isolation(settings),
    )
    return list(found.values())


# --- unknown checkout ----------------------------------------------------------------------


def test_inputs_for_an_unknown_checkout_are_dead_lettered_naming_checkout_and_message(
    engine: tuple[Settings, ScriptedWorld],
) -> None:
    settings, _ = engine
    ghost, bystander = new_id(), new_id()
    send(settings, CHECKOUT_COMMANDS, start(bystander))
    commands = send(
        settings,
        CHECKOUT_COMMANDS,
        m.CancelCheckout(ghost, "changed my mind"),
        m.RequestRefund(ghost, f"rr-{ghost}", 500, "EUR", "damaged"),
        m.RecordPaymentSignal(
            ghost, "stripe", f"evt-{ghost}", m.PaymentSignal.SUCCEEDED, "pi_ghost", 3800, "EUR"
        ),
    )
    [reply] = send(settings, CHECKOUT_REPLIES, m.TaxCalculated(ghost, 1, 300, "EUR", "taxjar"))

    command_reasons = reasons(dead_letters(settings, CHECKOUT_COMMANDS, ghost, 3))
    assert len(command_reasons) == 3
    expected = [
        f"CancelCheckout for unknown checkout {ghost}",
        f"RequestRefund rr-{ghost} of 500 EUR for unknown checkout {ghost}",
        f"payment signal evt-{ghost} (succeeded of pi_ghost) for unknown checkout {ghost}",
    ]
    for envelope, want in zip(commands, expected, strict=True):
        assert any(want in r and envelope.message_id in r for r in command_reasons), (
            want,
            command_reasons,
        )
    [reply_reason] = reasons(dead_letters(settings, CHECKOUT_REPLIES, ghost, 1))
    assert f"TaxCalculated (attempt 1) for unknown checkout {ghost}" in reply_reason
    assert reply.message_id in reply_reason

    assert recorded_events(settings, ghost) == []  # nothing was made up for the ghost
    assert completed(events_until(settings, bystander, completed))


# --- wrong message type for the topic ------------------------------------------------------


def test_messages_of_a_type_the_topic_does_not_carry_are_dead_lettered(
    engine: tuple[Settings, ScriptedWorld],
) -> None:
    settings, world = engine
    checkout_id = new_id()
    send(settings, CHECKOUT_COMMANDS, start(checkout_id))
    events = events_until(settings, checkout_id, completed)
    done = next(e for e in events if isinstance(e, m.CheckoutCompleted))
    effects_before = sum(world.effects.values())

    # A reply on the commands topic for a live checkout, a public event there, a command on
    # the replies topic, and a payment request on the inventory adapter's topic.
    send(settings, CHECKOUT_COMMANDS, m.TaxCalculated(checkout_id, 1, 999, "EUR", "rogue"))
    send(
        settings,
        CHECKOUT_COMMANDS,
        m.OrderRefunded(done.order_id, checkout_id, "re_rogue", 100, "EUR", 0),
    )
    send(settings, CHECKOUT_REPLIES, start(checkout_id))
    inventory = adapter_requests("inventory")
    send(settings, inventory, m.VoidPayment(checkout_id, 9, "k-rogue", "stripe", "pi_rogue"))

    [tax] = reasons(dead_letters(settings, CHECKOUT_COMMANDS, checkout_id, 1))
    assert tax == "WrongTopic: TaxCalculated is not accepted on topic checkout.commands"
    [order] = reasons(dead_letters(settings, CHECKOUT_COMMANDS, done.order_id, 1))
    assert order == "WrongTopic: OrderRefunded is not accepted on topic checkout.commands"
    [started] = reasons(dead_letters(settings, CHECKOUT_REPLIES, checkout_id, 1))
    assert started == "WrongTopic: StartCheckout is not accepted on topic checkout.replies"
    [void] = dead_letters(settings, inventory, checkout_id, 1)
    assert reasons([void]) == [
        "WrongTopic: VoidPayment is not accepted on topic adapter.inventory.requests"
    ]
    assert void.headers["dlq.processor"] == b"adapter-inventory"

    # Refused before any handler: no adapter effect, and the saga is as it was.
    assert sum(world.effects.values()) == effects_before
    after = recorded_events(settings, checkout_id)
    assert after == events
    state = fold(after)
    assert state is not None and state.status is Status.COMPLETED and state.tax == 300


# --- commands over the limits --------------------------------------------------------------


def test_a_thirty_thousand_line_start_checkout_is_dead_lettered_not_started(
    engine: tuple[Settings, ScriptedWorld],
) -> None:
    settings, _ = engine
    huge, bystander = new_id(), new_id()
    lines = tuple(m.LineItem(f"SKU-{i}", 1, 100) for i in range(30_000))
    [envelope] = send(settings, CHECKOUT_COMMANDS, start(huge, items=lines))
    send(settings, CHECKOUT_COMMANDS, start(bystander))
    [record] = dead_letters(settings, CHECKOUT_COMMANDS, huge, 1)
    [reason] = reasons([record])
    assert len(record.value) > 64 * 1024
    assert f"StartCheckout for checkout {huge} is over the limits" in reason
    assert f"message: {len(record.value)} bytes, at most 65536" in reason
    assert "items: must have at most 100 lines (got 30000)" in reason
    assert envelope.message_id in reason
    assert recorded_events(settings, huge) == []
    assert completed(events_until(settings, bystander, completed))


def test_over_limit_fields_of_start_cancel_and_refund_are_dead_lettered(
    engine: tuple[Settings, ScriptedWorld],
) -> None:
    settings, _ = engine
    bad_start, checkout_id = new_id(), new_id()
    send(
        settings,
        CHECKOUT_COMMANDS,
        start(bad_start, currency="eur", customer_email="nobody", payment_provider="adyen"),
        start(checkout_id),
    )
    events = events_until(settings, checkout_id, completed)
    # For a completed checkout: a refund of nothing, one in a made-up currency, and a cancel
    # whose reason is longer than the API would take.
    send(
        settings,
        CHECKOUT_COMMANDS,
        m.RequestRefund(checkout_id, "rr-zero", 0, "EUR", "nothing"),
        m.RequestRefund(checkout_id, "rr-xxx", 100, "XXX", "odd currency"),
        m.CancelCheckout(checkout_id, "r" * 201),
    )

    [start_reason] = reasons(dead_letters(settings, CHECKOUT_COMMANDS, bad_start, 1))
    assert "customer_email: is not an email address" in start_reason
    assert "currency: is not an ISO-4217 currency code" in start_reason
    assert "payment_provider: is not a payment provider" in start_reason
    refused = reasons(dead_letters(settings, CHECKOUT_COMMANDS, checkout_id, 3))
    assert any("RequestRefund" in r and "amount: must be at least 1 (got 0)" in r for r in refused)
    assert any("RequestRefund" in r and "currency: is not an ISO-4217" in r for r in refused)
    assert any(
        "CancelCheckout" in r and "reason: must be at most 200 characters (got 201)" in r
        for r in refused
    )

    assert recorded_events(settings, bad_start) == []
    after = recorded_events(settings, checkout_id)
    assert after == events  # no refund requested or rejected, no cancel decided
    state = fold(after)
    assert state is not None and state.status is Status.COMPLETED
    assert state.refundable_amount == TOTAL


# --- a known checkout refusing a command ---------------------------------------------------


def test_a_known_checkout_records_every_command_it_refuses(
    engine: tuple[Settings, ScriptedWorld],
) -> None:
    settings, world = engine
    checkout_id = new_id()
    send(settings, CHECKOUT_COMMANDS, start(checkout_id))
    # The same id with another body: not this checkout, and not to be folded into it.
    send(settings, CHECKOUT_COMMANDS, start(checkout_id, items=(m.LineItem("SKU-9", 50, 9999),)))
    events_until(settings, checkout_id, completed)
    send(
        settings,
        CHECKOUT_COMMANDS,
        start(checkout_id),  # the original body again: a duplicate, silently fine
        m.RequestRefund(checkout_id, "rr-over", TOTAL + 1, "EUR", "too much"),
        m.CancelCheckout(checkout_id, "too late"),
    )

    def answered(events: list[Any]) -> bool:
        return any(isinstance(e, m.RefundRejected) for e in events) and any(
            isinstance(e, m.CancellationRejected) for e in events
        )

    events = events_until(settings, checkout_id, answered)
    # Exactly one: the duplicate, handled before the refund and the cancel, recorded nothing.
    [rejected_start] = [e for e in events if isinstance(e, m.CommandRejected)]
    assert rejected_start == m.CommandRejected(
        checkout_id,
        "StartCheckout",
        "checkout already started with another body (differs in items)",
    )
    [refund] = [e for e in events if isinstance(e, m.RefundRejected)]
    assert (refund.refund_request_id, refund.refundable_amount) == ("rr-over", TOTAL)
    assert f"exceeds refundable {TOTAL}" in refund.reason
    [cancel] = [e for e in events if isinstance(e, m.CancellationRejected)]
    assert cancel.reason == "checkout is already COMPLETED"

    # The saga placed the original order, once, and nothing of the refusals touched money.
    [done] = [e for e in events if isinstance(e, m.CheckoutCompleted)]
    assert done.total == TOTAL and world.captured[checkout_id] == TOTAL
    state = fold(recorded_events(settings, checkout_id))
    assert state is not None and state.status is Status.COMPLETED
    assert state.refundable_amount == TOTAL
