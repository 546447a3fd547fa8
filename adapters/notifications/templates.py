"""Plain-text templates for customer emails. Amounts arrive in minor units and are formatted
by the currency's ISO-4217 exponent: never through floats."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.money import exponent


def currency_exponent(currency: str) -> int:
    return exponent(currency.upper())


def format_amount(minor: int, currency: str) -> str:
    """1999, "USD" -> "19.99 USD"; 1200, "JPY" -> "1200 JPY"; -5, "KWD" -> "-0.005 KWD"."""
    exponent = currency_exponent(currency)
    sign = "-" if minor < 0 else ""
    major, rest = divmod(abs(minor), 10**exponent)
    text = f"{major}.{rest:0{exponent}d}" if exponent else str(major)
    return f"{sign}{text} {currency.upper()}"


@dataclass(frozen=True, slots=True)
class SummaryLine:
    sku: str
    quantity: int
    unit_amount: int


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """What the templates may show; built from OrderPlaced / the orders read model."""

    checkout_id: str
    currency: str
    order_id: str | None = None
    lines: tuple[SummaryLine, ...] = ()
    subtotal: int | None = None
    tax: int | None = None
    shipping: int | None = None
    total: int | None = None
    failure_reason: str | None = None
    failed_step: str | None = None  # the saga step that failed, when the reason is opaque
    refund_amount: int | None = None


class UnknownTemplate(ValueError):
    pass


def render(kind: str, summary: OrderSummary) -> tuple[str, str]:
    """(subject, body) for `kind`. Raises UnknownTemplate for kinds we do not send."""
    if kind == "order_confirmation":
        return _order_confirmation(summary)
    if kind == "checkout_failed":
        return _checkout_failed(summary)
    if kind == "checkout_cancelled":
        return _checkout_cancelled(summary)
    if kind == "order_refunded":
        return _order_refunded(summary)
    raise UnknownTemplate(kind)


def _order_confirmation(s: OrderSummary) -> tuple[str, str]:
    ref = s.order_id or s.checkout_id
    out = [f"Thank you for your order {ref}.", ""]
    if s.lines:
        width = max(len(line.sku) for line in s.lines)
        for line in s.lines:
            amount = format_amount(line.quantity * line.unit_amount, s.currency)
            out.append(f"  {line.sku:<{width}}  x{line.quantity:<3} {amount:>16}")
        out.append("")
    for label, value in (
        ("Subtotal", s.subtotal),
        ("Tax", s.tax),
        ("Shipping", s.shipping),
        ("Total", s.total),
    ):
        if value is not None:  # an unknown amount is left out, never shown as zero
            out.append(f"  {label + ':':<10}{format_amount(value, s.currency):>16}")
    out += ["", "We will let you know when it ships."]
    return f"Order confirmation {ref}", "\n".join(out) + "\n"


def _checkout_failed(s: OrderSummary) -> tuple[str, str]:
    out = [
        f"We could not complete your checkout {s.checkout_id}.",
        "",
        f"Reason: {_customer_reason(s.failure_reason, s.failed_step)}",
        "",
        "You have not been charged; any authorization on your card will be released.",
    ]
    return "We could not complete your order", "\n".join(out) + "\n"


def _checkout_cancelled(s: OrderSummary) -> tuple[str, str]:
    out = [
        f"Your checkout {s.checkout_id} was cancelled.",
        "",
        "You have not been charged; any authorization on your card will be released.",
    ]
    return "Your checkout was cancelled", "\n".join(out) + "\n"


def _order_refunded(s: OrderSummary) -> tuple[str, str]:
    ref = s.order_id or s.checkout_id
    if s.refund_amount is None:  # never claim an amount we do not know
        first = f"We have refunded a payment for your order {ref}."
    else:
        first = f"We have refunded {format_amount(s.refund_amount, s.currency)} for order {ref}."
    out = [first, "", "It may take a few business days to appear on your statement."]
    return f"Refund for order {ref}", "\n".join(out) + "\n"


# A saga step's failure described to the customer when its reason is provider text.
_STEP_WORDING = {
    "reserve_inventory": "an item in your cart is not available",
    "calculate_tax": "we could not calculate tax for your address",
    "quote_shipping": "we cannot ship to your address",
    "authorize_payment": "your payment was not authorized",
    "capture_payment": "your payment could not be completed",
}


def _customer_reason(reason: str | None, step: str | None = None) -> str:
    # Internal reasons ("out_of_stock:SKU-1", "card_declined") mapped to customer wording;
    # provider text ("Your card was declined.") is not shown as is: it may leak internals.
    if not reason:
        return _STEP_WORDING.get(step or "", "an unexpected problem")
    code, _, detail = reason.partition(":")
    wording = {
        "out_of_stock": "an item in your cart is out of stock",
        "unknown_sku": "an item in your cart is no longer available",
        "card_declined": "your card was declined",
        "payment_declined": "your payment was declined",
        "cancelled": "the checkout was cancelled",
    }.get(code)
    if wording is None:
        return _STEP_WORDING.get(step or "", "an unexpected problem")
    return f"{wording} ({detail})" if detail else wording
