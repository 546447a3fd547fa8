"""Templates: amounts from minor units by currency exponent, never floats; unknown amounts
left out rather than shown as zero."""

from __future__ import annotations

import pytest

from adapters.notifications.templates import (
    OrderSummary,
    SummaryLine,
    UnknownTemplate,
    format_amount,
    render,
)


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1999, "USD", "19.99 USD"),
        (5, "eur", "0.05 EUR"),
        (0, "USD", "0.00 USD"),
        (1200, "JPY", "1200 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (-5, "KWD", "-0.005 KWD"),
        (-150, "USD", "-1.50 USD"),
        (10**17 + 1, "USD", "1000000000000000.01 USD"),  # beyond float precision
    ],
)
def test_format_amount(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text


def test_order_confirmation_lists_lines_and_totals() -> None:
    subject, body = render(
        "order_confirmation",
        OrderSummary(
            checkout_id="co-1",
            currency="USD",
            order_id="ord-9",
            lines=(SummaryLine("SKU-MUG", 2, 1250), SummaryLine("SKU-TEE", 1, 1999)),
            subtotal=4499,
            tax=360,
            shipping=0,
            total=4859,
        ),
    )
    assert subject == "Order confirmation ord-9"
    assert "SKU-MUG" in body and "25.00 USD" in body
    assert "Tax:" in body and "3.60 USD" in body
    assert "Shipping:" in body and "0.00 USD" in body  # a real zero is shown
    assert "Total:" in body and "48.59 USD" in body


def test_unknown_amounts_are_omitted_not_zero() -> None:
    _, body = render("order_confirmation", OrderSummary("co-1", "", order_id="ord-1"))
    assert "ord-1" in body
    assert "Tax" not in body and "0.00" not in body


def test_checkout_failed_uses_customer_wording() -> None:
    subject, body = render(
        "checkout_failed", OrderSummary("co-7", "USD", failure_reason="out_of_stock:SKU-1")
    )
    assert subject == "We could not complete your order"
    assert "co-7" in body and "out of stock (SKU-1)" in body
    _, unknown = render("checkout_failed", OrderSummary("co-7", "USD", failure_reason="boom:x"))
    assert "unexpected problem" in unknown and "boom" not in unknown


def test_unknown_kind_raises() -> None:
    with pytest.raises(UnknownTemplate):
        render("newsletter", OrderSummary("co", "USD"))
