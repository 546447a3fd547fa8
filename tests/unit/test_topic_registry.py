"""Which message types each topic of the contract carries (events/topics.py ACCEPTED)."""

from __future__ import annotations

from events import avro
from events import messages as m
from events.topics import (
    ACCEPTED,
    CHECKOUT_COMMANDS,
    CHECKOUT_EVENTS,
    CHECKOUT_REPLIES,
    MAIN_TOPICS,
    OPS_ALERTS,
    ORDERS_EVENTS,
    adapter_requests,
    dlq,
    refusal_on,
)


def test_every_topic_of_the_contract_says_what_it_carries() -> None:
    # ops.alerts is analytics' output, outside the saga's work topics (no DLQ: nothing reads it
    # as a processor input).
    assert set(ACCEPTED) == {*MAIN_TOPICS, OPS_ALERTS}


def test_every_message_type_has_a_topic() -> None:
    carried = set().union(*ACCEPTED.values())
    assert {cls.__name__ for cls in avro.message_classes()} <= carried


def test_work_topics_do_not_share_types() -> None:
    work = [t for t in MAIN_TOPICS if t not in (CHECKOUT_EVENTS,)]
    for i, a in enumerate(work):
        for b in work[i + 1 :]:
            assert not ACCEPTED[a] & ACCEPTED[b], (a, b)


def test_the_orchestrator_s_outputs_are_accepted_where_it_writes_them() -> None:
    reply = m.TaxCalculated("c", 1, 10, "EUR", "rate_table")
    assert refusal_on(CHECKOUT_REPLIES, reply) is None
    assert refusal_on(CHECKOUT_EVENTS, reply) is None  # accepted replies are recorded as they are
    assert refusal_on(CHECKOUT_EVENTS, m.CheckoutCancelled("c", "r")) is None
    assert refusal_on(CHECKOUT_COMMANDS, m.Tick(0, 0)) is None
    void = m.VoidPayment("c", 1, "k", "stripe", "pi")
    assert refusal_on(adapter_requests("payment"), void) is None


def test_wrong_types_are_refused_with_a_reason_naming_type_and_topic() -> None:
    reply = m.TaxCalculated("c", 1, 10, "EUR", "rate_table")
    assert refusal_on(CHECKOUT_COMMANDS, reply) == (
        "TaxCalculated is not accepted on topic checkout.commands"
    )
    start = m.StartCheckout(
        "c", "t", "cu", "a@b.co", "EUR", (), m.Address("l", "c", "", "", "DE"), "stripe", "pm"
    )
    assert refusal_on(CHECKOUT_REPLIES, start) is not None
    assert refusal_on(CHECKOUT_EVENTS, start) is not None
    void = m.VoidPayment("c", 1, "k", "stripe", "pi")
    assert refusal_on(adapter_requests("inventory"), void) == (
        "VoidPayment is not accepted on topic adapter.inventory.requests"
    )
    placed_on_commands = refusal_on(CHECKOUT_COMMANDS, m.OrderRefunded("o", "c", "r", 1, "EUR", 0))
    assert placed_on_commands is not None
    assert refusal_on(ORDERS_EVENTS, reply) is not None


def test_topics_outside_the_contract_carry_anything() -> None:
    reply = m.TaxCalculated("c", 1, 10, "EUR", "rate_table")
    assert refusal_on(dlq(CHECKOUT_COMMANDS), reply) is None
    assert refusal_on("checkout.commands.test-1234", reply) is None
