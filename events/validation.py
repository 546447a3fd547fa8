"""The limits of every storefront command, in one place: the HTTP API checks its request bodies
with these rules (api/models.py) and the orchestrator checks every command that arrives on
checkout.commands with them too, because anyone with produce rights on that topic can skip the
API. Pure: no I/O, no framework; a rule answers a value with the reason it is refused, or None.

Why the orchestrator repeats what the API already checked: a 30,000-line StartCheckout produced
straight onto Kafka once became a checkout (issue 12). Sizes matter downstream — every line is
reserved, taxed, projected and emailed — so the limits are a contract, not a courtesy of the API.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from events import messages as m
from events.iso import COUNTRIES, CURRENCIES, PAYMENT_PROVIDERS

MAX_UNIT_AMOUNT = 100_000_000_000  # 1e9 major units of a 2-decimal currency: no real price
MAX_QUANTITY = 10_000
MAX_LINES = 100
MAX_REFUND_AMOUNT = MAX_UNIT_AMOUNT * MAX_QUANTITY
# The API's request body limit. An encoded command is far smaller than its JSON body (a
# maximal valid StartCheckout is under 10 KiB in Avro), so a bigger record is never legitimate.
MAX_COMMAND_BYTES = 64 * 1024
# Reasons are read by operators and stored in a DLQ header; the first few say what is wrong.
MAX_REPORTED = 10

_CONTROL = r"\x00-\x1f\x7f"
# At least one visible character, no control characters.
TEXT_PATTERN = rf"^[^{_CONTROL}]*[^\x00-\x20\x7f][^{_CONTROL}]*$"
NO_CONTROL_PATTERN = rf"^[^{_CONTROL}]*$"
EMAIL_PATTERN = rf"^[^@\s{_CONTROL}]+@[^@\s{_CONTROL}]+\.[^@\s{_CONTROL}]+$"
ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"


@dataclass(frozen=True, slots=True)
class Problem:
    field: str  # dotted path in the command, e.g. items.3.quantity
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


@dataclass(frozen=True, slots=True)
class TextRule:
    max_length: int
    min_length: int = 1
    pattern: str = TEXT_PATTERN
    mismatch: str = "must contain a visible character and no control characters"

    def check(self, value: object) -> str | None:
        if not isinstance(value, str):
            return f"must be a string, not {type(value).__name__}"
        if len(value) < self.min_length:
            if self.min_length == 1:
                return "must not be empty"
            return f"must be at least {self.min_length} characters"
        if len(value) > self.max_length:
            return f"must be at most {self.max_length} characters (got {len(value)})"
        if value and re.match(self.pattern, value) is None:
            return self.mismatch
        return None

    def json_schema(self) -> dict[str, Any]:
        return {"minLength": self.min_length, "maxLength": self.max_length, "pattern": self.pattern}


@dataclass(frozen=True, slots=True)
class IntRule:
    minimum: int
    maximum: int

    def check(self, value: object) -> str | None:
        # bool is an int in Python, never an amount or a quantity.
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be an integer, not {type(value).__name__}"
        if value < self.minimum:
            return f"must be at least {self.minimum} (got {value})"
        if value > self.maximum:
            return f"must be at most {self.maximum} (got {value})"
        return None

    def json_schema(self) -> dict[str, Any]:
        return {"minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True, slots=True)
class CodeRule:
    codes: frozenset[str]
    what: str
    pattern: str

    def check(self, value: object) -> str | None:
        if not isinstance(value, str):
            return f"must be a string, not {type(value).__name__}"
        if value not in self.codes:
            # The value is not repeated: the API never echoes input (it may be personal data).
            return f"is not {self.what}"
        return None

    def json_schema(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "enum": sorted(self.codes)}


@dataclass(frozen=True, slots=True)
class CountRule:
    """How many lines a command may carry."""

    minimum: int
    maximum: int

    def check(self, value: Sequence[object]) -> str | None:
        if len(value) < self.minimum:
            return f"must have at least {self.minimum} line(s)"
        if len(value) > self.maximum:
            return f"must have at most {self.maximum} lines (got {len(value)})"
        return None

    def json_schema(self) -> dict[str, Any]:
        return {"minItems": self.minimum, "maxItems": self.maximum}


Rule = TextRule | IntRule | CodeRule

# --- the rules, by what they apply to ------------------------------------------------------

ID = TextRule(128, pattern=ID_PATTERN, mismatch="only letters, digits and _ . : - are allowed")
TENANT = TextRule(200)
CUSTOMER_ID = TextRule(200)
EMAIL = TextRule(254, min_length=3, pattern=EMAIL_PATTERN, mismatch="is not an email address")
CURRENCY = CodeRule(CURRENCIES, "an ISO-4217 currency code", r"^[A-Z]{3}$")
COUNTRY = CodeRule(COUNTRIES, "an ISO-3166-1 alpha-2 country code", r"^[A-Z]{2}$")
PAYMENT_PROVIDER = CodeRule(
    PAYMENT_PROVIDERS, f"a payment provider ({', '.join(sorted(PAYMENT_PROVIDERS))})", r"^.+$"
)
PAYMENT_METHOD = TextRule(255)
LINES = CountRule(1, MAX_LINES)
SKU = TextRule(64)
QUANTITY = IntRule(1, MAX_QUANTITY)
UNIT_AMOUNT = IntRule(0, MAX_UNIT_AMOUNT)
ADDRESS_LINE = TextRule(200)
CITY = TextRule(200)
STATE = TextRule(100, min_length=0, pattern=NO_CONTROL_PATTERN, mismatch="no control characters")
POSTAL_CODE = TextRule(
    20, min_length=0, pattern=NO_CONTROL_PATTERN, mismatch="no control characters"
)
REASON = TextRule(200, min_length=0, pattern=NO_CONTROL_PATTERN, mismatch="no control characters")
ACTOR = TextRule(200, pattern=NO_CONTROL_PATTERN, mismatch="no control characters")
REFUND_AMOUNT = IntRule(1, MAX_REFUND_AMOUNT)


# --- whole commands --------------------------------------------------------------------------


class _Found:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def check(self, field: str, rule: Rule, value: object) -> None:
        reason = rule.check(value)
        if reason is not None:
            self.problems.append(Problem(field, reason))


def start_checkout_problems(command: m.StartCheckout) -> list[Problem]:
    found = _Found()
    found.check("checkout_id", ID, command.checkout_id)
    found.check("tenant_id", TENANT, command.tenant_id)
    found.check("customer_id", CUSTOMER_ID, command.customer_id)
    found.check("customer_email", EMAIL, command.customer_email)
    found.check("currency", CURRENCY, command.currency)
    lines = LINES.check(command.items)
    if lines is not None:
        found.problems.append(Problem("items", lines))
    # Only the lines a valid command could have: 30,000 bad lines need not be reported.
    for i, item in enumerate(command.items[:MAX_LINES]):
        found.check(f"items.{i}.sku", SKU, item.sku)
        found.check(f"items.{i}.quantity", QUANTITY, item.quantity)
        found.check(f"items.{i}.unit_amount", UNIT_AMOUNT, item.unit_amount)
    address = command.shipping_address
    found.check("shipping_address.line1", ADDRESS_LINE, address.line1)
    found.check("shipping_address.city", CITY, address.city)
    found.check("shipping_address.state", STATE, address.state)
    found.check("shipping_address.postal_code", POSTAL_CODE, address.postal_code)
    found.check("shipping_address.country", COUNTRY, address.country)
    found.check("payment_provider", PAYMENT_PROVIDER, command.payment_provider)
    found.check("payment_method", PAYMENT_METHOD, command.payment_method)
    return found.problems


def cancel_checkout_problems(command: m.CancelCheckout) -> list[Problem]:
    found = _Found()
    found.check("checkout_id", ID, command.checkout_id)
    found.check("reason", REASON, command.reason)
    return found.problems


def retry_checkout_problems(command: m.RetryCheckout) -> list[Problem]:
    found = _Found()
    found.check("checkout_id", ID, command.checkout_id)
    found.check("requested_by", ACTOR, command.requested_by)
    found.check("reason", REASON, command.reason)
    return found.problems


def request_refund_problems(command: m.RequestRefund) -> list[Problem]:
    found = _Found()
    found.check("checkout_id", ID, command.checkout_id)
    found.check("refund_request_id", ID, command.refund_request_id)
    found.check("amount", REFUND_AMOUNT, command.amount)
    found.check("currency", CURRENCY, command.currency)
    found.check("reason", REASON, command.reason)
    return found.problems


def command_problems(message: object, size: int = 0) -> list[Problem]:
    """Every limit `message` breaks; `size` is its encoded length on Kafka (0: unknown).
    Inputs that are not storefront commands (replies, ticks, webhook signals) have no limits
    here: they come from our own processors, which built them from validated commands."""
    problems: list[Problem] = []
    if size > MAX_COMMAND_BYTES:
        problems.append(Problem("message", f"{size} bytes, at most {MAX_COMMAND_BYTES}"))
    match message:
        case m.StartCheckout():
            problems += start_checkout_problems(message)
        case m.CancelCheckout():
            problems += cancel_checkout_problems(message)
        case m.RequestRefund():
            problems += request_refund_problems(message)
        case m.RetryCheckout():
            problems += retry_checkout_problems(message)
        case _:
            return []
    return problems


def refusal(message: object, size: int = 0) -> str | None:
    """One line for an operator naming the command and what is wrong, or None if it is valid."""
    problems = command_problems(message, size)
    if not problems:
        return None
    shown = "; ".join(str(p) for p in problems[:MAX_REPORTED])
    more = len(problems) - MAX_REPORTED
    rest = f"; and {more} more" if more > 0 else ""
    checkout_id = getattr(message, "checkout_id", "?")
    name = type(message).__name__
    return f"{name} for checkout {str(checkout_id)[:128]} is over the limits: {shown}{rest}"
