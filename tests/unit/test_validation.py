"""The command limits (events.validation): one rule set for the API and the orchestrator."""

from __future__ import annotations

import dataclasses

import pytest
from saga_harness import cancel, refund_request, start

from events import messages as m
from events import validation as v
from events.envelope import Envelope
from events.serde import SingleObjectSerde


def _encoded_size(command: m.StartCheckout) -> int:
    envelope = Envelope.new(command, occurred_at=0, producer="test")
    return len(SingleObjectSerde().encode(envelope, "checkout.commands"))


def test_a_valid_start_checkout_has_no_problems() -> None:
    assert v.command_problems(start()) == []
    assert v.refusal(start()) is None


def test_thirty_thousand_lines_are_refused_with_a_bounded_reason() -> None:
    """The operator's finding of issue 12: a 510 KB StartCheckout with 30,000 lines."""
    lines = tuple(m.LineItem(f"sku-{i}", 1, 100) for i in range(30_000))
    command = dataclasses.replace(start(), items=lines)
    size = _encoded_size(command)
    problems = v.command_problems(command, size)
    assert [p.field for p in problems] == ["message", "items"]
    assert problems[1].reason == "must have at most 100 lines (got 30000)"
    reason = v.refusal(command, size)
    assert reason is not None and reason.startswith("StartCheckout for checkout chk-1")
    assert f"message: {size} bytes, at most {v.MAX_COMMAND_BYTES}" in reason
    assert len(reason) < 300


def test_a_maximal_valid_start_checkout_fits_the_size_limit_with_room_to_spare() -> None:
    lines = tuple(m.LineItem("S" * 64, v.MAX_QUANTITY, v.MAX_UNIT_AMOUNT) for _ in range(100))
    address = m.Address("L" * 200, "C" * 200, "S" * 100, "P" * 20, "DE")
    command = dataclasses.replace(
        start(), items=lines, shipping_address=address, customer_id="c" * 200,
        customer_email="e" * 240 + "@example.com", payment_method="p" * 255,
        tenant_id="t" * 200,
    )  # fmt: skip
    assert v.command_problems(command) == []
    size = _encoded_size(command)
    assert size < v.MAX_COMMAND_BYTES / 4


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"checkout_id": "a b"}, "checkout_id", "only letters, digits and _ . : - are allowed"),
        ({"checkout_id": "c" * 129}, "checkout_id", "must be at most 128 characters (got 129)"),
        ({"tenant_id": ""}, "tenant_id", "must not be empty"),
        ({"customer_id": "\x00x"}, "customer_id", "no control characters"),
        ({"customer_email": "nobody"}, "customer_email", "is not an email address"),
        ({"currency": "usd"}, "currency", "is not an ISO-4217 currency code"),
        ({"currency": "XXX"}, "currency", "is not an ISO-4217 currency code"),
        ({"items": ()}, "items", "must have at least 1 line(s)"),
        ({"items": (m.LineItem("", 1, 1),)}, "items.0.sku", "must not be empty"),
        ({"items": (m.LineItem("s" * 65, 1, 1),)}, "items.0.sku", "at most 64 characters"),
        ({"items": (m.LineItem("s", 0, 1),)}, "items.0.quantity", "must be at least 1 (got 0)"),
        ({"items": (m.LineItem("s", 10_001, 1),)}, "items.0.quantity", "at most 10000"),
        ({"items": (m.LineItem("s", 1, -1),)}, "items.0.unit_amount", "at least 0 (got -1)"),
        ({"items": (m.LineItem("s", 1, 10**11 + 1),)}, "items.0.unit_amount", "at most"),
        ({"payment_provider": "adyen"}, "payment_provider", "is not a payment provider"),
        ({"payment_method": " "}, "payment_method", "visible character"),
    ],
)  # fmt: skip
def test_each_start_checkout_limit_names_the_field(
    change: dict[str, object], field: str, reason: str
) -> None:
    problems = v.command_problems(dataclasses.replace(start(), **change))  # type: ignore[arg-type]
    assert [p.field for p in problems] == [field]
    assert reason in problems[0].reason


@pytest.mark.parametrize(
    ("address", "field"),
    [
        (m.Address("", "Springfield", "IL", "62701", "US"), "shipping_address.line1"),
        (m.Address("1 Main", "C" * 201, "IL", "62701", "US"), "shipping_address.city"),
        (m.Address("1 Main", "Springfield", "S" * 101, "62701", "US"), "shipping_address.state"),
        (m.Address("1 Main", "Springfield", "IL", "6" * 21, "US"), "shipping_address.postal_code"),
        (m.Address("1 Main", "Springfield", "IL", "62701", "ZZ"), "shipping_address.country"),
    ],
)
def test_address_limits(address: m.Address, field: str) -> None:
    problems = v.command_problems(dataclasses.replace(start(), shipping_address=address))
    assert [p.field for p in problems] == [field]


def test_an_empty_state_and_postal_code_are_allowed() -> None:
    address = m.Address("1 Main St", "Dublin", "", "", "IE")
    assert v.command_problems(dataclasses.replace(start(), shipping_address=address)) == []


def test_refund_limits() -> None:
    assert v.command_problems(refund_request(100)) == []
    assert [p.field for p in v.command_problems(refund_request(0))] == ["amount"]
    assert [p.field for p in v.command_problems(refund_request(-5))] == ["amount"]
    assert [p.field for p in v.command_problems(refund_request(1, currency="usd"))] == ["currency"]
    too_much = refund_request(v.MAX_REFUND_AMOUNT + 1)
    assert "at most" in v.command_problems(too_much)[0].reason
    assert [p.field for p in v.command_problems(refund_request(1, rid=""))] == ["refund_request_id"]


def test_cancel_limits() -> None:
    assert v.command_problems(cancel("")) == []  # no reason: the saga says "by customer"
    [problem] = v.command_problems(cancel("r" * 201))
    assert problem == v.Problem("reason", "must be at most 200 characters (got 201)")
    assert v.refusal(cancel("bad\nreason")) == (
        "CancelCheckout for checkout chk-1 is over the limits: reason: no control characters"
    )


def test_inputs_that_are_not_storefront_commands_have_no_limits() -> None:
    reply = m.TaxCalculated("chk-1", 1, 10, "USD", "rate_table")
    assert v.command_problems(reply, size=10**6) == []
    assert v.command_problems(m.Tick(0, 0), size=10**6) == []


def test_many_problems_are_cut_to_the_first_few() -> None:
    lines = tuple(m.LineItem("", 0, -1) for _ in range(10))
    reason = v.refusal(dataclasses.replace(start(), items=lines))
    assert reason is not None and reason.endswith("; and 20 more")
    assert reason.count("items.") == v.MAX_REPORTED


def test_bool_is_not_a_quantity() -> None:
    assert v.QUANTITY.check(True) == "must be an integer, not bool"
